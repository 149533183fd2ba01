// The parts of libtorch that tch 0.24 does not expose: autocast for any device type and dtype
// (tch's own `autocast` is CUDA fp16 only) and the CUDA hooks' bf16 capability check.
// Every function catches C++ exceptions and reports failure as -1.
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>

namespace {
c10::DeviceType device_type(int device) { return device == 1 ? at::kCUDA : at::kCPU; }
}  // namespace

extern "C" {

// Enables autocast to `dtype` (a c10::ScalarType code) on `device` (0 CPU, 1 CUDA) and enters
// one nesting level; the previous state goes to `prev_enabled` and `prev_dtype`.
int accel_autocast_enter(int device, int dtype, int* prev_enabled, int* prev_dtype) {
  try {
    auto dt = device_type(device);
    *prev_enabled = at::autocast::is_autocast_enabled(dt) ? 1 : 0;
    *prev_dtype = static_cast<int>(at::autocast::get_autocast_dtype(dt));
    at::autocast::set_autocast_dtype(dt, static_cast<at::ScalarType>(dtype));
    at::autocast::set_autocast_enabled(dt, true);
    at::autocast::increment_nesting();
    return 0;
  } catch (...) {
    return -1;
  }
}

// Restores the state `accel_autocast_enter` saved and leaves its nesting level; the cache of
// low-precision weight copies is dropped when the outermost level is left.
int accel_autocast_exit(int device, int prev_enabled, int prev_dtype) {
  try {
    auto dt = device_type(device);
    at::autocast::set_autocast_enabled(dt, prev_enabled != 0);
    at::autocast::set_autocast_dtype(dt, static_cast<at::ScalarType>(prev_dtype));
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    return 0;
  } catch (...) {
    return -1;
  }
}

// 1 when autocast is on for `device`, 0 when off.
int accel_autocast_enabled(int device) {
  try {
    return at::autocast::is_autocast_enabled(device_type(device)) ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// 1 when the current CUDA device runs bf16 convolutions natively (compute capability >= 8.0
// with cuDNN 8+), 0 otherwise or without CUDA.
int accel_cuda_bf16_supported() {
  try {
    return at::detail::getCUDAHooks().supportsBFloat16ConvolutionWithCuDNNv8() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

}  // extern "C"

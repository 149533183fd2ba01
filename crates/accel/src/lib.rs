//! What the hardware offers simclr-rs on libtorch, in one small leaf crate (it depends on `tch`
//! alone):
//!
//! - [`Precision`]: fp32, or bf16 **autocast** on the CPU or CUDA. Autocast is not a bf16 copy of
//!   the model: weights, gradients and optimizer state stay fp32, and only the ops libtorch's
//!   autocast lists (convolutions, linear layers, matrix products) run in bf16 inside
//!   [`Precision::autocast`]. tch 0.24's own `autocast` is CUDA fp16 only, so a C++ shim compiled
//!   by this crate's build script reaches `at::autocast` directly.
//! - [`MemoryFormat`]: contiguous NCHW or channels-last (NHWC strides, same values).
//! - [`upload`]: one host-to-device copy through pinned memory, asynchronous on CUDA.
//! - [`set_cuda_sync_debug`]: libtorch's CUDA synchronisation check (`torch.cuda.set_sync_debug_mode`),
//!   which makes any host synchronisation an error, for tests of a sync-free step.
//! - [`tune_allocator`]: keep glibc from returning libtorch's large buffers to the kernel every step.
//!
//! ```
//! use accel::Precision;
//! use tch::{Device, Kind, Tensor};
//! let w = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
//! let x = Tensor::randn([2, 8], (Kind::Float, Device::Cpu));
//! let y = Precision::Bf16.autocast(Device::Cpu, || x.linear::<Tensor>(&w, None));
//! assert_eq!(y.kind(), Kind::BFloat16); // the product ran in bf16
//! assert_eq!(w.kind(), Kind::Float); // the weight did not change
//! ```

use tch::{Device, Kind, Tensor};

unsafe extern "C" {
    fn accel_autocast_enter(
        device: i32,
        dtype: i32,
        prev_enabled: *mut i32,
        prev_dtype: *mut i32,
    ) -> i32;
    fn accel_autocast_exit(device: i32, prev_enabled: i32, prev_dtype: i32) -> i32;
    fn accel_autocast_enabled(device: i32) -> i32;
    fn accel_cuda_bf16_supported() -> i32;
}

/// `c10::ScalarType::BFloat16`.
const SCALAR_TYPE_BF16: i32 = 15;

fn device_code(device: Device) -> i32 {
    match device {
        Device::Cuda(_) => 1,
        _ => 0,
    }
}

/// The precision a model computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Everything in float32.
    #[default]
    Fp32,
    /// bf16 autocast: convolutions and matrix products in bfloat16, everything else float32.
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Runs `f` with autocast to this precision on `device`'s type (a no-op wrapper for fp32).
    /// The previous autocast state is restored afterwards, also when `f` panics.
    pub fn autocast<T>(self, device: Device, f: impl FnOnce() -> T) -> T {
        match self {
            Precision::Fp32 => f(),
            Precision::Bf16 => {
                let _guard = AutocastGuard::enter(device);
                f()
            }
        }
    }
}

/// Whether autocast is on for `device`'s type in this thread.
pub fn autocast_enabled(device: Device) -> bool {
    // SAFETY: the shim only reads libtorch's thread-local autocast state.
    unsafe { accel_autocast_enabled(device_code(device)) == 1 }
}

/// Restores the autocast state it found when dropped.
struct AutocastGuard {
    device: i32,
    prev_enabled: i32,
    prev_dtype: i32,
}

impl AutocastGuard {
    fn enter(device: Device) -> Self {
        let device = device_code(device);
        let (mut prev_enabled, mut prev_dtype) = (0, 0);
        // SAFETY: the shim writes the two out-pointers, which point at live locals.
        let rc = unsafe {
            accel_autocast_enter(device, SCALAR_TYPE_BF16, &mut prev_enabled, &mut prev_dtype)
        };
        // The shim only fails if libtorch rejects the device type, which both of ours are not.
        assert_eq!(rc, 0, "libtorch refused to enable autocast");
        AutocastGuard {
            device,
            prev_enabled,
            prev_dtype,
        }
    }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // SAFETY: restores the state saved by `enter` on the same thread.
        unsafe { accel_autocast_exit(self.device, self.prev_enabled, self.prev_dtype) };
    }
}

/// Whether `device` computes bf16 natively: on the CPU, x86 AVX512-BF16 or AMX-BF16; on CUDA,
/// compute capability 8.0 or newer (as libtorch's CUDA hooks report it).
pub fn bf16_native(device: Device) -> bool {
    match device {
        // SAFETY: a query of libtorch's CUDA hooks; false without CUDA.
        Device::Cuda(_) => unsafe { accel_cuda_bf16_supported() == 1 },
        _ => cpu_bf16(),
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_bf16() -> bool {
    std::arch::is_x86_feature_detected!("avx512bf16") || cpu_flag("amx_bf16")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_bf16() -> bool {
    cpu_flag("bf16")
}

/// Whether bf16 autocast is expected to beat fp32 on `device` for convolutional networks like
/// the example's: CUDA with native bf16 (compute capability 8.0+); CPUs with AMX-BF16; AMD CPUs
/// with AVX512-BF16 (Zen 4: bf16 channels-last encoder steps measured 1.9x fp32). Not Intel
/// CPUs with AVX512-BF16 but no AMX: there, oneDNN's bf16 convolutions measured slower than
/// fp32 channels-last in the full step (about 0.75x on the development machine), so fp32 wins.
/// A fixed rule rather than a timing, so that `auto` resolves the same way every run.
pub fn bf16_preferred(device: Device) -> bool {
    match device {
        Device::Cuda(_) => bf16_native(device),
        _ => cpu_flag("amx_bf16") || (cpu_bf16() && cpu_vendor_is("AuthenticAMD")),
    }
}

fn cpu_vendor_is(vendor: &str) -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| {
        s.lines()
            .filter(|l| l.starts_with("vendor_id"))
            .any(|l| l.split_whitespace().any(|w| w == vendor))
    })
}

/// Whether `/proc/cpuinfo` lists `flag` (false where there is no such file).
fn cpu_flag(flag: &str) -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| {
        s.lines()
            .filter(|l| l.starts_with("flags") || l.starts_with("Features"))
            .any(|l| l.split_whitespace().any(|f| f == flag))
    })
}

/// How a 4-D activation or kernel is laid out in memory; the values are the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryFormat {
    /// NCHW, contiguous.
    #[default]
    Contiguous,
    /// NHWC strides `[HWC, 1, WC, C]` on an `[N, C, H, W]` tensor: what oneDNN and cuDNN run
    /// fastest, and what their convolutions keep through a network.
    ChannelsLast,
}

impl MemoryFormat {
    pub fn name(self) -> &'static str {
        match self {
            MemoryFormat::Contiguous => "nchw",
            MemoryFormat::ChannelsLast => "channels-last",
        }
    }

    /// `x` (4-D) in this format: itself when it already is, else one copy.
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            MemoryFormat::Contiguous => x.contiguous(),
            MemoryFormat::ChannelsLast if is_channels_last(x) => x.shallow_clone(),
            MemoryFormat::ChannelsLast => {
                x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
            }
        }
    }

    /// The format of `x`: channels-last when its strides are NHWC-dense, else contiguous.
    pub fn of(x: &Tensor) -> Self {
        if is_channels_last(x) {
            MemoryFormat::ChannelsLast
        } else {
            MemoryFormat::Contiguous
        }
    }
}

/// Strides `[HWC, 1, WC, C]` for a 4-D `[N, C, H, W]` tensor with `C > 1`.
fn is_channels_last(x: &Tensor) -> bool {
    let (s, st) = (x.size(), x.stride());
    s.len() == 4 && s[1] > 1 && st[1] == 1 && st[3] == s[1] && st[2] == s[1] * s[3]
}

/// `t` on `device` through one copy: on CUDA from pinned host memory without blocking the host
/// (libtorch's caching host allocator keeps the pinned buffer until the copy is done); on the
/// CPU `t` itself.
pub fn upload(t: &Tensor, device: Device) -> Tensor {
    match device {
        Device::Cuda(_) if t.device() == Device::Cpu => {
            t.pin_memory(device)
                .to_device_(device, t.kind(), true, false)
        }
        _ if t.device() == device => t.shallow_clone(),
        _ => t.to_device(device),
    }
}

/// libtorch's CUDA synchronisation check (`torch.cuda.set_sync_debug_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum SyncDebug {
    Off = 0,
    Warn = 1,
    /// Any operation that synchronises the host with the device raises an error.
    Error = 2,
}

/// Sets libtorch's CUDA sync check for the whole process, returning the previous mode; `None`
/// where libtorch's CUDA library is not loaded (no CUDA build of libtorch).
///
/// The mode lives in `c10::cuda::warning_state()`, an inline function whose static
/// `WarningState` (one `SyncDebugMode` enum, an `int`) libc10_cuda exports as a unique global
/// symbol; writing it is exactly what the inline setter does.
pub fn set_cuda_sync_debug(mode: SyncDebug) -> Option<SyncDebug> {
    const SYMBOL: &std::ffi::CStr = c"_ZZN3c104cuda13warning_stateEvE14warning_state_";
    // SAFETY: dlsym with RTLD_DEFAULT only looks the symbol up among the loaded libraries.
    let ptr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, SYMBOL.as_ptr()) } as *mut i32;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the symbol is `c10::cuda::WarningState`, whose only field is an int-sized enum.
    let prev = unsafe { std::ptr::replace(ptr, mode as i32) };
    Some(match prev {
        1 => SyncDebug::Warn,
        2 => SyncDebug::Error,
        _ => SyncDebug::Off,
    })
}

/// Keeps glibc from returning large freed buffers to the kernel. libtorch allocates and frees
/// tens of megabytes every training step; with glibc's defaults each becomes an mmap/munmap pair
/// and page faults on first touch. Measured on the 2-core development machine: system time cut
/// about 9x and CPU steps about 25% faster. Call it first thing in `main` (and in benchmarks, so
/// that their figures agree with the CLI's).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// `Kind::Float` tensors stay as they are; anything else (bf16 autocast outputs) becomes float32.
pub fn to_f32(t: &Tensor) -> Tensor {
    if t.kind() == Kind::Float {
        t.shallow_clone()
    } else {
        t.to_kind(Kind::Float)
    }
}

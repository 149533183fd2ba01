//! Autocast, memory formats and uploads on the CPU; the CUDA-only checks skip without a GPU
//! (and fail instead when SIMCLR_REQUIRE_CUDA is set, as on a lent GPU machine).

use accel::{MemoryFormat, Precision, SyncDebug};
use tch::{Device, Kind, Tensor};

#[test]
fn bf16_autocast_runs_products_in_bf16_and_restores_the_state() {
    tch::manual_seed(0);
    let w = Tensor::randn([16, 32], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let x = Tensor::randn([8, 32], (Kind::Float, Device::Cpu));
    assert!(!accel::autocast_enabled(Device::Cpu));
    let y = Precision::Bf16.autocast(Device::Cpu, || {
        assert!(accel::autocast_enabled(Device::Cpu));
        // Nested regions keep autocast on and restore it on the way out.
        let inner = Precision::Bf16.autocast(Device::Cpu, || x.matmul(&w.tr()));
        assert!(accel::autocast_enabled(Device::Cpu));
        assert_eq!(inner.kind(), Kind::BFloat16);
        x.linear::<Tensor>(&w, None)
    });
    assert!(!accel::autocast_enabled(Device::Cpu), "state restored");
    assert_eq!(y.kind(), Kind::BFloat16);
    let exact = x
        .to_kind(Kind::Double)
        .matmul(&w.detach().to_kind(Kind::Double).tr());
    let err = (y.to_kind(Kind::Double) - &exact)
        .abs()
        .max()
        .double_value(&[]);
    let scale = exact.abs().max().double_value(&[]);
    // bf16 keeps 8 significant bits: relative error well under 2^-6.
    assert!(err / scale < 1.0 / 64.0, "relative error {}", err / scale);
    // Gradients reach the float32 weight as float32.
    y.to_kind(Kind::Float).sum(Kind::Float).backward();
    assert_eq!(w.grad().kind(), Kind::Float);
    let fp32 = Precision::Fp32.autocast(Device::Cpu, || x.linear::<Tensor>(&w, None));
    assert_eq!(fp32.kind(), Kind::Float);
}

#[test]
fn autocast_is_restored_after_a_panic() {
    let r = std::panic::catch_unwind(|| {
        Precision::Bf16.autocast(Device::Cpu, || panic!("inside autocast"));
    });
    assert!(r.is_err());
    assert!(!accel::autocast_enabled(Device::Cpu));
}

#[test]
fn memory_formats_keep_values_and_set_strides() {
    let x = Tensor::rand([2, 3, 5, 4], (Kind::Float, Device::Cpu));
    let cl = MemoryFormat::ChannelsLast.apply(&x);
    assert_eq!(cl.stride(), [60, 1, 12, 3]);
    assert_eq!(MemoryFormat::of(&cl), MemoryFormat::ChannelsLast);
    assert_eq!(MemoryFormat::of(&x), MemoryFormat::Contiguous);
    assert!(cl.equal(&x));
    let back = MemoryFormat::Contiguous.apply(&cl);
    assert_eq!(back.stride(), [60, 20, 4, 1]);
    assert!(back.equal(&x));
    // Already channels-last: no copy.
    let again = MemoryFormat::ChannelsLast.apply(&cl);
    assert_eq!(again.data_ptr(), cl.data_ptr());
}

#[test]
fn upload_to_the_same_device_is_free() {
    let x = Tensor::ones([3], (Kind::Uint8, Device::Cpu));
    let y = accel::upload(&x, Device::Cpu);
    assert_eq!(y.data_ptr(), x.data_ptr());
}

#[test]
fn the_cuda_sync_check_can_be_switched() {
    // libtorch's CUDA build is what the project links; its sync check is there even on a
    // machine without a GPU.
    if accel::set_cuda_sync_debug(SyncDebug::Off).is_none() {
        eprintln!("skipped: libtorch without CUDA");
        return;
    }
    assert_eq!(
        accel::set_cuda_sync_debug(SyncDebug::Error),
        Some(SyncDebug::Off)
    );
    assert_eq!(
        accel::set_cuda_sync_debug(SyncDebug::Off),
        Some(SyncDebug::Error)
    );
}

#[test]
fn the_sync_check_catches_a_host_read_on_cuda() {
    if !test_support::cuda_for_tests() {
        return;
    }
    let x = Tensor::ones([4], (Kind::Float, Device::Cuda(0)));
    accel::set_cuda_sync_debug(SyncDebug::Error);
    let quiet = (&x * 2.0).sum(Kind::Float); // stays on the device
    let read = quiet.f_double_value(&[]); // copies to the host: a sync
    accel::set_cuda_sync_debug(SyncDebug::Off);
    assert!(
        read.is_err(),
        "reading a CUDA value must trip the sync check"
    );
    assert_eq!(quiet.double_value(&[]), 8.0);
}

#[test]
fn bf16_autocast_on_cuda_and_pinned_uploads() {
    if !test_support::cuda_for_tests() {
        return;
    }
    let dev = Device::Cuda(0);
    let w = Tensor::randn([16, 32], (Kind::Float, dev));
    let x = Tensor::randn([8, 32], (Kind::Float, Device::Cpu));
    let xd = accel::upload(&x, dev);
    assert_eq!(xd.device(), dev);
    let y = Precision::Bf16.autocast(dev, || xd.linear::<Tensor>(&w, None));
    assert_eq!(y.kind(), Kind::BFloat16);
    let exact = x.linear::<Tensor>(&w.to_device(Device::Cpu), None);
    let err = (y.to_kind(Kind::Float).to_device(Device::Cpu) - &exact)
        .abs()
        .max()
        .double_value(&[]);
    assert!(err / exact.abs().max().double_value(&[]) < 1.0 / 64.0);
}

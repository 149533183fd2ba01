//! The CUDA path: steps that never wait for the device, and CUDA agreeing with the CPU. Each
//! test skips without a GPU, and fails instead when SIMCLR_REQUIRE_CUDA is set (as
//! scripts/gpu-check.sh does on a lent GPU machine). libtorch's sync check is process-wide, so
//! the tests here take [`CUDA`] in turn, and no other test of this binary uses CUDA.

use std::sync::Arc;

use crate::config::Config;
use crate::prepared::loader::{Feed, Loader, Resident};
use crate::steps::{ContrastiveModel, SupervisedModel, TrainStep};
use accel::SyncDebug;
use stl10_data::{BatchPlan, Dataset, ImageStore, Split};
use tch::{Device, Kind, Tensor};

/// Held by each test here: one at a time touches the device and its sync check.
static CUDA: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn dataset() -> Dataset {
    let split = |n: i64, labeled: bool| {
        let t =
            Tensor::randint(256, [n, 3, 32, 32], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8);
        let bytes = Vec::<u8>::try_from(t.flatten(0, -1)).unwrap();
        let labels = labeled.then(|| (0..n).map(|i| i % 4).collect());
        Split::new(Arc::new(ImageStore::from_chw(bytes, 32)), labels)
    };
    Dataset {
        train: split(16, true),
        unlabeled: split(48, false),
        test: split(16, true),
        class_names: ["a", "b", "c", "d"].map(String::from).to_vec(),
        image_size: 32,
        skipped: 0,
    }
}

fn config(precision: &str) -> Config {
    Config::load(
        None,
        &[
            "data.kind=folder".into(),
            "data.image_size=32".into(),
            "model.width=16".into(),
            format!("runtime.precision={precision}"),
        ],
    )
    .unwrap()
}

/// Runs `steps` steps of `feed` with libtorch's sync check set to error, then reads the sums.
fn steps_without_sync<S: TrainStep>(model: &mut S, loader: &Loader, feed: Feed) -> Vec<f64> {
    let batches: Vec<_> = loader
        .epoch(feed, 1, 0)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // One step outside the check: first-use allocations (cuDNN, pinned memory) may sync.
    let mut sums = model.train_step(&batches[0]).unwrap().to_kind(Kind::Double);
    tch::Cuda::synchronize(0);
    accel::set_cuda_sync_debug(SyncDebug::Error).expect("libtorch's CUDA library is loaded");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for b in &batches[1..] {
            let v = model.train_step(b).unwrap();
            sums = &sums + v.to_kind(Kind::Double);
        }
    }));
    accel::set_cuda_sync_debug(SyncDebug::Off);
    assert!(result.is_ok(), "a step synchronised with the host");
    Vec::<f64>::try_from(sums.to_device(Device::Cpu)).unwrap()
}

#[test]
fn cuda_steps_never_wait_for_the_device() {
    if !test_support::cuda_for_tests() {
        return;
    }
    let _device = CUDA.lock().unwrap_or_else(|e| e.into_inner());
    tch::Cuda::cudnn_set_benchmark(true);
    let ds = dataset();
    let plan = BatchPlan::new(48, 16, 16).unwrap();
    let resident = Resident::upload(&ds, Device::Cuda(0)).unwrap();
    for precision in ["fp32", "bf16"] {
        let cfg = config(precision);
        let compute = cfg.compute(Device::Cuda(0));
        for resident in [Some(&resident), None] {
            let loader = Loader {
                ds: &ds,
                plan,
                seed: 1,
                resident,
                replica: None,
                prefetch: 2,
                device: Device::Cuda(0),
            };
            let mut m = ContrastiveModel::new(&cfg.pretraining(), 4, compute).unwrap();
            let sums = steps_without_sync(&mut m, &loader, Feed::Zipped);
            assert!(sums.iter().all(|v| v.is_finite()), "{precision}: {sums:?}");
            let mut clf = SupervisedModel::new(&cfg.supervised_baseline(), 4, compute).unwrap();
            let sums = steps_without_sync(&mut clf, &loader, Feed::Labeled);
            assert!(sums.iter().all(|v| v.is_finite()), "{precision}: {sums:?}");
        }
    }
}

#[test]
fn a_cuda_step_matches_the_cpu_step() {
    if !test_support::cuda_for_tests() {
        return;
    }
    let _device = CUDA.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = config("fp32");
    let images =
        Tensor::randint(256, [12, 3, 32, 32], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8);
    let labels = Tensor::from_slice(&[0i64, 1, 2, 3]);
    let model = |device| ContrastiveModel::new(&cfg.pretraining(), 4, cfg.compute(device)).unwrap();
    let (mut cpu, mut gpu) = (model(Device::Cpu), model(Device::Cuda(0)));
    // Each device initialises from its own generator: give the GPU model the CPU weights.
    tch::no_grad(|| {
        for (name, mut v) in gpu.vs.variables() {
            v.copy_(&cpu.vs.variables()[&name]);
        }
        for (name, mut v) in gpu.probe_vs.variables() {
            v.copy_(&cpu.probe_vs.variables()[&name]);
        }
    });
    let a =
        Vec::<f64>::try_from(cpu.step(&images, &labels).unwrap().to_kind(Kind::Double)).unwrap();
    let b = Vec::<f64>::try_from(
        gpu.step(&images, &labels)
            .unwrap()
            .to_kind(Kind::Double)
            .to_device(Device::Cpu),
    )
    .unwrap();
    // Same augmentation parameters (drawn on the host from the same seed) and weights: the
    // metrics agree up to rounding (cuDNN convolutions may use TF32, hence 1e-2 relative).
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-2 * x.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

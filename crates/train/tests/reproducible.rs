//! Alone in its test binary: libtorch's global generator must not be shared with other tests.

use std::sync::Arc;

use stl10_data::{BatchPlan, Dataset, ImageStore, Split};
use tch::{Device, Kind, Tensor};
use train::Config;
use train::fit::{self, Silent};
use train::steps::ContrastiveModel;

fn dataset() -> Dataset {
    let split = |n: i64, seed: i64| {
        tch::manual_seed(seed);
        let t =
            Tensor::randint(256, [n, 3, 32, 32], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8);
        let bytes = Vec::<u8>::try_from(t.flatten(0, -1)).unwrap();
        Arc::new(ImageStore::from_chw(bytes, 32))
    };
    Dataset {
        train: Split::new(split(16, 1), Some((0..16).map(|i| i % 4).collect())),
        unlabeled: Split::new(split(48, 2), None),
        test: Split::new(split(16, 3), Some((0..16).map(|i| i % 4).collect())),
        class_names: ["a", "b", "c", "d"].map(String::from).to_vec(),
        image_size: 32,
        skipped: 0,
    }
}

#[test]
fn a_cpu_run_is_bit_reproducible() {
    let cfg = Config::load(
        None,
        &[
            "data.kind=folder".into(),
            "data.image_size=32".into(),
            "model.width=8".into(),
        ],
    )
    .unwrap();
    let ds = dataset();
    let plan = BatchPlan::new(48, 16, 16).unwrap();
    let run = |cfg: &Config| {
        // Unrelated use of the global generator in between must not matter.
        let _ = Tensor::rand([7], (Kind::Float, Device::Cpu));
        let mut m = ContrastiveModel::new(cfg, 4, Device::Cpu).unwrap();
        let h = fit::pretrain(&mut m, &ds, plan, 2, cfg.runtime.seed, &mut Silent).unwrap();
        h.epochs.into_iter().map(|e| e.metrics).collect::<Vec<_>>()
    };
    let (a, b) = (run(&cfg), run(&cfg));
    assert_eq!(a, b, "same seed, same metrics to the last digit");
    let mut other = cfg.clone();
    other.runtime.seed += 1;
    assert_ne!(a, run(&other), "another seed, another run");
}

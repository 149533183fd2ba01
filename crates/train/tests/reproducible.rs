//! Alone in its test binary: libtorch's global generator must not be shared with other tests.

use std::sync::Arc;

use stl10_data::{BatchPlan, Dataset, ImageStore, Split};
use tch::{Device, Kind, Tensor};
use train::Config;
use train::fit::{self, Phase, Silent};
use train::loader::{Feed, Loader};
use train::runtime::Compute;
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

/// Per-epoch metrics of a 2-epoch pretraining run of `cfg`.
fn pretrain(cfg: &Config, ds: &Dataset) -> Vec<Vec<(String, f64)>> {
    let plan = BatchPlan::new(48, 16, 16).unwrap();
    let loader = Loader {
        ds,
        plan,
        seed: cfg.runtime.seed,
        resident: None,
    };
    // Unrelated use of the global generator in between must not matter.
    let _ = Tensor::rand([7], (Kind::Float, Device::Cpu));
    let mut m = ContrastiveModel::new(cfg, 4, Compute::new(cfg, Device::Cpu)).unwrap();
    let every = cfg.runtime.metrics_every;
    let h = fit::fit_fresh(
        &mut m,
        &Phase {
            run: "pretraining",
            loader: &loader,
            feed: Feed::Zipped,
            epochs: 2,
            metrics_every: every,
        },
        &mut Silent,
    )
    .unwrap();
    h.epochs.into_iter().map(|e| e.metrics).collect()
}

#[test]
fn a_cpu_run_is_bit_reproducible_in_each_precision() {
    let ds = dataset();
    for precision in ["fp32", "bf16"] {
        let cfg = Config::load(
            None,
            &[
                "data.kind=folder".into(),
                "data.image_size=32".into(),
                "model.width=8".into(),
                "runtime.encoder_chunk=20".into(),
                format!("runtime.precision={precision}"),
            ],
        )
        .unwrap();
        let a = pretrain(&cfg, &ds);
        assert_eq!(
            a,
            pretrain(&cfg, &ds),
            "{precision}: same seed, same metrics to the last digit"
        );
        let mut other = cfg.clone();
        other.runtime.seed += 1;
        assert_ne!(
            a,
            pretrain(&other, &ds),
            "{precision}: another seed, another run"
        );
        // Reading the metrics every step instead of once per epoch changes nothing.
        let mut every_step = cfg.clone();
        every_step.runtime.metrics_every = 1;
        let b = pretrain(&every_step, &ds);
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert_eq!(x.0, y.0);
            assert!(
                (x.1 - y.1).abs() <= 1e-12 * x.1.abs().max(1.0),
                "{precision}: {x:?} vs {y:?}"
            );
        }
    }
}

//! Alone in its test binary: libtorch's global generator must not be shared with other tests.

use std::sync::Arc;

use stl10_data::{Dataset, ImageStore, Split};
use tch::{Device, Kind, Tensor};
use train::fit::Silent;
use train::{config::Config, experiment, prepared::Prepared, run_dir::RunDir};

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

/// Per-epoch metrics of a 2-epoch pretraining run of `cfg`, through the public API, and the
/// encoder it saved.
fn pretrain(cfg: &Config, ds: &Dataset) -> (Vec<Vec<(String, f64)>>, Vec<u8>) {
    let prep =
        Prepared::with_dataset(&cfg.data_settings(), cfg.compute(Device::Cpu), ds.clone()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = RunDir::create(out.path(), cfg).unwrap();
    // Unrelated use of the global generator in between must not matter.
    let _ = Tensor::rand([7], (Kind::Float, Device::Cpu));
    let h = experiment::pretrain(&cfg.pretraining(), &prep, &dir, &mut Silent).unwrap();
    let encoder = std::fs::read(dir.file("encoder.safetensors")).unwrap();
    (h.epochs.into_iter().map(|e| e.metrics).collect(), encoder)
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
                "data.batch_size=16".into(),
                "pretrain.epochs=2".into(),
                "eval.knn_monitor=false".into(),
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
        assert_eq!(a.1, b.1, "{precision}: the same encoder, byte for byte");
        for (x, y) in a.0.iter().flatten().zip(b.0.iter().flatten()) {
            assert_eq!(x.0, y.0);
            assert!(
                (x.1 - y.1).abs() <= 1e-12 * x.1.abs().max(1.0),
                "{precision}: {x:?} vs {y:?}"
            );
        }
    }
}

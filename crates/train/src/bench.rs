//! `simclr-cli bench`: times the real pretraining step (two strong views of 500 + 25 images,
//! encoder, head, loss, both optimizers, the probe) and the real supervised step (25 images) at
//! the Keras example's STL-10 shapes, on generated data, after warm-up steps.

use std::time::Instant;

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::config::Config;
use crate::error::Result;
use crate::runtime;
use crate::steps::{ContrastiveModel, SupervisedModel};

/// The example's per-step shapes.
pub const UNLABELED: i64 = 500;
pub const LABELED: i64 = 25;
pub const SIZE: i64 = 96;

/// What `bench` prints, as one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub device: String,
    pub threads: i32,
    pub steps: usize,
    pub warmup_steps: usize,
    pub pretrain_seconds_per_step: f64,
    /// Both views of all 525 images per step.
    pub pretrain_images_per_s: f64,
    pub supervised_seconds_per_step: f64,
    pub supervised_images_per_s: f64,
    /// Share of a pretraining step spent drawing and applying the two strong augmentations.
    pub augment_share_of_pretrain_step: f64,
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn time_steps(steps: usize, device: Device, mut f: impl FnMut()) -> f64 {
    sync(device);
    let start = Instant::now();
    for _ in 0..steps {
        f();
    }
    sync(device);
    start.elapsed().as_secs_f64() / steps as f64
}

/// Runs `warmup` then `steps` timed steps of each kind.
pub fn run(cfg: &Config, device: Device, steps: usize, warmup: usize) -> Result<BenchReport> {
    let mut cfg = cfg.clone();
    cfg.data.image_size = SIZE as usize;
    let images = |n: i64| {
        Tensor::randint(256, [n, 3, SIZE, SIZE], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8)
    };
    let (unlabeled, labeled) = (images(UNLABELED), images(LABELED));
    let labels = Tensor::randint(10, [LABELED], (Kind::Int64, Device::Cpu));

    let mut model = ContrastiveModel::new(&cfg, 10, device)?;
    let mut step_err = None;
    let mut pretrain_step = || {
        if let Err(e) = model.train_step(&unlabeled, &labeled, &labels) {
            step_err.get_or_insert(e);
        }
    };
    for _ in 0..warmup {
        pretrain_step();
    }
    let pretrain = time_steps(steps, device, &mut pretrain_step);
    if let Some(e) = step_err {
        return Err(e);
    }

    let both = Tensor::cat(&[&unlabeled, &labeled], 0);
    let mut strong = augment::Augmenter::new(cfg.augment.contrastive.into(), 0, device)?;
    let augment = time_steps(steps, device, || {
        let _views = (strong.augment(&both), strong.augment(&both));
    });

    let mut clf = SupervisedModel::new(&cfg, 10, device, false)?;
    for _ in 0..warmup {
        clf.train_step(&labeled, &labels);
    }
    let supervised = time_steps(steps.max(1) * 4, device, || {
        clf.train_step(&labeled, &labels);
    });

    Ok(BenchReport {
        device: runtime::describe(device),
        threads: tch::get_num_threads(),
        steps,
        warmup_steps: warmup,
        pretrain_seconds_per_step: pretrain,
        pretrain_images_per_s: (2 * (UNLABELED + LABELED)) as f64 / pretrain,
        supervised_seconds_per_step: supervised,
        supervised_images_per_s: LABELED as f64 / supervised,
        augment_share_of_pretrain_step: augment / pretrain,
    })
}

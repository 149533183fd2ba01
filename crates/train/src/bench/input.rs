//! `simclr-cli bench --data`: how fast the configured data set's input path hands out a
//! pretraining run's batches (images gathered from memory, copied out of memory-mapped packed
//! shards, or decoded from files and tar shards as they stream), through the same loader and
//! prefetch thread a run uses, with nothing consuming them; `workers` cores do the work.

use std::time::Instant;

use serde::Serialize;
use stl10_data::DataKind;

use crate::config::DataSettings;
use crate::error::{Result, TrainError};
use crate::prepared::loader::{Feed, Loader};

/// What `bench --data` prints, as one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct InputReport {
    /// `folder /data/imgs`.
    pub source: String,
    /// `in memory (decoded before training)`, `streamed (decoded batch by batch)` or
    /// `packed (memory-mapped shards)`.
    pub path: &'static str,
    pub image_size: usize,
    /// Images of a step (unlabeled + labeled).
    pub batch_images: usize,
    /// Threads gathering and decoding (rayon's), the loader's prefetch depth.
    pub workers: usize,
    pub prefetch: usize,
    /// Seconds to open the data set before the first batch (indexing, checking headers, and
    /// for the in-memory path decoding everything).
    pub open_seconds: f64,
    pub images: usize,
    pub seconds: f64,
    pub images_per_s: f64,
    pub images_per_s_per_worker: f64,
}

/// Times the batches of the data `settings` describe until at least `images` images (at
/// least one step) are handed out, epoch after epoch; gathering runs on rayon's global pool,
/// of `workers` threads.
pub fn run(settings: &DataSettings, workers: usize, images: usize) -> Result<InputReport> {
    let cfg = &settings.data;
    let started = Instant::now();
    let ds = stl10_data::load(cfg, settings.seed)?;
    let open_seconds = started.elapsed().as_secs_f64();
    let (feed, plan) = if ds.unlabeled.is_empty() {
        let plan = stl10_data::BatchPlan::supervised(ds.train.len(), cfg.batch_size)?;
        (Feed::Labeled, plan)
    } else {
        let plan = stl10_data::BatchPlan::new(ds.unlabeled.len(), ds.train.len(), cfg.batch_size)?;
        (Feed::Zipped, plan)
    };
    let loader = Loader {
        ds: &ds,
        plan,
        seed: settings.seed,
        resident: None,
        replica: None,
        prefetch: cfg.prefetch,
        device: tch::Device::Cpu,
    };
    let path = if cfg.kind == DataKind::Packed {
        "packed (memory-mapped shards)"
    } else if ds.train.store().decodes() {
        "streamed (decoded batch by batch)"
    } else {
        "in memory (decoded before training)"
    };
    let start = Instant::now();
    let mut done = 0;
    'epochs: for epoch in 1.. {
        let before = done;
        for batch in loader.epoch(feed, epoch, 0)? {
            done += batch?.len();
            if done >= images {
                break 'epochs;
            }
        }
        if done == before {
            return Err(TrainError::file(
                &cfg.root,
                "an epoch gave no images to time",
            ));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let images_per_s = done as f64 / seconds;
    Ok(InputReport {
        source: format!("{:?} {}", cfg.kind, cfg.root.display()).to_lowercase(),
        path,
        image_size: cfg.image_size,
        batch_images: plan.unlabeled_batch + plan.labeled_batch,
        workers,
        prefetch: cfg.prefetch,
        open_seconds,
        images: done,
        seconds,
        images_per_s,
        images_per_s_per_worker: images_per_s / workers.max(1) as f64,
    })
}

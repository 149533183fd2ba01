//! Training layer of simclr-rs: the typed configuration every command shares, the Keras
//! example's three runs (supervised baseline, contrastive pretraining with its linear probe,
//! fine-tuning) into a run folder with checkpoints, histories, plots and a report, and what
//! uses a trained encoder (kNN, linear evaluation, embeddings, prediction, the label-efficiency
//! sweep).
//!
//! ```no_run
//! use train::{Config, Prepared, RunDir, experiment, fit::Silent};
//! let cfg = Config::load(Some("configs/stl10.toml".as_ref()), &["data.root=/data".into()])?;
//! let device = train::runtime::init(&cfg.runtime)?;
//! let prep = Prepared::new(&cfg, device)?;
//! let dir = RunDir::create("runs/stl10".as_ref(), &cfg)?;
//! experiment::pretrain(&cfg, &prep, &dir, &mut Silent)?;
//! let histories = train::report::write_report(&cfg, &prep, &dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules, by what they do:
//! - setting up: [`config`] (the TOML tables), [`runtime`] (device, threads, [`runtime::Compute`]),
//!   [`prepared`] (the data set and batch plan the phases share);
//! - training: [`run`] (the three runs and what tells them apart), [`experiment`] (the phases),
//!   [`fit`] (the epoch loop's observer), [`metrics`] (per-epoch histories);
//! - the run folder: [`run_dir`] (its files), [`state`] (phase checkpoints for `--resume`),
//!   [`overview`] (summaries and the augmentation grid), [`report`] (plots and `report.md`);
//! - using an encoder: [`features`], [`knn`], [`embed`], [`predict`], [`sweep`] (label
//!   efficiency), [`folds`] (STL-10's ten-fold protocol);
//! - [`bench`](mod@bench): the step benchmark.
//!
//! Internal: `steps` (the two train steps behind the `TrainStep` trait), `loader` (host or
//! device-resident batches), `optim` (Adam with a saveable state), `checkpoint` (safetensors of
//! variable groups), `atomic` (the one file writer), `plots` (drawing), `linear_eval`,
//! `init_guard`, `subsets` (a labeled subset's schedule and frozen scores).

mod atomic;
pub mod bench;
mod checkpoint;
pub mod config;
pub mod embed;
mod error;
pub mod experiment;
pub mod features;
pub mod fit;
pub mod folds;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod init_guard;
pub mod knn;
mod linear_eval;
mod loader;
pub mod metrics;
mod optim;
pub mod overview;
mod plots;
pub mod predict;
pub mod prepared;
pub mod report;
pub mod run;
pub mod run_dir;
pub mod runtime;
pub mod state;
mod steps;
mod subsets;
pub mod sweep;

#[cfg(test)]
mod tests;

pub use config::{Config, ConfigError, RuntimeConfig};
pub use error::{Result, TrainError};
pub use prepared::Prepared;
pub use run::Run;
pub use run_dir::{Histories, RunDir};

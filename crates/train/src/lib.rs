//! Training core of simclr-rs: the typed configuration every command shares, and the Keras
//! example's three runs (supervised baseline, contrastive pretraining with its linear probe,
//! fine-tuning) into a run folder with checkpoints and histories that resume exactly. Plots and
//! reports are in the `report` crate; what uses a trained encoder (linear evaluation, embed,
//! predict, the sweep, the folds) in `evaluate`; the optimizers in `optim`.
//!
//! ```no_run
//! use train::{Config, Prepared, RunDir, experiment, fit::Silent};
//! let cfg = Config::load(Some("configs/stl10.toml".as_ref()), &["data.root=/data".into()])?;
//! let device = train::runtime::init(&cfg.runtime)?;
//! let prep = Prepared::new(&cfg, device)?;
//! let dir = RunDir::create("runs/stl10".as_ref(), &cfg)?;
//! let history = experiment::pretrain(&cfg.pretraining(), &prep, &dir, &mut Silent)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules, by what they do:
//! - setting up: [`config`] (the TOML tables), [`settings`] (what each model, step and phase is
//!   built from), [`runtime`] (device, threads, [`runtime::Compute`]), [`prepared`] (the data
//!   set, batch plan and compute context the phases share);
//! - training: [`run`] (the three runs and what tells them apart), [`experiment`] (the phases),
//!   [`fit`] (the epoch loop's observer), [`metrics`] (per-epoch histories);
//! - the run folder: [`run_dir`] (its files), [`state`] (phase checkpoints for `--resume`),
//!   [`checkpoint`] (safetensors of variable groups), [`atomic`] (the one file writer);
//! - a trained encoder's features: [`features`], [`knn`] (the `val_knn_acc` monitor);
//! - [`steps`]: the two train steps behind the [`steps::TrainStep`] the epoch loop drives, and
//!   their models' summaries;
//! - [`bench`](mod@bench): the step benchmark.
//!
//! Internal: `loader` (host or device-resident batches).

pub mod atomic;
pub mod bench;
pub mod checkpoint;
pub mod config;
mod error;
pub mod experiment;
pub mod features;
pub mod fit;
pub mod init_guard;
pub mod knn;
mod loader;
pub mod metrics;
pub mod prepared;
pub mod run;
pub mod run_dir;
pub mod runtime;
pub mod settings;
pub mod state;
pub mod steps;

#[cfg(test)]
mod tests;

pub use config::{Config, ConfigError, RuntimeConfig, RuntimeFlags};
pub use error::{Result, TrainError};
pub use prepared::Prepared;
pub use run::Run;
pub use run_dir::{Histories, Recorded, RunDir};

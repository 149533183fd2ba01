//! Training core of simclr-rs: the Keras example's three runs (supervised baseline, contrastive
//! pretraining with its linear probe, fine-tuning) into a run folder with checkpoints and
//! histories that resume exactly. Plots and reports are in the `report` crate, what uses a
//! trained encoder (linear evaluation, embed, predict, the sweep, the folds) in `evaluate`, the
//! optimizers in `optim`.
//!
//! ```no_run
//! use train::config::Config;
//! use train::{experiment, fit::Silent, prepared::Prepared, run_dir::RunDir};
//! let cfg = Config::load(Some("configs/stl10.toml".as_ref()), &["data.root=/data".into()])?;
//! let device = train::runtime::init(&cfg.runtime, None)?;
//! let prep = Prepared::new(&cfg.data_settings(), cfg.compute(device))?;
//! let dir = RunDir::create("runs/stl10".as_ref(), &cfg)?;
//! let history = experiment::pretrain(&cfg.pretraining(), &prep, &dir, &mut Silent)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// The step benchmark.
pub mod bench;
/// The typed TOML tables, `--set` and the typed flags, and what each model, step and phase is
/// built from ([`config::PretrainSettings`], [`config::SupervisedSettings`]).
pub mod config;
/// [`error::TrainError`] and [`error::Result`].
pub mod error;
/// The phases (baseline, pretraining, fine-tuning) and the three runs ([`experiment::Run`]).
pub mod experiment;
/// Frozen features of a trained encoder, and kNN on them ([`features::knn`]).
pub mod features;
/// The epoch loop, its [`fit::Observer`], and per-epoch histories ([`fit::metrics`]).
pub mod fit;
/// The data set, batch plan and compute context the phases share.
pub mod prepared;
/// The run folder: its files, phase checkpoints for `--resume`, safetensors groups, and the
/// one atomic file writer.
pub mod run_dir;
/// Device, threads and [`runtime::Compute`] (precision, memory format, encoder slices).
pub mod runtime;
/// The two train steps behind [`steps::TrainStep`], the models' summaries, the seeding guard.
pub mod steps;

#[cfg(test)]
mod tests;

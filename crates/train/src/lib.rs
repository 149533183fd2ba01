//! Training layer of simclr-rs: the typed configuration every command shares, the runtime
//! set-up, the Keras example's train steps (the two-optimizer contrastive step and the
//! supervised step), the epoch loops, checkpoints, reports and the whole experiment.
//!
//! ```no_run
//! let cfg = train::Config::load(Some("configs/stl10.toml".as_ref()), &["data.root=/data".into()])?;
//! let device = train::runtime::init(&cfg.runtime)?;
//! let prep = train::experiment::Prepared::new(&cfg, device)?;
//! let dir = train::experiment::RunDir::create("runs/stl10".as_ref(), &cfg)?;
//! train::experiment::pretrain(&cfg, &prep, &dir, &mut train::fit::Silent)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod embed;
mod error;
pub mod experiment;
pub mod features;
pub mod fit;
mod init_guard;
pub mod knn;
pub mod linear_eval;
pub mod loader;
pub mod metrics;
pub mod optim;
pub mod predict;
pub mod report;
pub mod runtime;
pub mod state;
pub mod steps;
pub mod sweep;

pub use config::{Config, ConfigError, RuntimeConfig};
pub use error::{Result, TrainError};

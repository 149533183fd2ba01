//! Training layer of simclr-rs: the typed configuration every command shares and the runtime
//! set-up (device, threads, seed).
//!
//! ```no_run
//! let cfg = train::Config::load(Some("configs/stl10.toml".as_ref()), &["data.root=/data".into()])?;
//! let device = train::runtime::init(&cfg.runtime)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
pub mod runtime;

pub use config::{Config, ConfigError, RuntimeConfig};

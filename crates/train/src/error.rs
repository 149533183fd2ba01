//! [`TrainError`]: everything a training command can fail with, each keeping its cause.

use std::path::PathBuf;

/// Anything a training command can fail with; each variant keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Data(#[from] stl10_data::DataError),
    #[error("model: {0}")]
    Model(#[from] models::ModelError),
    #[error("loss: {0}")]
    Loss(#[from] losses::LossError),
    #[error("augmentation: {0}")]
    Augment(#[from] augment::AugmentError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error(
        "{run} diverged: {metric} is {value} at epoch {epoch}, step {step} (no checkpoint of \
         this epoch was written; lower the learning rate and resume from the last one)"
    )]
    NonFinite {
        run: String,
        metric: String,
        value: f64,
        epoch: usize,
        step: usize,
    },
    #[error("{run} stopped after {step} steps of epoch {epoch}; its checkpoint is saved")]
    Interrupted {
        run: String,
        epoch: usize,
        step: usize,
    },
    #[error("{path}: cannot resume: {problem}")]
    Resume { path: PathBuf, problem: String },
    /// A data-parallel run's collective failed (a rank is gone, or timed out), or its batch
    /// does not split over the ranks.
    #[error("data-parallel run: {0}")]
    Distributed(String),
}

impl TrainError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn file(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        TrainError::File {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

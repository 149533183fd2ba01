//! Data errors, each naming the file or the configuration key at fault.

use std::path::PathBuf;

/// Everything that can go wrong while reading a data set or planning its batches.
///
/// Every variant that concerns a file names it, so a user can go straight to the culprit.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Format { path: PathBuf, problem: String },
    #[error("{path}: cannot decode image: {problem}")]
    Image { path: PathBuf, problem: String },
    #[error("data.{key}: {problem}")]
    Config { key: &'static str, problem: String },
    #[error("batching: {0}")]
    Batching(String),
    /// A download that failed; what was kept and what to do is in `problem`.
    #[error("downloading {url}: {problem}")]
    Download { url: String, problem: String },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn config(key: &'static str, problem: impl Into<String>) -> Self {
        DataError::Config {
            key,
            problem: problem.into(),
        }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

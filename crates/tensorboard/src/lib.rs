//! TensorBoard's files, written from Rust with nothing of TensorFlow: event files of scalars,
//! images and text ([`EventWriter`], TFRecord-framed `Event` protocol buffers), read back by
//! [`read_events`] (and pruned when a resumed run logs again), and the embedding projector's
//! files ([`projector`]). Usable on its own: it knows nothing of the rest of simclr-rs.
//!
//! ```no_run
//! let mut log = tensorboard::EventWriter::open("runs/x/tensorboard/train".as_ref(), |_, _| true)?;
//! log.scalar("loss", 1, 0.25)?;
//! log.flush()?;
//! # Ok::<(), tensorboard::Error>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};

pub mod projector;
pub mod proto;
mod record;
mod writer;

pub use writer::{EventWriter, FILE_VERSION, event_files, read_events};

/// A file that could not be read or written, and why.
#[derive(Debug)]
pub struct Error {
    pub path: PathBuf,
    pub source: io::Error,
}

impl Error {
    fn io(path: &Path, source: io::Error) -> Self {
        Error {
            path: path.to_path_buf(),
            source,
        }
    }

    fn invalid(path: &Path, problem: impl Into<String>) -> Self {
        Error::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, problem.into()),
        )
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Writes `bytes` to a hidden file beside `path`, syncs it and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let write = || -> io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

//! The one way the project writes a file: to a temporary name beside its destination, synced,
//! then renamed into place, so an interrupted run never leaves a truncated checkpoint, history
//! or report behind, and a failed write keeps the earlier file.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// A sibling of `path` to write first: `.NAME.partial.EXT` (the extension is kept, since
/// libtorch picks the checkpoint format from it).
fn partial(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = match name.rsplit_once('.') {
        Some((stem, ext)) => format!(".{stem}.partial.{ext}"),
        None => format!(".{name}.partial"),
    };
    path.with_file_name(tmp)
}

/// Writes `path` through `write(tmp)` and renames the finished file into place.
pub fn atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let tmp = partial(path);
    let written = write(&tmp).and_then(|()| {
        // On disk before the rename, so not even a power cut leaves a renamed, empty file.
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| TrainError::io(&tmp, e))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// Writes `contents` to `path` atomically.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    atomic(path, |tmp| {
        std::fs::write(tmp, contents.as_ref()).map_err(|e| TrainError::io(tmp, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.md");
        write_file(&path, "first").unwrap();
        let err = atomic(&path, |_| Err(TrainError::file("x", "boom")));
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no partial file left"
        );
    }
}

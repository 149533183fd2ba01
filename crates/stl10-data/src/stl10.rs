//! The official STL-10 binary files.
//!
//! Each image is 3 x 96 x 96 bytes, channel by channel (R, G, B), each channel column-major;
//! labels are single bytes 1..=10, mapped here to 0..=9.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::config::DataConfig;
use crate::error::{DataError, Result};
use crate::images::{CHANNELS, Dataset, ImageStore, Layout, Split};

/// STL-10's side length.
pub const STL10_SIZE: usize = 96;
/// Bytes per STL-10 image.
pub const STL10_IMAGE_BYTES: usize = CHANNELS * STL10_SIZE * STL10_SIZE;
const CLASSES: usize = 10;

/// The folder holding the `.bin` files: `root/stl10_binary` as the archive unpacks, or `root`.
pub fn binary_dir(root: &Path) -> PathBuf {
    let nested = root.join("stl10_binary");
    if nested.is_dir() {
        nested
    } else {
        root.to_path_buf()
    }
}

/// Memory-maps an STL-10 image file (`*_X.bin`).
pub fn map_images(path: &Path) -> Result<ImageStore> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len() as usize;
    if !len.is_multiple_of(STL10_IMAGE_BYTES) {
        return Err(DataError::format(
            path,
            format!(
                "size {len} bytes is not a whole number of {STL10_IMAGE_BYTES}-byte images \
                 (truncated or not an STL-10 image file?)"
            ),
        ));
    }
    if len == 0 {
        return Ok(ImageStore::from_chw(Vec::new(), STL10_SIZE));
    }
    // SAFETY: the file is opened read-only; like every reader of memory-mapped data we rely on
    // nobody truncating it while we run (the data sets are static files).
    let map = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?;
    Ok(ImageStore::mapped(map, 0, STL10_SIZE, Layout::Cwh).with_origin(path.display()))
}

/// Reads an STL-10 label file (`*_y.bin`): bytes 1..=10, returned as 0..=9.
pub fn read_labels(path: &Path, expected: usize) -> Result<Vec<i64>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_labels(&bytes, expected, path)
}

/// [`read_labels`] on the file's bytes; `path` names the file in errors.
pub fn parse_labels(bytes: &[u8], expected: usize, path: &Path) -> Result<Vec<i64>> {
    if bytes.len() != expected {
        return Err(DataError::format(
            path,
            format!(
                "{} labels for {expected} images (image and label counts differ)",
                bytes.len()
            ),
        ));
    }
    bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (1..=CLASSES as u8).contains(&b) {
                Ok(i64::from(b) - 1)
            } else {
                Err(DataError::format(
                    path,
                    format!("label {b} at index {i} is outside 1..=10"),
                ))
            }
        })
        .collect()
}

/// Reads `class_names.txt`: one name per line, exactly ten.
pub fn read_class_names(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_class_names(&text, path)
}

/// The non-blank lines of a class-name file, trimmed.
pub(crate) fn name_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// [`read_class_names`] on the file's text; `path` names the file in errors.
pub fn parse_class_names(text: &str, path: &Path) -> Result<Vec<String>> {
    let names = name_lines(text);
    if names.len() != CLASSES {
        return Err(DataError::format(
            path,
            format!("expected {CLASSES} class names, found {}", names.len()),
        ));
    }
    Ok(names)
}

/// Reads fold `fold` of `fold_indices.txt`: ten lines of space-separated 0-based indices.
pub fn read_fold(path: &Path, fold: usize, train_len: usize) -> Result<Vec<usize>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_fold(&text, fold, train_len, path)
}

/// [`read_fold`] on the file's text; `path` names the file in errors.
pub fn parse_fold(text: &str, fold: usize, train_len: usize, path: &Path) -> Result<Vec<usize>> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let line = lines.get(fold).ok_or_else(|| {
        DataError::format(
            path,
            format!("has {} folds, fold {fold} asked for", lines.len()),
        )
    })?;
    line.split_whitespace()
        .map(|tok| match tok.parse::<usize>() {
            Ok(i) if i < train_len => Ok(i),
            Ok(i) => Err(DataError::format(
                path,
                format!("fold {fold}: index {i} is outside the {train_len} training images"),
            )),
            Err(_) => Err(DataError::format(
                path,
                format!("fold {fold}: '{tok}' is not an index"),
            )),
        })
        .collect()
}

fn labeled_files(dir: &Path, prefix: &str) -> Result<(Arc<ImageStore>, Vec<i64>)> {
    let store = map_images(&dir.join(format!("{prefix}_X.bin")))?;
    let labels = read_labels(&dir.join(format!("{prefix}_y.bin")), store.len())?;
    Ok((Arc::new(store), labels))
}

/// Loads the labeled train split (whole, or one fold), the unlabeled split and the test split.
pub fn load(cfg: &DataConfig) -> Result<Dataset> {
    if cfg.labeled_per_class.is_some() {
        return Err(DataError::config(
            "labeled_per_class",
            "STL-10 has its own unlabeled split; use data.fold for fewer labels",
        ));
    }
    let dir = binary_dir(&cfg.root);
    let class_names = read_class_names(&dir.join("class_names.txt"))?;
    let (store, labels) = labeled_files(&dir, "train")?;
    let train = match cfg.fold {
        None => Split::new(store, Some(labels)),
        Some(fold) => {
            let indices = read_fold(&dir.join("fold_indices.txt"), fold, store.len())?;
            let fold_labels = indices.iter().map(|&i| labels[i]).collect();
            Split::subset(store, indices, Some(fold_labels))
        }
    };
    // Only pretraining uses the 2.7 GB unlabeled file: without it the supervised runs still work.
    let unlabeled_path = dir.join("unlabeled_X.bin");
    let unlabeled = if unlabeled_path.exists() {
        Split::new(Arc::new(map_images(&unlabeled_path)?), None)
    } else {
        tracing::info!(
            "{} is missing: no unlabeled split",
            unlabeled_path.display()
        );
        Split::empty(STL10_SIZE)
    };
    let (store, labels) = labeled_files(&dir, "test")?;
    let test = Split::new(store, Some(labels));
    Ok(Dataset {
        train,
        unlabeled,
        test,
        class_names,
        image_size: STL10_SIZE,
        skipped: 0,
    })
}

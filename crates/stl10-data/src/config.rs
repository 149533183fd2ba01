//! The `[data]` table: which reader, where, at what size, how many labels, and how batched.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The variable that moves [`default_data_dir`].
pub const DATA_ENV: &str = "SIMCLR_DATA";

/// Where data sets are downloaded to: `$SIMCLR_DATA`, else the user's data folder
/// (`~/.local/share/simclr-rs` on Linux), else `data` in the working folder.
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os(DATA_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::data_dir().map_or_else(|| PathBuf::from("data"), |d| d.join("simclr-rs")),
    }
}

/// `default_data_dir()/stl10`: where `data download stl10` unpacks the archive, and the
/// default `data.root`.
pub fn default_stl10_root() -> PathBuf {
    default_data_dir().join("stl10")
}

/// Which reader builds the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// The official STL-10 binary files (`stl10_binary/*.bin`).
    Stl10,
    /// `ROOT/train/<class>/*`, optional `ROOT/unlabeled/**`, `ROOT/test/<class>/*` (JPEG, PNG).
    Folder,
    /// MNIST-style IDX files (`train-images-idx3-ubyte[.gz]`, ...), e.g. Fashion-MNIST.
    Idx,
    /// CIFAR-10's binary version (`cifar-10-batches-bin/`, or its `.tar.gz`).
    Cifar10,
    /// CIFAR-100's binary version (`cifar-100-binary/`, or its `.tar.gz`), fine labels.
    Cifar100,
    /// WebDataset tar shards: `ROOT/{train,unlabeled,test}/*.tar` holding `KEY.jpg|png` and
    /// `KEY.cls` members, class names in an optional `ROOT/classes.txt`.
    Webdataset,
    /// A data set packed by `data pack`: memory-mapped `.npy` shards under `ROOT/manifest.json`.
    Packed,
}

/// Whether encoded files (folders, WebDataset shards) are decoded before training or as
/// batches need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Streaming {
    /// Stream when the decoded images would take more than a quarter of available memory.
    Auto,
    /// Always decode batch by batch (memory does not grow with the data set).
    Always,
    /// Always decode everything first (fastest per step when it fits).
    Never,
}

/// The `[data]` table. Defaults reproduce the Keras SimCLR example on STL-10.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    pub kind: DataKind,
    /// STL-10: the folder holding `stl10_binary/` or that folder itself; folder/IDX: their root.
    pub root: PathBuf,
    /// Side of the square images handed to the model (STL-10: 96).
    pub image_size: usize,
    /// Keep this many labeled images per class and move the rest, labels dropped, to the
    /// unlabeled split (only for sources without an unlabeled split of their own).
    pub labeled_per_class: Option<usize>,
    /// One of STL-10's ten predefined training folds (0..=9); none: all 5,000 images.
    pub fold: Option<usize>,
    /// Images per zipped step (unlabeled + labeled), the example's `batch_size = 525`.
    pub batch_size: usize,
    /// Skip (and count) images that cannot be decoded instead of failing.
    pub skip_unreadable: bool,
    /// Class names for IDX sources, which carry none (default: "0", "1", ...).
    pub class_names: Option<Vec<String>>,
    /// Folders and WebDataset shards: decode everything first, or batch by batch.
    pub streaming: Streaming,
    /// Host batches gathered ahead of the step on a loader thread (0: gathered by the step's
    /// own thread when it asks).
    pub prefetch: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            kind: DataKind::Stl10,
            root: default_stl10_root(),
            image_size: 96,
            labeled_per_class: None,
            fold: None,
            batch_size: 525,
            skip_unreadable: false,
            class_names: None,
            streaming: Streaming::Auto,
            prefetch: 2,
        }
    }
}

/// Largest `image_size`: a side above it is far beyond what the encoder is meant for, and its
/// buffers (`N x 3 x size^2` bytes) would not fit in memory anyway.
pub const MAX_IMAGE_SIZE: usize = 1024;
/// Largest `batch_size` (images per step).
pub const MAX_BATCH_SIZE: usize = 1 << 20;
/// Largest `prefetch` (batches held ahead).
pub const MAX_PREFETCH: usize = 64;

/// Bytes of memory the kernel says are available (`MemAvailable`), if it says.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl DataConfig {
    /// Whether `images` encoded images are streamed rather than decoded first.
    pub fn streams(&self, images: usize) -> bool {
        match self.streaming {
            Streaming::Always => true,
            Streaming::Never => false,
            Streaming::Auto => {
                let bytes = (images * 3 * self.image_size * self.image_size) as u64;
                available_memory().is_some_and(|m| bytes > m / 4)
            }
        }
    }

    /// Checks values that are wrong whatever the files hold.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_IMAGE_SIZE).contains(&self.image_size) {
            return Err(DataError::config(
                "image_size",
                format!("must be in 1..={MAX_IMAGE_SIZE}, got {}", self.image_size),
            ));
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(DataError::config(
                "batch_size",
                format!("must be in 1..={MAX_BATCH_SIZE}, got {}", self.batch_size),
            ));
        }
        if self.labeled_per_class == Some(0) {
            return Err(DataError::config("labeled_per_class", "must be at least 1"));
        }
        if self.prefetch > MAX_PREFETCH {
            return Err(DataError::config(
                "prefetch",
                format!("must be in 0..={MAX_PREFETCH}, got {}", self.prefetch),
            ));
        }
        if let Some(fold) = self.fold {
            if !matches!(self.kind, DataKind::Stl10 | DataKind::Packed) {
                return Err(DataError::config(
                    "fold",
                    "only STL-10 (and STL-10 packed) has predefined folds",
                ));
            }
            if fold > 9 {
                return Err(DataError::config(
                    "fold",
                    format!("STL-10 has folds 0..=9, got {fold}"),
                ));
            }
        }
        if self.kind == DataKind::Stl10 && self.image_size != 96 {
            return Err(DataError::config(
                "image_size",
                format!("STL-10 images are 96x96, got {}", self.image_size),
            ));
        }
        if matches!(self.kind, DataKind::Cifar10 | DataKind::Cifar100)
            && self.image_size != crate::cifar::CIFAR_SIZE
        {
            return Err(DataError::config(
                "image_size",
                format!("CIFAR images are 32x32, got {}", self.image_size),
            ));
        }
        if self.class_names.is_some() && !matches!(self.kind, DataKind::Idx | DataKind::Packed) {
            return Err(DataError::config(
                "class_names",
                "only IDX sources take class names (STL-10 and folders carry their own; a pack \
                 checks them against its own)",
            ));
        }
        Ok(())
    }
}

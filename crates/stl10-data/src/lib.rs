//! Data layer of simclr-rs: readers for STL-10's binary files, image folders, IDX files and
//! CIFAR-10/100's binary versions, all handing over one [`Dataset`] of uint8 `[N, 3, S, S]` images
//! with int64 labels; the Keras SimCLR example's batching (one unlabeled batch zipped with one
//! labeled batch per step); PNG export and per-channel statistics (`export_png`, `inspect`); and,
//! behind the `download` feature, the STL-10 download. Fixture writers for tests are in the
//! dev-only `test-support` crate.
//!
//! ```no_run
//! use stl10_data::{load, BatchPlan, DataConfig, ZippedEpoch};
//! let ds = load(&DataConfig::default(), 42)?; // STL-10 where `data download stl10` put it
//! let plan = BatchPlan::new(ds.unlabeled.len(), ds.train.len(), 525)?; // 200 x (500 + 25)
//! for batch in ZippedEpoch::new(&ds.unlabeled, &ds.train, plan, 42, 0) { let batch = batch?; /* train */ }
//! # Ok::<(), stl10_data::DataError>(())
//! ```

mod batching;
pub mod cifar;
mod config;
#[cfg(feature = "download")]
pub mod download;
mod encoded;
mod error;
mod export;
pub mod folder;
pub mod idx;
mod image_file;
mod images;
pub mod pack;
pub mod packed;
pub mod stl10;
pub mod webdataset;

pub use batching::{BatchPlan, LabeledBatch, LabeledEpoch, ZippedBatch, ZippedEpoch};
pub use config::{DATA_ENV, DataConfig, DataKind, Streaming, default_data_dir, default_stl10_root};
pub use error::{DataError, Result};
pub use export::{export_png, inspect};
pub use image_file::load_image;
pub use images::{Dataset, ImageStore, Layout, Split};

use rand::seq::SliceRandom;

/// Reads the data set `cfg` describes; `seed` fixes the `labeled_per_class` selection.
pub fn load(cfg: &DataConfig, seed: u64) -> Result<Dataset> {
    cfg.validate()?;
    let _span =
        tracing::debug_span!("load data", kind = ?cfg.kind, root = %cfg.root.display()).entered();
    let ds = read(cfg, false)?;
    match cfg.labeled_per_class {
        Some(n) => keep_labeled_per_class(ds, n, seed),
        None => Ok(ds),
    }
}

/// The reader's data set; `index`: encoded files listed only, not checked nor decoded.
fn read(cfg: &DataConfig, index: bool) -> Result<Dataset> {
    if !cfg.root.exists() {
        return Err(DataError::format(&cfg.root, "data.root does not exist"));
    }
    match cfg.kind {
        DataKind::Stl10 => stl10::load(cfg),
        DataKind::Folder => folder::load(cfg, index),
        DataKind::Webdataset => webdataset::load(cfg, index),
        DataKind::Idx => idx::load(cfg),
        DataKind::Cifar10 | DataKind::Cifar100 => cifar::load(cfg),
        DataKind::Packed => packed::load(cfg),
    }
}

/// Keeps `n` labeled images per class (chosen by `seed`) and moves the remaining training
/// images, labels dropped, to the unlabeled split.
pub fn keep_labeled_per_class(mut ds: Dataset, n: usize, seed: u64) -> Result<Dataset> {
    if !ds.unlabeled.is_empty() {
        return Err(DataError::config(
            "labeled_per_class",
            "this data set has an unlabeled split of its own",
        ));
    }
    let labels = ds.train.labels().unwrap_or(&[]).to_vec();
    let (keep, rest) = per_class_selection(&labels, &ds.class_names, n, seed)?;
    let store = ds.train.store_arc();
    let to_store = |p: &[usize]| {
        p.iter()
            .map(|&i| ds.train.store_index(i))
            .collect::<Vec<_>>()
    };
    let kept_labels = keep.iter().map(|&i| labels[i]).collect();
    let (keep_idx, rest_idx) = (to_store(&keep), to_store(&rest));
    ds.unlabeled = Split::subset(store.clone(), rest_idx, None);
    ds.train = Split::subset(store, keep_idx, Some(kept_labels));
    Ok(ds)
}

/// Splits the positions of `labels` into `n` per class (chosen by `seed`) and the rest, both
/// sorted. Each class's members are shuffled once by the seed and the first `n` kept, so the
/// selection for a smaller `n` is always part of the one for a larger `n` (nested label
/// budgets), and `labeled_per_class = n` keeps exactly these images.
pub fn per_class_selection(
    labels: &[i64],
    class_names: &[String],
    n: usize,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let mut rng = seeds::rng(seed, 0, seeds::Stream::LabeledSelection);
    let (mut keep, mut rest) = (Vec::new(), Vec::new());
    for (class, name) in class_names.iter().enumerate() {
        let mut members: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] == class as i64)
            .collect();
        if members.len() < n {
            return Err(DataError::config(
                "labeled_per_class",
                format!(
                    "class '{name}' has {} training images, fewer than {n}",
                    members.len()
                ),
            ));
        }
        members.shuffle(&mut rng);
        keep.extend_from_slice(&members[..n]);
        rest.extend_from_slice(&members[n..]);
    }
    keep.sort_unstable();
    rest.sort_unstable();
    Ok((keep, rest))
}

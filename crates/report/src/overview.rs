//! What a run folder shows before any training: `summary.txt` (Keras-style summaries of every
//! model), `classes.txt` and `augmentations.png` (the seed's grid of augmented samples); and
//! the data set's contact sheet (`data inspect --sheet`).

use std::path::Path;

use augment::Augmenter;
use seeds::Stream;
use stl10_data::Dataset;
use tch::Device;

use crate::plots::image_grid;
use train::config::PretrainSettings;
use train::prepared::Prepared;
use train::run_dir::atomic::write_file;
use train::run_dir::{CLASSES_FILE, RunDir};
use train::{error::Result, error::TrainError};

/// The files [`write_overview`] writes.
pub const OVERVIEW_FILES: [&str; 3] = ["summary.txt", CLASSES_FILE, "augmentations.png"];

/// Writes `summary.txt` (Keras-style summaries of every model of `pretrain`'s shapes),
/// `classes.txt` and `augmentations.png` (`pretrain`'s augmentations); a resumed folder that
/// has them keeps them (a resumed run has the same models, classes and augmentations).
pub fn write_overview(
    pretrain: &PretrainSettings,
    prep: &Prepared,
    dir: &RunDir,
    count: usize,
) -> Result<()> {
    if dir.resume && OVERVIEW_FILES.iter().all(|f| dir.file(f).is_file()) {
        return Ok(());
    }
    let text = train::steps::summaries(&pretrain.model, prep.classes())?;
    write_file(&dir.file("summary.txt"), text)?;
    dir.write_classes(&prep.ds.class_names)?;
    let path = dir.file("augmentations.png");
    augmentation_grid(pretrain, &prep.ds, &prep.settings.data.root, count, &path)
}

/// Most images per row of the augmentation grid.
pub const MAX_PREVIEW: usize = 256;

/// The seed's figure of `count` training images: original, weakly augmented (the probe's and
/// the classifiers' transform) and two strongly augmented versions (the contrastive views),
/// seeded by `pretrain.seed`. `root`, where `ds` was read from, names the data in errors.
pub fn augmentation_grid(
    pretrain: &PretrainSettings,
    ds: &Dataset,
    root: &Path,
    count: usize,
    path: &Path,
) -> Result<()> {
    if ds.train.is_empty() {
        return Err(TrainError::file(
            root,
            "the train split is empty: no images to preview",
        ));
    }
    if !(1..=MAX_PREVIEW).contains(&count) {
        return Err(TrainError::file(
            path,
            format!("--count must be in 1..={MAX_PREVIEW} images per row, got {count}"),
        ));
    }
    let n = count.min(ds.train.len());
    let images = ds.train.images(&(0..n).collect::<Vec<_>>())?;
    let seed = pretrain.seed;
    let mut weak = Augmenter::new(
        pretrain.probe_augment,
        seeds::seed(seed, Stream::PreviewWeak),
        Device::Cpu,
    )?;
    let mut strong = Augmenter::new(
        pretrain.views,
        seeds::seed(seed, Stream::PreviewStrong),
        Device::Cpu,
    )?;
    let rows = [
        ("Original", weak.inference(&images)),
        ("Weakly augmented", weak.augment(&images)?),
        ("Strongly augmented", strong.augment(&images)?),
        ("Strongly augmented", strong.augment(&images)?),
    ];
    image_grid(path, &rows)
}

/// Most images per class on a contact sheet.
pub const MAX_PER_CLASS: usize = 64;

/// A contact sheet of the labeled training split at `path`: one row per class, named, with
/// its first `per_class` images (fewer when the class has fewer).
pub fn contact_sheet(ds: &Dataset, per_class: usize, path: &Path) -> Result<()> {
    let Some(labels) = ds.train.labels().filter(|l| !l.is_empty()) else {
        return Err(TrainError::file(
            path,
            "the train split has no labeled images for a contact sheet",
        ));
    };
    if !(1..=MAX_PER_CLASS).contains(&per_class) {
        return Err(TrainError::file(
            path,
            format!("--per-class must be in 1..={MAX_PER_CLASS}, got {per_class}"),
        ));
    }
    let rows: Vec<(&str, tch::Tensor)> = ds
        .class_names
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let positions: Vec<usize> = (0..labels.len())
                .filter(|&i| labels[i] == c as i64)
                .take(per_class)
                .collect();
            let images = ds.train.images(&positions)?.to_kind(tch::Kind::Float) / 255.0;
            Ok((name.as_str(), images))
        })
        .collect::<Result<_>>()?;
    image_grid(path, &rows)
}

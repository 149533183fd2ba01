//! Looking at a data set: a text account of its splits (`data inspect`) and PNG export of
//! its images (`data export`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::batching::BatchPlan;
use crate::error::{DataError, Result};
use crate::images::{Dataset, Split};

/// A human-readable account of a data set: splits, per-class counts, image size and the
/// per-step batch sizes `batch_size` gives.
/// An error only where a streamed image cannot be read (it is named).
pub fn inspect(ds: &Dataset, batch_size: usize) -> Result<String> {
    let mut out = String::new();
    let s = ds.image_size;
    let _ = writeln!(out, "image size: {s}x{s}x3, {} classes", ds.num_classes());
    for (name, split) in [
        ("train", &ds.train),
        ("unlabeled", &ds.unlabeled),
        ("test", &ds.test),
    ] {
        let kind = if split.labels().is_some() {
            "labeled"
        } else {
            "unlabeled"
        };
        let _ = writeln!(out, "{name}: {} images ({kind})", split.len());
    }
    if ds.skipped > 0 {
        let _ = writeln!(out, "skipped unreadable images: {}", ds.skipped);
    }
    let _ = writeln!(out, "pixel mean / std per channel (R, G, B; 0..1):");
    for (name, split) in [
        ("train", &ds.train),
        ("unlabeled", &ds.unlabeled),
        ("test", &ds.test),
    ] {
        if let Some([r, g, b]) = split.channel_stats()? {
            let _ = writeln!(
                out,
                "  {name:<9} mean {:.4} {:.4} {:.4}  std {:.4} {:.4} {:.4}",
                r.0, g.0, b.0, r.1, g.1, b.1
            );
        }
    }
    let _ = writeln!(out, "per-class counts (train / test):");
    let (train, test) = (
        ds.train.class_counts(ds.num_classes()),
        ds.test.class_counts(ds.num_classes()),
    );
    for (c, name) in ds.class_names.iter().enumerate() {
        let _ = writeln!(out, "  {c:>2} {name:<16} {:>7} / {:>7}", train[c], test[c]);
    }
    match BatchPlan::new(ds.unlabeled.len(), ds.train.len(), batch_size) {
        Ok(plan) => {
            let _ = writeln!(
                out,
                "steps per epoch: {} at batch_size {batch_size}",
                plan.steps
            );
            let _ = writeln!(out, "{}", plan.describe());
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "no contrastive batches at batch_size {batch_size}: {e}"
            );
        }
    }
    Ok(out)
}

/// Writes the first `count` images of `split` as `NNNNN_<class>.png` (or `NNNNN.png` when
/// unlabeled) into `dir`, and returns the paths written.
pub fn export_png(
    split: &Split,
    class_names: &[String],
    count: usize,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let side = split.image_size() as u32;
    let mut written = Vec::new();
    for i in 0..count.min(split.len()) {
        let name = match split.labels() {
            Some(l) => format!("{i:05}_{}.png", sanitize(&class_names[l[i] as usize])),
            None => format!("{i:05}.png"),
        };
        let path = dir.join(name);
        let rgb = split.store().rgb(split.store_index(i))?;
        image::RgbImage::from_raw(side, side, rgb)
            .expect("store images are size x size x 3")
            .save(&path)
            .map_err(|e| DataError::format(&path, format!("cannot write PNG: {e}")))?;
        written.push(path);
    }
    Ok(written)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

//! Embeddings out of the tool: features of a split as `.npy` files numpy loads (through
//! `ndarray-npy`), optionally with their 2-D PCA picture (`report::embedding`).

use std::path::Path;

use ndarray::{Array1, Array2};
use stl10_data::Dataset;
use tch::{Device, Kind, Tensor};

use report::embedding::plot;
use train::features::{self, FrozenEncoder};
use train::run_dir::atomic::atomic;
use train::{error::Result, error::TrainError};

/// What `simclr-cli embed` writes.
pub struct Export<'a> {
    /// `train`, `test` or `unlabeled`.
    pub split: &'a str,
    pub features: &'a Path,
    /// Where the labels go (splits with labels only).
    pub labels: &'a Path,
    /// Also draw `embedding.png` of these features here.
    pub plot: Option<&'a Path>,
}

/// An error naming `--split` unless `name` is one of the data set's splits; callers check
/// before loading the data, so a typo costs nothing.
pub fn check_split(name: &str) -> Result<()> {
    if Dataset::SPLITS.contains(&name) {
        return Ok(());
    }
    Err(train::config::ConfigError::Invalid {
        key: "--split".into(),
        message: format!("'{name}' is not one of {}", Dataset::SPLITS.join(", ")),
    }
    .into())
}

/// Features of one split of `ds` under `encoder` to `.npy` (and its labels, and the picture);
/// returns the features' shape and whether labels were written.
pub fn export(encoder: &FrozenEncoder, ds: &Dataset, what: &Export) -> Result<([i64; 2], bool)> {
    check_split(what.split)?;
    let split = ds.split(what.split).expect("checked above");
    if split.is_empty() {
        return Err(TrainError::file(
            what.features,
            format!(
                "--split: the {} split of this data set is empty",
                what.split
            ),
        ));
    }
    crate::create_parents(
        [Some(what.features), Some(what.labels), what.plot]
            .into_iter()
            .flatten(),
    )?;
    let feats = encoder.split(split)?;
    write_features(what.features, &feats)?;
    let labels = features::labels(split, Device::Cpu);
    if let Some(l) = &labels {
        write_labels(what.labels, l)?;
    }
    if let Some(path) = what.plot {
        let subject = format!(
            "{}{} split",
            what.split[..1].to_uppercase(),
            &what.split[1..]
        );
        let subject = match encoder.head {
            Some(_) => format!("{subject}, projection-head"),
            None => format!("{subject}, encoder"),
        };
        match &labels {
            Some(l) => plot(&feats, l, &ds.class_names, &subject, path)?,
            None => {
                let zeros = Tensor::zeros([split.len() as i64], (Kind::Int64, Device::Cpu));
                plot(&feats, &zeros, &["unlabeled".to_string()], &subject, path)?
            }
        }
    }
    let size = feats.size();
    Ok(([size[0], size[1]], labels.is_some()))
}

/// Writes float32 `features` `[N, D]` to `path` as `.npy`, atomically.
pub(crate) fn write_features(path: &Path, features: &Tensor) -> Result<()> {
    let (n, d) = features
        .size2()
        .map_err(|e| TrainError::file(path, format!("features are not [N, D]: {e}")))?;
    let flat = features
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .flatten(0, -1);
    let values = Vec::<f32>::try_from(&flat)?;
    let array = Array2::from_shape_vec((n as usize, d as usize), values)
        .map_err(|e| TrainError::file(path, e.to_string()))?;
    write_npy(path, &array)
}

/// Writes int64 `labels` `[N]` to `path` as `.npy`, atomically.
pub(crate) fn write_labels(path: &Path, labels: &Tensor) -> Result<()> {
    let values = Vec::<i64>::try_from(&labels.to_device(Device::Cpu).to_kind(Kind::Int64))?;
    write_npy(path, &Array1::from(values))
}

fn write_npy<A: ndarray_npy::WritableElement, D: ndarray::Dimension>(
    path: &Path,
    array: &ndarray::Array<A, D>,
) -> Result<()> {
    atomic(path, |tmp| {
        ndarray_npy::write_npy(tmp, array)
            .map_err(|e| TrainError::file(tmp, format!("cannot write .npy: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_files_hold_the_values_and_shape() {
        let dir = tempfile::tempdir().unwrap();
        let f = Tensor::from_slice(&[1.5f32, -2.0, 0.25, 4.0, 5.0, 6.0]).view([3, 2]);
        write_features(&dir.path().join("f.npy"), &f).unwrap();
        write_labels(
            &dir.path().join("l.npy"),
            &Tensor::from_slice(&[2i64, 0, 1]),
        )
        .unwrap();
        let back: Array2<f32> = ndarray_npy::read_npy(dir.path().join("f.npy")).unwrap();
        assert_eq!(back.shape(), &[3, 2]);
        assert_eq!(back[[0, 0]], 1.5);
        assert_eq!(back[[1, 0]], 0.25);
        assert_eq!(back[[2, 1]], 6.0);
        let labels: Array1<i64> = ndarray_npy::read_npy(dir.path().join("l.npy")).unwrap();
        assert_eq!(labels.to_vec(), [2, 0, 1]);
    }
}

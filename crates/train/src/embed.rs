//! Embeddings out of the tool: features of a split as `.npy` files numpy loads (through
//! `ndarray-npy`), and `embedding.png`, a 2-D PCA projection of the test features coloured by
//! class.

use std::path::Path;

use ndarray::{Array1, Array2};
use stl10_data::Dataset;
use tch::{Device, Kind, Tensor};

use crate::atomic::atomic;
use crate::error::{Result, TrainError};
use crate::features::{self, FrozenEncoder};
use crate::plots::scatter_plot;
use crate::runtime::Compute;

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
    Err(crate::config::ConfigError::Invalid {
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
    for file in [Some(what.features), Some(what.labels), what.plot]
        .into_iter()
        .flatten()
    {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        }
    }
    let feats = encoder.split(split);
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

/// Most points drawn in `embedding.png` (an even stride through the split beyond that).
pub const MAX_PLOT_POINTS: usize = 5000;

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

/// The rows of `x` `[N, D]` projected on its first two principal components `[N, 2]`
/// (float64, centred; each component's sign fixed so that its largest loading is positive),
/// and the fraction of the variance each explains.
pub(crate) fn pca_2d(x: &Tensor) -> Result<(Tensor, [f64; 2])> {
    let x = x.to_device(Device::Cpu).to_kind(Kind::Double);
    let (n, d) = x.size2()?;
    if n < 2 || d < 2 {
        return Err(TrainError::file(
            "pca",
            format!("needs at least 2 points of at least 2 features, got [{n}, {d}]"),
        ));
    }
    let centred = &x - x.mean_dim(0, true, Kind::Double);
    let (_, s, v) = centred.svd(true, true);
    let components = v.transpose(0, 1).narrow(0, 0, 2);
    let biggest = components.abs().argmax(1, true);
    let signs = components.gather(1, &biggest, false).sign();
    let components = &components * signs;
    let var = s.square();
    let total = var
        .sum(Kind::Double)
        .double_value(&[])
        .max(f64::MIN_POSITIVE);
    let ratio = [
        var.double_value(&[0]) / total,
        var.double_value(&[1]) / total,
    ];
    Ok((centred.matmul(&components.transpose(0, 1)), ratio))
}

/// Draws `embedding.png`: the test split's features under `encode` (run on one rescaled
/// batch), PCA to 2-D, coloured by class with a legend.
pub(crate) fn plot_test_split(
    compute: &Compute,
    encode: impl Fn(&Tensor) -> Tensor,
    ds: &Dataset,
    path: &Path,
) -> Result<()> {
    // Only the plotted images are encoded.
    let test = &ds.test;
    let stride = test.len().div_ceil(MAX_PLOT_POINTS).max(1);
    let picked: Vec<usize> = (0..test.len()).step_by(stride).collect();
    let subset = test.select(&picked);
    let feats = features::of_split(compute, &subset, encode);
    let labels = features::labels(&subset, Device::Cpu)
        .ok_or_else(|| TrainError::file(path, "the test split has no labels"))?;
    plot(&feats, &labels, &ds.class_names, "Test-set", path)
}

/// `plot_test_split` on given features and labels (at most [`MAX_PLOT_POINTS`] of them, an
/// even stride through the rows).
/// `subject` names the features in the title (`Test-set`).
pub fn plot(
    features: &Tensor,
    labels: &Tensor,
    class_names: &[String],
    subject: &str,
    path: &Path,
) -> Result<()> {
    let n = features.size()[0];
    let stride = (n as usize).div_ceil(MAX_PLOT_POINTS).max(1) as i64;
    let rows = Tensor::arange_start_step(0, n, stride, (Kind::Int64, features.device()));
    let features = features.index_select(0, &rows);
    let labels = labels.to_device(features.device()).index_select(0, &rows);
    let (xy, ratio) = pca_2d(&features)?;
    let xy = Vec::<f64>::try_from(xy.flatten(0, -1))?;
    let points: Vec<(f64, f64)> = xy.chunks(2).map(|p| (p[0], p[1])).collect();
    let labels: Vec<usize> = Vec::<i64>::try_from(&labels.to_device(Device::Cpu))?
        .into_iter()
        .map(|l| l.max(0) as usize)
        .collect();
    scatter_plot(
        path,
        &format!("{subject} features, PCA ({} images)", points.len()),
        (
            &format!("PC 1 ({:.0}% of variance)", ratio[0] * 100.0),
            &format!("PC 2 ({:.0}% of variance)", ratio[1] * 100.0),
        ),
        &points,
        &labels,
        class_names,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_dominant_direction_and_its_share() {
        // 400 points: t * (1, 1, 0) / sqrt(2) with t spread widely, plus u = +-0.5 along
        // (1, -1, 0) / sqrt(2) and nothing along z. The signs of u follow + - - +, so u is
        // uncorrelated with the evenly spaced t (and has mean 0): the components are exactly
        // these two directions, explaining sum t^2 / total and sum u^2 / total.
        let n = 400;
        let mut rows = Vec::new();
        let (mut st, mut su) = (0.0, 0.0);
        for i in 0..n {
            let t = (i as f64 - 199.5) / 20.0;
            let u = if i % 4 == 0 || i % 4 == 3 { 0.5 } else { -0.5 };
            st += t * t;
            su += u * u;
            let r = std::f64::consts::FRAC_1_SQRT_2;
            rows.extend([r * (t + u) + 3.0, r * (t - u) - 1.0, 7.0]);
        }
        let x = Tensor::from_slice(&rows).view([n, 3]);
        let (xy, ratio) = pca_2d(&x).unwrap();
        let want = [st / (st + su), su / (st + su)];
        assert!((ratio[0] - want[0]).abs() < 1e-9, "{ratio:?} vs {want:?}");
        assert!((ratio[1] - want[1]).abs() < 1e-9, "{ratio:?} vs {want:?}");
        // Point i projects to (+-t, +-u): the signs follow the largest-loading rule.
        let p = Vec::<f64>::try_from(xy.flatten(0, -1)).unwrap();
        let t0: f64 = -199.5 / 20.0;
        assert!((p[0].abs() - t0.abs()).abs() < 1e-9 && (p[1].abs() - 0.5).abs() < 1e-9);
        assert!(pca_2d(&Tensor::zeros([1, 3], (Kind::Float, Device::Cpu))).is_err());
    }

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

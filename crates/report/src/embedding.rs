//! `embedding.png`: features projected on their first two principal components, one colour
//! per class, with the share of the variance each component explains.

use std::path::Path;

use stl10_data::{Dataset, Split};
use tch::{Device, Kind, Tensor};
use train::config::ModelSettings;
use train::features::{self, FrozenEncoder};
use train::runtime::Compute;
use train::{error::Result, error::TrainError};
use train::{prepared::Prepared, run_dir::RunDir};

use crate::plots::scatter_plot;

/// Most points drawn in `embedding.png` (an even stride through the split beyond that).
pub const MAX_PLOT_POINTS: usize = 5000;

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

/// Test-set images, their features and labels: the points of the feature-space picture.
pub struct TestFeatures {
    /// `[N, D]`, on the compute device.
    pub features: Tensor,
    /// `[N]`, int64, on the CPU.
    pub labels: Tensor,
    /// The images: the test split's rows drawn.
    pub images: Split,
}

/// Draws `embedding.png`: the test split's features under `encode` (run on one rescaled
/// batch), PCA to 2-D, coloured by class with a legend; returns the points drawn (at most
/// [`MAX_PLOT_POINTS`], an even stride through the split).
pub fn test_split(
    compute: &Compute,
    encode: impl Fn(&Tensor) -> Tensor,
    ds: &Dataset,
    path: &Path,
) -> Result<TestFeatures> {
    // Only the plotted images are encoded.
    let test = &ds.test;
    let stride = test.len().div_ceil(MAX_PLOT_POINTS).max(1);
    let picked: Vec<usize> = (0..test.len()).step_by(stride).collect();
    let subset = test.select(&picked);
    let feats = features::of_split(compute, &subset, encode)?;
    let labels = features::labels(&subset, Device::Cpu)
        .ok_or_else(|| TrainError::file(path, "the test split has no labels"))?;
    plot(&feats, &labels, &ds.class_names, "Test-set", path)?;
    Ok(TestFeatures {
        features: feats,
        labels,
        images: subset,
    })
}

/// `embedding.png` in `dir`: [`test_split`] of the pretrained `encoder.safetensors` there, of
/// shape `shapes`.
pub fn of_pretrained(
    shapes: &ModelSettings,
    prep: &Prepared,
    dir: &RunDir,
) -> Result<TestFeatures> {
    let encoder = dir.file("encoder.safetensors");
    let frozen = FrozenEncoder::load(shapes, prep.compute, &encoder, None)?;
    let encode = |x: &Tensor| frozen.forward(x);
    test_split(&prep.compute, encode, &prep.ds, &dir.file("embedding.png"))
}

/// [`test_split`] on given features and labels (at most [`MAX_PLOT_POINTS`] of them, an
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
}

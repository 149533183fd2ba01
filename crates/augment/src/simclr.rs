//! The SimCLR paper's view transform (Chen et al. 2020, appendix A; torchvision's operations as
//! lightly and solo-learn compose them): random resized crop and horizontal flip, colour jitter
//! (brightness, contrast, saturation and hue in a random order) with probability 0.8, random
//! grayscale with probability 0.2 and optional Gaussian blur, batched on the device.
//!
//! The crop and the flip are one affine map, applied with one bilinear resampling as the
//! example's preset is; the colour operations follow torchvision's tensor definitions
//! (`adjust_brightness`, `adjust_contrast`, `adjust_saturation`, `adjust_hue`,
//! `rgb_to_grayscale`), each clamped to [0, 1]; the blur is a separable Gaussian with reflected
//! borders. Parameters are drawn on the CPU from the augmenter's seeded generator
//! ([`SimclrParams::sample`]) and applied by [`apply_simclr`].

use accel::MemoryFormat;
use rand::Rng;
use tch::{Device, Kind, Tensor};

use crate::params::AugmentError;

const BILINEAR: i64 = 0;
const BORDER: i64 = 1;
/// ITU-R 601-2 luma, as torchvision's `rgb_to_grayscale`.
const LUMA: [f64; 3] = [0.2989, 0.587, 0.114];

/// The SimCLR transform's settings. Defaults are lightly's `SimCLRTransform` (colour strength 1,
/// blur with probability 0.5, the ImageNet and STL-10 recipe); the CIFAR-10 recipe uses
/// strength 0.5 (0.4, 0.4, 0.4, 0.1) and no blur. With the `serde` feature it is the
/// `[augment.simclr]` table (missing keys take these defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct SimclrConfig {
    /// Share of the image area a crop covers, drawn uniformly from `[lo, hi]`.
    pub crop_scale: [f64; 2],
    /// Aspect ratio (width / height) of a crop, drawn log-uniformly from `[lo, hi]`.
    pub crop_ratio: [f64; 2],
    pub flip_probability: f64,
    /// Brightness, contrast and saturation factors are drawn from `[max(0, 1 - a), 1 + a]`.
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    /// The hue shift is drawn from `[-hue, hue]` (a full turn is 1).
    pub hue: f64,
    pub jitter_probability: f64,
    pub grayscale_probability: f64,
    pub blur_probability: f64,
    /// The blur's standard deviation in pixels, drawn uniformly from `[lo, hi]`.
    pub blur_sigma: [f64; 2],
    /// The blur kernel's side as a share of the image side (made odd, at least 3): 10% in the
    /// paper.
    pub blur_kernel: f64,
}

impl Default for SimclrConfig {
    fn default() -> Self {
        SimclrConfig {
            crop_scale: [0.08, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip_probability: 0.5,
            brightness: 0.8,
            contrast: 0.8,
            saturation: 0.8,
            hue: 0.2,
            jitter_probability: 0.8,
            grayscale_probability: 0.2,
            blur_probability: 0.5,
            blur_sigma: [0.1, 2.0],
            blur_kernel: 0.1,
        }
    }
}

impl SimclrConfig {
    /// Checks the ranges; errors name the field.
    pub fn validate(&self) -> Result<(), AugmentError> {
        let bad = |field: &'static str, value: f64, range: &'static str| {
            Err(AugmentError::Range {
                field,
                value,
                range,
            })
        };
        let [lo, hi] = self.crop_scale;
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
            return bad("crop_scale", lo, "0 < lo <= hi <= 1");
        }
        let [lo, hi] = self.crop_ratio;
        if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
            return bad("crop_ratio", lo, "0 < lo <= hi");
        }
        for (field, p) in [
            ("flip_probability", self.flip_probability),
            ("jitter_probability", self.jitter_probability),
            ("grayscale_probability", self.grayscale_probability),
            ("blur_probability", self.blur_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(field, p, "[0, 1]");
            }
        }
        for (field, a) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            if !(a.is_finite() && a >= 0.0) {
                return bad(field, a, "[0, inf)");
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return bad("hue", self.hue, "[0, 0.5]");
        }
        let [lo, hi] = self.blur_sigma;
        if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
            return bad("blur_sigma", lo, "0 < lo <= hi");
        }
        if !(self.blur_kernel > 0.0 && self.blur_kernel <= 1.0) {
            return bad("blur_kernel", self.blur_kernel, "(0, 1]");
        }
        Ok(())
    }

    /// The blur kernel's side for images of `side` pixels: odd, at least 3, and no wider than
    /// the reflected border allows (`2 side - 1`).
    pub fn blur_kernel_size(&self, side: usize) -> usize {
        let k = (self.blur_kernel * side as f64).round() as usize;
        ((k.max(3) / 2) * 2 + 1).min(2 * side.max(1) - 1)
    }
}

/// A colour operation of the jitter, in torchvision's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorOp {
    Brightness = 0,
    Contrast = 1,
    Saturation = 2,
    Hue = 3,
}

impl ColorOp {
    const ALL: [ColorOp; 4] = [
        ColorOp::Brightness,
        ColorOp::Contrast,
        ColorOp::Saturation,
        ColorOp::Hue,
    ];
}

/// One image's colour jitter: the order of the four operations and their factors (indexed by
/// [`ColorOp`]; the hue's is a shift).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    pub order: [ColorOp; 4],
    pub factors: [f32; 4],
}

/// Per-image parameters of the SimCLR transform for a batch of `N` images.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimclrParams {
    /// The crop `[left, top, width, height]` in pixels of the input.
    pub crop: Vec<[f32; 4]>,
    pub flip: Vec<bool>,
    pub jitter: Vec<Option<Jitter>>,
    pub grayscale: Vec<bool>,
    /// The blur's sigma in pixels, when blurred.
    pub blur: Vec<Option<f32>>,
}

impl SimclrParams {
    /// Parameters that change nothing (the whole image, no colour change).
    pub fn identity(n: usize, height: usize, width: usize) -> Self {
        SimclrParams {
            crop: vec![[0.0, 0.0, width as f32, height as f32]; n],
            flip: vec![false; n],
            jitter: vec![None; n],
            grayscale: vec![false; n],
            blur: vec![None; n],
        }
    }

    pub fn len(&self) -> usize {
        self.flip.len()
    }

    /// The parameters of the images at `rows` (each below [`SimclrParams::len`]), in that
    /// order.
    pub fn select(&self, rows: &[usize]) -> SimclrParams {
        SimclrParams {
            crop: rows.iter().map(|&r| self.crop[r]).collect(),
            flip: rows.iter().map(|&r| self.flip[r]).collect(),
            jitter: rows.iter().map(|&r| self.jitter[r]).collect(),
            grayscale: rows.iter().map(|&r| self.grayscale[r]).collect(),
            blur: rows.iter().map(|&r| self.blur[r]).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.flip.is_empty()
    }

    /// Draws parameters for `n` images of `height` x `width` from `rng`, per image in a fixed
    /// order: crop (torchvision's `RandomResizedCrop.get_params`: up to ten tries, then the
    /// centre crop of the clamped ratio), flip, jitter (the coin, the order, then brightness,
    /// contrast, saturation and hue as torchvision draws them), grayscale, blur.
    pub fn sample(
        cfg: &SimclrConfig,
        n: usize,
        height: usize,
        width: usize,
        rng: &mut impl Rng,
    ) -> Self {
        let mut p = SimclrParams::default();
        for _ in 0..n {
            p.crop.push(crop(cfg, height, width, rng));
            p.flip.push(rng.random_bool(cfg.flip_probability));
            let jitter = rng.random_bool(cfg.jitter_probability);
            let mut order = ColorOp::ALL;
            for i in (1..4).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            let factor = |rng: &mut _, a: f64| uniform(rng, (1.0 - a).max(0.0), 1.0 + a) as f32;
            let factors = [
                factor(rng, cfg.brightness),
                factor(rng, cfg.contrast),
                factor(rng, cfg.saturation),
                uniform(rng, -cfg.hue, cfg.hue) as f32,
            ];
            p.jitter.push(jitter.then_some(Jitter { order, factors }));
            p.grayscale.push(rng.random_bool(cfg.grayscale_probability));
            let blur = rng.random_bool(cfg.blur_probability);
            let sigma = uniform(rng, cfg.blur_sigma[0], cfg.blur_sigma[1]) as f32;
            p.blur.push(blur.then_some(sigma));
        }
        p
    }
}

/// `U(lo, hi)`, or `lo` when the range is empty.
fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    if hi > lo {
        rng.random_range(lo..=hi)
    } else {
        lo
    }
}

/// torchvision's `RandomResizedCrop.get_params` in whole pixels: `[left, top, width, height]`.
fn crop(cfg: &SimclrConfig, height: usize, width: usize, rng: &mut impl Rng) -> [f32; 4] {
    let (h, w) = (height as f64, width as f64);
    let area = h * w;
    let (log_lo, log_hi) = (cfg.crop_ratio[0].ln(), cfg.crop_ratio[1].ln());
    for _ in 0..10 {
        let target = area * uniform(rng, cfg.crop_scale[0], cfg.crop_scale[1]);
        let ratio = uniform(rng, log_lo, log_hi).exp();
        let cw = (target * ratio).sqrt().round();
        let ch = (target / ratio).sqrt().round();
        if cw > 0.0 && cw <= w && ch > 0.0 && ch <= h {
            let top = rng.random_range(0..=(h - ch) as usize) as f32;
            let left = rng.random_range(0..=(w - cw) as usize) as f32;
            return [left, top, cw as f32, ch as f32];
        }
    }
    let in_ratio = w / h;
    let (cw, ch) = if in_ratio < cfg.crop_ratio[0] {
        (w, (w / cfg.crop_ratio[0]).round())
    } else if in_ratio > cfg.crop_ratio[1] {
        ((h * cfg.crop_ratio[1]).round(), h)
    } else {
        (w, h)
    };
    let top = ((h - ch) / 2.0).floor() as f32;
    let left = ((w - cw) / 2.0).floor() as f32;
    [left, top, cw as f32, ch as f32]
}

/// The output-to-input affine map (normalised coordinates, `align_corners = false`) that
/// resizes crop `[left, top, cw, ch]` of a `w` x `h` image to the whole output, mirrored when
/// `flip`: output pixel `k` samples the input at `left + cw (k + 0.5) / w - 0.5`, as
/// torchvision's bilinear resize of the crop does.
fn crop_theta(c: [f32; 4], flip: bool, h: i64, w: i64) -> [f32; 6] {
    let [left, top, cw, ch] = c;
    let (w, h) = (w as f32, h as f32);
    let (sx, sy) = (cw / w, ch / h);
    let (cx, cy) = ((2.0 * left + cw) / w - 1.0, (2.0 * top + ch) / h - 1.0);
    let f = if flip { -1.0 } else { 1.0 };
    [f * sx, 0.0, cx, 0.0, sy, cy]
}

/// torchvision's `rgb_to_grayscale` of float `[N, 3, H, W]`: `[N, 1, H, W]`.
pub fn grayscale(x: &Tensor) -> Tensor {
    let luma = Tensor::from_slice(&LUMA.map(|v| v as f32))
        .to_device(x.device())
        .view([1, 3, 1, 1]);
    (x * luma).sum_dim_intlist([1i64].as_slice(), true, x.kind())
}

/// Per-image factors `[M]` as `[M, 1, 1, 1]` on `x`'s device.
fn per_image(factors: &[f32], x: &Tensor) -> Tensor {
    Tensor::from_slice(factors)
        .to_device(x.device())
        .view([-1, 1, 1, 1])
}

/// torchvision's `adjust_brightness`: `clamp(f x)`.
pub fn adjust_brightness(x: &Tensor, factors: &[f32]) -> Tensor {
    (x * per_image(factors, x)).clamp(0.0, 1.0)
}

/// torchvision's `adjust_contrast`: a blend with the image's mean grey level.
pub fn adjust_contrast(x: &Tensor, factors: &[f32]) -> Tensor {
    let mean = grayscale(x).mean_dim([1i64, 2, 3].as_slice(), true, x.kind());
    blend(x, &mean, &per_image(factors, x))
}

/// torchvision's `adjust_saturation`: a blend with the grayscale image.
pub fn adjust_saturation(x: &Tensor, factors: &[f32]) -> Tensor {
    blend(x, &grayscale(x), &per_image(factors, x))
}

/// `clamp(f x + (1 - f) other)`.
fn blend(x: &Tensor, other: &Tensor, f: &Tensor) -> Tensor {
    let rest = f.neg() + 1.0;
    (x * f + other * rest).clamp(0.0, 1.0)
}

/// torchvision's `adjust_hue`: the hue turned by `shifts` (in turns) in HSV space.
pub fn adjust_hue(x: &Tensor, shifts: &[f32]) -> Tensor {
    let (h, s, v) = rgb_to_hsv(x);
    let h = (h + per_image(shifts, x)).remainder(1.0);
    hsv_to_rgb(&h, &s, &v)
}

/// torchvision's `_rgb2hsv`: hue in [0, 1), saturation, value, each `[N, 1, H, W]`.
fn rgb_to_hsv(x: &Tensor) -> (Tensor, Tensor, Tensor) {
    let rgb = x.split(1, 1);
    let (r, g, b) = (&rgb[0], &rgb[1], &rgb[2]);
    let maxc = r.maximum(g).maximum(b);
    let minc = r.minimum(g).minimum(b);
    let eqc = maxc.eq_tensor(&minc);
    let cr = &maxc - &minc;
    let ones = maxc.ones_like();
    let s = &cr / maxc.where_self(&eqc.logical_not(), &ones);
    let divisor = cr.where_self(&eqc.logical_not(), &ones);
    let rc = (&maxc - r) / &divisor;
    let gc = (&maxc - g) / &divisor;
    let bc = (&maxc - b) / &divisor;
    let is_r = maxc.eq_tensor(r);
    let is_g = maxc.eq_tensor(g).logical_and(&is_r.logical_not());
    let is_b = is_r
        .logical_not()
        .logical_and(&maxc.eq_tensor(g).logical_not());
    let hr = is_r.to_kind(x.kind()) * (&bc - &gc);
    let hg = is_g.to_kind(x.kind()) * (2.0 + &rc - &bc);
    let hb = is_b.to_kind(x.kind()) * (4.0 + &gc - &rc);
    let h: Tensor = (hr + hg + hb) / 6.0 + 1.0;
    let h = h.remainder(1.0);
    (h, s, maxc)
}

/// torchvision's `_hsv2rgb`.
fn hsv_to_rgb(h: &Tensor, s: &Tensor, v: &Tensor) -> Tensor {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = &h6 - &i;
    let i = i.remainder(6.0);
    let one_minus = |t: Tensor| t.neg() + 1.0;
    let p = (v * one_minus(s.shallow_clone())).clamp(0.0, 1.0);
    let q = (v * one_minus(s * &f)).clamp(0.0, 1.0);
    let t = (v * one_minus(s * one_minus(f.shallow_clone()))).clamp(0.0, 1.0);
    // Sector k of the hue circle takes (r, g, b) from these, as torchvision's table.
    let table = [
        [v, &t, &p],
        [&q, v, &p],
        [&p, v, &t],
        [&p, &q, v],
        [&t, &p, v],
        [v, &p, &q],
    ];
    let channel = |c: usize| {
        table
            .iter()
            .enumerate()
            .fold(h.zeros_like(), |acc, (k, row)| {
                acc + i.eq(k as f64).to_kind(h.kind()) * row[c]
            })
    };
    Tensor::cat(&[channel(0), channel(1), channel(2)], 1)
}

/// Gaussian blur of each image with its own `sigmas` (pixels), a `k` x `k` kernel (odd) and
/// reflected borders, as torchvision's `gaussian_blur`: one separable grouped convolution.
pub fn gaussian_blur(x: &Tensor, sigmas: &[f32], k: usize) -> Result<Tensor, AugmentError> {
    let (n, c, h, w) = x.size4().map_err(|_| AugmentError::Shape(x.size()))?;
    if sigmas.len() as i64 != n {
        return Err(AugmentError::Count {
            params: sigmas.len(),
            images: n as usize,
        });
    }
    let half = (k / 2) as i64;
    if half >= h.min(w) {
        return Err(AugmentError::Range {
            field: "blur_kernel",
            value: k as f64,
            range: "kernel sides below twice the image side",
        });
    }
    let offsets = Tensor::arange_start(-half, half + 1, (Kind::Float, x.device()));
    let sig = Tensor::from_slice(sigmas)
        .to_device(x.device())
        .view([-1, 1]);
    let weights = (-(offsets.view([1, -1]).square()) / (sig.square() * 2.0)).exp();
    let weights = &weights / weights.sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
    // One kernel per image and channel: [N * C, 1, 1, k] and its transpose.
    let kernels = weights
        .repeat_interleave_self_int(c, 0, None)
        .to_kind(x.kind());
    let horizontal = kernels.view([n * c, 1, 1, k as i64]);
    let vertical = kernels.view([n * c, 1, k as i64, 1]);
    let padded = x
        .contiguous()
        .view([1, n * c, h, w])
        .reflection_pad2d([half, half, half, half]);
    Ok(padded
        .conv2d(&horizontal, None::<Tensor>, [1, 1], [0, 0], [1, 1], n * c)
        .conv2d(&vertical, None::<Tensor>, [1, 1], [0, 0], [1, 1], n * c)
        .view([n, c, h, w]))
}

/// Replaces the images at `rows` of `x` by `f` of them, in place.
fn apply_to_rows(
    x: &mut Tensor,
    rows: &[i64],
    f: impl FnOnce(&Tensor) -> Result<Tensor, AugmentError>,
) -> Result<(), AugmentError> {
    if rows.is_empty() {
        return Ok(());
    }
    let index = accel::upload(&Tensor::from_slice(rows), x.device());
    let changed = f(&x.index_select(0, &index))?;
    let _ = x.index_copy_(0, &index, &changed);
    Ok(())
}

/// Applies `params` to `images` (`[N, 3, H, W]`, uint8 0..255) on `device`: crop, resize and
/// flip in one bilinear resampling, then the jitter's operations in each image's order, the
/// grayscale and the blur, each on the images it was drawn for. Returns float32 `[N, 3, H, W]`
/// in [0, 1], in `format`. An error, never a panic, for a batch that is not `[N, 3, H, W]` or
/// parameters for another number of images.
pub fn apply_simclr(
    images: &Tensor,
    params: &SimclrParams,
    cfg: &SimclrConfig,
    device: Device,
    format: MemoryFormat,
) -> Result<Tensor, AugmentError> {
    let (n, h, w) = match images.size4() {
        Ok((n, 3, h, w)) => (n, h, w),
        _ => return Err(AugmentError::Shape(images.size())),
    };
    if params.len() as i64 != n {
        return Err(AugmentError::Count {
            params: params.len(),
            images: n as usize,
        });
    }
    cfg.validate()?;
    let x = crate::pipeline::rescale(images, device);
    if n == 0 {
        return Ok(format.apply(&x));
    }
    let theta: Vec<f32> = (0..params.len())
        .flat_map(|i| crop_theta(params.crop[i], params.flip[i], h, w))
        .collect();
    let theta = accel::upload(&Tensor::from_slice(&theta).view([n, 2, 3]), device);
    let grid = Tensor::affine_grid_generator(&theta, [n, 3, h, w], false);
    let mut x = x
        .grid_sampler(&grid, BILINEAR, BORDER, false)
        .clamp(0.0, 1.0);
    for round in 0..4 {
        for op in ColorOp::ALL {
            let (rows, factors): (Vec<i64>, Vec<f32>) = params
                .jitter
                .iter()
                .enumerate()
                .filter_map(|(i, j)| {
                    j.filter(|j| j.order[round] == op)
                        .map(|j| (i as i64, j.factors[op as usize]))
                })
                .unzip();
            apply_to_rows(&mut x, &rows, |sel| {
                Ok(match op {
                    ColorOp::Brightness => adjust_brightness(sel, &factors),
                    ColorOp::Contrast => adjust_contrast(sel, &factors),
                    ColorOp::Saturation => adjust_saturation(sel, &factors),
                    ColorOp::Hue => adjust_hue(sel, &factors),
                })
            })?;
        }
    }
    let gray: Vec<i64> = (0..n).filter(|&i| params.grayscale[i as usize]).collect();
    apply_to_rows(&mut x, &gray, |sel| {
        Ok(grayscale(sel).expand([-1, 3, -1, -1], false))
    })?;
    let (blurred, sigmas): (Vec<i64>, Vec<f32>) = params
        .blur
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.map(|s| (i as i64, s)))
        .unzip();
    let k = cfg.blur_kernel_size(h.min(w) as usize);
    if k > 1 {
        apply_to_rows(&mut x, &blurred, |sel| gaussian_blur(sel, &sigmas, k))?;
    }
    Ok(format.apply(&x))
}

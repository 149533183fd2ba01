//! Applying parameters to a batch on the device (one resampling and one colour affine per
//! image), and the seeded [`Augmenter`] that draws and applies them.

use accel::MemoryFormat;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::params::{AugmentConfig, AugmentError, Params};
use crate::simclr::{SimclrConfig, SimclrParams, apply_simclr};

const BILINEAR: i64 = 0;
const REFLECTION: i64 = 2;

/// `Rescaling(1/255)`: uint8 (or float 0..255) `[N,3,H,W]` to float32 in [0, 1] on `device`.
/// This is all an augmenter does in inference mode.
pub fn rescale(images: &Tensor, device: Device) -> Tensor {
    accel::upload(images, device).to_kind(Kind::Float) / 255.0
}

/// [`apply_as`] with contiguous NCHW output.
pub fn apply(images: &Tensor, params: &Params, device: Device) -> Result<Tensor, AugmentError> {
    apply_as(images, params, device, MemoryFormat::Contiguous)
}

/// `(N, H, W)` of an RGB batch `[N, 3, H, W]`, or the error naming its shape.
fn batch_dims(images: &Tensor) -> Result<(i64, i64, i64), AugmentError> {
    match images.size4() {
        Ok((n, 3, h, w)) => Ok((n, h, w)),
        _ => Err(AugmentError::Shape(images.size())),
    }
}

/// Applies `params` to `images` (`[N,3,H,W]`, uint8 0..255) on `device`: the composed
/// flip/translate/zoom map with one bilinear reflect-padded resampling, then the colour affine
/// with the rescaling by 1/255 folded into its matrices, and an in-place clamp to [0, 1].
/// Returns float32 `[N,3,H,W]` in `format`: the colour step writes every pixel anyway, so it
/// writes channels-last directly when asked and no conversion follows.
///
/// The per-image parameters travel to the device as one small packed upload (asynchronous on
/// CUDA); `images` are uploaded only if they are not on `device` already. An error, never a
/// panic, when `images` is not `[N,3,H,W]` or `params` is not for `N` images.
pub fn apply_as(
    images: &Tensor,
    params: &Params,
    device: Device,
    format: MemoryFormat,
) -> Result<Tensor, AugmentError> {
    let (n, h, w) = batch_dims(images)?;
    if params.len() as i64 != n {
        return Err(AugmentError::Count {
            params: params.len(),
            images: n as usize,
        });
    }
    if n == 0 {
        return Ok(format.apply(&rescale(images, device)));
    }
    // 0..255: the 1/255 is part of the colour matrices below.
    let x = accel::upload(images, device).to_kind(Kind::Float);
    let packed = accel::upload(&packed_params(params, h, w), device);
    let theta = packed.narrow(1, 0, 6).view([n, 2, 3]);
    let m = packed.narrow(1, 6, 9).view([n, 3, 3]); // M / 255, rows: input channel
    let grid = Tensor::affine_grid_generator(&theta, [n, 3, h, w], false);
    let x = x
        .grid_sampler(&grid, BILINEAR, REFLECTION, false)
        .reshape([n, 3, h * w]);
    let mut out = match format {
        // [N, 3, HW] = M^T [N, 3, HW]
        MemoryFormat::Contiguous => m.transpose(1, 2).bmm(&x).view([n, 3, h, w]),
        // [N, HW, 3] = x^T M, i.e. NHWC memory, seen as [N, 3, H, W]
        MemoryFormat::ChannelsLast => x
            .transpose(1, 2)
            .bmm(&m)
            .view([n, h, w, 3])
            .permute([0, 3, 1, 2]),
    };
    let _ = out.clamp_(0.0, 1.0);
    Ok(out)
}

/// Per image, the 6 entries of the output-to-input affine map and the 9 of `M / 255` (row-major,
/// rows indexed by input channel): `[N, 15]`, one upload.
fn packed_params(p: &Params, h: i64, w: i64) -> Tensor {
    let mut out = Vec::with_capacity(p.len() * 15);
    for i in 0..p.len() {
        out.extend_from_slice(&theta(p, i, h, w));
        out.extend(color_matrix(p, i).iter().flatten().map(|v| v / 255.0));
    }
    Tensor::from_slice(&out).view([p.len() as i64, 15])
}

/// The output-to-input affine map of image `i` (a row-major 2x3 matrix) in normalised coordinates.
///
/// Keras flips, then translates, then zooms. In centred pixel coordinates the output pixel `p`
/// samples the input at `F (S p - d)`, with `F = diag(±1, 1)` the flip, `S = diag(sx, sy)` the
/// visible extents and `d` the content shift; with `align_corners = false` a centred pixel
/// coordinate `c` is `2c / W` normalised, so `d` enters as `2 d / W`.
fn theta(p: &Params, i: usize, h: i64, w: i64) -> [f32; 6] {
    let f = if p.flip[i] { -1.0 } else { 1.0 };
    let [sx, sy] = p.zoom[i];
    let [dx, dy] = p.translate[i];
    let (dx, dy) = (2.0 * dx / w as f32, 2.0 * dy / h as f32);
    [f * sx, 0.0, -f * dx, 0.0, sy, -dy]
}

/// `M = (1 + u) I + J` of image `i`: each pixel's RGB row vector is multiplied by `M`.
fn color_matrix(p: &Params, i: usize) -> [[f32; 3]; 3] {
    let mut m = p.jitter[i];
    for (d, row) in m.iter_mut().enumerate() {
        row[d] += 1.0 + p.brightness[i];
    }
    m
}

/// Which view transform an augmenter applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Preset {
    /// The Keras example's: flip, translation, zoom and colour affine.
    Keras(AugmentConfig),
    /// The SimCLR paper's: resized crop, flip, colour jitter, grayscale, blur.
    Simclr(SimclrConfig),
}

impl From<AugmentConfig> for Preset {
    fn from(c: AugmentConfig) -> Self {
        Preset::Keras(c)
    }
}

impl From<SimclrConfig> for Preset {
    fn from(c: SimclrConfig) -> Self {
        Preset::Simclr(c)
    }
}

impl Preset {
    /// Checks the settings' ranges; errors name the field.
    pub fn validate(&self) -> Result<(), AugmentError> {
        match self {
            Preset::Keras(c) => c.validate(),
            Preset::Simclr(c) => c.validate(),
        }
    }
}

/// A seeded augmenter for one view transform on one device.
#[derive(Debug)]
pub struct Augmenter {
    preset: Preset,
    rng: ChaCha8Rng,
    device: Device,
    format: MemoryFormat,
}

impl Augmenter {
    /// An augmenter of `preset` (an [`AugmentConfig`], a [`SimclrConfig`] or a [`Preset`])
    /// drawing from a generator seeded with `seed`.
    pub fn new(preset: impl Into<Preset>, seed: u64, device: Device) -> Result<Self, AugmentError> {
        let preset = preset.into();
        preset.validate()?;
        Ok(Augmenter {
            preset,
            rng: ChaCha8Rng::seed_from_u64(seed),
            device,
            format: MemoryFormat::Contiguous,
        })
    }

    /// The same augmenter writing its output in `format` (contiguous NCHW by default).
    pub fn with_format(mut self, format: MemoryFormat) -> Self {
        self.format = format;
        self
    }

    pub fn format(&self) -> MemoryFormat {
        self.format
    }

    pub fn preset(&self) -> &Preset {
        &self.preset
    }

    /// Where the augmenter's random stream stands (a position in its ChaCha8 stream): saved
    /// with checkpoints so a resumed run draws exactly what an uninterrupted one would.
    pub fn stream_position(&self) -> u128 {
        self.rng.get_word_pos()
    }

    /// Moves the random stream to `position` (from [`Augmenter::stream_position`]).
    pub fn seek(&mut self, position: u128) {
        self.rng.set_word_pos(position);
    }

    /// Draws the Keras preset's parameters for `n` images of `height` x `width`; `None` for
    /// another preset.
    pub fn sample(&mut self, n: usize, height: usize, width: usize) -> Option<Params> {
        match &self.preset {
            Preset::Keras(c) => Some(Params::sample(c, n, height, width, &mut self.rng)),
            Preset::Simclr(_) => None,
        }
    }

    /// Draws the SimCLR preset's parameters for `n` images of `height` x `width`; `None` for
    /// another preset.
    pub fn sample_simclr(&mut self, n: usize, height: usize, width: usize) -> Option<SimclrParams> {
        match &self.preset {
            Preset::Simclr(c) => Some(SimclrParams::sample(c, n, height, width, &mut self.rng)),
            Preset::Keras(_) => None,
        }
    }

    /// Draws parameters for the batch `[N, 3, H, W]` and applies them (training mode).
    pub fn augment(&mut self, images: &Tensor) -> Result<Tensor, AugmentError> {
        let (n, h, w) = batch_dims(images)?;
        let _span = tracing::debug_span!("augment", images = n).entered();
        let (n, h, w) = (n as usize, h as usize, w as usize);
        match self.preset {
            Preset::Keras(c) => {
                let params = Params::sample(&c, n, h, w, &mut self.rng);
                apply_as(images, &params, self.device, self.format)
            }
            Preset::Simclr(c) => {
                let params = SimclrParams::sample(&c, n, h, w, &mut self.rng);
                apply_simclr(images, &params, &c, self.device, self.format)
            }
        }
    }

    /// Part of a batch, augmented as it would be within the whole: draws parameters for a batch
    /// of `total` images, as [`Augmenter::augment`] on all of them would (the stream advances
    /// the same), and applies those of `rows` (their positions in the whole batch) to `images`,
    /// which are those rows' images. Data-parallel ranks each augment their shard this way, so
    /// an image gets the same augmentation whichever rank holds it.
    pub fn augment_rows(
        &mut self,
        images: &Tensor,
        total: usize,
        rows: &[usize],
    ) -> Result<Tensor, AugmentError> {
        let (n, h, w) = batch_dims(images)?;
        if n as usize != rows.len() {
            return Err(AugmentError::Count {
                params: rows.len(),
                images: n as usize,
            });
        }
        if let Some(&row) = rows.iter().find(|&&r| r >= total) {
            return Err(AugmentError::Row { row, total });
        }
        let _span = tracing::debug_span!("augment", images = n, of = total).entered();
        let (h, w) = (h as usize, w as usize);
        match self.preset {
            Preset::Keras(c) => {
                let params = Params::sample(&c, total, h, w, &mut self.rng).select(rows);
                apply_as(images, &params, self.device, self.format)
            }
            Preset::Simclr(c) => {
                let params = SimclrParams::sample(&c, total, h, w, &mut self.rng).select(rows);
                apply_simclr(images, &params, &c, self.device, self.format)
            }
        }
    }

    /// Inference mode: only the rescaling applies (output in the augmenter's format).
    pub fn inference(&self, images: &Tensor) -> Tensor {
        self.format.apply(&rescale(images, self.device))
    }
}

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::params::{AugmentConfig, AugmentError, Params};

const BILINEAR: i64 = 0;
const REFLECTION: i64 = 2;

/// `Rescaling(1/255)`: uint8 (or float 0..255) `[N,3,H,W]` to float32 in [0, 1] on `device`.
/// This is all an augmenter does in inference mode.
pub fn rescale(images: &Tensor, device: Device) -> Tensor {
    images.to_device(device).to_kind(Kind::Float) / 255.0
}

/// Applies `params` to `images` (`[N,3,H,W]`, uint8 0..255) on `device`: rescale, the composed
/// flip/translate/zoom map with one bilinear reflect-padded resampling, then the colour affine
/// and a clamp to [0, 1]. Returns float32 `[N,3,H,W]`.
///
/// # Panics
/// If `params` is not for `N` images or `images` is not `[N,3,H,W]`.
pub fn apply(images: &Tensor, params: &Params, device: Device) -> Tensor {
    let (n, c, h, w) = images.size4().expect("images must be [N, 3, H, W]");
    assert_eq!(c, 3, "images must have 3 channels");
    assert_eq!(
        params.len() as i64,
        n,
        "params are for {} images, batch has {n}",
        params.len()
    );
    let x = rescale(images, device);
    if n == 0 {
        return x;
    }
    let theta = geometry(params, h, w).to_device(device);
    let grid = Tensor::affine_grid_generator(&theta, [n, c, h, w], false);
    let x = x.grid_sampler(&grid, BILINEAR, REFLECTION, false);
    let m = color_matrices(params).to_device(device); // [N, 3, 3], already transposed
    m.bmm(&x.reshape([n, 3, h * w]))
        .reshape([n, 3, h, w])
        .clamp(0.0, 1.0)
}

/// The output-to-input affine maps `[N, 2, 3]` in normalised coordinates.
///
/// Keras flips, then translates, then zooms. In centred pixel coordinates the output pixel `p`
/// samples the input at `F (S p - d)`, with `F = diag(±1, 1)` the flip, `S = diag(sx, sy)` the
/// visible extents and `d` the content shift; with `align_corners = false` a centred pixel
/// coordinate `c` is `2c / W` normalised, so `d` enters as `2 d / W`.
fn geometry(p: &Params, h: i64, w: i64) -> Tensor {
    let mut theta = Vec::with_capacity(p.len() * 6);
    for i in 0..p.len() {
        let f = if p.flip[i] { -1.0 } else { 1.0 };
        let [sx, sy] = p.zoom[i];
        let [dx, dy] = p.translate[i];
        let (dx, dy) = (2.0 * dx / w as f32, 2.0 * dy / h as f32);
        theta.extend_from_slice(&[f * sx, 0.0, -f * dx, 0.0, sy, -dy]);
    }
    Tensor::from_slice(&theta).view([p.len() as i64, 2, 3])
}

/// `M^T` per image, `M = (1 + u) I + J`, so that `M^T x` multiplies each pixel's row vector by `M`.
fn color_matrices(p: &Params) -> Tensor {
    let mut out = Vec::with_capacity(p.len() * 9);
    for i in 0..p.len() {
        let scale = 1.0 + p.brightness[i];
        for row in 0..3 {
            for col in 0..3 {
                // (M^T)[row][col] = M[col][row]
                let identity = if row == col { scale } else { 0.0 };
                out.push(identity + p.jitter[i][col][row]);
            }
        }
    }
    Tensor::from_slice(&out).view([p.len() as i64, 3, 3])
}

/// A seeded augmenter for one view transform on one device.
#[derive(Debug)]
pub struct Augmenter {
    config: AugmentConfig,
    rng: ChaCha8Rng,
    device: Device,
}

impl Augmenter {
    /// An augmenter drawing from a generator seeded with `seed`.
    pub fn new(config: AugmentConfig, seed: u64, device: Device) -> Result<Self, AugmentError> {
        config.validate()?;
        Ok(Augmenter {
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            device,
        })
    }

    pub fn config(&self) -> &AugmentConfig {
        &self.config
    }

    /// Draws parameters for `n` images of `height` x `width`.
    pub fn sample(&mut self, n: usize, height: usize, width: usize) -> Params {
        Params::sample(&self.config, n, height, width, &mut self.rng)
    }

    /// Draws parameters for the batch and applies them (training mode).
    pub fn augment(&mut self, images: &Tensor) -> Tensor {
        let (n, _, h, w) = images.size4().expect("images must be [N, 3, H, W]");
        let params = self.sample(n as usize, h as usize, w as usize);
        apply(images, &params, self.device)
    }

    /// Inference mode: only the rescaling applies.
    pub fn inference(&self, images: &Tensor) -> Tensor {
        rescale(images, self.device)
    }
}

//! What an augmentation draws: the preset ([`AugmentConfig`], the Keras example's
//! `get_augmenter` arguments) and each image's transform parameters ([`Params`]).

use rand::Rng;

/// One view transform's parameters, as the Keras example's `get_augmenter(min_area, brightness,
/// jitter)` takes them. With the `serde` feature it is also the `[augment.*]` table of a
/// configuration file (every field required, no others allowed).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct AugmentConfig {
    /// Smallest share of the image area a zoomed view keeps; `zoom_factor = 1 - sqrt(min_area)`.
    pub min_area: f64,
    /// Brightness scale drawn from `1 + U(-brightness, brightness)`.
    pub brightness: f64,
    /// Entries of the 3x3 colour jitter matrix drawn from `U(-jitter, jitter)`.
    pub jitter: f64,
}

impl AugmentConfig {
    /// The example's `contrastive_augmentation`: strong, for the two views.
    pub fn contrastive() -> Self {
        AugmentConfig {
            min_area: 0.25,
            brightness: 0.6,
            jitter: 0.2,
        }
    }

    /// The example's `classification_augmentation`: weak, for supervised training and the probe.
    pub fn classification() -> Self {
        AugmentConfig {
            min_area: 0.75,
            brightness: 0.3,
            jitter: 0.1,
        }
    }

    /// `1 - sqrt(min_area)`: the largest share of each side a zoom removes.
    pub fn zoom_factor(&self) -> f64 {
        1.0 - self.min_area.sqrt()
    }

    /// Checks the ranges; errors name the field.
    pub fn validate(&self) -> Result<(), AugmentError> {
        let bad = |field: &'static str, value: f64, range: &'static str| AugmentError::Range {
            field,
            value,
            range,
        };
        if !(self.min_area > 0.0 && self.min_area <= 1.0) {
            return Err(bad("min_area", self.min_area, "(0, 1]"));
        }
        if !(0.0..1.0).contains(&self.brightness) {
            return Err(bad("brightness", self.brightness, "[0, 1)"));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(bad("jitter", self.jitter, "[0, 1]"));
        }
        Ok(())
    }
}

/// An invalid setting or batch: what the augmenter returns instead of panicking.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AugmentError {
    /// A setting outside its valid range.
    #[error("{field} = {value} is outside {range}")]
    Range {
        field: &'static str,
        value: f64,
        range: &'static str,
    },
    /// Images that are not an RGB batch `[N, 3, H, W]`.
    #[error("images must be [N, 3, H, W], got {0:?}")]
    Shape(Vec<i64>),
    /// Parameters drawn for another number of images.
    #[error("the parameters are for {params} images, the batch has {images}")]
    Count { params: usize, images: usize },
    /// A row outside the batch the parameters were drawn for.
    #[error("row {row} is outside the batch of {total} images")]
    Row { row: usize, total: usize },
}

impl AugmentError {
    /// The setting at fault (`min_area`, `brightness`, `jitter`), for a range error.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AugmentError::Range { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Per-image transform parameters for a batch of `N` images.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Mirror left-right.
    pub flip: Vec<bool>,
    /// Content shift in pixels, `[x, y]`; positive moves the content right / down.
    pub translate: Vec<[f32; 2]>,
    /// Visible extent per axis, `[x, y]`, in `(0, 1]`: 0.5 shows the central half (zoom in).
    pub zoom: Vec<[f32; 2]>,
    /// `u` of the brightness scale `1 + u`.
    pub brightness: Vec<f32>,
    /// The jitter matrix `J`; each pixel's RGB row vector is multiplied by `(1 + u) I + J`.
    pub jitter: Vec<[[f32; 3]; 3]>,
}

impl Params {
    /// Parameters that change nothing (beyond rescaling).
    pub fn identity(n: usize) -> Self {
        Params {
            flip: vec![false; n],
            translate: vec![[0.0; 2]; n],
            zoom: vec![[1.0; 2]; n],
            brightness: vec![0.0; n],
            jitter: vec![[[0.0; 3]; 3]; n],
        }
    }

    pub fn len(&self) -> usize {
        self.flip.len()
    }

    /// The parameters of the images at `rows` (each below [`Params::len`]), in that order.
    pub fn select(&self, rows: &[usize]) -> Params {
        Params {
            flip: rows.iter().map(|&r| self.flip[r]).collect(),
            translate: rows.iter().map(|&r| self.translate[r]).collect(),
            zoom: rows.iter().map(|&r| self.zoom[r]).collect(),
            brightness: rows.iter().map(|&r| self.brightness[r]).collect(),
            jitter: rows.iter().map(|&r| self.jitter[r]).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.flip.is_empty()
    }

    /// Draws parameters for `n` images of `height` x `width` from `rng`, per image in a fixed
    /// order (flip, translation y and x, zoom y and x, brightness, jitter row by row).
    pub fn sample(
        cfg: &AugmentConfig,
        n: usize,
        height: usize,
        width: usize,
        rng: &mut impl Rng,
    ) -> Self {
        let zoom = cfg.zoom_factor() as f32;
        let shift = zoom / 2.0; // RandomTranslation(zoom_factor / 2, zoom_factor / 2)
        let (b, j) = (cfg.brightness as f32, cfg.jitter as f32);
        let mut p = Params::identity(0);
        for _ in 0..n {
            p.flip.push(rng.random_bool(0.5));
            let ty = symmetric(rng, shift * height as f32);
            let tx = symmetric(rng, shift * width as f32);
            p.translate.push([tx, ty]);
            let zy = 1.0 - up_to(rng, zoom);
            let zx = 1.0 - up_to(rng, zoom);
            p.zoom.push([zx, zy]);
            p.brightness.push(symmetric(rng, b));
            let mut m = [[0.0; 3]; 3];
            for row in &mut m {
                for v in row.iter_mut() {
                    *v = symmetric(rng, j);
                }
            }
            p.jitter.push(m);
        }
        p
    }
}

/// `U(-a, a)`, or 0 when `a` is 0.
fn symmetric(rng: &mut impl Rng, a: f32) -> f32 {
    if a > 0.0 {
        rng.random_range(-a..=a)
    } else {
        0.0
    }
}

/// `U(0, a)`, or 0 when `a` is 0.
fn up_to(rng: &mut impl Rng, a: f32) -> f32 {
    if a > 0.0 {
        rng.random_range(0.0..=a)
    } else {
        0.0
    }
}

//! Batched, device-side augmentation with the Keras SimCLR example's semantics.
//!
//! The example's pipeline is `Rescaling(1/255)`, `RandomFlip("horizontal")`,
//! `RandomTranslation(f, f)` with `f = zoom_factor / 2`, `RandomZoom((-z, 0), (-z, 0))` and
//! `RandomColorAffine(brightness, jitter)`, where `zoom_factor = 1 - sqrt(min_area)`. Here the
//! three geometric steps compose into **one** affine map per image and are applied with **one**
//! bilinear resampling (`grid_sampler`, reflection padding, `align_corners = false`, which is
//! Keras's `fill_mode="reflect"`: `d c b a | a b c d | d c b a`). The example resamples twice
//! (translation, then zoom), so this is both sharper and cheaper; the distribution of the
//! transforms is the same.
//!
//! Beside the example's preset, [`simclr`] has the SimCLR paper's (random resized crop, colour
//! jitter, grayscale, blur), batched the same way; an [`Augmenter`] applies either ([`Preset`]).
//!
//! Drawing the random parameters ([`Augmenter::sample`]) is separate from applying them
//! ([`apply`]), so tests can apply known transforms and the same parameters can be replayed on
//! another device. Parameters come from a seeded ChaCha8 generator owned by the augmenter, on the
//! CPU, so a run is reproducible from its seed whatever the device.
//!
//! ```
//! use augment::{AugmentConfig, Augmenter};
//! use tch::{Device, Kind, Tensor};
//! let images = Tensor::zeros([4, 3, 32, 32], (Kind::Uint8, Device::Cpu));
//! let mut strong = Augmenter::new(AugmentConfig::contrastive(), 42, Device::Cpu)?;
//! let views = strong.augment(&images)?; // float32 [4, 3, 32, 32] in [0, 1]
//! assert_eq!(views.size(), [4, 3, 32, 32]);
//! # Ok::<(), augment::AugmentError>(())
//! ```
//!
//! `cargo bench -p augment` times both strong views of the example's step; see the crate's
//! README.

mod params;
mod pipeline;
pub mod simclr;

pub use accel::MemoryFormat;
pub use params::{AugmentConfig, AugmentError, Params};
pub use pipeline::{Augmenter, Preset, apply, apply_as, rescale};
pub use simclr::{SimclrConfig, SimclrParams, apply_simclr};

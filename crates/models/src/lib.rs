//! The networks of the Keras SimCLR example on `tch`: [`Encoder`] (4 x Conv2D(3x3, stride 2,
//! valid, ReLU), flatten, Dense + ReLU, or ResNet-18 as [`Architecture`] says),
//! [`ProjectionHead`], [`LinearProbe`] and [`Classifier`], initialised as Keras does
//! (Glorot-uniform kernels, zero biases; ResNet-18 as torchvision), with parameter counts equal
//! to Keras's and a Keras-style [`Summary`].
//!
//! Variables live under stable prefixes (`encoder.*`, `projection_head.*`, `linear_probe.*`,
//! `classifier.*`), so an encoder saved alone loads into a classifier.
//!
//! ```
//! use models::{Encoder, EncoderConfig};
//! use tch::{nn, nn::ModuleT, Device, Kind, Tensor};
//! let vs = nn::VarStore::new(Device::Cpu);
//! let encoder = Encoder::new(&(vs.root() / "encoder"), &EncoderConfig { image_size: 32, ..Default::default() })?;
//! let features = encoder.forward_t(&Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)), false);
//! assert_eq!(features.size(), [2, 128]);
//! # Ok::<(), models::ModelError>(())
//! ```

mod init;
mod networks;
mod norm;
mod resnet;
mod summary;

pub use accel::MemoryFormat;
pub use networks::{
    Architecture, Classifier, Encoder, EncoderConfig, HeadConfig, LinearProbe, ProjectionHead, Stem,
};
pub use norm::SumOverRanks;
pub use resnet::CIFAR_STEM_MAX;
pub use summary::{Summary, SummaryRow};

/// A model that cannot be built as configured.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error(
        "input size {size}x{size} is too small for four valid 3x3 stride-2 convolutions \
         (the smallest is {min}x{min})"
    )]
    InputTooSmall { size: i64, min: i64 },
    #[error("{what} must be at least 1, got {value}")]
    Zero { what: &'static str, value: i64 },
}

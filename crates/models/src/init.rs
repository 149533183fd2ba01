//! Keras's default initialisation (Glorot-uniform kernels, zero biases) and PyTorch's BatchNorm
//! (scale 1, offset 0, momentum 0.1, epsilon 1e-5; tch's default scale is uniform in [0, 1]).

use tch::nn;

use crate::norm::{BatchNorm, StatsSync};

/// Glorot-uniform bounds for a kernel with `fan_in` inputs and `fan_out` outputs per position:
/// `U(-l, l)` with `l = sqrt(6 / (fan_in + fan_out))`.
pub fn glorot_uniform(fan_in: i64, fan_out: i64) -> nn::Init {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    nn::Init::Uniform {
        lo: -limit,
        up: limit,
    }
}

/// A Keras `Dense` layer: Glorot-uniform kernel, zero bias.
pub fn dense(p: nn::Path, inputs: i64, outputs: i64) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: glorot_uniform(inputs, outputs),
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    nn::linear(p, inputs, outputs, cfg)
}

/// A Keras `Conv2D(k x k, stride, padding="valid")`: Glorot-uniform kernel, zero bias.
pub fn conv(p: nn::Path, inputs: i64, outputs: i64, k: i64, stride: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding: 0,
        ws_init: glorot_uniform(inputs * k * k, outputs * k * k),
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    nn::conv2d(p, inputs, outputs, k, cfg)
}

/// PyTorch's BatchNorm momentum (the running statistics' share of each batch's).
pub(crate) const BATCH_NORM_MOMENTUM: f64 = 0.1;
/// PyTorch's BatchNorm epsilon.
pub(crate) const BATCH_NORM_EPS: f64 = 1e-5;

fn batch_norm_config() -> nn::BatchNormConfig {
    nn::BatchNormConfig {
        ws_init: nn::Init::Const(1.0),
        bs_init: nn::Init::Const(0.0),
        momentum: BATCH_NORM_MOMENTUM,
        eps: BATCH_NORM_EPS,
        ..Default::default()
    }
}

/// `BatchNorm1d(features)` as PyTorch initialises it, synchronised when `sync` is set.
pub(crate) fn batch_norm1d(p: nn::Path, features: i64, sync: &StatsSync) -> BatchNorm {
    BatchNorm::new(nn::batch_norm1d(p, features, batch_norm_config()), sync)
}

/// `BatchNorm2d(channels)` as PyTorch initialises it, synchronised when `sync` is set.
pub(crate) fn batch_norm2d(p: nn::Path, channels: i64, sync: &StatsSync) -> BatchNorm {
    BatchNorm::new(nn::batch_norm2d(p, channels, batch_norm_config()), sync)
}

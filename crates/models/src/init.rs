//! Keras's default initialisation: Glorot-uniform kernels and zero biases.

use tch::nn;

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

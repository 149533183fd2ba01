//! The example's networks as tch modules with stable variable prefixes: encoder, projection
//! head, linear probe and the supervised classifier.

use accel::MemoryFormat;
use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use crate::ModelError;
use crate::init::{batch_norm1d, conv, dense};
use crate::norm::{BatchNorm, StatsSync, SumOverRanks};
use crate::resnet::{self, ResNet18};
use crate::summary::{Summary, SummaryRow};

const CONVS: usize = 4;
const KERNEL: i64 = 3;
const STRIDE: i64 = 2;
const CHANNELS: i64 = 3;

/// Side after one valid 3x3 stride-2 convolution, `None` when the input is too small.
fn conv_out(size: i64) -> Option<i64> {
    (size >= KERNEL).then(|| (size - KERNEL) / STRIDE + 1)
}

/// Which network encodes the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Architecture {
    /// The Keras example's 4 x Conv2D(width, 3x3, stride 2) + Dense(width).
    #[default]
    Keras,
    /// ResNet-18 without its fc layer (512 features), with the CIFAR stem for inputs of at most
    /// 64 pixels and the ImageNet stem above.
    Resnet18,
}

/// ResNet-18's first layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Stem {
    /// The CIFAR stem for inputs of at most 64 pixels, the ImageNet stem above.
    #[default]
    Auto,
    /// 3x3 stride-1 convolution, no max-pooling (the SimCLR paper's CIFAR-10 variant).
    Cifar,
    /// torchvision's 7x7 stride-2 convolution and 3x3 stride-2 max-pooling: 16 times fewer
    /// activations in the first stage.
    Imagenet,
}

impl Architecture {
    /// Whether the encoder has BatchNorm, so that in training mode each image's features depend
    /// on the rest of the batch.
    pub fn has_batch_norm(self) -> bool {
        self == Architecture::Resnet18
    }
}

impl Stem {
    /// Whether images of `image_size` pixels get the ImageNet stem.
    pub fn is_imagenet(self, image_size: i64) -> bool {
        match self {
            Stem::Auto => image_size > resnet::CIFAR_STEM_MAX,
            Stem::Cifar => false,
            Stem::Imagenet => true,
        }
    }
}

/// The encoder's shape: by default the Keras example's `width = 128` on 96x96 inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    pub arch: Architecture,
    /// ResNet-18's stem (ResNet-18 only).
    pub stem: Stem,
    /// Filters of every convolution and units of the dense layer (Keras encoder only).
    pub width: i64,
    /// Side of the square input images.
    pub image_size: i64,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            arch: Architecture::Keras,
            stem: Stem::Auto,
            width: 128,
            image_size: 96,
        }
    }
}

impl EncoderConfig {
    /// The Keras encoder's sides after each convolution (96 -> 47, 23, 11, 5).
    pub fn conv_sides(&self) -> Result<[i64; CONVS], ModelError> {
        if self.width < 1 {
            return Err(ModelError::Zero {
                what: "width",
                value: self.width,
            });
        }
        let mut sides = [0; CONVS];
        let mut s = self.image_size;
        for side in &mut sides {
            s = conv_out(s).ok_or(ModelError::InputTooSmall {
                size: self.image_size,
                min: min_input_size(),
            })?;
            *side = s;
        }
        Ok(sides)
    }

    /// Features per image: `width` for the Keras encoder, 512 for ResNet-18.
    pub fn output_dim(&self) -> i64 {
        match self.arch {
            Architecture::Keras => self.width,
            Architecture::Resnet18 => resnet::FEATURES,
        }
    }
}

/// The smallest input side four valid stride-2 convolutions accept (31).
fn min_input_size() -> i64 {
    (0..CONVS).fold(1, |s, _| (s - 1) * STRIDE + KERNEL)
}

/// The Keras example's convolutions and dense layer.
#[derive(Debug)]
struct KerasConvs {
    convs: Vec<nn::Conv2D>,
    dense: nn::Linear,
}

#[derive(Debug)]
enum Body {
    Keras(KerasConvs),
    Resnet18(Box<ResNet18>),
}

/// The image encoder [`EncoderConfig::arch`] names.
///
/// - Keras: 4 x Conv2D(width, 3x3, stride 2, valid, ReLU), flatten, Dense(width, ReLU). The
///   flatten runs in Keras's NHWC order (the dense kernel's rows are position-major, as in
///   Keras), which is a free view of a channels-last activation, so the gradient flowing back
///   into the last convolution keeps the activation's layout.
/// - ResNet-18: see [`Architecture::Resnet18`]; its BatchNorms use batch statistics (and update
///   their running ones) with `train = true`, the running statistics with `train = false`.
///
/// # Shapes
/// input `[N, 3, S, S]` float in [0, 1], NCHW or channels-last; output `[N, output_dim]`.
#[derive(Debug)]
pub struct Encoder {
    body: Body,
    config: EncoderConfig,
    sync: StatsSync,
}

impl Encoder {
    /// Builds the encoder's variables under `p` (Keras: `p/conv1` .. `p/conv4`, `p/dense`;
    /// ResNet-18: torchvision's names).
    pub fn new(p: &nn::Path, config: &EncoderConfig) -> Result<Self, ModelError> {
        if config.image_size < 1 {
            return Err(ModelError::Zero {
                what: "image_size",
                value: config.image_size,
            });
        }
        let sync = StatsSync::default();
        let body = match config.arch {
            Architecture::Keras => {
                let sides = config.conv_sides()?;
                let w = config.width;
                let convs = (0..CONVS)
                    .map(|i| {
                        let inputs = if i == 0 { CHANNELS } else { w };
                        conv(p / format!("conv{}", i + 1), inputs, w, KERNEL, STRIDE)
                    })
                    .collect();
                let last = sides[CONVS - 1];
                let dense = dense(p / "dense", w * last * last, w);
                Body::Keras(KerasConvs { convs, dense })
            }
            Architecture::Resnet18 => Body::Resnet18(Box::new(ResNet18::new(
                p,
                config.image_size,
                config.stem.is_imagenet(config.image_size),
                &sync,
            ))),
        };
        Ok(Encoder {
            body,
            config: *config,
            sync,
        })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Features per image.
    pub fn output_dim(&self) -> i64 {
        self.config.output_dim()
    }

    /// Whether BatchNorm makes each image's features depend on the rest of the batch in
    /// training mode (ResNet-18).
    pub fn has_batch_norm(&self) -> bool {
        self.config.arch.has_batch_norm()
    }

    /// From now on, its BatchNorms (if any) take training-mode statistics over every process of
    /// a data-parallel run through `sum` (synchronised BatchNorm); inference mode is unchanged.
    pub fn sync_batch_norm(&self, sum: SumOverRanks) {
        self.sync.set(sum);
    }

    /// The Keras-style summary of this encoder.
    pub fn summary(&self) -> Summary {
        let s = self.config.image_size;
        let rows = match &self.body {
            Body::Keras(_) => self.keras_rows(),
            Body::Resnet18(r) => r.rows(),
        };
        Summary::new("encoder", vec![s, s, CHANNELS], rows)
    }

    fn keras_rows(&self) -> Vec<SummaryRow> {
        let w = self.config.width;
        let sides = self.config.conv_sides().expect("checked at construction");
        let mut rows = Vec::new();
        let mut inputs = CHANNELS;
        for (i, s) in sides.iter().enumerate() {
            rows.push(SummaryRow::new(
                format!("conv{} (Conv2D)", i + 1),
                vec![*s, *s, w],
                inputs * KERNEL * KERNEL * w + w,
            ));
            inputs = w;
        }
        let flat = w * sides[CONVS - 1] * sides[CONVS - 1];
        rows.push(SummaryRow::new("flatten (Flatten)", vec![flat], 0));
        rows.push(SummaryRow::new("dense (Dense)", vec![w], flat * w + w));
        rows
    }

    /// Re-lays the convolution kernels out in `format`, in place (values unchanged). With
    /// channels-last kernels and inputs, libtorch's oneDNN and cuDNN convolutions keep that
    /// format through the network, forward and backward, and the optimizer's moments (created
    /// like the weights) follow it.
    pub fn set_memory_format(&self, format: MemoryFormat) {
        let kernels: Vec<&Tensor> = match &self.body {
            Body::Keras(k) => k.convs.iter().map(|c| &c.ws).collect(),
            Body::Resnet18(r) => r.kernels(),
        };
        tch::no_grad(|| {
            for ws in kernels {
                let mut w = ws.shallow_clone();
                w.set_data(&format.apply(ws));
            }
        });
    }
}

impl ModuleT for Encoder {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match &self.body {
            Body::Keras(k) => {
                let x = k
                    .convs
                    .iter()
                    .fold(xs.shallow_clone(), |x, c| x.apply(c).relu());
                x.permute([0, 2, 3, 1])
                    .flatten(1, -1)
                    .apply(&k.dense)
                    .relu()
            }
            Body::Resnet18(r) => r.forward_t(xs, train),
        }
    }
}

/// The projection head's shape: `layers` Dense layers of `width` units, ReLU between them,
/// and with `batch_norm` a BatchNorm after each hidden Dense (before its ReLU; the last layer
/// has none, as lightly's SimCLR head). The example's head is the default: 2 layers, no
/// BatchNorm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadConfig {
    pub layers: usize,
    pub width: i64,
    pub batch_norm: bool,
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            layers: 2,
            width: 128,
            batch_norm: false,
        }
    }
}

/// The example's MLP projection head on encoder features (`Dense(w, relu)`, `Dense(w)` by
/// default), deeper or with BatchNorm as [`HeadConfig`] says. Variables `dense1` .. `denseN`
/// (and `bn1` .. for the hidden layers). BatchNorm uses PyTorch's momentum 0.1 and epsilon
/// 1e-5; its running statistics are variables of the store, so checkpoints carry them.
#[derive(Debug)]
pub struct ProjectionHead {
    dense: Vec<nn::Linear>,
    norms: Vec<BatchNorm>,
    width: i64,
    sync: StatsSync,
}

impl ProjectionHead {
    /// Builds `p/dense1` .. `p/denseN` (and `p/bn1` ..) on `inputs` features.
    pub fn new(p: &nn::Path, inputs: i64, cfg: &HeadConfig) -> Result<Self, ModelError> {
        if cfg.layers == 0 {
            return Err(ModelError::Zero {
                what: "the projection head's layers",
                value: 0,
            });
        }
        if cfg.width < 1 {
            return Err(ModelError::Zero {
                what: "the projection head's width",
                value: cfg.width,
            });
        }
        let w = cfg.width;
        let sync = StatsSync::default();
        let dense = (0..cfg.layers)
            .map(|i| {
                let from = if i == 0 { inputs } else { w };
                dense(p / format!("dense{}", i + 1), from, w)
            })
            .collect();
        let norms = match cfg.batch_norm {
            true => (1..cfg.layers)
                .map(|i| batch_norm1d(p / format!("bn{i}"), w, &sync))
                .collect(),
            false => Vec::new(),
        };
        Ok(ProjectionHead {
            dense,
            norms,
            width: w,
            sync,
        })
    }

    /// Whether a BatchNorm makes each row's output depend on the rest of the batch.
    pub fn has_batch_norm(&self) -> bool {
        !self.norms.is_empty()
    }

    /// Its BatchNorms synchronised through `sum`, as [`Encoder::sync_batch_norm`].
    pub fn sync_batch_norm(&self, sum: SumOverRanks) {
        self.sync.set(sum);
    }

    pub fn summary(&self) -> Summary {
        let inputs = self.dense[0].ws.size()[1];
        let w = self.width;
        let mut rows = Vec::new();
        for (i, d) in self.dense.iter().enumerate() {
            let from = d.ws.size()[1];
            rows.push(SummaryRow::new(
                format!("dense{} (Dense)", i + 1),
                vec![w],
                from * w + w,
            ));
            if i < self.norms.len() {
                // Keras counts all four vectors: scale, offset, moving mean and variance.
                rows.push(
                    SummaryRow::new(format!("bn{} (BatchNormalization)", i + 1), vec![w], 4 * w)
                        .with_non_trainable(2 * w),
                );
            }
        }
        Summary::new("projection_head", vec![inputs], rows)
    }
}

impl ModuleT for ProjectionHead {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let last = self.dense.len() - 1;
        let mut x = xs.shallow_clone();
        for (i, d) in self.dense.iter().enumerate() {
            x = x.apply(d);
            if i < last {
                if let Some(bn) = self.norms.get(i) {
                    x = x.apply_t(bn, train);
                }
                x = x.relu();
            }
        }
        x
    }
}

/// Dense(classes) on encoder features: the example's linear probe, returning logits.
#[derive(Debug)]
pub struct LinearProbe {
    dense: nn::Linear,
}

impl LinearProbe {
    /// Builds `p/dense`.
    pub fn new(p: &nn::Path, inputs: i64, classes: i64) -> Self {
        LinearProbe {
            dense: dense(p / "dense", inputs, classes),
        }
    }

    pub fn summary(&self) -> Summary {
        let [classes, inputs] = [self.dense.ws.size()[0], self.dense.ws.size()[1]];
        Summary::new(
            "linear_probe",
            vec![inputs],
            vec![SummaryRow::new(
                "dense (Dense)",
                vec![classes],
                inputs * classes + classes,
            )],
        )
    }
}

impl Module for LinearProbe {
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.apply(&self.dense)
    }
}

/// An encoder and Dense(classes): the baseline (fresh encoder) and the fine-tuned model
/// (pretrained encoder). The encoder lives under `root/encoder`, the head under `root/classifier`,
/// so an encoder checkpoint loads straight in.
#[derive(Debug)]
pub struct Classifier {
    pub encoder: Encoder,
    head: nn::Linear,
}

impl Classifier {
    pub fn new(root: &nn::Path, config: &EncoderConfig, classes: i64) -> Result<Self, ModelError> {
        if classes < 1 {
            return Err(ModelError::Zero {
                what: "classes",
                value: classes,
            });
        }
        let encoder = Encoder::new(&(root / "encoder"), config)?;
        let head = dense(root / "classifier" / "dense", config.output_dim(), classes);
        Ok(Classifier { encoder, head })
    }

    pub fn summary(&self) -> Summary {
        let classes = self.head.ws.size()[0];
        let w = self.encoder.output_dim();
        let mut s = self.encoder.summary();
        s.name = "classifier".into();
        s.rows.push(SummaryRow::new(
            "classifier (Dense)",
            vec![classes],
            w * classes + classes,
        ));
        s
    }
}

impl ModuleT for Classifier {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.encoder.forward_t(xs, train).apply(&self.head)
    }
}

//! ResNet-18 (He et al. 2016) as an encoder: BasicBlocks `[2, 2, 2, 2]` of 64, 128, 256 and 512
//! channels, global average pooling, no fc layer (512 features per image).
//!
//! Two stems, as the SimCLR paper and the anchors use them: for inputs of at most
//! [`CIFAR_STEM_MAX`] pixels a 3x3 stride-1 convolution without max-pooling (the paper's CIFAR-10
//! variant: 11,168,832 parameters), above it torchvision's 7x7 stride-2 convolution and 3x3
//! stride-2 max-pooling (11,176,512). Variables carry torchvision's names (`conv1`, `bn1`,
//! `layer1.0.conv1`, `layer2.0.downsample.0`, ...), initialised as torchvision does: Kaiming-normal
//! convolutions (fan-out, ReLU gain), BatchNorm scale 1 and offset 0.

use tch::Tensor;
use tch::nn::{self, ModuleT};

use crate::init::batch_norm2d;
use crate::norm::{BatchNorm, StatsSync};
use crate::summary::SummaryRow;

/// The largest input side that gets the CIFAR stem.
pub const CIFAR_STEM_MAX: i64 = 64;
/// Features per image.
pub const FEATURES: i64 = 512;
const STAGES: [(i64, i64); 4] = [(64, 1), (128, 2), (256, 2), (512, 2)];
const BLOCKS_PER_STAGE: usize = 2;

/// A bias-free convolution with `k x k` kernels and `(k - 1) / 2` padding.
fn conv(p: nn::Path, inputs: i64, outputs: i64, k: i64, stride: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding: (k - 1) / 2,
        bias: false,
        ws_init: nn::Init::Kaiming {
            dist: nn::init::NormalOrUniform::Normal,
            fan: nn::init::FanInOut::FanOut,
            non_linearity: nn::init::NonLinearity::ReLU,
        },
        ..Default::default()
    };
    nn::conv2d(p, inputs, outputs, k, cfg)
}

/// Side after a `(k - 1) / 2`-padded convolution or pooling of stride 2.
fn halved(side: i64) -> i64 {
    (side - 1) / 2 + 1
}

/// `(all, non-trainable)` parameters of a BatchNorm: Keras counts the moving mean and variance
/// among the parameters, as non-trainable ones.
fn bn_counts(bn: &BatchNorm) -> (i64, i64) {
    let bn = &bn.inner;
    let stats = bn.running_mean.numel() + bn.running_var.numel();
    let affine: usize = [&bn.ws, &bn.bs]
        .into_iter()
        .flatten()
        .map(Tensor::numel)
        .sum();
    ((affine + stats) as i64, stats as i64)
}

/// `(all, non-trainable)` parameters of a convolution followed by a BatchNorm.
fn counts(c: &nn::Conv2D, bn: &BatchNorm) -> (i64, i64) {
    let (all, stats) = bn_counts(bn);
    (c.ws.numel() as i64 + all, stats)
}

/// Two 3x3 convolutions with BatchNorm, added to the input (or its 1x1 projection when the shape
/// changes), then ReLU.
#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: BatchNorm,
    conv2: nn::Conv2D,
    bn2: BatchNorm,
    downsample: Option<(nn::Conv2D, BatchNorm)>,
}

impl BasicBlock {
    fn new(p: &nn::Path, inputs: i64, outputs: i64, stride: i64, sync: &StatsSync) -> Self {
        let downsample = (stride != 1 || inputs != outputs).then(|| {
            let d = p / "downsample";
            (
                conv(&d / "0", inputs, outputs, 1, stride),
                batch_norm2d(&d / "1", outputs, sync),
            )
        });
        BasicBlock {
            conv1: conv(p / "conv1", inputs, outputs, 3, stride),
            bn1: batch_norm2d(p / "bn1", outputs, sync),
            conv2: conv(p / "conv2", outputs, outputs, 3, 1),
            bn2: batch_norm2d(p / "bn2", outputs, sync),
            downsample,
        }
    }

    fn convs(&self) -> impl Iterator<Item = &nn::Conv2D> {
        [&self.conv1, &self.conv2]
            .into_iter()
            .chain(self.downsample.as_ref().map(|(c, _)| c))
    }

    fn counts(&self) -> (i64, i64) {
        let pairs = [(&self.conv1, &self.bn1), (&self.conv2, &self.bn2)];
        pairs
            .into_iter()
            .chain(self.downsample.as_ref().map(|(c, b)| (c, b)))
            .map(|(c, b)| counts(c, b))
            .fold((0, 0), |(a, n), (da, dn)| (a + da, n + dn))
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let y = xs
            .apply(&self.conv1)
            .apply_t(&self.bn1, train)
            .relu()
            .apply(&self.conv2)
            .apply_t(&self.bn2, train);
        let shortcut = match &self.downsample {
            Some((c, bn)) => xs.apply(c).apply_t(bn, train),
            None => xs.shallow_clone(),
        };
        (y + shortcut).relu()
    }
}

/// ResNet-18 without its fc layer; see the module documentation.
#[derive(Debug)]
pub(crate) struct ResNet18 {
    conv1: nn::Conv2D,
    bn1: BatchNorm,
    max_pool: bool,
    stages: Vec<Vec<BasicBlock>>,
    image_size: i64,
}

impl ResNet18 {
    /// ResNet-18 for `image_size` pixels, with the ImageNet stem or the CIFAR one.
    pub(crate) fn new(p: &nn::Path, image_size: i64, imagenet: bool, sync: &StatsSync) -> Self {
        let (k, stride) = if imagenet { (7, 2) } else { (3, 1) };
        let mut inputs = 64;
        let stages = STAGES
            .iter()
            .enumerate()
            .map(|(s, &(channels, stride))| {
                (0..BLOCKS_PER_STAGE)
                    .map(|b| {
                        let p = p / format!("layer{}", s + 1) / b.to_string();
                        let stride = if b == 0 { stride } else { 1 };
                        let block = BasicBlock::new(&p, inputs, channels, stride, sync);
                        inputs = channels;
                        block
                    })
                    .collect()
            })
            .collect();
        ResNet18 {
            conv1: conv(p / "conv1", 3, 64, k, stride),
            bn1: batch_norm2d(p / "bn1", 64, sync),
            max_pool: imagenet,
            stages,
            image_size,
        }
    }

    /// Every convolution kernel (for memory-format changes).
    pub(crate) fn kernels(&self) -> Vec<&Tensor> {
        std::iter::once(&self.conv1)
            .chain(self.stages.iter().flatten().flat_map(BasicBlock::convs))
            .map(|c| &c.ws)
            .collect()
    }

    /// The summary rows: stem, one row per stage, pooling.
    pub(crate) fn rows(&self) -> Vec<SummaryRow> {
        let mut side = self.image_size;
        let mut rows = Vec::new();
        if self.max_pool {
            side = halved(side);
        }
        rows.push(SummaryRow::new(
            "conv1 (Conv2D)",
            vec![side, side, 64],
            self.conv1.ws.numel() as i64,
        ));
        let (bn_all, stats) = bn_counts(&self.bn1);
        rows.push(
            SummaryRow::new("bn1 (BatchNormalization)", vec![side, side, 64], bn_all)
                .with_non_trainable(stats),
        );
        if self.max_pool {
            side = halved(side);
            rows.push(SummaryRow::new(
                "maxpool (MaxPooling2D)",
                vec![side, side, 64],
                0,
            ));
        }
        for (s, (blocks, &(channels, stride))) in self.stages.iter().zip(&STAGES).enumerate() {
            if stride == 2 {
                side = halved(side);
            }
            let (all, stats) = blocks
                .iter()
                .map(BasicBlock::counts)
                .fold((0, 0), |(a, n), (da, dn)| (a + da, n + dn));
            rows.push(
                SummaryRow::new(
                    format!("layer{} ({} x BasicBlock)", s + 1, blocks.len()),
                    vec![side, side, channels],
                    all,
                )
                .with_non_trainable(stats),
            );
        }
        rows.push(SummaryRow::new(
            "avgpool (GlobalAveragePooling2D)",
            vec![FEATURES],
            0,
        ));
        rows
    }
}

impl ModuleT for ResNet18 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        if self.max_pool {
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        let x = self
            .stages
            .iter()
            .flatten()
            .fold(x, |x, block| block.forward_t(&x, train));
        x.mean_dim([2i64, 3].as_slice(), false, None)
    }
}

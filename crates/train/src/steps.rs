//! The train steps, in the Keras example's words: [`ContrastiveModel`] (the example's
//! `ContrastiveModel.train_step` with its two optimizers) and [`SupervisedModel`] (baseline and
//! fine-tuning).

use augment::Augmenter;
use losses::{ContrastiveLossKind, contrastive_accuracy};
use models::{Classifier, Encoder, EncoderConfig, LinearProbe, ProjectionHead, to_channels_last};
use tch::nn::{self, Module, ModuleT, OptimizerConfig as _};
use tch::{Device, Kind, Tensor};

use crate::config::{Config, OptimizerConfig};
use crate::error::Result;

/// Seeds for the independent random streams of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SeedStream {
    Contrastive = 11,
    ProbeAugment = 12,
    Baseline = 13,
    Finetune = 14,
}

pub(crate) fn stream_seed(seed: u64, stream: SeedStream) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (stream as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// Seeds libtorch's generator for one model's initialisation, so each run's initial weights
/// depend on the configured seed alone, not on what ran before.
fn init_seed(seed: u64, stream: SeedStream) {
    tch::manual_seed((stream_seed(seed, stream) >> 1) as i64);
}

fn adam(vs: &nn::VarStore, o: &OptimizerConfig) -> Result<nn::Optimizer> {
    let adam = nn::Adam {
        beta1: o.beta1,
        beta2: o.beta2,
        wd: o.weight_decay,
        eps: o.epsilon,
        amsgrad: false,
    };
    Ok(adam.build(vs, o.learning_rate)?)
}

/// Float images in [0, 1] in the memory format the encoder runs in.
fn layout(x: Tensor, channels_last: bool) -> Tensor {
    if channels_last {
        to_channels_last(&x)
    } else {
        x
    }
}

/// Summed cross-entropy and correct predictions of `logits` against `labels`.
fn ce_sum_and_correct(logits: &Tensor, labels: &Tensor) -> (f64, f64) {
    let loss = logits.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Sum, -100, 0.0);
    let correct = logits
        .argmax(1, false)
        .eq_tensor(labels)
        .to_kind(Kind::Float)
        .sum(Kind::Float);
    (loss.double_value(&[]), correct.double_value(&[]))
}

/// Loss and accuracy of a test batch, as sums to be divided by the sample count.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EvalSums {
    pub loss: f64,
    pub correct: f64,
    pub count: f64,
}

impl EvalSums {
    pub fn add(&mut self, (loss, correct): (f64, f64), count: i64) {
        self.loss += loss;
        self.correct += correct;
        self.count += count as f64;
    }

    /// `(mean loss, accuracy)`.
    pub fn means(&self) -> (f64, f64) {
        let n = self.count.max(1.0);
        (self.loss / n, self.correct / n)
    }
}

/// The example's `ContrastiveModel`: encoder + projection head trained contrastively by the
/// `contrastive_optimizer`, and a linear probe trained on detached encoder features of the
/// labeled images by the `probe_optimizer`, in the same step.
pub struct ContrastiveModel {
    /// Encoder and projection head (`encoder.*`, `projection_head.*`).
    pub vs: nn::VarStore,
    /// The linear probe alone (`linear_probe.*`).
    pub probe_vs: nn::VarStore,
    pub encoder: Encoder,
    pub projection_head: ProjectionHead,
    pub linear_probe: LinearProbe,
    contrastive_optimizer: nn::Optimizer,
    probe_optimizer: nn::Optimizer,
    contrastive_augmenter: Augmenter,
    classification_augmenter: Augmenter,
    loss: ContrastiveLossKind,
    temperature: f64,
    channels_last: bool,
    device: Device,
}

/// One pretraining step's values, in the example's metric order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContrastiveStepMetrics {
    pub c_loss: f64,
    pub c_acc: f64,
    pub p_loss: f64,
    pub p_acc: f64,
}

impl ContrastiveModel {
    pub fn new(cfg: &Config, classes: i64, device: Device) -> Result<Self> {
        init_seed(cfg.runtime.seed, SeedStream::Contrastive);
        let vs = nn::VarStore::new(device);
        let probe_vs = nn::VarStore::new(device);
        let enc_cfg = EncoderConfig {
            width: cfg.model.width,
            image_size: cfg.data.image_size as i64,
        };
        let encoder = Encoder::new(&(vs.root() / "encoder"), &enc_cfg)?;
        let w = cfg.model.width;
        let projection_head = ProjectionHead::new(&(vs.root() / "projection_head"), w, w);
        let linear_probe = LinearProbe::new(&(probe_vs.root() / "linear_probe"), w, classes);
        if cfg.model.channels_last {
            encoder.use_channels_last();
        }
        let seed = cfg.runtime.seed;
        Ok(ContrastiveModel {
            contrastive_optimizer: adam(&vs, &cfg.pretrain.optimizer)?,
            probe_optimizer: adam(&probe_vs, &cfg.pretrain.probe_optimizer)?,
            vs,
            probe_vs,
            encoder,
            projection_head,
            linear_probe,
            contrastive_augmenter: Augmenter::new(
                cfg.augment.contrastive.into(),
                stream_seed(seed, SeedStream::Contrastive),
                device,
            )?,
            classification_augmenter: Augmenter::new(
                cfg.augment.classification.into(),
                stream_seed(seed, SeedStream::ProbeAugment),
                device,
            )?,
            loss: cfg.loss.kind.into(),
            temperature: cfg.loss.temperature,
            channels_last: cfg.model.channels_last,
            device,
        })
    }

    /// The example's `train_step`: uint8 `unlabeled` `[U,3,H,W]`, `labeled` `[L,3,H,W]` and
    /// int64 `labels` `[L]`, on any device.
    pub fn train_step(
        &mut self,
        unlabeled: &Tensor,
        labeled: &Tensor,
        labels: &Tensor,
    ) -> Result<ContrastiveStepMetrics> {
        // Both labeled and unlabeled images are used, without labels.
        let (c_loss, c_acc) = self.contrastive_step(&Tensor::cat(&[unlabeled, labeled], 0))?;
        // Labels are only used by the linear probe.
        let (p_loss, p_acc) = self.probe_step(labeled, labels);
        Ok(ContrastiveStepMetrics {
            c_loss,
            c_acc,
            p_loss,
            p_acc,
        })
    }

    /// Two strong views of `images`, encoder and projection head, the contrastive loss, and one
    /// `contrastive_optimizer` step (encoder + head only): `(c_loss, c_acc)`.
    pub fn contrastive_step(&mut self, images: &Tensor) -> Result<(f64, f64)> {
        let n = images.size()[0];
        let views = Tensor::cat(
            &[
                self.contrastive_augmenter.augment(images),
                self.contrastive_augmenter.augment(images),
            ],
            0,
        );
        let features = self
            .encoder
            .forward_t(&layout(views, self.channels_last), true);
        let projections = self.projection_head.forward(&features);
        let (z1, z2) = (projections.narrow(0, 0, n), projections.narrow(0, n, n));
        let (c_loss, logits) = self.loss.compute(&z1, &z2, self.temperature)?;
        self.contrastive_optimizer.backward_step(&c_loss);
        let c_acc = contrastive_accuracy(&logits.detach())?.combined();
        Ok((c_loss.double_value(&[]), c_acc))
    }

    /// Weak augmentation of the labeled images, the encoder in inference mode without gradient
    /// (features detached), the linear probe, and one `probe_optimizer` step (probe only):
    /// `(p_loss, p_acc)`.
    pub fn probe_step(&mut self, labeled: &Tensor, labels: &Tensor) -> (f64, f64) {
        let x = layout(
            self.classification_augmenter.augment(labeled),
            self.channels_last,
        );
        let features = tch::no_grad(|| self.encoder.forward_t(&x, false));
        let class_logits = self.linear_probe.forward(&features.detach());
        let labels = labels.to_device(self.device);
        let p_loss = class_logits.cross_entropy_for_logits(&labels);
        self.probe_optimizer.backward_step(&p_loss);
        let p_acc = class_logits.detach().accuracy_for_logits(&labels);
        (p_loss.double_value(&[]), p_acc.double_value(&[]))
    }

    /// The example's `test_step`: the probe on un-augmented test images.
    pub fn test_sums(&self, images: &Tensor, labels: &Tensor) -> (f64, f64) {
        tch::no_grad(|| {
            let x = layout(
                self.classification_augmenter.inference(images),
                self.channels_last,
            );
            let logits = self
                .linear_probe
                .forward(&self.encoder.forward_t(&x, false));
            ce_sum_and_correct(&logits, &labels.to_device(self.device))
        })
    }

    pub fn device(&self) -> Device {
        self.device
    }
}

/// An encoder with Dense(classes) trained with sparse cross-entropy on weakly augmented labeled
/// images: the baseline (fresh encoder) and fine-tuning (pretrained encoder).
pub struct SupervisedModel {
    /// `encoder.*` and `classifier.*`.
    pub vs: nn::VarStore,
    pub classifier: Classifier,
    optimizer: nn::Optimizer,
    augmenter: Augmenter,
    channels_last: bool,
    device: Device,
}

impl SupervisedModel {
    /// A fresh classifier; `finetune` picks the fine-tuning run's optimizer and random stream.
    /// Load pretrained weights with [`SupervisedModel::load_encoder`] before training.
    pub fn new(cfg: &Config, classes: i64, device: Device, finetune: bool) -> Result<Self> {
        init_seed(
            cfg.runtime.seed,
            if finetune {
                SeedStream::Finetune
            } else {
                SeedStream::Baseline
            },
        );
        let vs = nn::VarStore::new(device);
        let enc_cfg = EncoderConfig {
            width: cfg.model.width,
            image_size: cfg.data.image_size as i64,
        };
        let classifier = Classifier::new(&vs.root(), &enc_cfg, classes)?;
        if cfg.model.channels_last {
            classifier.encoder.use_channels_last();
        }
        let (run, stream) = if finetune {
            (&cfg.finetune, SeedStream::Finetune)
        } else {
            (&cfg.baseline, SeedStream::Baseline)
        };
        Ok(SupervisedModel {
            optimizer: adam(&vs, &run.optimizer)?,
            augmenter: Augmenter::new(
                cfg.augment.classification.into(),
                stream_seed(cfg.runtime.seed, stream),
                device,
            )?,
            vs,
            classifier,
            channels_last: cfg.model.channels_last,
            device,
        })
    }

    /// One step on uint8 `images` `[N,3,H,W]` and int64 `labels` `[N]`: `(loss, acc)`.
    pub fn train_step(&mut self, images: &Tensor, labels: &Tensor) -> (f64, f64) {
        let x = layout(self.augmenter.augment(images), self.channels_last);
        let logits = self.classifier.forward_t(&x, true);
        let labels = labels.to_device(self.device);
        let loss = logits.cross_entropy_for_logits(&labels);
        self.optimizer.backward_step(&loss);
        let acc = logits.detach().accuracy_for_logits(&labels);
        (loss.double_value(&[]), acc.double_value(&[]))
    }

    /// Summed loss and correct predictions on un-augmented test images.
    pub fn test_sums(&self, images: &Tensor, labels: &Tensor) -> (f64, f64) {
        tch::no_grad(|| {
            let x = layout(self.augmenter.inference(images), self.channels_last);
            ce_sum_and_correct(
                &self.classifier.forward_t(&x, false),
                &labels.to_device(self.device),
            )
        })
    }

    pub fn device(&self) -> Device {
        self.device
    }
}

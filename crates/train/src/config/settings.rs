//! The configuration resolved into what each part is built from: a model, a step or a phase
//! sees its own settings, never the whole [`Config`]. [`Config::model_shapes`],
//! [`Config::pretraining`], [`Config::supervised_baseline`], [`Config::finetuning`] and
//! [`Config::data_settings`] resolve them; [`Config::compute`] resolves the compute context,
//! which [`Prepared`](crate::prepared::Prepared) then carries to every phase.

use augment::{AugmentConfig, Preset};
use losses::ContrastiveLossKind;
use models::{EncoderConfig, HeadConfig};
use optim::OptimizerConfig;
use stl10_data::DataConfig;
use tch::Device;

use crate::config::{Config, HeadStart};
use crate::experiment::run::Run;
use crate::features::knn::Knn;
use crate::runtime::Compute;

/// What [`Prepared`](crate::prepared::Prepared) is built from: the data set and how its
/// batches reach the steps.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSettings {
    pub data: DataConfig,
    /// The run's seed: the labeled subset held back and every epoch's order.
    pub seed: u64,
    /// On CUDA, keep the data set on the device (`runtime.resident_data`).
    pub resident_data: bool,
    /// Steps between reads of the running metrics (`runtime.metrics_every`).
    pub metrics_every: usize,
}

/// The shapes every model of a run is built from: the encoder and the projection head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSettings {
    pub encoder: EncoderConfig,
    pub head: HeadConfig,
}

/// What contrastive pretraining and its two-optimizer step are built from.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainSettings {
    pub model: ModelSettings,
    /// The run's seed: initial weights and both augmenters.
    pub seed: u64,
    pub epochs: usize,
    /// Steps the encoder and the projection head (`contrastive_optimizer`).
    pub optimizer: OptimizerConfig,
    /// Steps the linear probe (`probe_optimizer`).
    pub probe_optimizer: OptimizerConfig,
    /// The transform of the two contrastive views.
    pub views: Preset,
    /// The probe's weak augmentation.
    pub probe_augment: AugmentConfig,
    pub loss: ContrastiveLossKind,
    pub temperature: f64,
    /// The kNN monitor after every epoch, when it is on.
    pub knn: Option<Knn>,
    /// Data-parallel: BatchNorm statistics over every rank's rows (`model.sync_batch_norm`).
    pub sync_batch_norm: bool,
}

/// What a supervised run (the baseline or fine-tuning) and its step are built from.
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisedSettings {
    /// [`Run::Baseline`] or [`Run::Finetuning`]: its name, random stream and checkpoint.
    pub run: Run,
    pub encoder: EncoderConfig,
    pub seed: u64,
    pub epochs: usize,
    /// Labeled images a step; none: the zipped plan's labeled share.
    pub batch_size: Option<usize>,
    pub optimizer: OptimizerConfig,
    pub augment: AugmentConfig,
    /// Training steps keep the encoder's BatchNorm statistics as they are.
    pub freeze_batch_norm: bool,
    /// Where the classifier starts (fine-tuning only: new or the linear probe).
    pub head: HeadStart,
    /// Data-parallel: BatchNorm statistics over every rank's rows (`model.sync_batch_norm`).
    pub sync_batch_norm: bool,
}

impl Config {
    /// The data and its feeding.
    pub fn data_settings(&self) -> DataSettings {
        DataSettings {
            data: self.data.clone(),
            seed: self.runtime.seed,
            resident_data: self.runtime.resident_data,
            metrics_every: self.runtime.metrics_every,
        }
    }

    /// How the steps run on `device` (the device [`crate::runtime::init`] resolved).
    pub fn compute(&self, device: Device) -> Compute {
        Compute::new(&self.runtime, &self.model, self.data.image_size, device)
    }

    /// The models' shapes.
    pub fn model_shapes(&self) -> ModelSettings {
        ModelSettings {
            encoder: self.encoder_config(),
            head: self.head_config(),
        }
    }

    /// The pretraining phase's settings.
    pub fn pretraining(&self) -> PretrainSettings {
        PretrainSettings {
            model: self.model_shapes(),
            seed: self.runtime.seed,
            epochs: self.pretrain.epochs,
            optimizer: self.pretrain.optimizer.clone(),
            probe_optimizer: self.pretrain.probe_optimizer.clone(),
            views: self.augment.views(),
            probe_augment: self.augment.classification,
            loss: self.loss.kind,
            temperature: self.loss.temperature,
            knn: self.eval.knn_monitor.then(|| self.eval.knn()),
            sync_batch_norm: self.model.sync_batch_norm,
        }
    }

    /// The supervised baseline's settings.
    pub fn supervised_baseline(&self) -> SupervisedSettings {
        SupervisedSettings {
            run: Run::Baseline,
            encoder: self.encoder_config(),
            seed: self.runtime.seed,
            epochs: self.baseline.epochs,
            batch_size: self.baseline.batch_size,
            optimizer: self.baseline.optimizer.clone(),
            augment: self.augment.classification,
            freeze_batch_norm: false,
            head: HeadStart::New,
            sync_batch_norm: self.model.sync_batch_norm,
        }
    }

    /// Fine-tuning's settings.
    pub fn finetuning(&self) -> SupervisedSettings {
        SupervisedSettings {
            run: Run::Finetuning,
            encoder: self.encoder_config(),
            seed: self.runtime.seed,
            epochs: self.finetune.epochs,
            batch_size: self.finetune.batch_size,
            optimizer: self.finetune.optimizer.clone(),
            augment: self.augment.classification,
            freeze_batch_norm: self.finetune.freeze_batch_norm,
            head: self.finetune.head,
            sync_batch_norm: self.model.sync_batch_norm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_reads_its_own_table() {
        let cfg = Config::load(
            None,
            &[
                "runtime.seed=9".into(),
                "baseline.epochs=3".into(),
                "pretrain.epochs=5".into(),
                "pretrain.probe_optimizer.learning_rate=0.25".into(),
                "finetune.epochs=7".into(),
                "finetune.batch_size=64".into(),
                "finetune.optimizer.learning_rate=0.5".into(),
                "finetune.freeze_batch_norm=true".into(),
                "finetune.head=\"probe\"".into(),
                "eval.knn_monitor=false".into(),
                "model.projection_width=32".into(),
            ],
        )
        .unwrap();
        let (base, pre, fine) = (
            cfg.supervised_baseline(),
            cfg.pretraining(),
            cfg.finetuning(),
        );
        assert_eq!([base.epochs, pre.epochs, fine.epochs], [3, 5, 7]);
        assert_eq!([base.batch_size, fine.batch_size], [None, Some(64)]);
        assert_eq!([base.run, fine.run], [Run::Baseline, Run::Finetuning]);
        assert_eq!(base.optimizer.learning_rate, 1e-3);
        assert_eq!(fine.optimizer.learning_rate, 0.5);
        assert_eq!(pre.optimizer.learning_rate, 1e-3);
        assert_eq!(pre.probe_optimizer.learning_rate, 0.25);
        assert!(fine.freeze_batch_norm && !base.freeze_batch_norm);
        assert_eq!([base.head, fine.head], [HeadStart::New, HeadStart::Probe]);
        assert_eq!([base.seed, pre.seed, fine.seed], [9, 9, 9]);
        assert_eq!(pre.knn, None, "the monitor is off");
        assert_eq!(pre.model.head.width, 32);
        assert_eq!(pre.model.encoder, fine.encoder);
        let on = Config::default()
            .pretraining()
            .knn
            .expect("the monitor is on by default");
        assert_eq!(on.k, Config::default().eval.knn_k);
    }
}

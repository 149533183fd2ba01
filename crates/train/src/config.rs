//! The typed TOML configuration. Every table has `deny_unknown_fields` and defaults that
//! reproduce the Keras SimCLR example; `--set key=value` overrides any key.

use std::path::{Path, PathBuf};

use augment::{AugmentConfig, Preset, SimclrConfig};
use losses::ContrastiveLossKind;
pub use optim::{AdamRule, LrScaling, LrSchedule, OptimizerConfig, OptimizerKind};
use serde::{Deserialize, Serialize};
use stl10_data::DataConfig;

mod settings;
pub use settings::{DataSettings, ModelSettings, PretrainSettings, SupervisedSettings};

/// Where tensors live: `auto` picks CUDA when libtorch sees a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// c10d's backend for a run launched by torchrun: `auto` takes NCCL for CUDA devices and gloo
/// for the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    #[default]
    Auto,
    Gloo,
    Nccl,
}

/// Which precision the networks compute in: `auto` picks bf16 autocast where it is measured to
/// pay (CUDA compute capability 8.0+, AMX, AMD AVX512-BF16; see `accel::bf16_preferred`), else
/// fp32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    #[default]
    Auto,
    Fp32,
    Bf16,
}

/// `Display` and `FromStr` (the `--device` and `--precision` flags) for a choice, both through
/// its serde spelling, so the configuration file's names are the only ones.
macro_rules! spelled_by_serde {
    ($($choice:ty),*) => {$(
        impl std::fmt::Display for $choice {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match toml::Value::try_from(self) {
                    Ok(toml::Value::String(name)) => f.write_str(&name),
                    _ => Err(std::fmt::Error),
                }
            }
        }

        impl std::str::FromStr for $choice {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                use serde::de::{IntoDeserializer, value::Error};
                <$choice>::deserialize(IntoDeserializer::<Error>::into_deserializer(s))
                    .map_err(|e| e.to_string())
            }
        }
    )*};
}
spelled_by_serde!(DeviceChoice, PrecisionChoice, BackendChoice);

/// The `[runtime]` table: where and how the steps run. None of these keys changes the model or
/// the data a run sees; `precision` and `encoder_chunk` change rounding only (except that slices
/// of an encoder with BatchNorm normalise by their own statistics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    pub device: DeviceChoice,
    /// libtorch intra-op threads; none: libtorch's default (one per core).
    pub threads: Option<usize>,
    /// Seeds data order, augmentation and initialisation.
    pub seed: u64,
    /// fp32, bf16 autocast, or auto (bf16 where the hardware has it).
    pub precision: PrecisionChoice,
    /// Most views per encoder forward in the pretraining step (the views are split evenly):
    /// the contrastive loss needs all projections at once, the encoder does not, and on a CPU
    /// slices that fit the caches run faster than one 1,050-view batch. None: on the CPU 176
    /// views of 96x96 (as many pixels for other sizes), on CUDA the whole batch; with the
    /// `resnet18` encoder the whole batch everywhere, so its BatchNorm sees every view (a set
    /// value slices it, and each slice then uses its own batch statistics).
    pub encoder_chunk: Option<usize>,
    /// Steps between reads of the running metrics from the device (progress bar, non-finite
    /// check); each read waits for the device, so a step itself never does.
    pub metrics_every: usize,
    /// Keep the uint8 data set on the CUDA device (STL-10: 3.1 GB) and gather batches there;
    /// falls back to host batches when it does not fit.
    pub resident_data: bool,
    /// Under torchrun: c10d's backend (`auto`: NCCL on CUDA, gloo on the CPU).
    pub backend: BackendChoice,
    /// Under torchrun: how long the ranks wait for each other (meeting, and every collective)
    /// before a missing or dead rank ends the run with an error, in seconds.
    pub dist_timeout_seconds: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            device: DeviceChoice::Auto,
            threads: None,
            seed: 42,
            precision: PrecisionChoice::Auto,
            encoder_chunk: None,
            metrics_every: 20,
            resident_data: true,
            backend: BackendChoice::Auto,
            dist_timeout_seconds: 1800,
        }
    }
}

/// Which transform makes the two contrastive views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ViewPreset {
    /// The example's strong preset, `[augment.contrastive]`.
    #[default]
    Keras,
    /// The SimCLR paper's, `[augment.simclr]`.
    Simclr,
}

/// The command line's typed runtime flags (`--device`, `--precision`, `--threads`, `--seed`):
/// each one given replaces its `[runtime]` key after the file and every `--set`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RuntimeFlags {
    pub device: Option<DeviceChoice>,
    pub precision: Option<PrecisionChoice>,
    pub threads: Option<usize>,
    pub seed: Option<u64>,
}

impl RuntimeFlags {
    fn apply(&self, runtime: &mut RuntimeConfig) {
        if let Some(d) = self.device {
            runtime.device = d;
        }
        if let Some(p) = self.precision {
            runtime.precision = p;
        }
        if self.threads.is_some() {
            runtime.threads = self.threads;
        }
        if let Some(s) = self.seed {
            runtime.seed = s;
        }
    }
}

/// The `[augment]` table: the strong and the weak preset, and the SimCLR paper's transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentTable {
    /// `keras` (`contrastive` makes the views, the example's) or `simclr` (`simclr` does).
    pub preset: ViewPreset,
    /// Strong, for the two contrastive views (0.25, 0.6, 0.2).
    pub contrastive: AugmentConfig,
    /// Weak, for supervised training and the probe (0.75, 0.3, 0.1), with either preset.
    pub classification: AugmentConfig,
    /// The SimCLR paper's views: resized crop, flip, colour jitter, grayscale, blur.
    pub simclr: SimclrConfig,
}

impl Default for AugmentTable {
    fn default() -> Self {
        AugmentTable {
            preset: ViewPreset::Keras,
            contrastive: AugmentConfig::contrastive(),
            classification: AugmentConfig::classification(),
            simclr: SimclrConfig::default(),
        }
    }
}

impl AugmentTable {
    /// The transform of the two contrastive views, as `preset` says.
    pub fn views(&self) -> Preset {
        match self.preset {
            ViewPreset::Keras => Preset::Keras(self.contrastive),
            ViewPreset::Simclr => Preset::Simclr(self.simclr),
        }
    }
}

/// The `[model]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// `keras` (the example's 4 convolutions and a dense layer) or `resnet18` (512 features;
    /// CIFAR stem up to 64 pixels, ImageNet stem above).
    pub encoder: models::Architecture,
    /// ResNet-18's stem: `auto` (CIFAR's up to 64 pixels, ImageNet's above), `cifar` or
    /// `imagenet`.
    pub resnet_stem: models::Stem,
    /// Filters per convolution and units of the Keras encoder's dense layer (`width = 128`),
    /// and the projection size when `projection_width` is unset (for either encoder).
    pub width: i64,
    /// Convolutions, their weights, gradients, Adam moments and the augmenter's output in
    /// channels-last memory format (same values; faster with oneDNN and cuDNN, see
    /// docs/performance.md).
    pub channels_last: bool,
    /// Dense layers of the projection head (the example's: 2).
    pub projection_layers: usize,
    /// Units of each projection layer, and so the projection size; unset: `width`.
    pub projection_width: Option<i64>,
    /// BatchNorm after each hidden projection layer (SimCLR's head; the example has none).
    pub projection_batch_norm: bool,
    /// Under torchrun: BatchNorm (ResNet-18, the BatchNorm head) normalises by the statistics of
    /// the whole batch, every rank's rows (synchronised BatchNorm, the SimCLR paper's global
    /// BN), instead of each rank's own shard (DDP's default). No effect on one process.
    pub sync_batch_norm: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            encoder: models::Architecture::Keras,
            resnet_stem: models::Stem::Auto,
            width: 128,
            channels_last: true,
            projection_layers: 2,
            projection_width: None,
            projection_batch_norm: false,
            sync_batch_norm: false,
        }
    }
}

/// The `[loss]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// `keras` (the example's cross-view loss) or `nt_xent` (the SimCLR paper's).
    pub kind: ContrastiveLossKind,
    /// Softmax temperature of the similarities (`temperature = 0.1`).
    pub temperature: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            kind: ContrastiveLossKind::Keras,
            temperature: 0.1,
        }
    }
}

/// Where a supervised run's classifier (its Dense layer) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HeadStart {
    /// Freshly initialised (the example's).
    #[default]
    New,
    /// Fine-tuning only: the linear probe trained during pretraining, read from the
    /// `linear_probe.safetensors` beside the encoder file: linear probing then fine-tuning
    /// (Kumar et al., 2022), so that a random head's first gradients do not reach the features.
    Probe,
}

/// `[baseline]` and `[finetune]`: a supervised run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisedConfig {
    pub epochs: usize,
    /// Labeled images a step; unset, the example's labeled share of `data.batch_size` (25 of
    /// STL-10's 525; 8-9 of 512 for 1,000 Fashion-MNIST labels).
    pub batch_size: Option<usize>,
    /// `new` or, for `[finetune]`, `probe`.
    pub head: HeadStart,
    /// `[finetune]` only: normalise with the pretrained encoder's running BatchNorm statistics
    /// in training steps too, and leave them as they are (its BatchNorm scales and offsets still
    /// learn). Batch statistics of a few labeled images are noisy, and differ from the ones the
    /// probe was trained under; an encoder without BatchNorm trains the same either way.
    pub freeze_batch_norm: bool,
    pub optimizer: OptimizerConfig,
}

impl Default for SupervisedConfig {
    fn default() -> Self {
        SupervisedConfig {
            epochs: 20,
            batch_size: None,
            head: HeadStart::New,
            freeze_batch_norm: false,
            optimizer: OptimizerConfig::default(),
        }
    }
}

/// `[pretrain]`: contrastive pretraining with the linear probe trained alongside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    pub epochs: usize,
    /// The example's `contrastive_optimizer` (encoder + projection head).
    pub optimizer: OptimizerConfig,
    /// The example's `probe_optimizer` (linear probe only).
    pub probe_optimizer: OptimizerConfig,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            epochs: 20,
            optimizer: OptimizerConfig::default(),
            probe_optimizer: OptimizerConfig::default(),
        }
    }
}

/// `[eval]`: how frozen encoders are judged without fine-tuning: the weighted kNN monitor
/// (`val_knn_acc` after every pretraining epoch, `simclr-cli knn`) and the linear evaluation
/// on frozen features of `simclr-cli sweep`. None of it changes what is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// kNN accuracy of the encoder on the test split after every pretraining epoch (labeled
    /// training images as the memory bank).
    pub knn_monitor: bool,
    /// Neighbours that vote (InstDisc: 200).
    pub knn_k: usize,
    /// Temperature of the votes `exp(similarity / t)` (InstDisc: 0.1).
    pub knn_temperature: f64,
    /// Linear evaluation: passes of Dense(classes) over the frozen, un-augmented features of
    /// the labeled images (the usual protocol: 100 epochs).
    pub linear_epochs: usize,
    /// Linear evaluation: at least this many steps, however few the labels (a 100-label
    /// budget would otherwise stop after 100 steps, far from converged).
    pub linear_min_steps: usize,
    /// Linear evaluation: features per step (all of them when there are fewer).
    pub linear_batch_size: usize,
    /// Linear evaluation: Adam's settings (learning rate 1e-2: measured on Fashion-MNIST, 1e-3
    /// leaves the probe far from converged; see docs/results.md).
    pub linear_optimizer: OptimizerConfig,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            knn_monitor: true,
            knn_k: 200,
            knn_temperature: 0.1,
            linear_epochs: 100,
            linear_min_steps: 2000,
            linear_batch_size: 256,
            linear_optimizer: OptimizerConfig {
                learning_rate: 1e-2,
                ..OptimizerConfig::default()
            },
        }
    }
}

impl EvalConfig {
    /// The kNN settings.
    pub fn knn(&self) -> crate::features::knn::Knn {
        crate::features::knn::Knn {
            k: self.knn_k,
            temperature: self.knn_temperature,
        }
    }
}

/// `[log]`: what a run writes for people watching it, beyond its histories and report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// TensorBoard event files in `tensorboard/<run>/` of the run folder, written as the run
    /// goes (`tensorboard --logdir runs/`).
    pub tensorboard: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { tensorboard: true }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data: DataConfig,
    pub augment: AugmentTable,
    pub model: ModelConfig,
    pub loss: LossConfig,
    pub baseline: SupervisedConfig,
    pub pretrain: PretrainConfig,
    pub finetune: SupervisedConfig,
    pub eval: EvalConfig,
    pub log: LogConfig,
    pub runtime: RuntimeConfig,
}

/// A configuration that cannot be read or is invalid; always names the file or the `--set`
/// at fault and the key, and keeps the TOML parser's error as its source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML, or one of its values does not fit its key.
    #[error("config {path}: {}", keyed(key, source))]
    Parse {
        path: PathBuf,
        /// The key at fault, when the text parsed but a value did not fit.
        key: Option<String>,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("--set {0}: expected key=value")]
    SetSyntax(String),
    #[error("--set {key}: {message}")]
    SetPath { key: String, message: String },
    /// A `--set` value that does not fit its key (or names no key).
    #[error("--set {set}: {}", keyed(&Some(key.clone()), source))]
    SetValue {
        set: String,
        key: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

/// `key: message` for a value that does not fit its key; for text that is not TOML, the
/// parser's whole report (line, column and the offending line).
fn keyed(key: &Option<String>, source: &toml::de::Error) -> String {
    match key {
        Some(k) => format!("{k}: {}", one_line(source)),
        None => source.to_string().trim_end().to_string(),
    }
}

/// The parser's message without its location lines.
fn one_line(source: &toml::de::Error) -> String {
    source.message().trim().replace('\n', " ")
}

/// Largest `runtime.threads` (libtorch takes an `i32`; far more threads than cores only hurts).
pub const MAX_THREADS: usize = 1024;
/// Largest `model.width` (filters and units; the dense kernel grows with its square).
pub const MAX_WIDTH: i64 = 4096;
/// Most layers of the projection head.
pub const MAX_PROJECTION_LAYERS: usize = 8;

/// The error for an invalid value of `key`.
fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// Overlays `over` on `base`, table by table.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

impl Config {
    /// Reads `path` (or starts from the defaults), applies `sets` (`a.b=value`, the value in
    /// TOML syntax or a bare string) in order, and checks every value.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Config, ConfigError> {
        Config::load_with(path, sets, &RuntimeFlags::default())
    }

    /// [`Config::load`], then the command line's typed `flags`, then validation.
    pub fn load_with(
        path: Option<&Path>,
        sets: &[String],
        flags: &RuntimeFlags,
    ) -> Result<Config, ConfigError> {
        let text = path
            .map(|p| {
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })
            })
            .transpose()?;
        Config::resolve(text.as_deref().zip(path), sets, flags)
    }

    /// [`Config::load`] on a file's text (`(text, path)`, the path for messages). A value that
    /// does not fit is blamed on the last `--set` of its key (or of a table around it, or of a
    /// key inside it), else on the file.
    pub fn parse(file: Option<(&str, &Path)>, sets: &[String]) -> Result<Config, ConfigError> {
        Config::resolve(file, sets, &RuntimeFlags::default())
    }

    /// This configuration with `sets` and `flags` applied on top, validated: a resumed run's
    /// recorded configuration as the base of the resumed one.
    pub fn overridden(&self, sets: &[String], flags: &RuntimeFlags) -> Result<Config, ConfigError> {
        let table = toml::Table::try_from(self).expect("a Config always serializes");
        Config::finish(table, None, sets, flags)
    }

    /// Defaults, then the file, `sets` and `flags`, validated.
    fn resolve(
        file: Option<(&str, &Path)>,
        sets: &[String],
        flags: &RuntimeFlags,
    ) -> Result<Config, ConfigError> {
        // Start from every default, so a file or `--set` may give any subset of a table.
        let mut table = toml::Table::try_from(Config::default()).expect("defaults serialize");
        if let Some((text, p)) = file {
            let file = text
                .parse::<toml::Table>()
                .map_err(|source| ConfigError::Parse {
                    path: p.to_path_buf(),
                    key: None,
                    source: Box::new(source),
                })?;
            merge(&mut table, file);
        }
        Config::finish(table, file, sets, flags)
    }

    /// `sets` applied to `table`, deserialized, `flags` applied, validated.
    fn finish(
        mut table: toml::Table,
        file: Option<(&str, &Path)>,
        sets: &[String],
        flags: &RuntimeFlags,
    ) -> Result<Config, ConfigError> {
        for set in sets {
            apply_set(&mut table, set)?;
        }
        let mut cfg: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| blame(e.path().to_string(), Box::new(e.into_inner()), file, sets))?;
        flags.apply(&mut cfg.runtime);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that no type can rule out; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.data.validate().map_err(|e| match e {
            stl10_data::DataError::Config { key, problem } => ConfigError::Invalid {
                key: format!("data.{key}"),
                message: problem,
            },
            other => ConfigError::Invalid {
                key: "data".into(),
                message: other.to_string(),
            },
        })?;
        self.validate_runtime()?;
        self.validate_model()?;
        self.validate_counts()?;
        self.validate_optimizers()
    }

    fn validate_runtime(&self) -> Result<(), ConfigError> {
        if let Some(t) = self.runtime.threads
            && !(1..=MAX_THREADS).contains(&t)
        {
            return Err(invalid(
                "runtime.threads",
                format!("must be in 1..={MAX_THREADS}, got {t}"),
            ));
        }
        if i64::try_from(self.runtime.seed).is_err() {
            // `--seed` is typed u64, but a run folder records it in TOML, whose integers are i64.
            return Err(invalid(
                "runtime.seed",
                format!("must be at most {}, got {}", i64::MAX, self.runtime.seed),
            ));
        }
        if self.runtime.encoder_chunk == Some(0) {
            return Err(invalid("runtime.encoder_chunk", "must be at least 1"));
        }
        if self.runtime.metrics_every == 0 {
            return Err(invalid("runtime.metrics_every", "must be at least 1"));
        }
        if !(1..=86_400).contains(&self.runtime.dist_timeout_seconds) {
            return Err(invalid(
                "runtime.dist_timeout_seconds",
                "must be in 1..=86400 (a day)",
            ));
        }
        Ok(())
    }

    /// The augmentation presets, the width and the temperatures.
    fn validate_model(&self) -> Result<(), ConfigError> {
        for (table, preset) in [
            (
                "augment.contrastive",
                Preset::Keras(self.augment.contrastive),
            ),
            (
                "augment.classification",
                Preset::Keras(self.augment.classification),
            ),
            ("augment.simclr", Preset::Simclr(self.augment.simclr)),
        ] {
            preset.validate().map_err(|e| {
                let field = e.field().unwrap_or_default();
                invalid(&format!("{table}.{field}"), e.to_string())
            })?;
        }
        for (key, width) in [
            ("model.width", Some(self.model.width)),
            ("model.projection_width", self.model.projection_width),
        ] {
            if let Some(w) = width.filter(|w| !(1..=MAX_WIDTH).contains(w)) {
                return Err(invalid(key, format!("must be in 1..={MAX_WIDTH}, got {w}")));
            }
        }
        let layers = self.model.projection_layers;
        if !(1..=MAX_PROJECTION_LAYERS).contains(&layers) {
            return Err(invalid(
                "model.projection_layers",
                format!("must be in 1..={MAX_PROJECTION_LAYERS}, got {layers}"),
            ));
        }
        for (key, t) in [
            ("loss.temperature", self.loss.temperature),
            ("eval.knn_temperature", self.eval.knn_temperature),
        ] {
            if !(t.is_finite() && t > 0.0) {
                return Err(invalid(key, format!("must be > 0, got {t}")));
            }
        }
        Ok(())
    }

    /// Epochs and counts that must be at least 1.
    fn validate_counts(&self) -> Result<(), ConfigError> {
        for (key, count) in [
            ("eval.knn_k", self.eval.knn_k),
            ("eval.linear_epochs", self.eval.linear_epochs),
            ("eval.linear_batch_size", self.eval.linear_batch_size),
            ("baseline.epochs", self.baseline.epochs),
            ("pretrain.epochs", self.pretrain.epochs),
            ("finetune.epochs", self.finetune.epochs),
            ("baseline.batch_size", self.baseline.batch_size.unwrap_or(1)),
            ("finetune.batch_size", self.finetune.batch_size.unwrap_or(1)),
        ] {
            if count == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        Ok(())
    }

    fn validate_optimizers(&self) -> Result<(), ConfigError> {
        if self.baseline.head == HeadStart::Probe {
            return Err(invalid(
                "baseline.head",
                "must be \"new\": the baseline trains from scratch, with no probe to start from",
            ));
        }
        if self.baseline.freeze_batch_norm {
            return Err(invalid(
                "baseline.freeze_batch_norm",
                "must be false: a fresh encoder has no BatchNorm statistics to keep",
            ));
        }
        for (key, opt) in [
            ("baseline.optimizer", &self.baseline.optimizer),
            ("pretrain.optimizer", &self.pretrain.optimizer),
            ("pretrain.probe_optimizer", &self.pretrain.probe_optimizer),
            ("finetune.optimizer", &self.finetune.optimizer),
            ("eval.linear_optimizer", &self.eval.linear_optimizer),
        ] {
            opt.validate()
                .map_err(|(field, message)| invalid(&format!("{key}.{field}"), message))?;
        }
        Ok(())
    }

    /// The keys in which `self` differs from `saved` (a run folder's configuration) that a
    /// resumed run cannot change: everything but the epochs, the learning rates and the
    /// `[runtime]` keys other than `seed` (device, threads, precision and the like change how a
    /// step runs, not what it computes) and the `[eval]` keys (they judge, they do not train).
    pub fn resume_conflicts(&self, saved: &Config) -> Vec<String> {
        let (mut now, mut then) = (Vec::new(), Vec::new());
        flatten(
            "",
            &toml::Value::try_from(self).expect("a Config serializes"),
            &mut now,
        );
        flatten(
            "",
            &toml::Value::try_from(saved).expect("a Config serializes"),
            &mut then,
        );
        let changeable = |k: &str| {
            k.ends_with(".epochs")
                || k.ends_with(".learning_rate")
                || (k.starts_with("runtime.") && k != "runtime.seed")
                || k.starts_with("eval.")
                || k.starts_with("log.")
        };
        let then: std::collections::HashMap<_, _> = then.into_iter().collect();
        let mut keys: Vec<String> = now
            .iter()
            .filter(|(k, v)| !changeable(k) && then.get(k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        let now_keys: std::collections::HashSet<_> = now.iter().map(|(k, _)| k).collect();
        keys.extend(
            then.keys()
                .filter(|k| !changeable(k) && !now_keys.contains(k))
                .cloned(),
        );
        keys.sort();
        keys
    }

    /// The encoder's shape: `model.encoder` (of `model.width`) at `data.image_size`.
    pub fn encoder_config(&self) -> models::EncoderConfig {
        models::EncoderConfig {
            arch: self.model.encoder,
            stem: self.model.resnet_stem,
            width: self.model.width,
            image_size: self.data.image_size as i64,
        }
    }

    /// The projection head's shape: `model.projection_*`, its width `model.width` when unset.
    pub fn head_config(&self) -> models::HeadConfig {
        models::HeadConfig {
            layers: self.model.projection_layers,
            width: self.model.projection_width.unwrap_or(self.model.width),
            batch_norm: self.model.projection_batch_norm,
        }
    }

    /// The configuration as TOML, every key spelled out (what a run folder records).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a Config always serializes")
    }
}

/// Every leaf of `v` as `(dotted.key, value)`.
fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        leaf => out.push((prefix.to_string(), leaf.clone())),
    }
}

/// The error for a value at `key` that does not deserialize: the last `--set` that touched
/// `key` (the same key, a table holding it, or a key inside it), else the file, else the key.
fn blame(
    key: String,
    source: Box<toml::de::Error>,
    file: Option<(&str, &Path)>,
    sets: &[String],
) -> ConfigError {
    let touches = |set: &&String| {
        let set_key = set.split_once('=').map_or("", |(k, _)| k.trim());
        let within = |outer: &str, inner: &str| {
            inner == outer
                || inner
                    .strip_prefix(outer)
                    .is_some_and(|r| r.starts_with('.'))
        };
        within(&key, set_key) || within(set_key, &key)
    };
    if let Some(set) = sets.iter().rev().find(touches) {
        return ConfigError::SetValue {
            set: set.clone(),
            key,
            source,
        };
    }
    match file {
        Some((_, path)) => ConfigError::Parse {
            path: path.to_path_buf(),
            key: Some(key),
            source,
        },
        None => ConfigError::Invalid {
            message: one_line(&source),
            key,
        },
    }
}

/// Applies one `key.path=value` override to `table`.
fn apply_set(table: &mut toml::Table, set: &str) -> Result<(), ConfigError> {
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| ConfigError::SetSyntax(set.into()))?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::SetSyntax(set.into()));
    }
    let value = parse_value(raw.trim());
    let mut node = table;
    for part in &parts[..parts.len() - 1] {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry.as_table_mut().ok_or_else(|| ConfigError::SetPath {
            key: key.into(),
            message: format!("'{part}' is a value, not a table"),
        })?;
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// A TOML value (`5`, `0.1`, `true`, `"x"`, `[1, 2]`), or else the text as a string.
fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_reproduce_the_keras_example() {
        let cfg = Config::default();
        assert_eq!(cfg.data.batch_size, 525);
        assert_eq!(cfg.data.image_size, 96);
        assert_eq!(cfg.runtime.device, DeviceChoice::Auto);
    }

    #[test]
    fn set_overrides_typed_values_and_strings() {
        let cfg = Config::load(
            None,
            &[
                "data.root=/x/y".into(),
                "data.batch_size=100".into(),
                "runtime.device=\"cpu\"".into(),
                "data.labeled_per_class=3".into(),
                "data.kind=idx".into(),
            ],
        )
        .unwrap();
        assert_eq!(cfg.data.root, PathBuf::from("/x/y"));
        assert_eq!(cfg.data.batch_size, 100);
        assert_eq!(cfg.data.labeled_per_class, Some(3));
        assert_eq!(cfg.runtime.device, DeviceChoice::Cpu);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = Config::load(None, &["data.colour=1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("data") && err.contains("colour"), "{err}");
        let err = Config::load(None, &["data.batch_size=\"many\"".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("data.batch_size"), "{err}");
        let err = Config::load(None, &["data.batch_size=0".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data.batch_size") && err.contains("must be in 1..="),
            "{err}"
        );
        let err = Config::load(None, &["runtime.threads=0".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("runtime.threads"), "{err}");
        let err = Config::load(None, &["bogus".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected key=value"), "{err}");
        let err = Config::load(None, &["data.root.x=1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("'root' is a value"), "{err}");
    }

    #[test]
    fn training_values_are_checked_by_key() {
        for (set, key) in [
            ("loss.temperature=0", "loss.temperature"),
            ("pretrain.epochs=0", "pretrain.epochs"),
            ("finetune.batch_size=0", "finetune.batch_size"),
            ("baseline.batch_size=0", "baseline.batch_size"),
            ("baseline.head=\"probe\"", "baseline.head"),
            (
                "baseline.freeze_batch_norm=true",
                "baseline.freeze_batch_norm",
            ),
            (
                "augment.contrastive.min_area=1.5",
                "augment.contrastive.min_area",
            ),
            (
                "finetune.optimizer.learning_rate=-1",
                "finetune.optimizer.learning_rate",
            ),
            (
                "pretrain.probe_optimizer.beta2=1",
                "pretrain.probe_optimizer.beta2",
            ),
            (
                "pretrain.optimizer.momentum=1",
                "pretrain.optimizer.momentum",
            ),
            (
                "baseline.optimizer.trust_coefficient=0",
                "baseline.optimizer.trust_coefficient",
            ),
            (
                "pretrain.optimizer.warmup_epochs=-1",
                "pretrain.optimizer.warmup_epochs",
            ),
            ("augment.simclr.hue=0.7", "augment.simclr.hue"),
            (
                "augment.simclr.crop_scale=[0.5, 0.1]",
                "augment.simclr.crop_scale",
            ),
            ("model.width=0", "model.width"),
            ("model.projection_layers=0", "model.projection_layers"),
            ("model.projection_width=0", "model.projection_width"),
            ("eval.knn_k=0", "eval.knn_k"),
            ("eval.knn_temperature=-1", "eval.knn_temperature"),
            ("eval.linear_epochs=0", "eval.linear_epochs"),
            (
                "eval.linear_optimizer.learning_rate=0",
                "eval.linear_optimizer.learning_rate",
            ),
        ] {
            let err = Config::load(None, &[set.into()]).unwrap_err().to_string();
            assert!(err.starts_with(key), "{set}: {err}");
        }
        for (set, key) in [
            (
                "pretrain.optimizer.kind=\"adagrad\"",
                "pretrain.optimizer.kind",
            ),
            (
                "pretrain.optimizer.schedule=\"step\"",
                "pretrain.optimizer.schedule",
            ),
            ("model.encoder=\"vit\"", "model.encoder"),
        ] {
            let err = Config::load(None, &[set.into()]).unwrap_err().to_string();
            assert!(err.contains(key), "{set}: {err}");
        }
        let err = Config::load(None, &["loss.kind=cosine".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("loss.kind"), "{err}");
        let cfg = Config::load(None, &["loss.kind=nt_xent".into()]).unwrap();
        assert_eq!(cfg.loss.kind, ContrastiveLossKind::NtXent);
    }

    #[test]
    fn the_resnet18_recipes_load_as_written() {
        let load = |name: &str| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../configs")
                .join(name);
            Config::load(Some(&path), &[]).unwrap()
        };
        for name in [
            "cifar10-resnet18.toml",
            "stl10-resnet18.toml",
            "fashion-mnist-resnet18.toml",
        ] {
            let cfg = load(name);
            assert_eq!(cfg.model.encoder, models::Architecture::Resnet18, "{name}");
            assert_eq!(cfg.augment.preset, ViewPreset::Simclr, "{name}");
            assert_eq!(cfg.loss.kind, ContrastiveLossKind::NtXent, "{name}");
            assert!(cfg.model.projection_batch_norm, "{name}");
            assert_eq!(
                cfg.pretrain.optimizer.schedule,
                LrSchedule::Cosine,
                "{name}"
            );
        }
        let fmnist = load("fashion-mnist-resnet18.toml");
        assert_eq!(fmnist.model.resnet_stem, models::Stem::Imagenet);
        assert_eq!(fmnist.finetune.optimizer.learning_rate, 3e-4);
        assert_eq!(fmnist.baseline.optimizer.learning_rate, 1e-3);
        let cifar = load("cifar10-resnet18.toml");
        assert_eq!(cifar.data.kind, stl10_data::DataKind::Cifar10);
        assert_eq!(cifar.pretrain.optimizer.kind, OptimizerKind::Sgd);
        assert_eq!(cifar.augment.simclr.blur_probability, 0.0);
        let stl = load("stl10-resnet18.toml");
        assert_eq!(stl.pretrain.optimizer.kind, OptimizerKind::Lars);
        assert!(stl.pretrain.optimizer.excludes_bias_and_norm());
        assert_eq!(stl.pretrain.optimizer.warmup_epochs, 10.0);
    }

    #[test]
    fn the_seed_config_file_reproduces_the_example() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/stl10.toml");
        let cfg = Config::load(Some(&path), &[]).unwrap();
        assert_eq!(cfg.data.batch_size, 525);
        assert_eq!(
            (
                cfg.baseline.epochs,
                cfg.pretrain.epochs,
                cfg.finetune.epochs
            ),
            (20, 20, 20)
        );
        assert_eq!(cfg.model.width, 128);
        assert_eq!(cfg.loss.temperature, 0.1);
        assert_eq!(cfg.loss.kind, ContrastiveLossKind::Keras);
        assert_eq!(
            cfg.augment.contrastive,
            AugmentConfig {
                min_area: 0.25,
                brightness: 0.6,
                jitter: 0.2
            }
        );
        assert_eq!(
            cfg.augment.classification,
            AugmentConfig {
                min_area: 0.75,
                brightness: 0.3,
                jitter: 0.1
            }
        );
        assert_eq!(cfg.pretrain.optimizer, OptimizerConfig::default());
        assert_eq!(cfg.pretrain.optimizer.epsilon, 1e-7);
    }

    #[test]
    fn a_bad_set_is_blamed_on_the_set_and_a_bad_file_on_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[data]\nbatch_size = 100\n").unwrap();
        for set in [
            "data.batch_size=\"many\"",
            "data.colour=1",
            "bogus.x=1",
            "loss.kind=cosine",
        ] {
            let err =
                Config::load(Some(&p), &["runtime.threads=2".into(), set.into()]).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with(&format!("--set {set}: ")), "{set}: {text}");
            assert!(!text.contains("c.toml"), "{set}: {text}");
            assert!(
                std::error::Error::source(&err).is_some(),
                "{set}: no source"
            );
        }
        std::fs::write(&p, "[data]\nbatch_size = \"many\"\n").unwrap();
        let err = Config::load(Some(&p), &["runtime.threads=2".into()]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("config ") && text.contains("c.toml: data.batch_size: "),
            "{text}"
        );
        assert!(std::error::Error::source(&err).is_some());
        std::fs::write(&p, "[data\n").unwrap();
        let err = Config::load(Some(&p), &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { key: None, .. }), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn choices_parse_and_print_with_the_file_spelling() {
        for (name, choice) in [
            ("auto", DeviceChoice::Auto),
            ("cpu", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda),
        ] {
            assert_eq!(name.parse::<DeviceChoice>().unwrap(), choice);
            assert_eq!(choice.to_string(), name);
        }
        assert_eq!(PrecisionChoice::Bf16.to_string(), "bf16");
        assert_eq!("fp32".parse::<PrecisionChoice>(), Ok(PrecisionChoice::Fp32));
        let err = "gpu".parse::<DeviceChoice>().unwrap_err();
        assert!(err.contains("gpu") && err.contains("cuda"), "{err}");
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[data]\nimage_size = -3\n").unwrap();
        let err = Config::load(Some(&p), &[]).unwrap_err().to_string();
        assert!(
            err.contains("c.toml") && err.contains("data.image_size"),
            "{err}"
        );
        let err = Config::load(Some(&dir.path().join("none.toml")), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("none.toml"), "{err}");
    }

    #[test]
    fn resuming_may_change_epochs_rates_and_runtime_only() {
        let saved = Config::default();
        let ok = Config::load(
            None,
            &[
                "pretrain.epochs=40".into(),
                "finetune.optimizer.learning_rate=1e-4".into(),
                "pretrain.probe_optimizer.learning_rate=1e-2".into(),
                "runtime.threads=7".into(),
                "runtime.device=cpu".into(),
                "eval.knn_k=20".into(),
            ],
        )
        .unwrap();
        assert_eq!(ok.resume_conflicts(&saved), Vec::<String>::new());
        let bad = Config::load(
            None,
            &[
                "runtime.seed=1".into(),
                "model.width=64".into(),
                "data.root=/elsewhere".into(),
                "pretrain.optimizer.beta1=0.5".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            bad.resume_conflicts(&saved),
            [
                "data.root",
                "model.width",
                "pretrain.optimizer.beta1",
                "runtime.seed"
            ]
        );
        // A key only one side has (an optional value set once) also conflicts.
        let fold = Config::load(None, &["data.fold=2".into()]).unwrap();
        assert_eq!(fold.resume_conflicts(&saved), ["data.fold"]);
        assert_eq!(saved.resume_conflicts(&fold), ["data.fold"]);
    }

    #[test]
    fn written_config_reads_back_identically() {
        let cfg = Config::load(None, &["data.fold=3".into(), "runtime.threads=2".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("resolved.toml");
        std::fs::write(&p, cfg.to_toml()).unwrap();
        assert_eq!(Config::load(Some(&p), &[]).unwrap(), cfg);
    }

    #[test]
    fn typed_flags_win_over_the_file_and_every_set() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run.toml");
        std::fs::write(
            &p,
            "[runtime]\nseed = 1\nthreads = 3\nprecision = \"bf16\"\n",
        )
        .unwrap();
        let sets = ["runtime.seed=2".into(), "runtime.device=\"cpu\"".into()];
        let flags = RuntimeFlags {
            seed: Some(5),
            threads: Some(4),
            ..RuntimeFlags::default()
        };
        let cfg = Config::load_with(Some(&p), &sets, &flags).unwrap();
        // The flags given replace their keys; the others keep the file's or the --set's value.
        assert_eq!(cfg.runtime.seed, 5);
        assert_eq!(cfg.runtime.threads, Some(4));
        assert_eq!(
            cfg.runtime.precision,
            PrecisionChoice::Bf16,
            "from the file"
        );
        assert_eq!(cfg.runtime.device, DeviceChoice::Cpu, "from the --set");
        // A resumed run's recorded configuration is the base in the same order.
        let resumed = cfg
            .overridden(&["runtime.threads=1".into()], &RuntimeFlags::default())
            .unwrap();
        assert_eq!(
            (resumed.runtime.seed, resumed.runtime.threads),
            (5, Some(1))
        );
        let flagged = cfg.overridden(&["runtime.seed=9".into()], &flags).unwrap();
        assert_eq!(flagged.runtime.seed, 5, "the flag wins over a later --set");
    }

    #[test]
    fn a_flag_is_validated_like_its_key() {
        let too_many = RuntimeFlags {
            threads: Some(MAX_THREADS + 1),
            ..RuntimeFlags::default()
        };
        let err = Config::load_with(None, &[], &too_many)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("runtime.threads: must be in 1..="), "{err}");
        // TOML, where a run folder records the seed, has no integers above i64::MAX.
        let huge = RuntimeFlags {
            seed: Some(u64::MAX),
            ..RuntimeFlags::default()
        };
        let err = Config::load_with(None, &[], &huge).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "runtime.seed: must be at most {}, got {}",
                i64::MAX,
                u64::MAX
            )
        );
        let largest = RuntimeFlags {
            seed: Some(i64::MAX as u64),
            ..RuntimeFlags::default()
        };
        let cfg = Config::load_with(None, &[], &largest).unwrap();
        assert_eq!(
            Config::parse(Some((&cfg.to_toml(), Path::new("x"))), &[]).unwrap(),
            cfg
        );
    }
}

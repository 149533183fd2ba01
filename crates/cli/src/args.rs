//! Command-line arguments: parsing only; `main` resolves them and delegates.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use train::config::RuntimeFlags;
use train::config::{DeviceChoice, PrecisionChoice};

#[derive(Debug, Parser)]
#[command(
    name = "simclr-cli",
    version,
    about = "Semi-supervised image classification with SimCLR contrastive pretraining",
    long_about = "Semi-supervised image classification with SimCLR contrastive pretraining.\n\n\
                  Reproduces the Keras example on STL-10 (published: baseline 59.9%, linear probe \
                  56.7%, fine-tuned 65.3% after 20 epochs) and runs the same pipeline on image \
                  folders and IDX files."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (defaults reproduce the Keras example on STL-10).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override any configuration key, e.g. `--set data.root=/data/stl10` (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Where to compute: auto (CUDA when available), cpu or cuda.
    #[arg(long, global = true, value_name = "DEVICE")]
    pub device: Option<DeviceChoice>,
    /// Precision of the networks: auto (bf16 autocast where the hardware has it), fp32 or bf16.
    #[arg(long, global = true, value_name = "PRECISION")]
    pub precision: Option<PrecisionChoice>,
    /// libtorch intra-op threads.
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Seed for data order, augmentation and initialisation.
    #[arg(long, global = true)]
    pub seed: Option<u64>,
    /// More diagnostics on stderr (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl RunArgs {
    /// The run folder: the resumed one, or `--out`.
    pub fn folder(&self) -> &std::path::Path {
        self.resume.as_deref().unwrap_or(&self.out)
    }
}

impl GlobalArgs {
    /// The typed shorthand flags, applied after `--set`.
    pub fn runtime_flags(&self) -> RuntimeFlags {
        RuntimeFlags {
            device: self.device,
            precision: self.precision,
            threads: self.threads,
            seed: self.seed,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print what libtorch sees (CUDA, cuDNN, threads) and the device a run would use.
    Info,
    /// Baseline, contrastive pretraining and fine-tuning, as the Keras example runs them, into
    /// one run folder. STL-10 with configs/stl10.toml: expect about 60% / 57% / 65%.
    Experiment(RunArgs),
    /// The supervised baseline from a fresh encoder (STL-10: about 60%).
    Baseline(RunArgs),
    /// Contrastive pretraining with the linear probe (STL-10: probe about 57%).
    Pretrain(RunArgs),
    /// Fine-tune a pretrained encoder plus a new Dense(classes) (STL-10: about 65%).
    Finetune {
        #[command(flatten)]
        run: RunArgs,
        /// A safetensors file holding `encoder.*` (a run's encoder.safetensors); with --resume,
        /// the one the run started from.
        #[arg(long, value_name = "PATH", required_unless_present = "resume")]
        encoder: Option<PathBuf>,
    },
    /// Test loss and accuracy of a classifier checkpoint (baseline or finetuned.safetensors);
    /// without --config, the run folder's config.toml beside it is used.
    Evaluate {
        #[arg(long, value_name = "PATH")]
        checkpoint: PathBuf,
    },
    /// Weighted kNN accuracy (k = eval.knn_k, votes exp(sim / eval.knn_temperature)) of an
    /// encoder's features: test images against the labeled training images.
    Knn {
        /// A safetensors file holding `encoder.*` (a run's encoder.safetensors); without
        /// --config, the run folder's config.toml beside it is used.
        #[arg(long, value_name = "PATH")]
        encoder: PathBuf,
    },
    /// Label-efficiency sweep: one pretraining (or --encoder), then for each budget of labels
    /// per class a baseline, a fine-tuning, a linear probe and kNN on the same labeled subset.
    Sweep {
        /// Budgets of labels per class, comma-separated; `all` is every label.
        #[arg(long, value_name = "N,N,...", default_value = "10,25,50,100,all")]
        labels_per_class: String,
        /// Evaluate this encoder.safetensors instead of pretraining one.
        #[arg(long, value_name = "PATH")]
        encoder: Option<PathBuf>,
        /// Output folder: the pretraining run, `labels-<N>/` run folders, sweep.csv, sweep.json,
        /// label_efficiency.png, report.md.
        #[arg(long, default_value = "runs/sweep")]
        out: PathBuf,
        /// Hide the progress bars.
        #[arg(long)]
        no_progress: bool,
    },
    /// STL-10's protocol: fine-tune (and fit the linear probe and kNN on frozen features) on
    /// each of the ten predefined 1,000-image folds alone, scored on the test split; prints
    /// each fold and mean ± std.
    Folds {
        /// A safetensors file holding `encoder.*` (a run's encoder.safetensors); without
        /// --config, the run folder's config.toml beside it is used.
        #[arg(long, value_name = "PATH")]
        encoder: PathBuf,
        /// Output folder: `fold-<k>/` run folders, folds.csv, folds.json, report.md.
        #[arg(long, default_value = "runs/folds")]
        out: PathBuf,
        /// Hide the progress bars.
        #[arg(long)]
        no_progress: bool,
    },
    /// Compare run folders side by side: their validation accuracy curves (and kNN monitors)
    /// in one picture, and each history's best figures (largest accuracy, smallest loss, epochs,
    /// mean images/s) as a markdown table on stdout and a CSV file. A RUN is an experiment,
    /// baseline, pretrain or finetune run folder, a sweep folder (its labels-<N>/ runs too) or
    /// a folds folder (its fold-<k>/ runs). Needs no configuration and no device.
    Compare {
        /// Run folders, sweep or folds folders.
        #[arg(value_name = "RUN", required = true)]
        runs: Vec<PathBuf>,
        /// The picture (PNG).
        #[arg(long, value_name = "PATH", default_value = "compare.png")]
        out: PathBuf,
        /// The table as CSV (default: --out with the extension .csv).
        #[arg(long, value_name = "PATH")]
        csv: Option<PathBuf>,
    },
    /// Write an encoder's features of one split as float32 [N, D] .npy (and labels.npy).
    Embed {
        /// A safetensors file holding `encoder.*`; without --config, the run folder's
        /// config.toml beside it is used.
        #[arg(long, value_name = "PATH")]
        encoder: PathBuf,
        /// Which split: train, test or unlabeled.
        #[arg(long, default_value = "test")]
        split: String,
        /// Features after the projection head (projection_head.safetensors beside the encoder).
        #[arg(long)]
        projection: bool,
        /// The features file.
        #[arg(long, default_value = "feats.npy")]
        out: PathBuf,
        /// The labels file (default: labels.npy beside --out); not written for unlabeled images.
        #[arg(long, value_name = "PATH")]
        labels_out: Option<PathBuf>,
        /// Also draw embedding.png (PCA of these features by class) beside --out.
        #[arg(long)]
        plot: bool,
    },
    /// Classify image files (JPEG, PNG, any size) with a classifier checkpoint: top classes
    /// and their probabilities. Unreadable files are reported and skipped (exit 1 at the end).
    Predict {
        /// finetuned.safetensors or baseline.safetensors; without --config, the run folder's
        /// config.toml and classes.txt beside it are used.
        #[arg(long, value_name = "PATH")]
        checkpoint: PathBuf,
        /// Image files, or folders searched for JPEG and PNG files.
        #[arg(value_name = "IMAGE_OR_FOLDER", required = true)]
        inputs: Vec<PathBuf>,
        /// How many classes per image.
        #[arg(long, default_value_t = 3)]
        top: usize,
        /// table (aligned text), csv or json.
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
        format: String,
    },
    /// Write the seed's grid of original, weakly and strongly augmented training images.
    AugmentPreview {
        /// Images per row.
        #[arg(long, default_value_t = 8)]
        count: usize,
        #[arg(long, default_value = "augmentations.png")]
        out: PathBuf,
    },
    /// Time the real pretraining and supervised steps at the configured data set's shapes (STL-10's by default); prints JSON.
    /// With --data, time the configured data set's input path instead (images/s, per worker).
    Bench {
        /// Timed steps (after warm-up).
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Warm-up steps.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Time reading the configured data set (data.kind, data.root; packed, streamed or in
        /// memory as data.streaming says) through the loader, with no step consuming it.
        #[arg(long)]
        data: bool,
        /// --data: images to hand out (at least one step's).
        #[arg(long, default_value_t = 20_000, requires = "data")]
        images: usize,
        /// --data: threads gathering and decoding (default: every core).
        #[arg(long, requires = "data")]
        workers: Option<usize>,
    },
    /// Data sets: download, inspect, export, pack and verify.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

impl Command {
    /// The subcommand as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Info => "info",
            Command::Experiment(_) => "experiment",
            Command::Baseline(_) => "baseline",
            Command::Pretrain(_) => "pretrain",
            Command::Finetune { .. } => "finetune",
            Command::Evaluate { .. } => "evaluate",
            Command::AugmentPreview { .. } => "augment-preview",
            Command::Knn { .. } => "knn",
            Command::Sweep { .. } => "sweep",
            Command::Folds { .. } => "folds",
            Command::Compare { .. } => "compare",
            Command::Embed { .. } => "embed",
            Command::Predict { .. } => "predict",
            Command::Bench { .. } => "bench",
            Command::Data { .. } => "data",
        }
    }

    /// Whether the command runs data-parallel when torchrun launches it (the training commands,
    /// `bench` and `info`); the others run on one process.
    pub fn data_parallel(&self) -> bool {
        self.run_args().is_some() || matches!(self, Command::Bench { .. } | Command::Info)
    }

    /// The model file of a command that reads one trained model: its folder's `config.toml`
    /// is the base configuration when `--config` is not given.
    pub fn model_file(&self) -> Option<&std::path::Path> {
        match self {
            Command::Knn { encoder, .. }
            | Command::Embed { encoder, .. }
            | Command::Folds { encoder, .. } => Some(encoder),
            Command::Predict { checkpoint, .. } | Command::Evaluate { checkpoint } => {
                Some(checkpoint)
            }
            _ => None,
        }
    }

    /// The run folder arguments of a training command.
    pub fn run_args(&self) -> Option<&RunArgs> {
        match self {
            Command::Experiment(r) | Command::Baseline(r) | Command::Pretrain(r) => Some(r),
            Command::Finetune { run, .. } => Some(run),
            _ => None,
        }
    }
}

/// Where a training command writes.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run folder (created if missing).
    #[arg(long, default_value = "runs/latest", conflicts_with = "resume")]
    pub out: PathBuf,
    /// Continue the run in RUN_DIR from its last checkpoint: its config.toml is the base
    /// configuration (unless --config is given); only epochs, learning rates and `[runtime]`
    /// keys other than seed may change.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Hide the progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download a data set and unpack it where data.root looks by default ($SIMCLR_DATA/stl10,
    /// else ~/.local/share/simclr-rs/stl10). An interrupted download resumes when run again;
    /// the archive's published MD5 is checked before it is unpacked.
    Download {
        /// Which data set (stl10: the official 2.6 GB binary archive).
        #[arg(value_parser = ["stl10"])]
        dataset: String,
        /// Unpack into this folder instead (it receives stl10_binary/).
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// Fetch from this address instead (a mirror); give its --md5 too.
        #[arg(long, value_name = "URL", requires = "md5")]
        url: Option<String>,
        /// The MD5 the archive at --url must have (hex).
        #[arg(long, value_name = "HEX", requires = "url")]
        md5: Option<String>,
        /// Hide the progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Print the splits, per-class counts, image size, each channel's pixel mean and std, and
    /// the per-step batch sizes; --sheet also draws a contact sheet of the classes.
    Inspect {
        /// Write a PNG with a row of training images per class.
        #[arg(long, value_name = "FILE")]
        sheet: Option<PathBuf>,
        /// Images per class on the sheet.
        #[arg(long, default_value_t = 8, requires = "sheet")]
        per_class: usize,
    },
    /// Pack the configured data set (any data.kind) into memory-mappable .npy shards with a
    /// SHA-256 manifest, for `data.kind = "packed"`. Decodes on all cores; run it again after
    /// an interruption (Ctrl-C) to resume: finished shards are verified and kept.
    Pack {
        /// Folder to write the packed data set into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Target size of an image shard, in MiB.
        #[arg(long, default_value_t = 256, value_name = "MIB")]
        shard_mib: usize,
        /// Skip images that cannot be read, listing them (default: stop at the first).
        #[arg(long)]
        skip_unreadable: bool,
        /// Hide the progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Check every file of a packed data set against its manifest's sizes and SHA-256, then
    /// its headers, shapes and labels; exit 1 naming each file that differs.
    Verify {
        /// The packed data set's folder.
        dir: PathBuf,
    },
    /// Write the first N images of a split as PNG files `NNNNN_<class>.png`.
    Export {
        /// train, unlabeled or test.
        #[arg(long, default_value = "train", value_parser = ["train", "unlabeled", "test"])]
        split: String,
        /// How many images.
        #[arg(long, default_value_t = 16)]
        count: usize,
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

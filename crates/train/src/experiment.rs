//! The whole seed pipeline and its phases, each writing into a run folder:
//! `config.toml`, `summary.txt`, `augmentations.png`, `<run>.csv` / `<run>.json` per run,
//! checkpoints (`baseline`, `encoder`, `projection_head`, `linear_probe`, `finetuned`
//! `.safetensors`), `val_acc.png`, `val_loss.png` and `report.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use augment::Augmenter;
use seeds::Stream;
use stl10_data::{BatchPlan, Dataset};
use tch::Device;

use crate::checkpoint::{self, write_file};
use crate::config::Config;
use crate::error::{Result, TrainError};
use crate::fit::{self, Observer, Phase, Position};
use crate::loader::{Feed, Loader, Resident};
use crate::metrics::History;
use crate::report::{Legend, image_grid, line_plot};
use crate::runtime::Compute;
use crate::state::{self, Source};
use crate::steps::TrainStep;
use crate::steps::{ContrastiveModel, SupervisedModel};

/// The libtorch release torch-sys 0.24 builds against (its build script enforces it).
pub const LIBTORCH_VERSION: &str = "2.11.0";

/// The three runs, in the seed's order, with the metric each is judged by.
pub const RUNS: [(&str, &str, &str); 3] = [
    ("baseline", "supervised baseline", "val_acc"),
    (
        "pretraining",
        "self-supervised pretraining (linear probe)",
        "val_p_acc",
    ),
    ("finetuning", "supervised fine-tuning", "val_acc"),
];

/// A loaded data set, its batch plan, how the steps run and, on CUDA, the data set's resident
/// copy on the device, shared by the phases.
pub struct Prepared {
    pub ds: Dataset,
    pub plan: BatchPlan,
    pub compute: Compute,
    pub resident: Option<Resident>,
    pub seed: u64,
    pub metrics_every: usize,
}

impl Prepared {
    /// Loads the data and plans the batches; an empty test split is an error, since every
    /// epoch is validated on it. On CUDA with `runtime.resident_data`, the uint8 images move
    /// to the device once; if they do not fit, batches come from host memory instead.
    pub fn new(cfg: &Config, device: Device) -> Result<Self> {
        Prepared::with_dataset(cfg, device, stl10_data::load(&cfg.data, cfg.runtime.seed)?)
    }

    /// [`Prepared::new`] on a data set already loaded (or derived from one, as the sweep's
    /// label budgets are).
    pub fn with_dataset(cfg: &Config, device: Device, ds: Dataset) -> Result<Self> {
        let plan = if ds.unlabeled.is_empty() {
            // Supervised runs only; pretraining refuses (see `require_unlabeled`).
            BatchPlan::supervised(ds.train.len(), cfg.data.batch_size)?
        } else {
            BatchPlan::new(ds.unlabeled.len(), ds.train.len(), cfg.data.batch_size)?
        };
        if ds.test.is_empty() {
            return Err(TrainError::file(
                &cfg.data.root,
                "the test split is empty: every epoch is validated on it",
            ));
        }
        tracing::info!(
            train = ds.train.len(),
            unlabeled = ds.unlabeled.len(),
            test = ds.test.len(),
            "{}",
            plan.describe()
        );
        let compute = Compute::new(cfg, device);
        let resident = (device.is_cuda() && cfg.runtime.resident_data)
            .then(|| match Resident::upload(&ds, device) {
                Ok(r) => {
                    tracing::info!(bytes = r.bytes(), "data set resident on {device:?}");
                    Some(r)
                }
                Err(e) => {
                    tracing::warn!("data set stays in host memory: {e}");
                    None
                }
            })
            .flatten();
        tracing::info!(compute = %compute.describe(), "steps run on");
        Ok(Prepared {
            ds,
            plan,
            compute,
            resident,
            seed: cfg.runtime.seed,
            metrics_every: cfg.runtime.metrics_every,
        })
    }

    /// An error unless the data set has unlabeled images (pretraining needs them).
    pub fn require_unlabeled(&self, cfg: &Config) -> Result<()> {
        if self.ds.unlabeled.is_empty() {
            return Err(TrainError::file(
                &cfg.data.root,
                "no unlabeled images for pretraining (STL-10: unlabeled_X.bin; folders: \
                 unlabeled/; IDX: set data.labeled_per_class to hold labels back)",
            ));
        }
        Ok(())
    }

    pub fn classes(&self) -> i64 {
        self.ds.num_classes() as i64
    }

    /// Batches of this data set, from the resident copy when there is one.
    pub fn loader(&self) -> Loader<'_> {
        Loader {
            ds: &self.ds,
            plan: self.plan,
            seed: self.seed,
            resident: self.resident.as_ref(),
        }
    }
}

/// A run folder being filled.
pub struct RunDir {
    pub path: PathBuf,
    /// Phases continue from their checkpoints in `state/` (`--resume`).
    pub resume: bool,
}

impl RunDir {
    /// A fresh run in `path`: created if missing, earlier phase checkpoints removed, and the
    /// resolved configuration recorded first.
    pub fn create(path: &Path, cfg: &Config) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| TrainError::io(path, e))?;
        let dir = RunDir {
            path: path.to_path_buf(),
            resume: false,
        };
        let states = dir.state_dir();
        if states.exists() {
            std::fs::remove_dir_all(&states).map_err(|e| TrainError::io(&states, e))?;
        }
        write_file(&dir.file("config.toml"), cfg.to_toml())?;
        Ok(dir)
    }

    /// Continues the run in `path`, whose `config.toml` may differ from `cfg` only in what
    /// [`Config::resume_conflicts`] allows (epochs, learning rates, runtime); records `cfg`.
    pub fn resume(path: &Path, cfg: &Config) -> Result<Self> {
        let saved_path = path.join("config.toml");
        if !saved_path.is_file() {
            return Err(TrainError::Resume {
                path: path.to_path_buf(),
                problem: "not a run folder (no config.toml)".into(),
            });
        }
        let saved = Config::load(Some(&saved_path), &[])?;
        let conflicts = cfg.resume_conflicts(&saved);
        if !conflicts.is_empty() {
            return Err(TrainError::Resume {
                path: saved_path,
                problem: format!(
                    "the configuration differs in {} (a resumed run may change only epochs, \
                     learning rates and [runtime] keys other than seed)",
                    conflicts.join(", ")
                ),
            });
        }
        write_file(&saved_path, cfg.to_toml())?;
        Ok(RunDir {
            path: path.to_path_buf(),
            resume: true,
        })
    }

    /// Where the phases keep their checkpoints.
    pub fn state_dir(&self) -> PathBuf {
        self.path.join("state")
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `classes.txt`: the class names in label order, one per line (what `predict` prints).
    pub fn write_classes(&self, names: &[String]) -> Result<()> {
        write_file(&self.file(CLASSES_FILE), names.join("\n") + "\n")
    }

    fn save_history(&self, h: &History) -> Result<()> {
        write_file(&self.file(&format!("{}.csv", h.run)), h.to_csv())?;
        write_file(&self.file(&format!("{}.json", h.run)), h.to_json())
    }

    /// Reads a run's history back from its JSON: `None` if the run has none yet, an error
    /// naming the file if it is not a history.
    pub fn load_history(&self, run: &str) -> Result<Option<History>> {
        let path = self.file(&format!("{run}.json"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TrainError::io(&path, e)),
        };
        History::from_json(&text)
            .map(Some)
            .map_err(|e| TrainError::file(&path, format!("not a run history: {e}")))
    }
}

/// One phase of the experiment as [`train_phase`] runs it.
struct PhaseSpec {
    run: &'static str,
    feed: Feed,
    epochs: usize,
    /// The key of `epochs` in the configuration (for messages).
    epochs_key: &'static str,
    /// What the phase starts from, when not from scratch.
    source: Option<Source>,
}

/// Trains `model` through `spec`, from its checkpoint when the folder is resumed (unless what
/// the phase started from has changed since), writing a checkpoint and the history after
/// every epoch.
fn train_phase<S: TrainStep>(
    model: &mut S,
    spec: PhaseSpec,
    prep: &Prepared,
    dir: &RunDir,
    obs: &mut dyn Observer,
) -> Result<History> {
    let states = dir.state_dir();
    let (mut history, mut start) = (History::new(spec.run), Position::default());
    if let Some(saved) = dir
        .resume
        .then(|| state::load(&states, spec.run))
        .transpose()?
        .flatten()
    {
        let same_source = saved.state.source.as_ref().map(|s| &s.sha256)
            == spec.source.as_ref().map(|s| &s.sha256);
        let pos = &saved.state.position;
        if !same_source {
            tracing::info!(
                "{}: its starting point changed since its checkpoint; starting over",
                spec.run
            );
        } else if pos.epoch > spec.epochs || saved.state.history.epochs.len() != pos.epoch {
            return Err(TrainError::Resume {
                path: saved.path.clone(),
                problem: format!(
                    "{} has {} epochs done, more than {} = {}",
                    spec.run, pos.epoch, spec.epochs_key, spec.epochs
                ),
            });
        } else {
            saved.restore_into(model)?;
            tracing::info!(
                "{}: resuming after {} epochs and {} steps",
                spec.run,
                pos.epoch,
                pos.step
            );
            history = saved.state.history;
            start = saved.state.position;
        }
    }
    let loader = prep.loader();
    let phase = Phase {
        run: spec.run,
        loader: &loader,
        feed: spec.feed,
        epochs: spec.epochs,
        metrics_every: prep.metrics_every,
    };
    let source = spec.source;
    let mut checkpoint = |m: &S, h: &History, p: &Position| {
        state::save(&states, spec.run, m, h, p, source.as_ref())?;
        if p.step == 0 {
            dir.save_history(h)?;
        }
        Ok(())
    };
    fit::fit(model, &phase, history, start, &mut checkpoint, obs)
}

/// The run folder's class names, one per line in label order (what `predict` prints).
pub const CLASSES_FILE: &str = "classes.txt";

/// Writes `summary.txt` (Keras-style summaries of every model), `classes.txt` and
/// `augmentations.png`.
pub fn write_overview(cfg: &Config, prep: &Prepared, dir: &RunDir, count: usize) -> Result<()> {
    let cpu = Compute::new(cfg, Device::Cpu);
    let model = ContrastiveModel::new(cfg, prep.classes(), cpu)?;
    let classifier = SupervisedModel::new(cfg, prep.classes(), cpu, false)?;
    let text = format!(
        "{}\n{}\n{}\n{}",
        model.encoder.summary(),
        model.projection_head.summary(),
        model.linear_probe.summary(),
        classifier.classifier.summary()
    );
    write_file(&dir.file("summary.txt"), text)?;
    dir.write_classes(&prep.ds.class_names)?;
    augmentation_grid(cfg, &prep.ds, count, &dir.file("augmentations.png"))
}

/// Most images per row of the augmentation grid.
pub const MAX_PREVIEW: usize = 256;

/// The seed's figure of `count` training images: original, weakly augmented and two strongly
/// augmented versions.
pub fn augmentation_grid(cfg: &Config, ds: &Dataset, count: usize, path: &Path) -> Result<()> {
    if ds.train.is_empty() {
        return Err(TrainError::file(
            &cfg.data.root,
            "the train split is empty: no images to preview",
        ));
    }
    if !(1..=MAX_PREVIEW).contains(&count) {
        return Err(TrainError::file(
            path,
            format!("--count must be in 1..={MAX_PREVIEW} images per row, got {count}"),
        ));
    }
    let n = count.min(ds.train.len());
    let images = ds.train.images(&(0..n).collect::<Vec<_>>());
    let seed = cfg.runtime.seed;
    let mut weak = Augmenter::new(
        cfg.augment.classification,
        seeds::seed(seed, Stream::PreviewWeak),
        Device::Cpu,
    )?;
    let mut strong = Augmenter::new(
        cfg.augment.contrastive,
        seeds::seed(seed, Stream::PreviewStrong),
        Device::Cpu,
    )?;
    let rows = [
        ("Original", weak.inference(&images)),
        ("Weakly augmented", weak.augment(&images)?),
        ("Strongly augmented", strong.augment(&images)?),
        ("Strongly augmented", strong.augment(&images)?),
    ];
    image_grid(path, &rows)
}

/// The supervised baseline from a fresh encoder; saves `baseline.safetensors`.
pub fn baseline(
    cfg: &Config,
    prep: &Prepared,
    dir: &RunDir,
    obs: &mut dyn Observer,
) -> Result<History> {
    let mut model = SupervisedModel::new(cfg, prep.classes(), prep.compute, false)?;
    let spec = PhaseSpec {
        run: "baseline",
        feed: Feed::Labeled,
        epochs: cfg.baseline.epochs,
        epochs_key: "baseline.epochs",
        source: None,
    };
    let h = train_phase(&mut model, spec, prep, dir, obs)?;
    checkpoint::save(
        &model.vs,
        &["encoder", "classifier"],
        &dir.file("baseline.safetensors"),
    )?;
    Ok(h)
}

/// Contrastive pretraining with the probe; saves `encoder`, `projection_head` and
/// `linear_probe` `.safetensors`.
pub fn pretrain(
    cfg: &Config,
    prep: &Prepared,
    dir: &RunDir,
    obs: &mut dyn Observer,
) -> Result<History> {
    prep.require_unlabeled(cfg)?;
    let mut model = ContrastiveModel::new(cfg, prep.classes(), prep.compute)?;
    let spec = PhaseSpec {
        run: "pretraining",
        feed: Feed::Zipped,
        epochs: cfg.pretrain.epochs,
        epochs_key: "pretrain.epochs",
        source: None,
    };
    let h = train_phase(&mut model, spec, prep, dir, obs)?;
    checkpoint::save(&model.vs, &["encoder"], &dir.file("encoder.safetensors"))?;
    checkpoint::save(
        &model.vs,
        &["projection_head"],
        &dir.file("projection_head.safetensors"),
    )?;
    checkpoint::save(
        &model.probe_vs,
        &["linear_probe"],
        &dir.file("linear_probe.safetensors"),
    )?;
    let encode = |x: &tch::Tensor| tch::nn::ModuleT::forward_t(&model.encoder, x, false);
    crate::embed::plot_test_split(&prep.compute, encode, &prep.ds, &dir.file("embedding.png"))?;
    Ok(h)
}

/// Fine-tunes the encoder in `encoder` (a safetensors file with `encoder.*`) plus a new
/// Dense(classes); saves `finetuned.safetensors`. A resumed fine-tuning continues only from
/// the same encoder file contents; after a changed encoder it starts over.
pub fn finetune(
    cfg: &Config,
    prep: &Prepared,
    encoder: &Path,
    dir: &RunDir,
    obs: &mut dyn Observer,
) -> Result<History> {
    let mut model = SupervisedModel::new(cfg, prep.classes(), prep.compute, true)?;
    checkpoint::load(&model.vs, "encoder", encoder)?;
    let spec = PhaseSpec {
        run: "finetuning",
        feed: Feed::Labeled,
        epochs: cfg.finetune.epochs,
        epochs_key: "finetune.epochs",
        source: Some(Source::of(encoder)?),
    };
    let h = train_phase(&mut model, spec, prep, dir, obs)?;
    checkpoint::save(
        &model.vs,
        &["encoder", "classifier"],
        &dir.file("finetuned.safetensors"),
    )?;
    Ok(h)
}

/// The encoder file a resumed fine-tuning in `dir` started from.
pub fn resumed_encoder(dir: &RunDir) -> Result<PathBuf> {
    let saved = state::load(&dir.state_dir(), "finetuning")?;
    saved
        .and_then(|s| s.state.source)
        .map(|s| s.path)
        .ok_or_else(|| TrainError::Resume {
            path: dir.path.clone(),
            problem: "no fine-tuning checkpoint to take the encoder from; pass --encoder".into(),
        })
}

/// Test loss and accuracy of a classifier checkpoint (`baseline` or `finetuned`).
pub fn evaluate(cfg: &Config, prep: &Prepared, checkpoint_path: &Path) -> Result<(f64, f64)> {
    let model = SupervisedModel::new(cfg, prep.classes(), prep.compute, false)?;
    checkpoint::load(&model.vs, "encoder", checkpoint_path)?;
    checkpoint::load(&model.vs, "classifier", checkpoint_path)?;
    fit::evaluate(&model, &prep.loader())
}

/// Best validation accuracy of each run present, in the seed's order: `(label, best)`.
pub fn best_accuracies(histories: &[Option<History>; 3]) -> Vec<(&'static str, f64)> {
    RUNS.iter()
        .zip(histories)
        .filter_map(|((_, label, metric), h)| Some((*label, h.as_ref()?.best(metric)?)))
        .collect()
}

/// The kNN monitor's metric in the pretraining history, and its label in plots and reports.
pub const KNN_METRIC: &str = "val_knn_acc";
pub const KNN_LABEL: &str = "self-supervised pretraining (kNN)";

/// Best `val_knn_acc` of the pretraining history, when the monitor ran.
pub fn best_knn(histories: &[Option<History>; 3]) -> Option<f64> {
    histories[1].as_ref()?.best(KNN_METRIC)
}

/// Writes `val_acc.png`, `val_loss.png` and `report.md` for whichever runs `dir` holds.
pub fn write_report(cfg: &Config, prep: &Prepared, dir: &RunDir) -> Result<[Option<History>; 3]> {
    write_report_with(cfg, prep, dir, "")
}

/// [`write_report`] with `sections` (markdown) appended to `report.md`.
pub fn write_report_with(
    cfg: &Config,
    prep: &Prepared,
    dir: &RunDir,
    sections: &str,
) -> Result<[Option<History>; 3]> {
    let [a, b, c] = RUNS.map(|(run, _, _)| dir.load_history(run));
    let histories = [a?, b?, c?];
    let series = |acc: bool| -> Vec<(&str, Vec<f64>)> {
        let mut lines: Vec<(&str, Vec<f64>)> = RUNS
            .iter()
            .zip(&histories)
            .filter_map(|((_, label, metric), h)| {
                let metric = if acc {
                    metric.to_string()
                } else {
                    metric.replace("acc", "loss")
                };
                Some((*label, h.as_ref()?.series(&metric)))
            })
            .collect();
        let knn = histories[1].as_ref().map(|h| h.series(KNN_METRIC));
        if let Some(knn) = knn.filter(|k| acc && !k.is_empty()) {
            lines.push((KNN_LABEL, knn));
        }
        lines
    };
    line_plot(
        &dir.file("val_acc.png"),
        "Classification accuracy during training",
        "validation accuracy",
        Legend::LowerRight,
        &series(true),
    )?;
    line_plot(
        &dir.file("val_loss.png"),
        "Classification loss during training",
        "validation loss",
        Legend::UpperRight,
        &series(false),
    )?;

    let mut md = String::new();
    let _ = writeln!(md, "# simclr-rs run\n");
    let _ = writeln!(md, "- compute: {}", prep.compute.describe());
    let _ = writeln!(
        md,
        "- data: {}",
        if prep.resident.is_some() {
            "resident on the device, batches gathered there"
        } else {
            "host memory, one upload per batch"
        }
    );
    let _ = writeln!(
        md,
        "- versions: simclr-rs {}, tch 0.24, libtorch {LIBTORCH_VERSION}",
        env!("CARGO_PKG_VERSION")
    );
    let d = &prep.ds;
    let _ = writeln!(
        md,
        "- data: {:?} at {} ({} labeled train, {} unlabeled, {} test, {}x{} images, {} classes)",
        format!("{:?}", cfg.data.kind).to_lowercase(),
        cfg.data.root.display(),
        d.train.len(),
        d.unlabeled.len(),
        d.test.len(),
        d.image_size,
        d.image_size,
        d.num_classes()
    );
    let _ = writeln!(
        md,
        "- steps per epoch: {} ({})",
        prep.plan.steps,
        prep.plan.describe()
    );
    let _ = writeln!(md, "- seed: {}\n", cfg.runtime.seed);
    let _ = writeln!(
        md,
        "| run | best validation accuracy | epochs | mean epoch time (s) | images/s |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for ((_, label, metric), h) in RUNS.iter().zip(&histories) {
        let Some(h) = h else { continue };
        let n = h.epochs.len().max(1) as f64;
        let secs = h.epochs.iter().map(|e| e.train_seconds).sum::<f64>() / n;
        let ips = h.epochs.iter().map(|e| e.images_per_second).sum::<f64>() / n;
        let best = h
            .best(metric)
            .map_or("n/a".into(), |b| format!("{:.2}%", b * 100.0));
        let _ = writeln!(
            md,
            "| {label} | {best} | {} | {secs:.1} | {ips:.0} |",
            h.epochs.len()
        );
    }
    if let Some(best) = best_knn(&histories) {
        let _ = writeln!(
            md,
            "| {KNN_LABEL}, k = {}, t = {} | {:.2}% | | | |",
            cfg.eval.knn_k,
            cfg.eval.knn_temperature,
            best * 100.0
        );
    }
    let _ = writeln!(
        md,
        "\nPublished for the Keras example (STL-10, 20 epochs): baseline 59.9%, linear probe 56.7%, fine-tuned 65.3%.\n"
    );
    let _ = writeln!(
        md,
        "![validation accuracy](val_acc.png)\n\n![validation loss](val_loss.png)\n\n![augmentations](augmentations.png)"
    );
    if dir.file("embedding.png").is_file() {
        let _ = writeln!(
            md,
            "\n![test-set features after pretraining, PCA](embedding.png)"
        );
    }
    md.push_str(sections);
    write_file(&dir.file("report.md"), md)?;
    Ok(histories)
}

//! TensorBoard event files in a run folder, written while the run goes: `tensorboard/<run>/`
//! for each of baseline, pretraining and fine-tuning (`tensorboard --logdir runs/`).
//!
//! - `epoch/<metric>`: every value of the run's history (`<run>.json`) at its epoch, training
//!   time and images a second included; flushed at the end of each epoch;
//! - `step/<metric>`: the running means of the epoch (as the progress line shows them) and
//!   `learning_rate/<optimizer>`, every `runtime.metrics_every` steps, at the global step;
//! - `config` (the resolved configuration, as text) and `augmentations` (the grid) at step 0;
//! - pretraining: `features/embedding` (the feature-space picture) at its last epoch, and the
//!   projector's files: test-set features with their classes and thumbnails.
//!
//! A resumed run drops what was logged after its checkpoint and logs it again, so no tag has
//! a step twice. A file that cannot be written ends the logging with a warning, not the run.

use std::path::{Path, PathBuf};

use tch::Kind;
use tensorboard::projector::{self, Embedding, Sprite};
use tensorboard::{Error, EventWriter};
use train::config::Config;
use train::error::Result;
use train::experiment::run::Run;
use train::fit::metrics::EpochRecord;
use train::fit::{Observer, Position, StepReport};
use train::prepared::Prepared;
use train::run_dir::RunDir;

use crate::embedding::{self as embedding, TestFeatures};

/// After pretraining: `embedding.png` of the pretrained encoder in `dir` and, where
/// `tensorboard` logs the run, the same picture and the projector's files there.
pub fn pretrained_features(
    cfg: &Config,
    prep: &Prepared,
    dir: &RunDir,
    tensorboard: Option<&mut TensorBoard>,
) -> Result<()> {
    let features = embedding::of_pretrained(&cfg.model_shapes(), prep, dir)?;
    if let Some(tb) = tensorboard {
        tb.pretrained(cfg.pretrain.epochs, &features, &prep.ds.class_names);
    }
    Ok(())
}

/// Thumbnails in the projector's sprite are at most this many pixels a side.
const THUMBNAIL: i64 = 32;

/// The projector's embedding of the pretrained encoder's test-set features.
const PROJECTOR_NAME: &str = "test_features";

/// Logs a run folder's runs into `tensorboard/`.
pub struct TensorBoard {
    root: PathBuf,
    config: String,
    augmentations: PathBuf,
    embedding: PathBuf,
    open: Option<Open>,
}

/// The run being logged.
struct Open {
    run: String,
    writer: EventWriter,
    /// Steps an epoch, and epochs done before the current one.
    steps: usize,
    done: usize,
}

/// What a run resumed after `epochs` epochs and `global` steps keeps of what it logged
/// before: the epochs and steps its checkpoint covers. The config and the grid at step 0 are
/// logged anew by every session (a resumed run may change its epochs and rates).
fn kept(tag: &str, step: i64, epochs: usize, global: usize) -> bool {
    if tag.starts_with("step/") || tag.starts_with("learning_rate/") {
        step <= global as i64
    } else if tag.starts_with("epoch/") || tag.starts_with("features/") {
        step <= epochs as i64
    } else {
        false
    }
}

/// The configuration as a markdown code block.
fn code_block(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

impl TensorBoard {
    /// Logs into `dir`'s `tensorboard/`; `config` is the resolved configuration (TOML).
    pub fn new(dir: &RunDir, config: String) -> Self {
        TensorBoard {
            root: dir.file("tensorboard"),
            config,
            augmentations: dir.file("augmentations.png"),
            embedding: dir.file("embedding.png"),
            open: None,
        }
    }

    /// Logs `dir`'s runs as `cfg` says (`log.tensorboard`): `None` when it is off.
    pub fn for_run(dir: &RunDir, cfg: &Config) -> Option<Self> {
        cfg.log
            .tensorboard
            .then(|| TensorBoard::new(dir, cfg.to_toml()))
    }

    /// After pretraining's `epochs` epochs: the feature-space picture (the run folder's
    /// `embedding.png`) as `features/embedding` at that epoch, and the projector's files for
    /// `features`.
    pub fn pretrained(&mut self, epochs: usize, features: &TestFeatures, class_names: &[String]) {
        let run = Run::Pretraining.name();
        if self.open.as_ref().is_none_or(|o| o.run != run) {
            self.open_run(run, &Position::default(), 1, |_, _| true);
        }
        let png = match std::fs::read(&self.embedding) {
            Ok(png) => png,
            Err(e) => {
                return warn(&Error {
                    path: self.embedding.clone(),
                    source: e,
                });
            }
        };
        self.log(|w| w.image("features/embedding", epochs as i64, &png));
        self.log(|w| w.flush());
        if let Err(e) = projector_files(&self.root.join(run), features, class_names) {
            warn(&e);
        }
    }

    fn open_run(
        &mut self,
        run: &str,
        at: &Position,
        steps: usize,
        keep: impl Fn(&str, i64) -> bool,
    ) {
        self.open = match EventWriter::open(&self.root.join(run), keep) {
            Ok(writer) => Some(Open {
                run: run.to_string(),
                writer,
                steps,
                done: at.epoch,
            }),
            Err(e) => {
                warn(&e);
                None
            }
        };
    }

    /// Runs `write` on the open writer; an error is warned of once and ends the logging of
    /// this run.
    fn log(&mut self, write: impl FnOnce(&mut EventWriter) -> Result<(), Error>) {
        let Some(open) = &mut self.open else { return };
        if let Err(e) = write(&mut open.writer) {
            warn(&e);
            self.open = None;
        }
    }
}

fn warn(e: &Error) {
    tracing::warn!("TensorBoard: {e}; the run goes on without these logs");
}

impl Observer for TensorBoard {
    fn run_start(&mut self, run: &str, at: &Position, steps: usize) {
        let (epochs, global) = (at.epoch, at.epoch * steps + at.step);
        self.open_run(run, at, steps, move |tag, step| {
            kept(tag, step, epochs, global)
        });
        let config = code_block(&self.config);
        self.log(|w| w.text("config", 0, &config));
        if let Ok(png) = std::fs::read(&self.augmentations) {
            self.log(|w| w.image("augmentations", 0, &png));
        }
        self.log(|w| w.flush());
    }

    fn epoch_start(&mut self, _run: &str, epoch: usize, _epochs: usize, steps: usize) {
        if let Some(open) = &mut self.open {
            open.done = epoch - 1;
            open.steps = steps;
        }
    }

    fn step(&mut self, s: &StepReport) {
        let Some(open) = &self.open else { return };
        if !s.read {
            return;
        }
        let global = (open.done * open.steps + s.step) as i64;
        self.log(|w| {
            for (name, value) in s.means {
                w.scalar(&format!("step/{name}"), global, *value)?;
            }
            for (name, rate) in s.learning_rates {
                w.scalar(&format!("learning_rate/{name}"), global, *rate)?;
            }
            Ok(())
        });
    }

    fn epoch_end(&mut self, _run: &str, record: &EpochRecord) {
        let epoch = record.epoch as i64;
        self.log(|w| {
            for (name, value) in &record.metrics {
                w.scalar(&format!("epoch/{name}"), epoch, *value)?;
            }
            w.scalar("epoch/train_seconds", epoch, record.train_seconds)?;
            w.scalar("epoch/images_per_second", epoch, record.images_per_second)?;
            w.flush()
        });
    }
}

/// The projector's files for `f` in `dir`: the features, each row's class name and label,
/// and thumbnails of at most [`THUMBNAIL`] pixels a side.
fn projector_files(dir: &Path, f: &TestFeatures, class_names: &[String]) -> Result<(), Error> {
    let bad = |problem: String| Error {
        path: dir.to_path_buf(),
        source: std::io::Error::other(problem),
    };
    let features = f.features.to_device(tch::Device::Cpu).to_kind(Kind::Float);
    let (_, dim) = features.size2().map_err(|e| bad(e.to_string()))?;
    let values = Vec::<f32>::try_from(features.flatten(0, -1)).map_err(|e| bad(e.to_string()))?;
    let labels = Vec::<i64>::try_from(f.labels.to_device(tch::Device::Cpu))
        .map_err(|e| bad(e.to_string()))?;
    let metadata: Vec<Vec<String>> = labels
        .iter()
        .map(|&l| {
            let name = class_names.get(l.max(0) as usize).cloned();
            vec![name.unwrap_or_else(|| l.to_string()), l.to_string()]
        })
        .collect();
    let size = (f.images.image_size() as i64).min(THUMBNAIL);
    // A few hundred images at a time: the float copy of all of them (up to 5,000 at 96 px)
    // would be over half a gigabyte.
    let all: Vec<usize> = (0..f.images.len()).collect();
    let mut thumbnails = Vec::with_capacity(all.len() * (size * size * 3) as usize);
    for chunk in all.chunks(256) {
        let images = f.images.images(chunk).map_err(|e| bad(e.to_string()))?;
        let small = images
            .to_kind(Kind::Float)
            .adaptive_avg_pool2d([size, size])
            .round()
            .clamp(0.0, 255.0)
            .to_kind(Kind::Uint8)
            .permute([0, 2, 3, 1])
            .contiguous();
        thumbnails
            .extend(Vec::<u8>::try_from(small.flatten(0, -1)).map_err(|e| bad(e.to_string()))?);
    }
    let embedding = Embedding {
        name: PROJECTOR_NAME,
        values: &values,
        dim: dim as usize,
        columns: &["class", "label"],
        metadata: &metadata,
        sprite: Some(Sprite {
            thumbnails: &thumbnails,
            size: size as usize,
        }),
    };
    projector::write(dir, &[embedding])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensorboard::proto::{Kind, What};

    /// One epoch of `steps` steps for `run`, metrics read every 2 steps and at the last; the
    /// loss of step s is `base + s`.
    fn epoch(tb: &mut TensorBoard, run: &str, epoch: usize, steps: usize, from: usize, base: f64) {
        tb.epoch_start(run, epoch, 9, steps);
        for step in from + 1..=steps {
            let means = [("loss", base + step as f64)];
            tb.step(&StepReport {
                step,
                means: &means,
                read: step % 2 == 0 || step == steps,
                learning_rates: &[("optimizer", 0.5)],
            });
        }
        let record = EpochRecord {
            epoch,
            metrics: vec![("val_acc".into(), base + epoch as f64)],
            train_seconds: 1.0,
            images_per_second: 2.0,
        };
        tb.epoch_end(run, &record);
    }

    /// `tag`'s (step, value) pairs in `dir`'s event files for `run`.
    fn logged(dir: &Path, run: &str, tag: &str) -> Vec<(i64, f32)> {
        let mut out = Vec::new();
        for file in tensorboard::event_files(&dir.join("tensorboard").join(run)).unwrap() {
            for e in tensorboard::read_events(&file).unwrap() {
                let Some(What::Summary(s)) = e.what else {
                    continue;
                };
                for v in s.value.into_iter().filter(|v| v.tag == tag) {
                    if let Some(Kind::SimpleValue(x)) = v.kind {
                        out.push((e.step, x));
                    }
                }
            }
        }
        out.sort_by_key(|p| p.0);
        out
    }

    #[test]
    fn a_resumed_run_logs_again_what_came_after_its_checkpoint_at_the_same_global_steps() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = RunDir::read_only(dir.path());
        // Two epochs of 5 steps logged at values from 100, as if a crash followed: the
        // checkpoint holds epoch 1 and 2 steps of epoch 2.
        let mut tb = TensorBoard::new(&run_dir, "seed = 1".into());
        tb.run_start("baseline", &Position::default(), 5);
        epoch(&mut tb, "baseline", 1, 5, 0, 0.0);
        epoch(&mut tb, "baseline", 2, 5, 0, 100.0);
        drop(tb);
        let at = Position {
            epoch: 1,
            step: 2,
            ..Position::default()
        };
        let mut tb = TensorBoard::new(&run_dir, "seed = 1".into());
        tb.run_start("baseline", &at, 5);
        epoch(&mut tb, "baseline", 2, 5, 2, 0.0);
        // Read at steps 2, 4 and 5 of each epoch: global 2, 4, 5, 7, 9, 10. Epoch 2's step 2
        // (global 7) is the checkpoint's and stays; 9 and 10 are the resumed run's.
        assert_eq!(
            logged(dir.path(), "baseline", "step/loss"),
            [
                (2, 2.0),
                (4, 4.0),
                (5, 5.0),
                (7, 102.0),
                (9, 4.0),
                (10, 5.0)
            ]
        );
        assert_eq!(
            logged(dir.path(), "baseline", "epoch/val_acc"),
            [(1, 1.0), (2, 2.0)]
        );
        assert_eq!(
            logged(dir.path(), "baseline", "learning_rate/optimizer").len(),
            6
        );
    }

    #[test]
    fn a_folder_that_cannot_be_written_leaves_the_run_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tensorboard"), "a file, not a folder").unwrap();
        let mut tb = TensorBoard::new(&RunDir::read_only(dir.path()), String::new());
        tb.run_start("baseline", &Position::default(), 5);
        epoch(&mut tb, "baseline", 1, 5, 0, 0.0);
        assert!(tb.open.is_none());
    }

    #[test]
    fn a_resume_keeps_what_its_checkpoint_covers() {
        // Resumed at epoch 2, step 3 of 10 a epoch: global step 23.
        assert!(kept("step/c_loss", 23, 2, 23));
        assert!(!kept("step/c_loss", 24, 2, 23));
        assert!(kept("learning_rate/optimizer", 20, 2, 23));
        assert!(kept("epoch/val_acc", 2, 2, 23));
        assert!(!kept("epoch/val_acc", 3, 2, 23));
        assert!(!kept("features/embedding", 3, 2, 23));
        assert!(!kept("config", 0, 2, 23), "logged anew");
        assert_eq!(code_block("a = 1\nb = 2"), "    a = 1\n    b = 2\n");
    }
}

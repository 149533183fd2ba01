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
use train::fit::metrics::EpochRecord;
use train::fit::{Observer, Position, StepReport};
use train::run_dir::RunDir;

use crate::embedding::TestFeatures;

/// Thumbnails in the projector's sprite are at most this many pixels a side.
pub const THUMBNAIL: i64 = 32;

/// The projector's embedding of the pretrained encoder's test-set features.
pub const PROJECTOR_NAME: &str = "test_features";

/// Logs a run folder's runs into `tensorboard/`.
pub struct TensorBoard {
    root: PathBuf,
    config: String,
    augmentations: PathBuf,
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

/// What a resumed run at `at` (with `steps` steps an epoch) keeps of what it logged before.
fn kept(tag: &str, step: i64, at: &Position, steps: usize) -> bool {
    let global = (at.epoch * steps + at.step) as i64;
    if tag.starts_with("step/") || tag.starts_with("learning_rate/") {
        step <= global
    } else if tag.starts_with("epoch/") || tag.starts_with("features/") {
        step <= at.epoch as i64
    } else {
        true
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
            open: None,
        }
    }

    /// Where `run`'s event files go.
    pub fn run_dir(&self, run: &str) -> PathBuf {
        self.root.join(run)
    }

    /// The feature-space picture (`picture`, a PNG) as `features/embedding` at `epoch` of
    /// `run`, and the projector's files for `features` beside `run`'s events.
    pub fn features(
        &mut self,
        run: &str,
        epoch: usize,
        picture: &Path,
        features: &TestFeatures,
        class_names: &[String],
    ) {
        if self.open.as_ref().is_none_or(|o| o.run != run) {
            self.open_run(run, &Position::default(), 1, |_, _| true);
        }
        let png = match std::fs::read(picture) {
            Ok(png) => png,
            Err(e) => {
                return warn(&Error {
                    path: picture.into(),
                    source: e,
                });
            }
        };
        self.log(|w| w.image("features/embedding", epoch as i64, &png));
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
    tracing::warn!("TensorBoard: {e}; no more events are written for this run");
}

impl Observer for TensorBoard {
    fn run_start(&mut self, run: &str, at: &Position, steps: usize) {
        let at_ = at.clone();
        self.open_run(run, at, steps, move |tag, step| {
            kept(tag, step, &at_, steps)
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
    let size = f.images.size()[2].min(THUMBNAIL);
    let thumbnails = f
        .images
        .to_device(tch::Device::Cpu)
        .to_kind(Kind::Float)
        .adaptive_avg_pool2d([size, size])
        .round()
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8)
        .permute([0, 2, 3, 1])
        .contiguous();
    let thumbnails =
        Vec::<u8>::try_from(thumbnails.flatten(0, -1)).map_err(|e| bad(e.to_string()))?;
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

    #[test]
    fn a_resume_keeps_what_its_checkpoint_covers() {
        // Resumed at epoch 2, step 3 of 10 a epoch: global step 23.
        let at = Position {
            epoch: 2,
            step: 3,
            ..Position::default()
        };
        assert!(kept("step/c_loss", 23, &at, 10));
        assert!(!kept("step/c_loss", 24, &at, 10));
        assert!(kept("learning_rate/optimizer", 20, &at, 10));
        assert!(kept("epoch/val_acc", 2, &at, 10));
        assert!(!kept("epoch/val_acc", 3, &at, 10));
        assert!(!kept("features/embedding", 3, &at, 10));
        assert!(kept("config", 0, &at, 10));
        assert_eq!(code_block("a = 1\nb = 2"), "    a = 1\n    b = 2\n");
    }
}

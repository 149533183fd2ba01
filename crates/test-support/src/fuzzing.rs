//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): the
//! checkpoint readers exactly as `finetune --encoder`, `evaluate` and `--resume` call them, on a
//! small classifier.

use std::path::Path;

use train::config::SupervisedSettings;
use train::error::Result;
use train::run_dir::{checkpoint, state};
use train::runtime::Compute;
use train::steps::{SupervisedModel, TrainStep};

/// A small classifier whose files the fuzz target feeds through the readers.
pub struct Classifier(SupervisedModel);

impl Classifier {
    /// A fresh classifier of `settings` for `classes` classes, run as `compute` says.
    pub fn new(settings: &SupervisedSettings, classes: i64, compute: Compute) -> Result<Self> {
        SupervisedModel::new(settings, classes, compute).map(Classifier)
    }

    /// Writes the model's resumable tensors to `path` (a valid file for a state JSON to name).
    pub fn write_state_tensors(&self, path: &Path) -> Result<()> {
        let snapshot = self.0.snapshot();
        tch::Tensor::write_safetensors(&snapshot.tensors, path)?;
        Ok(())
    }

    /// Loads `encoder.*` and `classifier.*` from the safetensors file `path`, each tried (the
    /// first error is returned).
    pub fn load_checkpoint(&self, path: &Path) -> Result<()> {
        let encoder = checkpoint::load(&self.0.vs, "encoder", path);
        let classifier = checkpoint::load(&self.0.vs, "classifier", path);
        encoder.and(classifier).map(|_| ())
    }

    /// Reads `dir/<run>.json` and its tensors as a phase checkpoint and restores them.
    pub fn resume_from(&mut self, dir: &Path, run: &str) -> Result<()> {
        if let Some(loaded) = state::load(dir, run)? {
            loaded.restore_into(&mut self.0)?;
        }
        Ok(())
    }
}

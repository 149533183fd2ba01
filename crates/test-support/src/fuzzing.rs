//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): the
//! checkpoint readers exactly as `finetune --encoder`, `evaluate` and `--resume` call them, on a
//! small classifier.

use std::path::Path;

use tch::Device;

use train::config::Config;
use train::error::Result;
use train::run_dir::{checkpoint, state};
use train::runtime::Compute;
use train::steps::{SupervisedModel, TrainStep};

/// A small classifier whose files the fuzz target feeds through the readers.
pub struct Classifier(SupervisedModel);

impl Classifier {
    /// A fresh baseline classifier of `cfg` for `classes` classes on the CPU.
    pub fn new(cfg: &Config, classes: i64) -> Result<Self> {
        let compute = Compute::new(cfg, Device::Cpu);
        SupervisedModel::new(&cfg.supervised_baseline(), classes, compute).map(Classifier)
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

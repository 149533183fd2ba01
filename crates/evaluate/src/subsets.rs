//! Training and judging on a labeled subset of the full data, as the label-efficiency sweep's
//! budgets and STL-10's folds do: the subset's supervised schedule and data, and the linear
//! evaluation and kNN on its frozen features.

use std::path::Path;

use stl10_data::{Dataset, Split};
use tch::Device;

use train::config::Config;
use train::features::{self, FrozenEncoder};
use train::prepared::Prepared;
use train::run_dir::RunDir;
use train::{error::Result, error::TrainError};

/// The frozen features of the test split and its labels, on `device`.
/// An error names `root` (`data.root`) when the split has no labels.
pub(crate) fn test_features(
    root: &Path,
    frozen: &FrozenEncoder,
    full: &Dataset,
    device: Device,
) -> Result<(tch::Tensor, tch::Tensor)> {
    let labels = features::labels(&full.test, device)
        .ok_or_else(|| TrainError::file(root, "the test split has no labels"))?;
    Ok((frozen.split(&full.test)?, labels))
}

/// What every subset shares: the experiment's plan (its supervised epoch), the full labeled
/// data, the encoder and the test features.
pub(crate) struct Subsets<'a> {
    pub cfg: &'a Config,
    pub device: Device,
    pub prep: &'a Prepared,
    pub full: &'a Dataset,
    pub encoder: &'a Path,
    pub frozen: &'a FrozenEncoder,
    /// Test features and labels.
    pub test: &'a (tch::Tensor, tch::Tensor),
    pub out: &'a Path,
}

impl Subsets<'_> {
    /// The run folder `out/<name>` of a subset's supervised runs (its `config.toml` and
    /// `classes.txt` written), with their configuration and data.
    pub(crate) fn run_folder(
        &self,
        name: &str,
        positions: &[usize],
    ) -> Result<(Config, Prepared, RunDir)> {
        let (cfg, prep) = self.supervised_schedule(positions)?;
        let dir = RunDir::create(&self.out.join(name), &cfg)?;
        dir.write_classes(&self.full.class_names)?;
        Ok((cfg, prep, dir))
    }

    /// The configuration and data of a budget's supervised runs: the experiment's supervised
    /// epoch, at least `ceil(L / b)` steps of at least `b` labeled images (its `L` labeled
    /// images in batches of `b = L / steps`), the subset repeated in whole copies to fill it.
    pub(crate) fn supervised_schedule(&self, positions: &[usize]) -> Result<(Config, Prepared)> {
        let (cfg, prep, full) = (self.cfg, self.prep, self.full);
        let batch_floor = prep.plan.labeled_batch.max(1);
        let steps = prep.ds.train.len().div_ceil(batch_floor).max(1);
        let m = positions.len();
        if m == 0 {
            return Err(TrainError::file(
                &cfg.data.root,
                "the labeled train split is empty: no labels to sweep over",
            ));
        }
        let batch = batch_floor.max(m.div_ceil(steps));
        let copies = (steps * batch).div_ceil(m).max(1);
        let tiled: Vec<usize> = (0..copies)
            .flat_map(|_| positions.iter().copied())
            .collect();
        let mut budget_cfg = cfg.clone();
        budget_cfg.data.batch_size = batch;
        budget_cfg.data.labeled_per_class = None;
        let ds = Dataset {
            train: full.train.select(&tiled),
            unlabeled: Split::empty(full.image_size),
            test: full.test.clone(),
            class_names: full.class_names.clone(),
            image_size: full.image_size,
            skipped: 0,
        };
        let budget_prep = Prepared::with_dataset(&budget_cfg.data_settings(), prep.compute, ds)?;
        Ok((budget_cfg, budget_prep))
    }

    /// Test accuracy of the linear evaluation and of kNN on the frozen features of the
    /// images at `positions`.
    pub(crate) fn frozen_scores(&self, positions: &[usize]) -> Result<(f64, f64)> {
        let (cfg, full, test) = (self.cfg, self.full, self.test);
        let subset = full.train.select(positions);
        let bank = self.frozen.split(&subset)?;
        let bank_labels = features::labels(&subset, self.device)
            .ok_or_else(|| TrainError::file(&cfg.data.root, "the train split has no labels"))?;
        let classes = full.num_classes() as i64;
        let linear = crate::linear_eval::evaluate(
            &cfg.eval,
            cfg.runtime.seed,
            (&bank, &bank_labels),
            (&test.0, &test.1),
            classes,
        )?;
        let knn = cfg
            .eval
            .knn()
            .accuracy(&bank, &bank_labels, &test.0, &test.1, classes)?;
        Ok((linear.test_acc, knn))
    }
}

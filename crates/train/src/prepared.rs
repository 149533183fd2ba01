//! What every phase of one experiment shares: the loaded data set, its batch plan, how the
//! steps run ([`Compute`]), on CUDA the data set's copy resident on the device, and in a
//! data-parallel run this process's [`Replica`].

use std::rc::Rc;

use stl10_data::{BatchPlan, Dataset};

use crate::config::DataSettings;
use crate::error::{Result, TrainError};
use crate::prepared::loader::{Loader, Resident};
use crate::runtime::{Compute, Replica};

pub mod loader;

/// A loaded data set, its batch plan, how the steps run and, on CUDA, the data set's resident
/// copy on the device, shared by the phases.
pub struct Prepared {
    pub ds: Dataset,
    pub plan: BatchPlan,
    pub compute: Compute,
    pub resident: Option<Resident>,
    /// What it was built from: the data's root and kind (for messages and reports), the seed
    /// of the batch order, how often the phases read their metrics.
    pub settings: DataSettings,
    /// In a data-parallel run, this rank: its loader hands out its shards, the phases train
    /// data-parallel models, and only rank 0 writes the run folder.
    pub replica: Option<Rc<Replica>>,
}

impl Prepared {
    /// Loads the data and plans the batches; an empty test split is an error, since every
    /// epoch is validated on it. On CUDA with `runtime.resident_data`, the uint8 images move
    /// to the device once; if they do not fit, batches come from host memory instead.
    pub fn new(settings: &DataSettings, compute: Compute) -> Result<Self> {
        let ds = stl10_data::load(&settings.data, settings.seed)?;
        Prepared::with_dataset(settings, compute, ds)
    }

    /// [`Prepared::new`] on a data set already loaded (or derived from one, as the sweep's
    /// label budgets are).
    pub fn with_dataset(settings: &DataSettings, compute: Compute, ds: Dataset) -> Result<Self> {
        let batch_size = settings.data.batch_size;
        let plan = if ds.unlabeled.is_empty() {
            // Supervised runs only; pretraining refuses (see `require_unlabeled`).
            BatchPlan::supervised(ds.train.len(), batch_size)?
        } else {
            BatchPlan::new(ds.unlabeled.len(), ds.train.len(), batch_size)?
        };
        if ds.test.is_empty() {
            return Err(TrainError::file(
                &settings.data.root,
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
        let device = compute.device;
        // Streamed files stay on disk: a resident copy would decode them all first.
        let streamed = ds.unlabeled.store().decodes() || ds.train.store().decodes();
        let resident = (device.is_cuda() && settings.resident_data && !streamed)
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
            settings: settings.clone(),
            replica: None,
        })
    }

    /// This data as `replica`'s rank of a data-parallel run: an error unless every rank gets
    /// images of every step (a step's unlabeled and labeled images, split as evenly as it
    /// goes, must number at least one a rank).
    pub fn data_parallel(mut self, replica: Rc<Replica>) -> Result<Self> {
        let world = replica.world();
        let (u, l) = (self.plan.unlabeled_batch, self.plan.labeled_batch);
        if l < world || (u > 0 && u < world) {
            return Err(TrainError::Config(crate::config::ConfigError::Invalid {
                key: "data.batch_size".into(),
                message: format!(
                    "{} gives {u} unlabeled and {l} labeled images a step, fewer than the {world} \
                     ranks that share each step",
                    self.settings.data.batch_size
                ),
            }));
        }
        tracing::info!(
            "rank {} of {}: {} of every step's images",
            replica.rank(),
            world,
            replica.shard(u, l).zipped_rows().0.len()
        );
        self.replica = Some(replica);
        Ok(self)
    }

    /// `none (one process)`, or `c10d gloo, 2 ranks; each step's 10 unlabeled + 2 labeled
    /// images shared, 6 a rank` (for reports).
    pub fn parallelism(&self) -> String {
        let Some(r) = &self.replica else {
            return "none (one process)".into();
        };
        let (u, l) = (self.plan.unlabeled_batch, self.plan.labeled_batch);
        let counts = r.zipped_counts(&r.shard(u, l));
        let (least, most) = (
            counts.iter().min().copied().unwrap_or(0),
            counts.iter().max().copied().unwrap_or(0),
        );
        let share = if least == most {
            format!("{most}")
        } else {
            format!("{least} to {most}")
        };
        format!(
            "{}; each step's {u} unlabeled + {l} labeled images shared, {share} a rank",
            r.describe()
        )
    }

    /// Whether this process writes the run folder: one process, or rank 0 of several.
    pub fn writes(&self) -> bool {
        self.replica.as_ref().is_none_or(|r| r.rank() == 0)
    }

    /// An error unless the data set has unlabeled images (pretraining needs them).
    pub fn require_unlabeled(&self) -> Result<()> {
        if self.ds.unlabeled.is_empty() {
            return Err(TrainError::file(
                &self.settings.data.root,
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
            seed: self.settings.seed,
            resident: self.resident.as_ref(),
            replica: self.replica.as_deref(),
            prefetch: self.settings.data.prefetch,
            device: self.compute.device,
        }
    }
}

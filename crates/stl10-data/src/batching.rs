//! Batching as the Keras example does it.
//!
//! `steps = (U + L) / batch_size`; each step zips an unlabeled batch of `U / steps` images
//! with a labeled batch of `L / steps` images (STL-10, 525: 200 steps of 500 + 25). Both splits
//! are reshuffled every epoch from `(seed, epoch)` (the `seeds` crate's streams), so a run is
//! reproducible.

use seeds::{Stream, permutation};
use tch::Tensor;

use crate::error::{DataError, Result};
use crate::images::Split;

/// Per-step batch sizes derived from the split sizes, as the example derives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPlan {
    pub steps: usize,
    pub unlabeled_batch: usize,
    pub labeled_batch: usize,
}

impl BatchPlan {
    /// The plan for `unlabeled` + `labeled` images at `batch_size` images per step.
    pub fn new(unlabeled: usize, labeled: usize, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::Batching("batch_size must be at least 1".into()));
        }
        let steps = (unlabeled + labeled) / batch_size;
        if steps == 0 {
            return Err(DataError::Batching(format!(
                "{unlabeled} unlabeled + {labeled} labeled images make no full batch of \
                 {batch_size}: lower data.batch_size"
            )));
        }
        let (unlabeled_batch, labeled_batch) = (unlabeled / steps, labeled / steps);
        if unlabeled_batch == 0 || labeled_batch == 0 {
            return Err(DataError::Batching(format!(
                "{steps} steps per epoch leave an empty batch ({unlabeled_batch} unlabeled + \
                 {labeled_batch} labeled from {unlabeled} + {labeled} images): raise \
                 data.batch_size or add {}",
                if unlabeled_batch == 0 {
                    "unlabeled images"
                } else {
                    "labeled images"
                }
            )));
        }
        Ok(BatchPlan {
            steps,
            unlabeled_batch,
            labeled_batch,
        })
    }

    /// The plan of a data set without unlabeled images (supervised runs only): steps of
    /// `batch_size` labeled images.
    pub fn supervised(labeled: usize, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::Batching("batch_size must be at least 1".into()));
        }
        if labeled == 0 {
            return Err(DataError::Batching(
                "the labeled train split is empty".into(),
            ));
        }
        Ok(BatchPlan {
            steps: labeled.div_ceil(batch_size),
            unlabeled_batch: 0,
            labeled_batch: batch_size.min(labeled),
        })
    }

    /// The example's line: `batch size is 500 (unlabeled) + 25 (labeled)`.
    pub fn describe(&self) -> String {
        format!(
            "batch size is {} (unlabeled) + {} (labeled)",
            self.unlabeled_batch, self.labeled_batch
        )
    }
}

/// One step of contrastive pretraining: uint8 `[U,3,H,W]`, uint8 `[L,3,H,W]`, int64 `[L]`.
#[derive(Debug)]
pub struct ZippedBatch {
    pub unlabeled: Tensor,
    pub labeled: Tensor,
    pub labels: Tensor,
}

/// One batch of labeled images: uint8 `[N,3,H,W]` and int64 `[N]`.
#[derive(Debug)]
pub struct LabeledBatch {
    pub images: Tensor,
    pub labels: Tensor,
}

/// One epoch of zipped unlabeled/labeled batches.
#[derive(Debug)]
pub struct ZippedEpoch<'a> {
    unlabeled: &'a Split,
    labeled: &'a Split,
    plan: BatchPlan,
    unlabeled_order: Vec<usize>,
    labeled_order: Vec<usize>,
    next: usize,
}

impl<'a> ZippedEpoch<'a> {
    pub fn new(
        unlabeled: &'a Split,
        labeled: &'a Split,
        plan: BatchPlan,
        seed: u64,
        epoch: u64,
    ) -> Self {
        ZippedEpoch {
            unlabeled,
            labeled,
            plan,
            unlabeled_order: permutation(unlabeled.len(), seed, epoch, Stream::Unlabeled),
            labeled_order: permutation(labeled.len(), seed, epoch, Stream::Labeled),
            next: 0,
        }
    }

    /// Split positions of step `i`: `(unlabeled, labeled)`.
    pub fn positions(&self, i: usize) -> (&[usize], &[usize]) {
        let (u, l) = (self.plan.unlabeled_batch, self.plan.labeled_batch);
        (
            &self.unlabeled_order[i * u..(i + 1) * u],
            &self.labeled_order[i * l..(i + 1) * l],
        )
    }
}

/// Each batch, or the error of an image that could not be read (streamed files only).
impl Iterator for ZippedEpoch<'_> {
    type Item = Result<ZippedBatch>;

    fn next(&mut self) -> Option<Result<ZippedBatch>> {
        if self.next >= self.plan.steps {
            return None;
        }
        let (u, l) = self.positions(self.next);
        let batch = (|| {
            Ok(ZippedBatch {
                unlabeled: self.unlabeled.images(u)?,
                labeled: self.labeled.images(l)?,
                labels: self.labeled.label_tensor(l),
            })
        })();
        self.next += 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.plan.steps.saturating_sub(self.next);
        (left, Some(left))
    }

    /// Skips `n` batches without gathering their images (a resumed epoch starts mid-way).
    fn nth(&mut self, n: usize) -> Option<Result<ZippedBatch>> {
        self.next = self.next.saturating_add(n);
        self.next()
    }
}

impl ExactSizeIterator for ZippedEpoch<'_> {}

/// Batches of a labeled split, in a fixed order, the last partial batch kept.
#[derive(Debug)]
pub struct LabeledEpoch<'a> {
    split: &'a Split,
    order: Vec<usize>,
    batch: usize,
    next: usize,
}

impl<'a> LabeledEpoch<'a> {
    /// Shuffled for `(seed, epoch)`: supervised training (the example's `labeled_train_dataset`).
    pub fn shuffled(split: &'a Split, batch: usize, seed: u64, epoch: u64) -> Result<Self> {
        let order = permutation(split.len(), seed, epoch, Stream::Supervised);
        Self::with_order(split, batch, order)
    }

    /// In the split's order: evaluation.
    pub fn in_order(split: &'a Split, batch: usize) -> Result<Self> {
        Self::with_order(split, batch, (0..split.len()).collect())
    }

    fn with_order(split: &'a Split, batch: usize, order: Vec<usize>) -> Result<Self> {
        if batch == 0 {
            return Err(DataError::Batching("batch size must be at least 1".into()));
        }
        if split.labels().is_none() {
            return Err(DataError::Batching(
                "labeled batches need a labeled split".into(),
            ));
        }
        Ok(LabeledEpoch {
            split,
            order,
            batch,
            next: 0,
        })
    }

    /// Split positions of every batch, in order.
    pub fn positions(&self) -> impl Iterator<Item = &[usize]> {
        self.order.chunks(self.batch)
    }

    pub fn steps(&self) -> usize {
        self.order.len().div_ceil(self.batch)
    }
}

/// Each batch, or the error of an image that could not be read (streamed files only).
impl Iterator for LabeledEpoch<'_> {
    type Item = Result<LabeledBatch>;

    fn next(&mut self) -> Option<Result<LabeledBatch>> {
        let start = self.next * self.batch;
        if start >= self.order.len() {
            return None;
        }
        let pos = &self.order[start..(start + self.batch).min(self.order.len())];
        self.next += 1;
        Some(self.split.images(pos).map(|images| LabeledBatch {
            images,
            labels: self.split.label_tensor(pos),
        }))
    }

    /// Skips `n` batches without gathering their images.
    fn nth(&mut self, n: usize) -> Option<Result<LabeledBatch>> {
        self.next = self.next.saturating_add(n);
        self.next()
    }
}

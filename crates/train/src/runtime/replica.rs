//! One rank of a data-parallel run: every rank holds the same model and takes an equal,
//! contiguous shard of each step's batch; what a step needs of the others goes through c10d
//! ([`dist::ProcessGroup`]).
//!
//! How the steps stay equal to one process on the whole batch (for models without BatchNorm:
//! the example's encoder and head; `tests/data_parallel.rs` checks it):
//! - each rank augments its rows as they would be augmented within the whole batch
//!   ([`augment::Augmenter::augment_rows`]);
//! - the contrastive loss is computed on every rank over every rank's projections
//!   ([`Replica::gather_with_own`]: the others' rows as constants, its own live), so its value
//!   is the whole batch's and each rank's backward yields that loss's gradient through its own
//!   rows; [`Replica::sum_gradients`] adds them up into the whole batch's gradient;
//! - a supervised loss is each rank's summed loss over the whole batch's count, so the summed
//!   gradients are again the whole batch's;
//! - metrics are sums and counts added over the ranks, never per-rank means.
//!
//! Not equal: an encoder or head with BatchNorm (ResNet-18, `model.projection_batch_norm`)
//! normalises each rank's shard by that shard's statistics, as DDP does by default, and its
//! running statistics are rank 0's only at the start (nothing keeps them equal afterwards yet).

use std::ops::Range;

use dist::ProcessGroup;
use tch::{Tensor, nn};

use crate::error::{Result, TrainError};

/// This process's rank in a data-parallel run, and the group of all ranks.
#[derive(Debug)]
pub struct Replica {
    group: ProcessGroup,
}

impl Replica {
    pub fn new(group: ProcessGroup) -> Self {
        Replica { group }
    }

    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    pub fn world(&self) -> usize {
        self.group.world_size()
    }

    /// Where this rank's `n` images sit in the whole batch of `world * n` (its shard).
    pub fn rows(&self, n: usize) -> Range<usize> {
        self.rank() * n..(self.rank() + 1) * n
    }

    /// Where the images of this rank's zipped batch (`unlabeled` then `labeled`) sit in the
    /// whole zipped batch (every rank's unlabeled images, then every rank's labeled ones).
    pub fn zipped_rows(&self, unlabeled: usize, labeled: usize) -> Vec<usize> {
        let all_unlabeled = unlabeled * self.world();
        self.rows(unlabeled)
            .chain(self.rows(labeled).map(|i| all_unlabeled + i))
            .collect()
    }

    /// Every rank's rows of `t` (each rank passes the same shape), in rank order, with this
    /// rank's own rows the live `t`: the gradient of anything computed on the result reaches
    /// `t` through its own rows only, the other ranks' rows being constants.
    pub fn gather_with_own(&self, t: &Tensor) -> Result<Tensor> {
        let all = self.collective(|g| g.all_gather(t))?;
        let n = t.size()[0];
        let rank = self.rank() as i64;
        let total = all.size()[0];
        let before = all.narrow(0, 0, rank * n);
        let after = all.narrow(0, (rank + 1) * n, total - (rank + 1) * n);
        Ok(Tensor::cat(&[before, t.shallow_clone(), after], 0))
    }

    /// The sum over the ranks of `t` (a metric's sum or count), detached.
    pub fn sum(&self, t: &Tensor) -> Result<Tensor> {
        let mut total = t.detach().copy().contiguous();
        self.collective(|g| g.all_reduce_sum(&mut total))?;
        Ok(total)
    }

    /// Adds every rank's gradients of `vars` (in place, in one flat buffer): afterwards every
    /// rank holds the whole batch's gradient. A variable without a gradient gets none.
    pub fn sum_gradients(&self, vars: &[Tensor]) -> Result<()> {
        let grads: Vec<Tensor> = vars
            .iter()
            .map(|v| v.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return Ok(());
        }
        let flat: Vec<Tensor> = grads.iter().map(|g| g.reshape([-1])).collect();
        let mut bucket = Tensor::cat(&flat, 0);
        self.collective(|g| g.all_reduce_sum(&mut bucket))?;
        tch::no_grad(|| {
            let mut at = 0;
            for mut g in grads {
                let n = g.numel() as i64;
                g.copy_(&bucket.narrow(0, at, n).view_as(&g));
                at += n;
            }
        });
        Ok(())
    }

    /// Makes every variable of `vs` rank 0's (at the start, so all ranks begin equal).
    pub fn broadcast_from_first(&self, vs: &nn::VarStore) -> Result<()> {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, var) in vars {
            let mut copy = var.detach().copy().contiguous();
            self.collective(|g| g.broadcast(&mut copy, 0))?;
            tch::no_grad(|| var.detach().copy_(&copy));
        }
        Ok(())
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) -> Result<()> {
        self.collective(|g| g.barrier())
    }

    fn collective<T>(&self, f: impl FnOnce(&ProcessGroup) -> dist::Result<T>) -> Result<T> {
        f(&self.group).map_err(|e| TrainError::Distributed(e.to_string()))
    }
}

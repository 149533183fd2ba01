//! One rank of a data-parallel run: every rank holds the same model and takes its [`Shard`]
//! of each step's batch (the batch split as evenly as it goes); what a step needs of the others
//! goes through c10d ([`dist::ProcessGroup`]).
//!
//! How the steps stay equal to one process on the whole batch (for models without BatchNorm:
//! the example's encoder and head; `tests/data_parallel.rs` checks it):
//! - each rank augments its rows as they would be augmented within the whole batch
//!   ([`augment::Augmenter::augment_rows`] at [`Shard::zipped_rows`]);
//! - the contrastive loss is computed on every rank over every rank's projections
//!   ([`Replica::gather_with_own`]: the others' rows as constants, its own live), so its value
//!   is the whole batch's and each rank's backward yields that loss's gradient through its own
//!   rows; [`Replica::sum_gradients`] adds them up into the whole batch's gradient;
//! - a supervised loss is each rank's summed loss over the whole batch's count, so the summed
//!   gradients are again the whole batch's;
//! - metrics are sums and counts added over the ranks, never per-rank means.
//!
//! BatchNorm (ResNet-18, `model.projection_batch_norm`) is equal only when synchronised
//! ([`Replica::sum_over_ranks`], `model.sync_batch_norm`): its statistics are then the whole
//! batch's, forward and backward. Otherwise each rank normalises its shard by that shard's
//! statistics, as DDP does by default, and every step and validation start from rank 0's running
//! statistics ([`Replica::broadcast_buffers`], DDP's `broadcast_buffers`).

use std::ops::Range;
use std::sync::{Arc, Mutex};

use dist::ProcessGroup;
use tch::{Tensor, nn};

use crate::error::{Result, TrainError};

/// This process's rank in a data-parallel run, and the group of all ranks.
#[derive(Debug)]
pub struct Replica {
    group: Arc<ProcessGroup>,
    /// The first failure of a collective inside a forward pass (where no error can be
    /// returned), reported by [`Replica::check`].
    failed: Arc<Mutex<Option<String>>>,
}

impl Replica {
    pub fn new(group: ProcessGroup) -> Self {
        Replica {
            group: Arc::new(group),
            failed: Arc::default(),
        }
    }

    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    pub fn world(&self) -> usize {
        self.group.world_size()
    }

    /// `c10d gloo, 2 ranks` (for reports).
    pub fn describe(&self) -> String {
        let world = self.world();
        let ranks = if world == 1 { "rank" } else { "ranks" };
        format!("c10d {}, {world} {ranks}", self.group.backend().name())
    }

    /// Rank `rank`'s part of `n` items split as evenly as it goes (the first `n % world` ranks
    /// take one more).
    pub fn part_of(&self, rank: usize, n: usize) -> Range<usize> {
        let (base, extra) = (n / self.world(), n % self.world());
        let start = rank * base + rank.min(extra);
        start..start + base + usize::from(rank < extra)
    }

    /// This rank's part of `n` items.
    pub fn part(&self, n: usize) -> Range<usize> {
        self.part_of(self.rank(), n)
    }

    /// This rank's shard of a step of `unlabeled` and `labeled` images.
    pub fn shard(&self, unlabeled: usize, labeled: usize) -> Shard {
        Shard {
            unlabeled: self.part(unlabeled),
            labeled: self.part(labeled),
            whole_unlabeled: unlabeled,
            whole_labeled: labeled,
        }
    }

    /// Every rank's count of images in the step `shard` belongs to (its part of the unlabeled
    /// images and of the labeled ones), in rank order.
    pub fn zipped_counts(&self, shard: &Shard) -> Vec<usize> {
        (0..self.world())
            .map(|r| {
                self.part_of(r, shard.whole_unlabeled).len()
                    + self.part_of(r, shard.whole_labeled).len()
            })
            .collect()
    }

    /// Every rank's rows of `t`, in rank order, with this rank's own rows the live `t`: the
    /// gradient of anything computed on the result reaches `t` through its own rows only, the
    /// other ranks' rows being constants. `rows[r]` is rank `r`'s count of rows (this rank's is
    /// `t`'s); the other dimensions agree on every rank.
    pub fn gather_with_own(&self, t: &Tensor, rows: &[usize]) -> Result<Tensor> {
        let most = rows.iter().copied().max().unwrap_or(0) as i64;
        let own = t.size()[0];
        if rows.len() != self.world() || rows[self.rank()] as i64 != own {
            return Err(TrainError::Distributed(format!(
                "rank {}: gathering {own} rows, but the counts say {rows:?}",
                self.rank()
            )));
        }
        // Every rank sends as many rows (its own, padded): gloo's all-gather needs equal shapes.
        let padded = if own < most {
            let mut shape = t.size();
            shape[0] = most - own;
            Tensor::cat(
                &[
                    t.detach(),
                    t.detach().new_zeros(shape, (t.kind(), t.device())),
                ],
                0,
            )
        } else {
            t.detach()
        };
        let all = self.collective(|g| g.all_gather(&padded))?;
        let parts: Vec<Tensor> = rows
            .iter()
            .enumerate()
            .map(|(r, &n)| {
                if r == self.rank() {
                    t.shallow_clone()
                } else {
                    all.narrow(0, r as i64 * most, n as i64)
                }
            })
            .collect();
        Ok(Tensor::cat(&parts, 0))
    }

    /// Whether any rank says `flag` (a stop request: every rank stops after the same step).
    pub fn any(&self, flag: bool) -> Result<bool> {
        let count = self.sum(&Tensor::from_slice(&[f64::from(u8::from(flag))]))?;
        Ok(count.double_value(&[0]) > 0.0)
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

    /// The differentiable sum over the ranks that synchronised BatchNorm takes its statistics
    /// through ([`models::Encoder::sync_batch_norm`]). A forward pass cannot fail, so a failed
    /// collective is kept for [`Replica::check`] and the local value passed on.
    pub fn sum_over_ranks(&self) -> models::SumOverRanks {
        let (group, failed) = (Arc::clone(&self.group), Arc::clone(&self.failed));
        Arc::new(move |t: &Tensor| match group.sum_with_grad(t) {
            Ok(sum) => sum,
            Err(e) => {
                let mut first = failed.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert(e.to_string());
                t.shallow_clone()
            }
        })
    }

    /// An error if a collective failed inside a forward pass since the last check.
    pub fn check(&self) -> Result<()> {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner()).take();
        match failed {
            Some(e) => Err(TrainError::Distributed(e)),
            None => Ok(()),
        }
    }

    /// Sets the buffers of `vs` (its variables without gradient: BatchNorm's running
    /// statistics) to rank 0's, as DDP does before every forward. Nothing when there are none.
    pub fn broadcast_buffers(&self, vs: &nn::VarStore) -> Result<()> {
        let mut buffers: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, v)| !v.requires_grad())
            .collect();
        buffers.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, buffer) in buffers {
            let mut copy = buffer.copy().contiguous();
            self.collective(|g| g.broadcast(&mut copy, 0))?;
            tch::no_grad(|| buffer.shallow_clone().copy_(&copy));
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

/// Where a rank's images sit in a step's whole batch: its part of the unlabeled images and of
/// the labeled ones (either may be empty), and the whole batch's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub unlabeled: Range<usize>,
    pub labeled: Range<usize>,
    pub whole_unlabeled: usize,
    pub whole_labeled: usize,
}

impl Shard {
    /// This shard's images (its unlabeled ones, then its labeled ones) as rows of the whole
    /// zipped batch (every unlabeled image, then every labeled one), and that batch's size.
    pub fn zipped_rows(&self) -> (Vec<usize>, usize) {
        let rows = self
            .unlabeled
            .clone()
            .chain(self.labeled.clone().map(|i| self.whole_unlabeled + i))
            .collect();
        (rows, self.whole_unlabeled + self.whole_labeled)
    }

    /// This shard's labeled images as rows of the whole batch's labeled ones, and their count.
    pub fn labeled_rows(&self) -> (Vec<usize>, usize) {
        (self.labeled.clone().collect(), self.whole_labeled)
    }
}

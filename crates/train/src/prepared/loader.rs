//! Batches for the steps, in the Keras example's order, from host memory or from a copy of the
//! uint8 data set resident on the CUDA device.
//!
//! Either way a step gets one uint8 tensor of all its images (unlabeled first, then labeled)
//! and the labels of the labeled ones, so the step uploads once (host batches) or not at all
//! (resident data: batches are gathered on the device by index tensors, and the epoch's order
//! travels to the device once per epoch). Both sources follow the same permutations, so a run
//! sees the same images in the same steps whichever is used.
//!
//! Host batches are gathered (memory-mapped shards copied, streamed files decoded) on a loader
//! thread `data.prefetch` batches ahead of the step, pinned there on CUDA, so the step does not
//! wait for them; the queue is bounded, so memory holds that many batches (and the one being
//! gathered, and the step's) whatever the data set's size.
//!
//! In a data-parallel run each rank's loader hands out only the rank's [`Shard`] of every step
//! (its part of the step's unlabeled and of its labeled images, and of each test batch): every
//! rank draws the same permutations from the same seed, so the shards of a step make up the
//! batch one process would take.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use stl10_data::{BatchPlan, Dataset, LabeledEpoch, Split, ZippedEpoch};
use tch::{Device, Kind, Tensor};

use crate::error::{Result, TrainError};
use crate::runtime::{Replica, Shard};

/// One step's uint8 images `[U + L, 3, H, W]`, the `U` unlabeled ones first, and the int64
/// labels `[L]` of the last `L`; in a data-parallel run, this rank's shard of the step and where
/// it sits in the whole batch.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
    pub shard: Option<Shard>,
}

impl Batch {
    /// Images in the batch.
    pub fn len(&self) -> usize {
        self.images.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which batches an epoch is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Pretraining: each step an unlabeled batch zipped with a labeled batch.
    Zipped,
    /// Supervised training: shuffled labeled batches of the plan's labeled batch size.
    Labeled,
}

/// The three splits as uint8 tensors on the device, with their labels.
#[derive(Debug)]
pub struct Resident {
    unlabeled: Tensor,
    train: (Tensor, Tensor),
    test: (Tensor, Tensor),
}

/// Images uploaded per copy while making a split resident.
const UPLOAD_CHUNK: usize = 2048;

fn resident_split(split: &Split, device: Device) -> Result<(Tensor, Tensor)> {
    let (n, s) = (split.len() as i64, split.image_size() as i64);
    let images = Tensor::f_empty([n, 3, s, s], (Kind::Uint8, device))?;
    let all: Vec<usize> = (0..split.len()).collect();
    for (i, chunk) in all.chunks(UPLOAD_CHUNK).enumerate() {
        let start = (i * UPLOAD_CHUNK) as i64;
        images
            .narrow(0, start, chunk.len() as i64)
            .f_copy_(&split.images(chunk)?)?;
    }
    let labels = split.label_tensor(&all).f_to_device(device)?;
    Ok((images, labels))
}

impl Resident {
    /// Copies every split of `ds` to `device`; an error (out of memory, say) leaves nothing
    /// behind, and the caller can fall back to host batches.
    pub fn upload(ds: &Dataset, device: Device) -> Result<Self> {
        Ok(Resident {
            unlabeled: resident_split(&ds.unlabeled, device)?.0,
            train: resident_split(&ds.train, device)?,
            test: resident_split(&ds.test, device)?,
        })
    }

    /// Bytes held on the device.
    pub fn bytes(&self) -> i64 {
        [&self.unlabeled, &self.train.0, &self.test.0]
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }
}

/// Hands out the batches of an epoch (and the test batches) from host memory or, when given a
/// [`Resident`] copy, from the device; in a data-parallel run, this rank's shards of them.
/// Host batches are gathered `prefetch` ahead on a loader thread (none: by the caller).
#[derive(Debug, Clone, Copy)]
pub struct Loader<'a> {
    pub ds: &'a Dataset,
    pub plan: BatchPlan,
    pub seed: u64,
    pub resident: Option<&'a Resident>,
    pub replica: Option<&'a Replica>,
    /// Host batches gathered ahead on a loader thread (0: by the caller, when asked for).
    pub prefetch: usize,
    /// Where the steps run: host batches are pinned for a CUDA device.
    pub device: Device,
}

/// An epoch's batches, with their count; an item is an error where an image could not be read
/// (streamed files).
pub struct Batches<'a> {
    steps: usize,
    iter: Box<dyn Iterator<Item = Result<Batch>> + 'a>,
}

impl Batches<'_> {
    pub fn steps(&self) -> usize {
        self.steps
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let _span = tracing::debug_span!("batch").entered();
        self.iter.next()
    }
}

/// One host batch to gather: unlabeled images (none for labeled batches) then labeled ones.
struct HostJob {
    unlabeled: Option<(Split, Vec<usize>)>,
    labeled: (Split, Vec<usize>),
    shard: Option<Shard>,
}

impl HostJob {
    fn gather(self, pin: Option<Device>) -> Result<Batch> {
        let (split, positions) = &self.labeled;
        let mut images = split.images(positions)?;
        if let Some((u, up)) = &self.unlabeled {
            images = Tensor::cat(&[u.images(up)?, images], 0);
        }
        if let Some(device) = pin {
            images = images.f_pin_memory(device)?;
        }
        Ok(Batch {
            images,
            labels: split.label_tensor(positions),
            shard: self.shard,
        })
    }
}

/// Batches gathered on a loader thread, at most `depth` waiting; dropping it stops the thread
/// after the batch it is gathering.
struct Prefetched {
    rx: Option<Receiver<Result<Batch>>>,
    worker: Option<JoinHandle<()>>,
}

impl Prefetched {
    fn spawn(
        jobs: impl Iterator<Item = HostJob> + Send + 'static,
        depth: usize,
        pin: Option<Device>,
    ) -> Result<Self> {
        let (tx, rx): (SyncSender<Result<Batch>>, _) = sync_channel(depth);
        let worker = std::thread::Builder::new()
            .name("loader".into())
            .spawn(move || {
                for job in jobs {
                    let batch = job.gather(pin);
                    let failed = batch.is_err();
                    // The receiver gone (the epoch stopped early) or an error sent: done.
                    if tx.send(batch).is_err() || failed {
                        break;
                    }
                }
            })
            .map_err(|e| TrainError::Io {
                path: "loader thread".into(),
                source: e,
            })?;
        Ok(Prefetched {
            rx: Some(rx),
            worker: Some(worker),
        })
    }
}

impl Iterator for Prefetched {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        match self.rx.as_ref()?.recv() {
            Ok(batch) => Some(batch),
            // The thread is done: every batch handed out, or it panicked (an error then, not a
            // short epoch).
            Err(_) => {
                self.rx = None;
                let panicked = self.worker.take().is_some_and(|w| w.join().is_err());
                panicked.then(|| {
                    Err(TrainError::Io {
                        path: "loader thread".into(),
                        source: std::io::Error::other("panicked while gathering a batch"),
                    })
                })
            }
        }
    }
}

impl Drop for Prefetched {
    fn drop(&mut self) {
        drop(self.rx.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// `positions` as an int64 tensor on `device`, uploaded without waiting.
fn index_tensor(positions: impl IntoIterator<Item = usize>, device: Device) -> Tensor {
    let v: Vec<i64> = positions.into_iter().map(|p| p as i64).collect();
    accel::upload(&Tensor::from_slice(&v), device)
}

/// `t`'s rows `range`.
fn rows(t: &Tensor, range: &std::ops::Range<usize>) -> Tensor {
    t.narrow(0, range.start as i64, range.len() as i64)
}

impl<'a> Loader<'a> {
    /// This loader with `batch` labeled images a step (supervised epochs and test batches),
    /// where given.
    pub fn with_labeled_batch(mut self, batch: Option<usize>) -> Self {
        if let Some(b) = batch {
            self.plan.labeled_batch = b;
        }
        self
    }

    /// Steps of every training epoch for `feed`, and the images of each step that count as its
    /// batch size for `lr_scaling`: `(steps, all images, labeled images)`, of the whole batch
    /// (every rank's shards together).
    pub fn epoch_shape(&self, feed: Feed) -> (usize, usize, usize) {
        let (u, l) = (self.plan.unlabeled_batch, self.plan.labeled_batch);
        match feed {
            Feed::Zipped => (self.plan.steps, u + l, l),
            Feed::Labeled => (self.ds.train.len().div_ceil(l.max(1)), l, l),
        }
    }

    /// The batches of training epoch `epoch` (1-based) for `feed`, from step `start` (0-based;
    /// a resumed epoch skips the steps it has done, without gathering them). `steps()` still
    /// counts the whole epoch.
    pub fn epoch(&self, feed: Feed, epoch: usize, start: usize) -> Result<Batches<'a>> {
        match feed {
            Feed::Zipped => Ok(self.zipped(epoch, start)),
            Feed::Labeled => {
                let batch = self.plan.labeled_batch;
                let shuffled =
                    LabeledEpoch::shuffled(&self.ds.train, batch, self.seed, epoch as u64)?;
                let order: Vec<Vec<usize>> = shuffled.positions().map(<[usize]>::to_vec).collect();
                let resident = self.resident.map(|r| &r.train);
                Ok(self.labeled(&self.ds.train, resident, order, start))
            }
        }
    }

    /// This rank's shard of a step of `unlabeled` and `labeled` images: all of them on one
    /// process.
    fn shard(&self, unlabeled: usize, labeled: usize) -> (Option<Shard>, Shard) {
        let shard = self.replica.map(|r| r.shard(unlabeled, labeled));
        let own = shard.clone().unwrap_or(Shard {
            unlabeled: 0..unlabeled,
            labeled: 0..labeled,
            whole_unlabeled: unlabeled,
            whole_labeled: labeled,
        });
        (shard, own)
    }

    fn zipped(&self, epoch: usize, start: usize) -> Batches<'a> {
        let zipped = ZippedEpoch::new(
            &self.ds.unlabeled,
            &self.ds.train,
            self.plan,
            self.seed,
            epoch as u64,
        );
        let steps = self.plan.steps;
        let (u, l) = (self.plan.unlabeled_batch, self.plan.labeled_batch);
        let (shard, own) = self.shard(u, l);
        let todo = start.min(steps)..steps;
        let Some(r) = self.resident else {
            let (unlabeled, train) = (self.ds.unlabeled.clone(), self.ds.train.clone());
            let jobs: Vec<HostJob> = todo
                .map(|i| {
                    let (up, lp) = zipped.positions(i);
                    HostJob {
                        unlabeled: Some((unlabeled.clone(), up[own.unlabeled.clone()].to_vec())),
                        labeled: (train.clone(), lp[own.labeled.clone()].to_vec()),
                        shard: shard.clone(),
                    }
                })
                .collect();
            return self.host(steps, jobs);
        };
        let device = r.unlabeled.device();
        let positions = (0..steps).map(|i| zipped.positions(i));
        let u_order = index_tensor(positions.clone().flat_map(|p| p.0.to_vec()), device);
        let l_order = index_tensor(positions.flat_map(|p| p.1.to_vec()), device);
        let iter = todo.map(move |i| {
            let at = |range: &std::ops::Range<usize>, per: usize| {
                i * per + range.start..i * per + range.end
            };
            let ui = rows(&u_order, &at(&own.unlabeled, u));
            let li = rows(&l_order, &at(&own.labeled, l));
            Ok(Batch {
                images: Tensor::cat(
                    &[
                        r.unlabeled.index_select(0, &ui),
                        r.train.0.index_select(0, &li),
                    ],
                    0,
                ),
                labels: r.train.1.index_select(0, &li),
                shard: shard.clone(),
            })
        });
        Batches {
            steps,
            iter: Box::new(iter),
        }
    }

    /// `jobs` gathered on a loader thread `prefetch` ahead (pinned for a CUDA step), or one by
    /// one as they are asked for when `prefetch` is 0.
    fn host(&self, steps: usize, jobs: Vec<HostJob>) -> Batches<'a> {
        let pin = Some(self.device).filter(|d| d.is_cuda());
        let iter: Box<dyn Iterator<Item = Result<Batch>>> = if self.prefetch == 0 {
            Box::new(jobs.into_iter().map(move |j| j.gather(None)))
        } else {
            match Prefetched::spawn(jobs.into_iter(), self.prefetch, pin) {
                Ok(p) => Box::new(p),
                Err(e) => Box::new(std::iter::once(Err(e))),
            }
        };
        Batches { steps, iter }
    }

    /// Labeled batches of `split` at the positions `order` (one list a step), from step
    /// `start`, from `resident` (its images and labels on the device) when given; a rank takes
    /// its part of each.
    fn labeled(
        &self,
        split: &'a Split,
        resident: Option<&'a (Tensor, Tensor)>,
        order: Vec<Vec<usize>>,
        start: usize,
    ) -> Batches<'a> {
        let steps = order.len();
        let replica = self.replica;
        let shard_of = move |positions: &[usize]| {
            let shard = replica.map(|r| r.shard(0, positions.len()));
            let part = shard
                .as_ref()
                .map_or(positions, |s| &positions[s.labeled.clone()])
                .to_vec();
            (shard, part)
        };
        let Some((images, labels)) = resident else {
            let jobs = order
                .iter()
                .skip(start)
                .map(|positions| {
                    let (shard, part) = shard_of(positions);
                    HostJob {
                        unlabeled: None,
                        labeled: (split.clone(), part),
                        shard,
                    }
                })
                .collect();
            return self.host(steps, jobs);
        };
        let device = images.device();
        let iter = order.into_iter().skip(start).map(move |positions| {
            let (shard, part) = shard_of(&positions);
            let idx = index_tensor(part, device);
            Ok(Batch {
                images: images.index_select(0, &idx),
                labels: labels.index_select(0, &idx),
                shard,
            })
        });
        Batches {
            steps,
            iter: Box::new(iter),
        }
    }

    /// The test split in order, in batches of the step size (`U + L`), the last one partial.
    pub fn test(&self) -> Result<Batches<'a>> {
        let batch = self.plan.unlabeled_batch + self.plan.labeled_batch;
        let in_order = LabeledEpoch::in_order(&self.ds.test, batch)?;
        let order: Vec<Vec<usize>> = in_order.positions().map(<[usize]>::to_vec).collect();
        let resident = self.resident.map(|r| &r.test);
        Ok(self.labeled(&self.ds.test, resident, order, 0))
    }
}

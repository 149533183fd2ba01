//! `simclr-cli bench`: times the real pretraining step (two strong views of a step's images,
//! encoder, head, loss, both optimizers, the probe) and the real supervised step at the
//! configured data set's shapes (by default the Keras example's STL-10: 500 + 25 images of
//! 96x96, 200 steps an epoch), on generated data, after warm-up steps. Batches come through the
//! same `Loader` a run uses (resident on the device on CUDA), and the timed steps read their
//! metrics from the device once, at the end, as an epoch does. As a rank of a data-parallel
//! run (under torchrun), every rank times its shards of the same steps, and the rates are given
//! for the whole batch (all ranks) and per rank.

use std::sync::Arc;
use std::time::Instant;

/// `bench --data`: the input path's images/s.
pub mod input;

use serde::Serialize;
use stl10_data::{BatchPlan, DataConfig, DataKind, Dataset, ImageStore, Split};
use tch::{Device, Kind, Tensor};

use crate::config::{DataSettings, PretrainSettings, SupervisedSettings};
use crate::error::Result;
use crate::prepared::loader::{Feed, Loader, Resident};
use crate::runtime::{Compute, Replica};
use crate::steps::{ContrastiveModel, SupervisedModel, TrainStep};

/// The sizes of the configured data set's splits, `(unlabeled, labeled, classes)`, from its
/// published sizes (the files are not read): STL-10 100,000 + 5,000 (1,000 for a fold),
/// CIFAR 50,000 and IDX (Fashion-MNIST) 60,000 training images split by
/// `data.labeled_per_class`. Image folders, WebDataset shards and packed data sets have no
/// published size: STL-10's are used.
fn published_sizes(data: &DataConfig) -> (usize, usize, usize) {
    let split = |train: usize, classes: usize| {
        let labeled = data
            .labeled_per_class
            .map_or(train, |n| (n * classes).min(train));
        (train - labeled, labeled, classes)
    };
    match data.kind {
        DataKind::Cifar10 => split(50_000, 10),
        DataKind::Cifar100 => split(50_000, 100),
        DataKind::Idx => split(60_000, 10),
        DataKind::Stl10 if data.fold.is_some() => (100_000, 1_000, 10),
        DataKind::Stl10 | DataKind::Folder | DataKind::Webdataset | DataKind::Packed => {
            (100_000, 5_000, 10)
        }
    }
}

/// Supervised steps timed per timed pretraining step.
pub const SUPERVISED_STEPS_PER_STEP: usize = 20;

/// What `bench` prints, as one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The shapes timed: `cifar10 32x32: 97 steps of 463 + 51 images`.
    pub shape: String,
    pub device: String,
    pub compute: String,
    pub precision: &'static str,
    pub memory_format: &'static str,
    pub encoder_chunk: Option<usize>,
    pub resident_data: bool,
    pub threads: i32,
    /// Processes sharing each step: 1, or the world size of a data-parallel run.
    pub ranks: usize,
    /// `c10d gloo, 2 ranks` in a data-parallel run.
    pub data_parallel: Option<String>,
    pub steps: usize,
    pub warmup_steps: usize,
    pub pretrain_seconds_per_step: f64,
    /// Both views of all images of a step (every rank's together).
    pub pretrain_views_per_s: f64,
    /// [`BenchReport::pretrain_views_per_s`] over the ranks.
    pub pretrain_views_per_s_per_rank: f64,
    /// A pretraining epoch's steps at the measured rate.
    pub pretrain_epoch_seconds: f64,
    pub pretrain_epochs_per_minute: f64,
    pub supervised_seconds_per_step: f64,
    pub supervised_images_per_s: f64,
    pub supervised_images_per_s_per_rank: f64,
    /// A supervised epoch (every labeled image once, in batches of the step's labeled count).
    pub supervised_epoch_seconds: f64,
    /// Share of a pretraining step spent on the two strong views (one augmentation of the
    /// doubled batch).
    pub augment_share_of_pretrain_step: f64,
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Seconds per call of `f` over `steps` calls, the device drained before and after.
fn time_steps(steps: usize, device: Device, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    sync(device);
    let start = Instant::now();
    for _ in 0..steps {
        f()?;
    }
    sync(device);
    Ok(start.elapsed().as_secs_f64() / steps as f64)
}

/// Four steps' worth of random `size` x `size` images of `plan`'s batches.
fn synthetic(plan: &BatchPlan, size: usize, classes: usize) -> Dataset {
    let bytes = |n: usize| {
        let t = Tensor::randint(
            256,
            [(n * 3 * size * size) as i64],
            (Kind::Int64, Device::Cpu),
        );
        Vec::<u8>::try_from(&t.to_kind(Kind::Uint8)).expect("uint8 tensor")
    };
    let split = |n: usize, labeled: bool| {
        let labels = labeled.then(|| (0..n as i64).map(|i| i % classes as i64).collect());
        Split::new(Arc::new(ImageStore::from_chw(bytes(n), size)), labels)
    };
    Dataset {
        unlabeled: split(4 * plan.unlabeled_batch, false),
        train: split(4 * plan.labeled_batch, true),
        test: split(plan.labeled_batch, true),
        class_names: (0..classes).map(|c| format!("class{c}")).collect(),
        image_size: size,
        skipped: 0,
    }
}

/// Seconds per step of `run(steps)` after `run(warmup)`, waiting for the device only at the end,
/// as an epoch's last metrics read does.
fn timed(
    warmup: usize,
    steps: usize,
    device: Device,
    mut run: impl FnMut(usize) -> Result<Tensor>,
) -> Result<f64> {
    run(warmup)?.double_value(&[0]);
    sync(device);
    let start = Instant::now();
    run(steps)?.double_value(&[0]);
    Ok(start.elapsed().as_secs_f64() / steps as f64)
}

/// `steps` training steps of `model` over `feed` batches, cycling through epochs; returns the
/// metric sums so the caller can wait for them.
fn run_steps<S: TrainStep>(
    model: &mut S,
    loader: &Loader,
    feed: Feed,
    steps: usize,
) -> Result<Tensor> {
    let mut sums = Tensor::zeros([S::METRICS.len() as i64], (Kind::Double, model.device()));
    let mut done = 0;
    for epoch in 1.. {
        for batch in loader.epoch(feed, epoch, 0)? {
            if done == steps {
                return Ok(sums);
            }
            let _ = sums.g_add_(&model.train_step(&batch?)?.to_kind(Kind::Double));
            done += 1;
        }
    }
    unreachable!("the epoch loop only ends by returning")
}

/// Runs `warmup` then `steps` timed steps of each kind: the pretraining step of `pretraining`
/// and the supervised step of `baseline`, at the shapes of `data`; as `replica`'s rank of a
/// data-parallel run when given.
pub fn run(
    data: &DataSettings,
    pretraining: &PretrainSettings,
    baseline: &SupervisedSettings,
    compute: Compute,
    replica: Option<&std::rc::Rc<Replica>>,
    steps: usize,
    warmup: usize,
) -> Result<BenchReport> {
    let (unlabeled, labeled, classes) = published_sizes(&data.data);
    let batch_size = data.data.batch_size;
    let epoch = BatchPlan::new(unlabeled, labeled, batch_size)?;
    let size = data.data.image_size;
    let device = compute.device;
    let ds = synthetic(&epoch, size, classes);
    let plan = BatchPlan::new(ds.unlabeled.len(), ds.train.len(), batch_size)?;
    let resident = if device.is_cuda() && data.resident_data {
        Some(Resident::upload(&ds, device)?)
    } else {
        None
    };
    let loader = Loader {
        ds: &ds,
        plan,
        seed: data.seed,
        resident: resident.as_ref(),
        replica: replica.map(|r| &**r),
        prefetch: data.data.prefetch,
        device,
    };
    let mut model = ContrastiveModel::new(pretraining, classes as i64, compute)?;
    if let Some(r) = replica {
        model = model.data_parallel(r.clone())?;
    }
    let pretrain = timed(warmup, steps, device, |n| {
        run_steps(&mut model, &loader, Feed::Zipped, n)
    })?;

    let both = loader
        .epoch(Feed::Zipped, 1, 0)?
        .next()
        .expect("four steps per epoch")?
        .images
        .to_device(device)
        .repeat([2, 1, 1, 1]);
    let mut strong =
        augment::Augmenter::new(pretraining.views, 0, device)?.with_format(compute.format);
    let augment = time_steps(steps, device, || {
        let _views = strong.augment(&both)?;
        Ok(())
    })?;

    let mut clf = SupervisedModel::new(baseline, classes as i64, compute)?;
    if let Some(r) = replica {
        clf = clf.data_parallel(r.clone())?;
    }
    // A supervised step is about 40x shorter: time 20x as many, so both spans are seconds long.
    let supervised = timed(warmup, steps * SUPERVISED_STEPS_PER_STEP, device, |n| {
        run_steps(&mut clf, &loader, Feed::Labeled, n)
    })?;

    let ranks = replica.map_or(1, |r| r.world());
    let (per_step, supervised_steps) = (
        epoch.unlabeled_batch + epoch.labeled_batch,
        labeled.div_ceil(epoch.labeled_batch),
    );
    Ok(BenchReport {
        shape: format!(
            "{} {size}x{size}: {} steps of {} + {} images",
            format!("{:?}", data.data.kind).to_lowercase(),
            epoch.steps,
            epoch.unlabeled_batch,
            epoch.labeled_batch
        ),
        device: crate::runtime::describe(device),
        compute: compute.describe(),
        precision: compute.precision.name(),
        memory_format: compute.format.name(),
        encoder_chunk: compute.encoder_chunk,
        resident_data: resident.is_some(),
        threads: tch::get_num_threads(),
        ranks,
        data_parallel: replica.map(|r| r.describe()),
        steps,
        warmup_steps: warmup,
        pretrain_seconds_per_step: pretrain,
        pretrain_views_per_s: (2 * per_step) as f64 / pretrain,
        pretrain_views_per_s_per_rank: (2 * per_step) as f64 / pretrain / ranks as f64,
        pretrain_epoch_seconds: epoch.steps as f64 * pretrain,
        pretrain_epochs_per_minute: 60.0 / (epoch.steps as f64 * pretrain),
        supervised_seconds_per_step: supervised,
        supervised_images_per_s: epoch.labeled_batch as f64 / supervised,
        supervised_images_per_s_per_rank: epoch.labeled_batch as f64 / supervised / ranks as f64,
        supervised_epoch_seconds: supervised_steps as f64 * supervised,
        augment_share_of_pretrain_step: augment / pretrain,
    })
}

//! The epoch loops (Keras's `fit`): batches, running means, evaluation on the test split every
//! epoch, and an [`Observer`] for progress display.

use std::time::Instant;

use stl10_data::{BatchPlan, Dataset, LabeledEpoch, ZippedEpoch};

use crate::error::{Result, TrainError};
use crate::metrics::{EpochRecord, History, RunningMeans};
use crate::steps::{ContrastiveModel, EvalSums, SupervisedModel};

/// Receives progress; every method has a no-op default.
pub trait Observer {
    /// A run's epoch begins with `steps` steps.
    fn epoch_start(&mut self, _run: &str, _epoch: usize, _epochs: usize, _steps: usize) {}
    /// Step `step` (1-based) finished; `means` are the running means so far.
    fn step(&mut self, _step: usize, _means: &[(&'static str, f64)]) {}
    /// The epoch finished, validation included.
    fn epoch_end(&mut self, _run: &str, _record: &EpochRecord) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

fn check_finite(names: &[&'static str], values: &[f64], epoch: usize, step: usize) -> Result<()> {
    match names.iter().zip(values).find(|(_, v)| !v.is_finite()) {
        Some((&metric, &value)) => Err(TrainError::NonFinite {
            metric,
            value,
            epoch,
            step,
        }),
        None => Ok(()),
    }
}

const PRETRAIN_METRICS: &[&str] = &["c_loss", "c_acc", "p_loss", "p_acc"];
const SUPERVISED_METRICS: &[&str] = &["loss", "acc"];

/// Contrastive pretraining for `epochs` epochs; validation reports `val_p_loss`, `val_p_acc`.
pub fn pretrain(
    model: &mut ContrastiveModel,
    ds: &Dataset,
    plan: BatchPlan,
    epochs: usize,
    seed: u64,
    obs: &mut dyn Observer,
) -> Result<History> {
    let mut history = History::new("pretraining");
    for epoch in 1..=epochs {
        obs.epoch_start("pretraining", epoch, epochs, plan.steps);
        let mut means = RunningMeans::new(PRETRAIN_METRICS);
        let start = Instant::now();
        let mut images = 0;
        for (i, batch) in
            ZippedEpoch::new(&ds.unlabeled, &ds.train, plan, seed, epoch as u64).enumerate()
        {
            let m = model.train_step(&batch.unlabeled, &batch.labeled, &batch.labels)?;
            let values = [m.c_loss, m.c_acc, m.p_loss, m.p_acc];
            check_finite(PRETRAIN_METRICS, &values, epoch, i + 1)?;
            means.update(&values);
            images += 2 * (plan.unlabeled_batch + plan.labeled_batch);
            obs.step(i + 1, &means.means());
        }
        let seconds = start.elapsed().as_secs_f64();
        let (val_loss, val_acc) = evaluate(ds, plan, |x, y| model.test_sums(x, y))?;
        let record = record(
            epoch,
            means,
            &[("val_p_loss", val_loss), ("val_p_acc", val_acc)],
            seconds,
            images,
        );
        obs.epoch_end("pretraining", &record);
        history.epochs.push(record);
    }
    Ok(history)
}

/// Supervised training over the labeled split in batches of the plan's labeled batch size;
/// validation reports `val_loss`, `val_acc`.
pub fn supervised(
    model: &mut SupervisedModel,
    run: &str,
    ds: &Dataset,
    plan: BatchPlan,
    epochs: usize,
    seed: u64,
    obs: &mut dyn Observer,
) -> Result<History> {
    let mut history = History::new(run);
    for epoch in 1..=epochs {
        let batches = LabeledEpoch::shuffled(&ds.train, plan.labeled_batch, seed, epoch as u64)?;
        obs.epoch_start(run, epoch, epochs, batches.steps());
        let mut means = RunningMeans::new(SUPERVISED_METRICS);
        let start = Instant::now();
        let mut images = 0;
        for (i, batch) in batches.enumerate() {
            let (loss, acc) = model.train_step(&batch.images, &batch.labels);
            check_finite(SUPERVISED_METRICS, &[loss, acc], epoch, i + 1)?;
            means.update(&[loss, acc]);
            images += batch.labels.size()[0] as usize;
            obs.step(i + 1, &means.means());
        }
        let seconds = start.elapsed().as_secs_f64();
        let (val_loss, val_acc) = evaluate(ds, plan, |x, y| model.test_sums(x, y))?;
        let record = record(
            epoch,
            means,
            &[("val_loss", val_loss), ("val_acc", val_acc)],
            seconds,
            images,
        );
        obs.epoch_end(run, &record);
        history.epochs.push(record);
    }
    Ok(history)
}

/// Mean loss and accuracy over the test split, in order, in batches of the step size.
pub fn evaluate(
    ds: &Dataset,
    plan: BatchPlan,
    mut sums: impl FnMut(&tch::Tensor, &tch::Tensor) -> (f64, f64),
) -> Result<(f64, f64)> {
    if ds.test.is_empty() {
        return Ok((f64::NAN, f64::NAN));
    }
    let batch = plan.unlabeled_batch + plan.labeled_batch;
    let mut total = EvalSums::default();
    for b in LabeledEpoch::in_order(&ds.test, batch)? {
        total.add(sums(&b.images, &b.labels), b.labels.size()[0]);
    }
    Ok(total.means())
}

fn record(
    epoch: usize,
    means: RunningMeans,
    val: &[(&str, f64)],
    seconds: f64,
    images: usize,
) -> EpochRecord {
    let metrics = means
        .means()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(val.iter().map(|(k, v)| (k.to_string(), *v)))
        .collect();
    EpochRecord {
        epoch,
        metrics,
        train_seconds: seconds,
        images_per_second: images as f64 / seconds.max(1e-9),
    }
}

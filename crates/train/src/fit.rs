//! The epoch loop (Keras's `fit`) over any `TrainStep`: batches from a `Loader`, metrics
//! summed on the device and read every `metrics_every` steps and at the end of the epoch,
//! evaluation on the test split every epoch, a checkpoint after every epoch (and when asked to
//! stop), and an [`Observer`] for progress display and stop requests.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{Result, TrainError};
use crate::fit::metrics::{EpochRecord, History};
use crate::prepared::loader::{Feed, Loader};
use crate::steps::TrainStep;

pub mod metrics;

/// Receives progress; every method has a no-op default.
pub trait Observer {
    /// A run starts (or resumes) at `at`, with `steps` steps an epoch; what an observer logged
    /// past `at` before (a run resumed from its checkpoint) is logged again.
    fn run_start(&mut self, _run: &str, _at: &Position, _steps: usize) {}
    /// A run's epoch begins with `steps` steps.
    fn epoch_start(&mut self, _run: &str, _epoch: usize, _epochs: usize, _steps: usize) {}
    /// A step finished.
    fn step(&mut self, _step: &StepReport) {}
    /// The epoch finished, validation included.
    fn epoch_end(&mut self, _run: &str, _record: &EpochRecord) {}
    /// Asked after every step: `true` makes the loop save a checkpoint after this step and
    /// return [`TrainError::Interrupted`] (Ctrl-C in the CLI).
    fn should_stop(&self) -> bool {
        false
    }
}

/// What [`Observer::step`] is told of a step.
pub struct StepReport<'a> {
    /// The step of the epoch, 1-based.
    pub step: usize,
    /// The running means of the epoch's metrics as last read from the device.
    pub means: &'a [(&'static str, f64)],
    /// Whether `means` were read at this step (every `runtime.metrics_every` steps, at the
    /// epoch's last and before a stop).
    pub read: bool,
    /// Each optimizer's rate in this step (when `read`; empty otherwise).
    pub learning_rates: &'a [(&'static str, f64)],
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

/// An observer lent.
impl<O: Observer + ?Sized> Observer for &mut O {
    fn run_start(&mut self, run: &str, at: &Position, steps: usize) {
        (**self).run_start(run, at, steps);
    }
    fn epoch_start(&mut self, run: &str, epoch: usize, epochs: usize, steps: usize) {
        (**self).epoch_start(run, epoch, epochs, steps);
    }
    fn step(&mut self, step: &StepReport) {
        (**self).step(step);
    }
    fn epoch_end(&mut self, run: &str, record: &EpochRecord) {
        (**self).epoch_end(run, record);
    }
    fn should_stop(&self) -> bool {
        (**self).should_stop()
    }
}

/// An observer that may be absent (told nothing then).
impl<O: Observer> Observer for Option<O> {
    fn run_start(&mut self, run: &str, at: &Position, steps: usize) {
        if let Some(o) = self {
            o.run_start(run, at, steps);
        }
    }
    fn epoch_start(&mut self, run: &str, epoch: usize, epochs: usize, steps: usize) {
        if let Some(o) = self {
            o.epoch_start(run, epoch, epochs, steps);
        }
    }
    fn step(&mut self, step: &StepReport) {
        if let Some(o) = self {
            o.step(step);
        }
    }
    fn epoch_end(&mut self, run: &str, record: &EpochRecord) {
        if let Some(o) = self {
            o.epoch_end(run, record);
        }
    }
    fn should_stop(&self) -> bool {
        self.as_ref().is_some_and(|o| o.should_stop())
    }
}

/// Two observers told everything in turn; either asks to stop.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn run_start(&mut self, run: &str, at: &Position, steps: usize) {
        self.0.run_start(run, at, steps);
        self.1.run_start(run, at, steps);
    }
    fn epoch_start(&mut self, run: &str, epoch: usize, epochs: usize, steps: usize) {
        self.0.epoch_start(run, epoch, epochs, steps);
        self.1.epoch_start(run, epoch, epochs, steps);
    }
    fn step(&mut self, step: &StepReport) {
        self.0.step(step);
        self.1.step(step);
    }
    fn epoch_end(&mut self, run: &str, record: &EpochRecord) {
        self.0.epoch_end(run, record);
        self.1.epoch_end(run, record);
    }
    fn should_stop(&self) -> bool {
        self.0.should_stop() || self.1.should_stop()
    }
}

/// Where a run stands: `epoch` epochs finished, and `step` steps of the next one with their
/// metric sums and timing (zero at an epoch's end). Saved with every checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub epoch: usize,
    pub step: usize,
    /// Sums of the `TrainStep::METRICS` over the `step` steps done (float64, as on the device).
    pub sums: Vec<f64>,
    pub seconds: f64,
    pub images: usize,
}

/// One phase to train: its name, data, feed and length.
#[derive(Clone, Copy)]
pub(crate) struct Phase<'a> {
    /// The run's name in histories and messages (`baseline`, `pretraining`, `finetuning`).
    pub run: &'a str,
    pub loader: &'a Loader<'a>,
    pub feed: Feed,
    /// Epochs in all (a resumed run counts those done).
    pub epochs: usize,
    pub metrics_every: usize,
}

/// Called with the model, the history so far and the position after every epoch and on a stop
/// request; writes a checkpoint.
pub(crate) type Checkpoint<'a, S> = dyn FnMut(&S, &History, &Position) -> Result<()> + 'a;

/// Metric sums on the device (float64), added to without waiting and read on demand, and the
/// first step whose metrics were not finite (-1 while all were).
struct DeviceSums {
    sums: Tensor,
    first_bad: Tensor,
}

impl DeviceSums {
    fn new(start: &[f64], len: usize, device: tch::Device) -> Self {
        let sums = if start.len() == len {
            Tensor::from_slice(start).to_device(device)
        } else {
            Tensor::zeros([len as i64], (Kind::Double, device))
        };
        DeviceSums {
            sums,
            first_bad: Tensor::full([], -1, (Kind::Int64, device)),
        }
    }

    /// Adds step `step`'s values (1-based), noting the step if one is not finite.
    fn add(&mut self, values: &Tensor, step: usize) {
        let values = values.to_kind(Kind::Double);
        let _ = self.sums.g_add_(&values);
        let keep = self.first_bad.ge(0).logical_or(&values.isfinite().all());
        self.first_bad = self.first_bad.where_scalarother(&keep, step as i64);
    }

    /// The sums on the host and the first non-finite step: this waits for the device.
    fn read(&self) -> Result<(Vec<f64>, Option<usize>)> {
        let _span = tracing::debug_span!("read metrics").entered();
        let sums = Vec::<f64>::try_from(&self.sums.to_device(tch::Device::Cpu))?;
        let bad = self.first_bad.int64_value(&[]);
        Ok((sums, usize::try_from(bad).ok()))
    }
}

/// The running means after `steps` steps.
fn means(names: &'static [&'static str], sums: &[f64], steps: usize) -> Vec<(&'static str, f64)> {
    names
        .iter()
        .zip(sums)
        .map(|(&k, s)| (k, s / steps.max(1) as f64))
        .collect()
}

/// An error naming the first non-finite metric of step `step`.
fn diverged(run: &str, names: &[&str], sums: &[f64], epoch: usize, step: usize) -> TrainError {
    let (metric, value) = names
        .iter()
        .zip(sums)
        .find(|(_, v)| !v.is_finite())
        .map_or(("a metric", f64::NAN), |(k, v)| (*k, *v));
    TrainError::NonFinite {
        run: run.to_string(),
        metric: metric.to_string(),
        value,
        epoch,
        step,
    }
}

/// Trains `model` from `start` (with `history` of the epochs done) to `phase.epochs` epochs,
/// validating on the test split after each epoch and calling `checkpoint` then. When
/// `obs.should_stop()` turns true, the current step finishes, `checkpoint` records the position
/// mid-epoch and [`TrainError::Interrupted`] is returned; resuming from that checkpoint gives
/// what an uninterrupted run gives. A non-finite metric ends the run with
/// [`TrainError::NonFinite`] before any checkpoint of the bad weights is written.
pub(crate) fn fit<S: TrainStep>(
    model: &mut S,
    phase: &Phase,
    mut history: History,
    start: Position,
    checkpoint: &mut Checkpoint<S>,
    obs: &mut dyn Observer,
) -> Result<History> {
    let mut pos = start;
    model.plan_schedules(phase.loader, phase.feed, phase.epochs);
    obs.run_start(phase.run, &pos, phase.loader.epoch_shape(phase.feed).0);
    // Asked to stop before anything ran (between two phases): nothing new to save.
    if stop_requested(phase, obs)? && pos.epoch < phase.epochs {
        return Err(interrupted(phase, pos.epoch + 1, pos.step));
    }
    while pos.epoch < phase.epochs {
        let epoch = pos.epoch + 1;
        let trained = train_epoch(model, phase, &pos, &history, checkpoint, obs)?;
        let record = epoch_record(model, phase, epoch, trained)?;
        obs.epoch_end(phase.run, &record);
        history.epochs.push(record);
        pos = Position {
            epoch,
            ..Position::default()
        };
        checkpoint(model, &history, &pos)?;
        if stop_requested(phase, obs)? && pos.epoch < phase.epochs {
            return Err(interrupted(phase, epoch + 1, 0));
        }
    }
    Ok(history)
}

/// What an epoch's training steps leave behind.
struct Trained {
    /// The running means at the end of the epoch.
    means: Vec<(&'static str, f64)>,
    seconds: f64,
    images: usize,
}

/// The training steps of the epoch after `pos`, from `pos.step` on; on a stop request, the
/// position mid-epoch goes to `checkpoint` and the result is [`TrainError::Interrupted`].
fn train_epoch<S: TrainStep>(
    model: &mut S,
    phase: &Phase,
    pos: &Position,
    history: &History,
    checkpoint: &mut Checkpoint<S>,
    obs: &mut dyn Observer,
) -> Result<Trained> {
    let (every, epoch) = (phase.metrics_every.max(1), pos.epoch + 1);
    let _span = tracing::debug_span!("epoch", run = phase.run, epoch).entered();
    let batches = phase.loader.epoch(phase.feed, epoch, pos.step)?;
    let steps = batches.steps();
    obs.epoch_start(phase.run, epoch, phase.epochs, steps);
    let mut sums = DeviceSums::new(&pos.sums, S::METRICS.len(), model.device());
    let mut shown = means(S::METRICS, &pos.sums, pos.step);
    let started = Instant::now();
    let seconds = || pos.seconds + started.elapsed().as_secs_f64();
    let mut images = pos.images;
    for (step, batch) in (pos.step + 1..).zip(batches) {
        let batch = batch?;
        sums.add(&model.train_step(&batch)?, step);
        images += S::VIEWS * batch.len();
        let stop = stop_requested(phase, obs)?;
        let read = step % every == 0 || step == steps || stop;
        let (read_sums, rates) = if read {
            let (sums, bad) = sums.read()?;
            if let Some(bad) = bad {
                return Err(diverged(phase.run, S::METRICS, &sums, epoch, bad));
            }
            shown = means(S::METRICS, &sums, step);
            (Some(sums), model.learning_rates())
        } else {
            (None, Vec::new())
        };
        // Observers see the step before its checkpoint: a resumed run drops what they logged
        // after the checkpoint it resumes from.
        obs.step(&StepReport {
            step,
            means: &shown,
            read,
            learning_rates: &rates,
        });
        // A stop is always a read step, so its sums are at hand.
        if let Some(sums) = read_sums.filter(|_| stop && step < steps) {
            let at = Position {
                epoch: pos.epoch,
                step,
                sums,
                seconds: seconds(),
                images,
            };
            checkpoint(model, history, &at)?;
            return Err(interrupted(phase, epoch, step));
        }
    }
    Ok(Trained {
        means: shown,
        seconds: seconds(),
        images,
    })
}

/// Epoch `epoch`'s record: the training means, then validation loss and accuracy and the
/// model's monitors, computed now.
fn epoch_record<S: TrainStep>(
    model: &S,
    phase: &Phase,
    epoch: usize,
    trained: Trained,
) -> Result<EpochRecord> {
    let _span = tracing::debug_span!("validate", run = phase.run, epoch).entered();
    model.align_buffers()?;
    let (val_loss, val_acc) = evaluate(model, phase.loader)?;
    let monitors = model.monitors(phase.loader)?;
    let [loss_name, acc_name] = S::VALIDATION;
    Ok(EpochRecord {
        epoch,
        metrics: trained
            .means
            .into_iter()
            .chain([(loss_name, val_loss), (acc_name, val_acc)])
            .chain(monitors)
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        train_seconds: trained.seconds,
        images_per_second: trained.images as f64 / trained.seconds.max(1e-9),
    })
}

/// Whether `obs` asks to stop; in a data-parallel run, whether any rank's observer does, so
/// that every rank stops after the same step (a signal reaches the ranks at different times).
fn stop_requested(phase: &Phase, obs: &dyn Observer) -> Result<bool> {
    let stop = obs.should_stop();
    match phase.loader.replica {
        Some(replica) => replica.any(stop),
        None => Ok(stop),
    }
}

fn interrupted(phase: &Phase, epoch: usize, step: usize) -> TrainError {
    TrainError::Interrupted {
        run: phase.run.to_string(),
        epoch,
        step,
    }
}

/// [`fit`] from scratch, without checkpoints.
#[cfg(test)]
pub(crate) fn fit_fresh<S: TrainStep>(
    model: &mut S,
    phase: &Phase,
    obs: &mut dyn Observer,
) -> Result<History> {
    let history = History::new(phase.run);
    fit(
        model,
        phase,
        history,
        Position::default(),
        &mut |_, _, _| Ok(()),
        obs,
    )
}

/// Mean loss and accuracy of `model` over the test split, in order, in batches of the step
/// size; the sums stay on the device until the end. In a data-parallel run each rank takes its
/// part of every batch, and the sums are added over the ranks.
pub(crate) fn evaluate<S: TrainStep>(model: &S, loader: &Loader) -> Result<(f64, f64)> {
    if loader.ds.test.is_empty() {
        return Ok((f64::NAN, f64::NAN));
    }
    let mut sums = DeviceSums::new(&[], 2, model.device());
    for batch in loader.test()? {
        sums.add(&model.test_sums(&batch?), 0);
    }
    if let Some(replica) = loader.replica {
        sums.sums = replica.sum(&sums.sums)?;
    }
    let (s, _) = sums.read()?;
    let n = loader.ds.test.len().max(1) as f64;
    Ok((s[0] / n, s[1] / n))
}

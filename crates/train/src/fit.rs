//! The epoch loop (Keras's `fit`) over any [`TrainStep`]: batches from a [`Loader`], metrics
//! summed on the device and read every `metrics_every` steps and at the end of the epoch,
//! evaluation on the test split every epoch, and an [`Observer`] for progress display.

use std::time::Instant;

use tch::{Kind, Tensor};

use crate::error::{Result, TrainError};
use crate::loader::{Feed, Loader};
use crate::metrics::{EpochRecord, History};
use crate::steps::TrainStep;

/// Receives progress; every method has a no-op default.
pub trait Observer {
    /// A run's epoch begins with `steps` steps.
    fn epoch_start(&mut self, _run: &str, _epoch: usize, _epochs: usize, _steps: usize) {}
    /// Step `step` (1-based) finished; `means` are the running means as last read from the
    /// device (every `runtime.metrics_every` steps).
    fn step(&mut self, _step: usize, _means: &[(&'static str, f64)]) {}
    /// The epoch finished, validation included.
    fn epoch_end(&mut self, _run: &str, _record: &EpochRecord) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

/// Metric sums on the device (float64), added to without waiting and read on demand.
struct DeviceSums {
    sums: Tensor,
}

impl DeviceSums {
    fn new(len: usize, device: tch::Device) -> Self {
        DeviceSums {
            sums: Tensor::zeros([len as i64], (Kind::Double, device)),
        }
    }

    fn add(&mut self, values: &Tensor) {
        let _ = self.sums.g_add_(&values.to_kind(Kind::Double));
    }

    /// The sums on the host: this waits for the device.
    fn read(&self) -> Result<Vec<f64>> {
        Ok(Vec::<f64>::try_from(
            &self.sums.to_device(tch::Device::Cpu),
        )?)
    }
}

/// The running means after `steps` steps, checked for non-finite values.
fn means(
    names: &'static [&'static str],
    sums: &[f64],
    steps: usize,
    epoch: usize,
) -> Result<Vec<(&'static str, f64)>> {
    let means: Vec<_> = names
        .iter()
        .zip(sums)
        .map(|(&k, s)| (k, s / steps.max(1) as f64))
        .collect();
    match means.iter().find(|(_, v)| !v.is_finite()) {
        Some(&(metric, value)) => Err(TrainError::NonFinite {
            metric,
            value,
            epoch,
            step: steps,
        }),
        None => Ok(means),
    }
}

/// Trains `model` for `epochs` epochs of `feed` batches, validating on the test split after
/// each; the run is called `run` in the history and the observer's calls.
pub fn fit<S: TrainStep>(
    model: &mut S,
    run: &str,
    loader: &Loader,
    feed: Feed,
    epochs: usize,
    metrics_every: usize,
    obs: &mut dyn Observer,
) -> Result<History> {
    let mut history = History::new(run);
    let every = metrics_every.max(1);
    for epoch in 1..=epochs {
        let batches = loader.epoch(feed, epoch)?;
        let steps = batches.steps();
        obs.epoch_start(run, epoch, epochs, steps);
        let mut sums = DeviceSums::new(S::METRICS.len(), model.device());
        let mut shown = means(S::METRICS, &[], 0, epoch)?;
        let (start, mut images) = (Instant::now(), 0);
        for (i, batch) in batches.enumerate() {
            sums.add(&model.train_step(&batch)?);
            images += S::VIEWS * batch.len();
            let step = i + 1;
            if step % every == 0 || step == steps {
                shown = means(S::METRICS, &sums.read()?, step, epoch)?;
            }
            obs.step(step, &shown);
        }
        let seconds = start.elapsed().as_secs_f64();
        let (val_loss, val_acc) = evaluate(model, loader)?;
        let [loss_name, acc_name] = S::VALIDATION;
        let record = EpochRecord {
            epoch,
            metrics: shown
                .into_iter()
                .chain([(loss_name, val_loss), (acc_name, val_acc)])
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            train_seconds: seconds,
            images_per_second: images as f64 / seconds.max(1e-9),
        };
        obs.epoch_end(run, &record);
        history.epochs.push(record);
    }
    Ok(history)
}

/// Mean loss and accuracy of `model` over the test split, in order, in batches of the step
/// size; the sums stay on the device until the end.
pub fn evaluate<S: TrainStep>(model: &S, loader: &Loader) -> Result<(f64, f64)> {
    if loader.ds.test.is_empty() {
        return Ok((f64::NAN, f64::NAN));
    }
    let mut sums = DeviceSums::new(2, model.device());
    let mut count = 0;
    for batch in loader.test()? {
        sums.add(&model.test_sums(&batch));
        count += batch.len();
    }
    let s = sums.read()?;
    let n = count.max(1) as f64;
    Ok((s[0] / n, s[1] / n))
}

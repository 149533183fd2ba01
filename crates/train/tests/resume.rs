//! Resumed = uninterrupted, on the CPU, bit for bit. Alone in its test binary: model
//! initialisation seeds libtorch's global generator, which parallel tests would disturb.

use std::cell::Cell;
use std::path::Path;

use train::config::Config;
use train::error::TrainError;
use train::fit::metrics::History;
use train::fit::{Observer, Silent, StepReport};
use train::run_dir::state;
use train::{experiment, prepared::Prepared, run_dir::Recorded, run_dir::RunDir};

fn config(root: &Path, epochs: usize) -> Config {
    Config::load(
        None,
        &[
            "data.kind=idx".into(),
            format!("data.root={}", root.display()),
            "data.image_size=32".into(),
            "data.labeled_per_class=3".into(),
            "data.batch_size=10".into(),
            "model.width=8".into(),
            "runtime.device=cpu".into(),
            "runtime.metrics_every=2".into(),
            format!("baseline.epochs={epochs}"),
            format!("pretrain.epochs={epochs}"),
            format!("finetune.epochs={epochs}"),
        ],
    )
    .unwrap()
}

/// Asks to stop once `after` steps have been observed.
struct StopAfter {
    after: usize,
    seen: Cell<usize>,
}

impl Observer for StopAfter {
    fn step(&mut self, _: &StepReport) {
        self.seen.set(self.seen.get() + 1);
    }
    fn should_stop(&self) -> bool {
        self.seen.get() + 1 > self.after
    }
}

/// Records what a run really did: the epochs it started (with their steps) and every step.
#[derive(Default)]
struct Counter {
    /// `(run, epoch, steps of that epoch)` for every epoch started.
    epochs: Vec<(String, usize, usize)>,
    /// The 1-based index of every step run, in order.
    steps: Vec<usize>,
}

impl Observer for Counter {
    fn epoch_start(&mut self, run: &str, epoch: usize, _: usize, steps: usize) {
        self.epochs.push((run.to_string(), epoch, steps));
    }
    fn step(&mut self, s: &StepReport) {
        self.steps.push(s.step);
    }
}

fn all_phases(cfg: &Config, prep: &Prepared, dir: &RunDir, obs: &mut dyn Observer) {
    experiment::baseline(&cfg.supervised_baseline(), prep, dir, obs).unwrap();
    experiment::pretrain(&cfg.pretraining(), prep, dir, obs).unwrap();
    experiment::finetune(
        &cfg.finetuning(),
        prep,
        &dir.file("encoder.safetensors"),
        dir,
        obs,
    )
    .unwrap();
}

/// The metrics of every epoch (timings differ between runs, the numbers must not).
fn metrics(h: &History) -> Vec<Vec<(String, f64)>> {
    h.epochs.iter().map(|e| e.metrics.clone()).collect()
}

/// Asserts that two run folders hold the same phase checkpoints, histories and final files.
fn assert_same_runs(a: &Path, b: &Path, what: &str) {
    for run in ["baseline", "pretraining", "finetuning"] {
        let x = state::load(&a.join("state"), run).unwrap().unwrap();
        let y = state::load(&b.join("state"), run).unwrap().unwrap();
        assert_eq!(x.state.position, y.state.position, "{what}: {run} position");
        assert_eq!(x.state.streams, y.state.streams, "{what}: {run} streams");
        assert_eq!(
            metrics(&x.state.history),
            metrics(&y.state.history),
            "{what}: {run} history"
        );
        let mut names: Vec<&String> = x.tensors.keys().collect();
        names.sort();
        assert_eq!(x.tensors.len(), y.tensors.len(), "{what}: {run}");
        assert!(
            names.iter().any(|n| n.contains(".m.")),
            "optimizer moments saved"
        );
        for name in names {
            assert!(
                x.tensors[name].equal(&y.tensors[name]),
                "{what}: {run} {name} differs"
            );
        }
    }
    for file in [
        "baseline.safetensors",
        "encoder.safetensors",
        "linear_probe.safetensors",
        "finetuned.safetensors",
    ] {
        assert_eq!(
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
            "{what}: {file}"
        );
    }
}

#[test]
fn two_epochs_resumed_to_four_and_a_stopped_run_equal_a_straight_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    test_support::fixtures::write_idx_set(&data, 60, 20, 28, 28).unwrap();
    let (two, four) = (config(&data, 2), config(&data, 4));
    let prep = Prepared::new(&four.data_settings(), four.compute(tch::Device::Cpu)).unwrap();
    assert!(prep.plan.steps >= 3, "{}", prep.plan.describe());

    let straight = tmp.path().join("straight");
    all_phases(
        &four,
        &prep,
        &RunDir::create(&straight, &four).unwrap(),
        &mut Silent,
    );

    // Two epochs, then the same folder resumed with four.
    let resumed = tmp.path().join("resumed");
    all_phases(
        &two,
        &prep,
        &RunDir::create(&resumed, &two).unwrap(),
        &mut Silent,
    );
    let dir = RunDir::resume(Recorded::read(&resumed).unwrap(), &four, true).unwrap();
    let mut counted = Counter::default();
    all_phases(&four, &prep, &dir, &mut counted);
    assert_same_runs(&straight, &resumed, "2 + 2 epochs");
    // After the resume only epochs 3 and 4 of the baseline and the pretraining ran, every step
    // of them once; the fine-tuning started over, since its encoder changed with two more
    // epochs of pretraining.
    let started: Vec<(&str, usize)> = counted
        .epochs
        .iter()
        .map(|(run, epoch, _)| (run.as_str(), *epoch))
        .collect();
    let want: Vec<(&str, usize)> = ["baseline", "pretraining"]
        .into_iter()
        .flat_map(|run| [(run, 3), (run, 4)])
        .chain((1..=4).map(|epoch| ("finetuning", epoch)))
        .collect();
    assert_eq!(started, want, "epochs run after resuming 2 of 4");
    let steps: Vec<usize> = counted.epochs.iter().flat_map(|&(_, _, n)| 1..=n).collect();
    assert_eq!(counted.steps, steps, "each resumed epoch's steps, once");

    // Stopped in the middle of an epoch of every phase, resumed each time.
    let stopped = tmp.path().join("stopped");
    let steps = prep.plan.steps;
    let mut dir = RunDir::create(&stopped, &four).unwrap();
    for (stops, after) in [steps + 1, 2 * steps + 2, 3].into_iter().enumerate() {
        let mut obs = StopAfter {
            after,
            seen: Cell::new(0),
        };
        let result = match stops {
            0 => {
                experiment::baseline(&four.supervised_baseline(), &prep, &dir, &mut obs).map(|_| ())
            }
            1 => experiment::pretrain(&four.pretraining(), &prep, &dir, &mut obs).map(|_| ()),
            _ => experiment::finetune(
                &four.finetuning(),
                &prep,
                &dir.file("encoder.safetensors"),
                &dir,
                &mut obs,
            )
            .map(|_| ()),
        };
        let err = result.unwrap_err();
        assert!(matches!(err, TrainError::Interrupted { .. }), "{err}");
        dir = RunDir::resume(Recorded::read(&stopped).unwrap(), &four, true).unwrap();
        let pos = state::load(
            &dir.state_dir(),
            ["baseline", "pretraining", "finetuning"][stops],
        )
        .unwrap()
        .unwrap()
        .state
        .position;
        assert!(pos.step > 0, "stopped mid-epoch: {pos:?}");
        let mut counted = Counter::default();
        match stops {
            0 => drop(
                experiment::baseline(&four.supervised_baseline(), &prep, &dir, &mut counted)
                    .unwrap(),
            ),
            1 => {
                drop(experiment::pretrain(&four.pretraining(), &prep, &dir, &mut counted).unwrap())
            }
            _ => drop(
                experiment::finetune(
                    &four.finetuning(),
                    &prep,
                    &dir.file("encoder.safetensors"),
                    &dir,
                    &mut counted,
                )
                .unwrap(),
            ),
        }
        // The resumed run takes up at the step after the stop and runs only what was left.
        let per_epoch = counted.epochs[0].2;
        assert_eq!(
            counted.epochs[0].1,
            pos.epoch + 1,
            "resumed in the stopped epoch"
        );
        assert_eq!(
            counted.steps.first(),
            Some(&(pos.step + 1)),
            "first step run"
        );
        assert_eq!(
            counted.steps.len() + pos.epoch * per_epoch + pos.step,
            4 * per_epoch,
            "steps run after stopping at {pos:?}"
        );
    }
    assert_same_runs(&straight, &stopped, "stopped and resumed");

    // Lowering the epochs below what a phase has done is refused, naming the key.
    let dir = RunDir::resume(Recorded::read(&resumed).unwrap(), &two, true).unwrap();
    let e = experiment::baseline(&two.supervised_baseline(), &prep, &dir, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("4 epochs done") && e.contains("baseline.epochs = 2"),
        "{e}"
    );
    // Another seed is another run.
    let mut other = four.clone();
    other.runtime.seed += 1;
    let e = RunDir::resume(Recorded::read(&resumed).unwrap(), &other, true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("runtime.seed") && e.contains("config.toml"),
        "{e}"
    );
}

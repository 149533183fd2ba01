//! Data-parallel steps equal one process's steps on the whole batch: two ranks started by
//! torchrun (copies of this test binary, on c10d's gloo over loopback), each with its shard of
//! every step's batch, against one process with the whole batch, same seed. After three steps
//! the weights of every model agree to within float rounding, and so do the metrics. The
//! batches do not split evenly (9 + 5 images on 2 ranks: 5 + 3 and 4 + 2), so the gathering
//! of unequal shards is checked too.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use dist::{Backend, Launch, ProcessGroup};
use tch::{Device, Kind, Tensor};
use train::config::Config;
use train::prepared::loader::Batch;
use train::runtime::Replica;
use train::steps::{ContrastiveModel, SupervisedModel, TrainStep};

/// Which model a started rank trains (unset: this process is the test runner).
const ROLE: &str = "DATA_PARALLEL_ROLE";
/// Where rank 0 writes its weights and metrics.
const OUT: &str = "DATA_PARALLEL_OUT";
/// How many steps a started rank takes.
const STEPS_VAR: &str = "DATA_PARALLEL_STEPS";
/// Set: after its steps, a started rank aligns its BatchNorm buffers with rank 0's (as before
/// validation).
const ALIGN_VAR: &str = "DATA_PARALLEL_ALIGN";
const WORLD: usize = 2;
const STEPS: usize = 3;
/// Per step: unlabeled and labeled images of the whole batch.
const UNLABELED: i64 = 9;
const LABELED: i64 = 5;
const CLASSES: i64 = 4;

/// The configuration of `variant`: an optimizer (`sgd`, `adam`), and with `+bn` BatchNorm in
/// the model (the pretraining's projection head; ResNet-18 for the supervised run), per rank,
/// or with `+syncbn` synchronised over the ranks.
fn config(variant: &str, model: Model) -> Config {
    let (optimizer, norm) = variant.split_once('+').unwrap_or((variant, ""));
    let mut sets: Vec<String> = [
        "data.kind=folder",
        "data.image_size=32",
        "model.width=8",
        "runtime.seed=5",
        "runtime.precision=\"fp32\"",
    ]
    .map(String::from)
    .to_vec();
    for table in [
        "pretrain.optimizer",
        "pretrain.probe_optimizer",
        "baseline.optimizer",
    ] {
        sets.push(format!("{table}.kind=\"{optimizer}\""));
        let rate = if optimizer == "sgd" { 0.01 } else { 1e-3 };
        sets.push(format!("{table}.learning_rate={rate}"));
    }
    if !norm.is_empty() {
        sets.push(match model {
            Model::Pretrain => "model.projection_batch_norm=true".into(),
            Model::Supervised => "model.encoder=\"resnet18\"".into(),
        });
    }
    if norm == "syncbn" {
        sets.push("model.sync_batch_norm=true".into());
    }
    Config::load(None, &sets).unwrap()
}

/// Step `s`'s whole batch: pseudo-random uint8 images (unlabeled, then labeled) and the labeled
/// ones' labels, the same in every process (a 64-bit LCG of `s`: libtorch's generator is shared
/// by the test threads).
fn whole_batch(s: i64) -> (Tensor, Tensor) {
    let n = UNLABELED + LABELED;
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (s as u64 + 1);
    let bytes: Vec<u8> = (0..n * 3 * 32 * 32)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect();
    let images = Tensor::from_slice(&bytes).reshape([n, 3, 32, 32]);
    let labels = (Tensor::arange(LABELED, (Kind::Int64, Device::Cpu)) + s).remainder(CLASSES);
    (images, labels)
}

/// Step `s`'s batch for `model`: the whole one, or `replica`'s shard of it (its unlabeled rows,
/// then its labeled rows, with its place in the whole batch).
fn batch(model: Model, s: i64, replica: Option<&Replica>) -> Batch {
    let (images, labels) = whole_batch(s);
    let (whole_u, whole_l) = match model {
        Model::Pretrain => (UNLABELED as usize, LABELED as usize),
        Model::Supervised => (0, LABELED as usize),
    };
    let shard = replica.map(|r| r.shard(whole_u, whole_l));
    let (u, l) = shard.as_ref().map_or((0..whole_u, 0..whole_l), |s| {
        (s.unlabeled.clone(), s.labeled.clone())
    });
    let rows = |t: &Tensor, at: i64, r: &std::ops::Range<usize>| {
        t.narrow(0, at + r.start as i64, r.len() as i64)
    };
    Batch {
        images: Tensor::cat(&[rows(&images, 0, &u), rows(&images, UNLABELED, &l)], 0),
        labels: rows(&labels, 0, &l),
        shard,
    }
}

type Run = (BTreeMap<String, Tensor>, Vec<Vec<f64>>);

fn weights(stores: &[&tch::nn::VarStore]) -> BTreeMap<String, Tensor> {
    stores
        .iter()
        .flat_map(|vs| vs.variables())
        .map(|(k, v)| (k, v.detach().copy().contiguous()))
        .collect()
}

/// Which model a run trains.
#[derive(Debug, Clone, Copy)]
enum Model {
    /// Pretraining: the contrastive step on every image, the probe on the labeled ones.
    Pretrain,
    /// The supervised baseline on the labeled images.
    Supervised,
}

/// `steps` steps of `model` in `variant` (see [`config`]), on each step's whole batch, or as
/// `replica`'s rank on its shard: the weights after them (running statistics included) and
/// each step's metrics.
fn train(model: Model, variant: &str, steps: usize, replica: Option<Rc<Replica>>) -> Run {
    let cfg = config(variant, model);
    let cpu = cfg.compute(Device::Cpu);
    let metrics = |step: &mut dyn FnMut(&Batch) -> Tensor| -> Vec<Vec<f64>> {
        (0..steps as i64)
            .map(|s| {
                let b = batch(model, s, replica.as_deref());
                Vec::<f64>::try_from(step(&b).to_kind(Kind::Double)).unwrap()
            })
            .collect()
    };
    // A rank other than 0 starts from other weights: joining must make them rank 0's.
    let not_first = replica.as_ref().is_some_and(|r| r.rank() != 0);
    let disturb = |stores: &[&tch::nn::VarStore]| {
        if not_first {
            tch::no_grad(|| {
                for vs in stores {
                    for mut v in vs.trainable_variables() {
                        let _ = v.g_add_scalar_(0.5);
                    }
                }
            });
        }
    };
    match model {
        Model::Pretrain => {
            let mut m = ContrastiveModel::new(&cfg.pretraining(), CLASSES, cpu).unwrap();
            disturb(&[&m.vs, &m.probe_vs]);
            if let Some(r) = replica.clone() {
                m = m.data_parallel(r).unwrap();
            }
            let history = metrics(&mut |b| m.train_step(b).unwrap());
            (weights(&[&m.vs, &m.probe_vs]), history)
        }
        Model::Supervised => {
            let mut m = SupervisedModel::new(&cfg.supervised_baseline(), CLASSES, cpu).unwrap();
            disturb(&[&m.vs]);
            if let Some(r) = replica.clone() {
                m = m.data_parallel(r).unwrap();
            }
            let history = metrics(&mut |b| m.train_step(b).unwrap());
            if std::env::var_os(ALIGN_VAR).is_some() {
                m.align_buffers().unwrap();
            }
            (weights(&[&m.vs]), history)
        }
    }
}

fn save(run: &Run, dir: &Path) {
    let tensors: Vec<(&str, &Tensor)> = run.0.iter().map(|(k, v)| (k.as_str(), v)).collect();
    Tensor::write_safetensors(&tensors, dir.join("weights.safetensors")).unwrap();
    let text: Vec<String> = run
        .1
        .iter()
        .map(|m| {
            m.iter()
                .map(|v| format!("{v:e}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    std::fs::write(dir.join("metrics.txt"), text.join("\n")).unwrap();
}

fn load(dir: &Path) -> Run {
    let weights = Tensor::read_safetensors(dir.join("weights.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    let metrics = std::fs::read_to_string(dir.join("metrics.txt"))
        .unwrap()
        .lines()
        .map(|l| l.split(' ').map(|v| v.parse().unwrap()).collect())
        .collect();
    (weights, metrics)
}

/// The body of a started rank: its steps, and rank 0's results written to `OUT`.
#[test]
#[ignore = "one rank of a torchrun launch: started by the other tests of this file"]
fn rank() {
    let role = std::env::var(ROLE).unwrap();
    let launch = Launch::from_env().unwrap().expect("started by torchrun");
    let group = ProcessGroup::join(&launch, Backend::Gloo, Duration::from_secs(60)).unwrap();
    let replica = Rc::new(Replica::new(group));
    let (model, variant) = role.split_once(':').unwrap();
    let model = match model {
        "pretrain" => Model::Pretrain,
        "supervised" => Model::Supervised,
        other => panic!("{ROLE} = {other}"),
    };
    let steps = std::env::var(STEPS_VAR).unwrap().parse().unwrap();
    let run = train(model, variant, steps, Some(replica.clone()));
    let out = Path::new(&std::env::var(OUT).unwrap()).join(format!("rank{}", launch.rank));
    std::fs::create_dir_all(&out).unwrap();
    save(&run, &out);
    replica.barrier().unwrap();
}

/// `role` on two ranks under torchrun: rank 0's weights and metrics.
fn two_ranks(role: &str) -> Run {
    two_ranks_steps(role, STEPS)
}

/// [`two_ranks`] for `steps` steps.
fn two_ranks_steps(role: &str, steps: usize) -> Run {
    every_rank(role, steps, false).swap_remove(0)
}

/// `role` on two ranks for `steps` steps, aligning the BatchNorm buffers after them when
/// `align`: each rank's weights and metrics.
fn every_rank(role: &str, steps: usize, align: bool) -> Vec<Run> {
    let out = tempfile::tempdir().unwrap();
    let mut command = Command::new(test_support::torchrun());
    if align {
        command.env(ALIGN_VAR, "1");
    }
    let result = command
        .args([
            "--standalone",
            "--nproc-per-node",
            &WORLD.to_string(),
            "--no-python",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "rank",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(STEPS_VAR, steps.to_string())
        .env(OUT, out.path())
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    (0..WORLD)
        .map(|r| load(&out.path().join(format!("rank{r}"))))
        .collect()
}

/// Weights that no loss depends on: a bias in front of a BatchNorm (whose mean it cancels)
/// gets rounding for a gradient and stays near zero, where relative differences say nothing.
const WITHOUT_GRADIENT: [&str; 1] = ["projection_head.dense1.bias"];

/// The largest difference between two runs' weights (but [`WITHOUT_GRADIENT`]), relative to
/// the largest magnitude of each tensor, and where.
fn worst_difference(got: &Run, want: &Run) -> (f64, String) {
    assert_eq!(
        got.0.keys().collect::<Vec<_>>(),
        want.0.keys().collect::<Vec<_>>()
    );
    let mut worst = (0.0f64, String::new());
    for (name, w) in &want.0 {
        if WITHOUT_GRADIENT.contains(&name.as_str()) && name_has_batch_norm_after(name, want) {
            continue;
        }
        let g = &got.0[name];
        let scale = w.abs().max().double_value(&[]).max(1e-12);
        let diff = (g - w).abs().max().double_value(&[]) / scale;
        if diff > worst.0 {
            worst = (diff, name.clone());
        }
    }
    worst
}

/// Whether the layer of the bias `name` feeds a BatchNorm in `run` (its `bn1` is there).
fn name_has_batch_norm_after(name: &str, run: &Run) -> bool {
    name.starts_with("projection_head.dense1") && run.0.contains_key("projection_head.bn1.weight")
}

/// Every weight of `model`'s run in `variant` within `tolerance.0` of the reference, relative
/// to the largest magnitude of its tensor; the metrics within `tolerance.1` relative.
fn assert_same(
    (model, variant): (Model, &str),
    what: &str,
    got: &Run,
    want: &Run,
    tolerance: (f64, f64),
) {
    let (tolerance, metric_tolerance) = tolerance;
    let worst = worst_difference(got, want);
    assert!(
        worst.0 <= tolerance,
        "{what}: weights differ by {:.2e} (relative) in {}",
        worst.0,
        worst.1
    );
    for (s, (g, w)) in got.1.iter().zip(&want.1).enumerate() {
        for (a, b) in g.iter().zip(w) {
            assert!(
                (a - b).abs() <= metric_tolerance * b.abs().max(1.0),
                "{what}: step {s} metrics {g:?}, one process {w:?}"
            );
        }
    }
    assert_eq!(got.1.len(), STEPS, "{what}");
    // The steps changed the weights, so the comparison compares training.
    let fresh = train(model, variant, 0, None).0;
    let moved = want
        .0
        .iter()
        .filter(|(k, w)| (*w - &fresh[*k]).abs().max().double_value(&[]) > 1e-6)
        .count();
    assert!(
        moved * 2 > want.0.len(),
        "{what}: only {moved} tensors moved"
    );
}

/// Tolerances (weights, metrics), relative. SGD is linear in the gradient, so its weights show
/// the gradients themselves: the whole batch's, to float rounding (the ranks sum their parts in
/// another order than one backward does; observed 9.9e-7 on a 2-core AMD EPYC). Adam's first
/// steps divide each gradient by its own magnitude, so a rounding-size difference in a
/// near-zero gradient moves its weight by a fraction of the learning rate (observed 6.9e-6 at
/// the default 1e-3); one process meets the same when encoder slicing reorders its sums (the
/// slicing test in src/tests/training.rs).
const SGD: (f64, f64) = (1e-5, 1e-5);
const ADAM: (f64, f64) = (1e-4, 1e-5);

fn role(model: Model, variant: &str) -> String {
    format!("{}:{variant}", format!("{model:?}").to_lowercase())
}

/// `model` trained in `variant` on two ranks and on one process.
fn assert_data_parallel_equals_one_process(model: Model, variant: &str, tolerance: (f64, f64)) {
    let role = role(model, variant);
    let one = train(model, variant, STEPS, None);
    assert_same((model, variant), &role, &two_ranks(&role), &one, tolerance);
}

#[test]
fn two_ranks_pretrain_as_one_process_on_the_whole_batch() {
    assert_data_parallel_equals_one_process(Model::Pretrain, "sgd", SGD);
    assert_data_parallel_equals_one_process(Model::Pretrain, "adam", ADAM);
}

#[test]
fn two_ranks_train_the_baseline_as_one_process_on_the_whole_batch() {
    assert_data_parallel_equals_one_process(Model::Supervised, "sgd", SGD);
    assert_data_parallel_equals_one_process(Model::Supervised, "adam", ADAM);
}

/// SGD with BatchNorm: normalising by the statistics of a few rows amplifies rounding
/// (observed 1.6e-5 on a 2-core AMD EPYC, in the last convolution of the pretraining encoder).
const SGD_BATCH_NORM: (f64, f64) = (1e-4, 1e-5);

/// Synchronised BatchNorm normalises by the whole batch's statistics, forward and backward, so
/// two ranks train a model with BatchNorm as one process does (running statistics included);
/// per-rank BatchNorm, DDP's default, normalises each shard by its own and does not. Here the
/// pretraining's BatchNorm projection head, over three steps.
#[test]
fn synchronised_batch_norm_trains_as_one_process_and_per_rank_batch_norm_does_not() {
    let model = Model::Pretrain;
    assert_data_parallel_equals_one_process(model, "sgd+syncbn", SGD_BATCH_NORM);
    let one = train(model, "sgd+bn", STEPS, None);
    let per_rank = two_ranks(&role(model, "sgd+bn"));
    let (worst, name) = worst_difference(&per_rank, &one);
    assert!(
        worst > 100.0 * SGD_BATCH_NORM.0,
        "per-rank BatchNorm within {worst:.2e} of one process ({name})"
    );
}

/// The largest `|got - want| / |want|` (Euclidean norms) over the tensors, and where.
fn norm_difference(got: &Run, want: &Run) -> (f64, String) {
    let mut worst = (0.0f64, String::new());
    for (name, w) in &want.0 {
        let scale = w.norm().double_value(&[]).max(1e-12);
        let diff = (&got.0[name] - w).norm().double_value(&[]) / scale;
        if diff > worst.0 {
            worst = (diff, name.clone());
        }
    }
    worst
}

/// ResNet-18's twenty synchronised BatchNorms, one supervised step: the loss and accuracy are
/// one process's, and so are the weights, but for the few channels where a rounding-size
/// difference flips a ReLU (BatchNorm centres hundreds of thousands of activations on zero,
/// so some sit within rounding of it; observed: 2 of layer1.1's 64 channels, 0.7% of their
/// bias gradient). So the weights are compared by norm, per tensor, and per-rank BatchNorm is
/// told apart by its loss.
#[test]
fn synchronised_batch_norm_steps_resnet18_as_one_process() {
    let model = Model::Supervised;
    let step = |variant: &str| {
        let one = train(model, variant, 1, None);
        (two_ranks_steps(&role(model, variant), 1), one)
    };
    let (synced, one) = step("sgd+syncbn");
    let (loss, want) = (synced.1[0][0], one.1[0][0]);
    assert!(
        (loss - want).abs() <= 1e-5 * want,
        "loss {loss}, one process {want}"
    );
    assert_eq!(synced.1[0][1], one.1[0][1], "accuracy");
    let (diff, name) = norm_difference(&synced, &one);
    assert!(
        diff < 1e-2,
        "weights differ by {diff:.2e} (by norm) in {name}"
    );
    let (per_rank, one) = step("sgd+bn");
    let (loss, want) = (per_rank.1[0][0], one.1[0][0]);
    assert!(
        (loss - want).abs() > 1e-2 * want,
        "per-rank BatchNorm: loss {loss}, one process {want}"
    );
}

/// Per-rank BatchNorm: each rank's step moves its own running statistics (it normalised its
/// own shard), and aligning them, as every step's start and every validation do, makes them
/// rank 0's; the trained weights are the same on every rank throughout.
#[test]
fn per_rank_batch_norm_statistics_are_aligned_with_rank_0() {
    let role = role(Model::Supervised, "sgd+bn");
    let differing = |runs: &[Run]| -> Vec<String> {
        runs[0]
            .0
            .iter()
            .filter(|(k, w)| !w.equal(&runs[1].0[*k]))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let apart = differing(&every_rank(&role, 1, false));
    assert!(!apart.is_empty(), "one step left every buffer equal");
    assert!(
        apart.iter().all(|k| k.contains("running_")),
        "trained weights differ between ranks: {apart:?}"
    );
    let aligned = differing(&every_rank(&role, 1, true));
    assert!(
        aligned.is_empty(),
        "still differing after aligning: {aligned:?}"
    );
}

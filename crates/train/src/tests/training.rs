//! The train steps' wiring, reproducibility and learning, on small generated data.

use std::collections::HashMap;
use std::sync::Arc;

use augment::Augmenter;
use seeds::Stream;

use crate::config::Config;
use crate::error::TrainError;
use crate::fit::Position;
use crate::fit::metrics::History;
use crate::fit::{self, Observer, Phase, Silent, StepReport};
use crate::prepared::loader::{Batch, Feed, Loader, Resident};
use crate::run_dir::RunDir;
use crate::runtime::Compute;
use crate::steps::{ContrastiveModel, Snapshot, Streams, SupervisedModel, TrainStep};
use stl10_data::{BatchPlan, Dataset, ImageStore, Split};
use tch::{Device, Kind, Tensor};

fn small_config(size: usize, width: i64) -> Config {
    Config::load(
        None,
        &[
            "data.kind=folder".into(),
            format!("data.image_size={size}"),
            format!("model.width={width}"),
            "runtime.seed=7".into(),
        ],
    )
    .unwrap()
}

fn cpu(cfg: &Config) -> Compute {
    cfg.compute(Device::Cpu)
}

fn snapshot(vs: &tch::nn::VarStore) -> HashMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect()
}

fn changed(before: &HashMap<String, Tensor>, vs: &tch::nn::VarStore) -> Vec<String> {
    let mut names: Vec<String> = vs
        .variables()
        .into_iter()
        .filter(|(k, v)| !v.equal(&before[k]))
        .map(|(k, _)| k)
        .collect();
    names.sort();
    names
}

/// `n` numbers in [0, 1) from a local xorshift generator: test data must not draw from
/// libtorch's global generator, which parallel tests' model initialisations share.
fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// Noise images from [`uniform`].
fn random_images(n: i64, size: i64) -> Tensor {
    let bytes: Vec<u8> = uniform((n * 3 * size * size) as usize, (n * 31 + size) as u64)
        .into_iter()
        .map(|v| (v * 256.0) as u8)
        .collect();
    Tensor::from_slice(&bytes).view([n, 3, size, size])
}

/// The names of the spans this thread opens while `f` runs, in order. One process-wide
/// subscriber records them (a thread-local default would race with the interest that other
/// tests' threads cache for each span site).
fn spans_of(f: impl FnOnce()) -> Vec<&'static str> {
    use std::cell::RefCell;
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
    thread_local! {
        static RECORDED: RefCell<Option<Vec<&'static str>>> = const { RefCell::new(None) };
    }
    struct Names;
    impl<S: tracing::Subscriber> Layer<S> for Names {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: Context<'_, S>,
        ) {
            RECORDED.with(|r| {
                if let Some(names) = r.borrow_mut().as_mut() {
                    names.push(attrs.metadata().name());
                }
            });
        }
    }
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Names))
            .expect("no other test sets a global subscriber");
        tracing::callsite::rebuild_interest_cache();
    });
    RECORDED.with(|r| *r.borrow_mut() = Some(Vec::new()));
    f();
    RECORDED.with(|r| r.borrow_mut().take().unwrap_or_default())
}

#[test]
fn a_pretraining_step_shows_where_its_time_goes_in_spans() {
    let cfg = small_config(32, 8);
    let mut m = ContrastiveModel::new(&cfg.pretraining(), 3, cpu(&cfg)).unwrap();
    let images = random_images(6, 32);
    let labels = Tensor::from_slice(&[0i64, 1]);
    let names = spans_of(|| {
        let _ = m.step(&images, &labels).unwrap();
    });
    let half = ["augment", "forward", "backward", "optimizer step"];
    assert_eq!(
        names,
        [half, half].concat(),
        "the contrastive half, then the probe's"
    );
}

/// Largest absolute difference between two tensors.
fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// The gradients of `vs`'s variables under `prefix`, by name (undefined ones left out).
fn grads(vs: &tch::nn::VarStore, prefix: &str) -> HashMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .filter(|(k, v)| k.starts_with(prefix) && v.grad().defined())
        .map(|(k, v)| (k, v.grad().copy()))
        .collect()
}

/// The example's `train_step`, recomputed from its parts with augmenters of our own on the
/// streams the model's must use: the contrastive loss is that of two different strong views of
/// every image (unlabeled and labeled), the probe's loss that of weakly augmented labeled
/// images through the encoder as the contrastive update left it, no probe gradient reaches the
/// encoder, and each optimizer moves only its own variables.
#[test]
fn the_pretraining_step_is_wired_as_the_examples_train_step() {
    use tch::nn::{Module, ModuleT};
    let mut cfg = small_config(32, 8);
    cfg.runtime.precision = crate::config::PrecisionChoice::Fp32;
    cfg.model.channels_last = false;
    let (u, l) = (6, 2);
    let images = random_images(u + l, 32); // the last `l` are the labeled ones
    let labels = Tensor::from_slice(&[2i64, 0]);
    let mut m = ContrastiveModel::new(&cfg.pretraining(), 3, cpu(&cfg)).unwrap();
    let mut twin = ContrastiveModel::new(&cfg.pretraining(), 3, cpu(&cfg)).unwrap();
    assert!(
        changed(&snapshot(&m.vs), &twin.vs).is_empty(),
        "same seed, same init"
    );
    let seed = cfg.runtime.seed;
    let mut strong = Augmenter::new(
        cfg.augment.contrastive,
        seeds::seed(seed, Stream::Contrastive),
        Device::Cpu,
    )
    .unwrap();
    let mut weak = Augmenter::new(
        cfg.augment.classification,
        seeds::seed(seed, Stream::ProbeAugment),
        Device::Cpu,
    )
    .unwrap();
    let n = u + l;
    let views = strong.augment(&images.repeat([2, 1, 1, 1])).unwrap();
    assert!(
        max_diff(&views.narrow(0, 0, n), &views.narrow(0, n, n)) > 0.1,
        "the two views differ"
    );
    let z = m
        .projection_head
        .forward_t(&m.encoder.forward_t(&views, true), true)
        .detach();
    let (z1, z2) = (z.narrow(0, 0, n), z.narrow(0, n, n));
    let t = cfg.loss.temperature;
    let want_c = losses::contrastive_loss(&z1, &z2, t)
        .unwrap()
        .0
        .double_value(&[]);
    // Wrong wirings give other losses: one view twice, or the unlabeled images alone.
    let same_view = losses::contrastive_loss(&z1, &z1, t)
        .unwrap()
        .0
        .double_value(&[]);
    let unlabeled_only = losses::contrastive_loss(&z1.narrow(0, 0, u), &z2.narrow(0, 0, u), t)
        .unwrap()
        .0
        .double_value(&[]);
    assert!((want_c - same_view).abs() > 1e-3 && (want_c - unlabeled_only).abs() > 1e-3);

    let (main0, probe0) = (snapshot(&m.vs), snapshot(&m.probe_vs));
    let metrics =
        Vec::<f64>::try_from(m.step(&images, &labels).unwrap().to_kind(Kind::Double)).unwrap();
    assert!(
        (metrics[0] - want_c).abs() < 1e-5,
        "c_loss {} vs {want_c}",
        metrics[0]
    );

    // The twin's contrastive half alone leaves what the whole step leaves in the encoder and
    // head, weights and gradients: the probe step moved neither, and sent no gradient back.
    let _ = twin.contrastive_step(&images).unwrap();
    assert!(
        changed(&snapshot(&twin.vs), &m.vs).is_empty(),
        "probe moved the encoder or head"
    );
    let (full, half) = (grads(&m.vs, "encoder."), grads(&twin.vs, "encoder."));
    assert!(!full.is_empty() && full.len() == half.len());
    for (name, g) in &full {
        assert!(g.equal(&half[name]), "the probe's loss reached {name}");
    }
    assert!(
        changed(&probe0, &twin.probe_vs).is_empty(),
        "optimizer A moved the probe"
    );
    assert_eq!(
        changed(&probe0, &m.probe_vs),
        ["linear_probe.dense.bias", "linear_probe.dense.weight"]
    );
    assert_eq!(
        changed(&main0, &m.vs).len(),
        main0.len(),
        "optimizer A moved every weight"
    );

    // The probe saw the weakly augmented labeled images through the updated encoder, frozen.
    let probe_loss = |x: &Tensor| {
        let features = twin.encoder.forward_t(x, false);
        twin.linear_probe
            .forward(&features)
            .cross_entropy_for_logits(&labels)
            .double_value(&[])
    };
    let labeled = images.narrow(0, u, l);
    let want_p = probe_loss(&weak.augment(&labeled).unwrap());
    assert!(
        (metrics[2] - want_p).abs() < 1e-5,
        "p_loss {} vs {want_p}",
        metrics[2]
    );
    let unlabeled = probe_loss(&augment::rescale(&images.narrow(0, 0, l), Device::Cpu));
    assert!((want_p - unlabeled).abs() > 1e-4, "the control differs");
}

#[test]
fn finetuning_starts_from_the_saved_encoder_and_the_baseline_from_a_fresh_one() {
    tch::manual_seed(1);
    let cfg = small_config(32, 8);
    let dir = tempfile::tempdir().unwrap();
    let mut m = ContrastiveModel::new(&cfg.pretraining(), 3, cpu(&cfg)).unwrap();
    let _ = m.contrastive_step(&random_images(6, 32)).unwrap();
    let path = dir.path().join("encoder.safetensors");
    crate::run_dir::checkpoint::save(&m.vs, &["encoder"], &path).unwrap();
    let pretrained = snapshot(&m.vs);

    let ft = SupervisedModel::new(&cfg.finetuning(), 3, cpu(&cfg)).unwrap();
    assert_eq!(
        crate::run_dir::checkpoint::load(&ft.vs, "encoder", &path).unwrap(),
        10
    );
    let base = SupervisedModel::new(&cfg.supervised_baseline(), 3, cpu(&cfg)).unwrap();
    for (name, var) in ft.vs.variables() {
        if name.starts_with("encoder.") {
            assert!(var.equal(&pretrained[&name]), "{name} is the saved weight");
            assert!(
                !base.vs.variables()[&name].equal(&pretrained[&name]),
                "baseline {name} is fresh"
            );
        }
    }
}

/// Four texture classes (horizontal stripes, vertical stripes, checkerboard, flat), each image
/// with a random colour, stripe phase and brightness: learnable structure under nuisance.
fn textures(n: usize, size: usize, seed: i64) -> (Vec<u8>, Vec<i64>) {
    let r = uniform(n * 5, seed as u64);
    let mut bytes = Vec::with_capacity(n * 3 * size * size);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 4;
        let p = &r[i * 5..i * 5 + 5];
        let phase = (p[3] * 4.0) as usize;
        for c in 0..3 {
            for y in 0..size {
                for x in 0..size {
                    let on = match class {
                        0 => ((y + phase) / 2).is_multiple_of(2),
                        1 => ((x + phase) / 2).is_multiple_of(2),
                        2 => ((x + phase) / 3 + (y + phase) / 3).is_multiple_of(2),
                        _ => true,
                    };
                    let v = if on { 80.0 + 170.0 * p[c] } else { 20.0 * p[4] };
                    bytes.push(v as u8);
                }
            }
        }
        labels.push(class as i64);
    }
    (bytes, labels)
}

fn texture_dataset(train: usize, unlabeled: usize, test: usize) -> Dataset {
    let split = |n, seed| {
        let (b, l) = textures(n, 32, seed);
        (Arc::new(ImageStore::from_chw(b, 32)), l)
    };
    let (s, l) = split(train, 1);
    let (u, _) = split(unlabeled, 2);
    let (t, tl) = split(test, 3);
    Dataset {
        train: Split::new(s, Some(l)),
        unlabeled: Split::new(u, None),
        test: Split::new(t, Some(tl)),
        class_names: ["h", "v", "check", "flat"].map(String::from).to_vec(),
        image_size: 32,
        skipped: 0,
    }
}

/// The epoch loop gives each optimizer its run's length and batch: the contrastive optimizer
/// every image of a step, the probe and supervised runs the labeled ones.
#[test]
fn fit_fits_each_optimizers_schedule_to_its_run() {
    use crate::config::{LrScaling, LrSchedule, OptimizerKind};
    use optim::{RunLength, Schedule};
    let mut cfg = small_config(32, 8);
    let o = &mut cfg.pretrain.optimizer;
    (o.kind, o.schedule, o.lr_scaling, o.warmup_epochs) = (
        OptimizerKind::Sgd,
        LrSchedule::Cosine,
        LrScaling::Linear,
        1.0,
    );
    cfg.pretrain.probe_optimizer.lr_scaling = LrScaling::Sqrt;
    cfg.baseline.optimizer.schedule = LrSchedule::Cosine;
    let ds = texture_dataset(64, 448, 32);
    let loader = Loader {
        ds: &ds,
        plan: BatchPlan::new(448, 64, 64).unwrap(), // 8 steps of 56 + 8
        seed: 7,
        resident: None,
        replica: None,
        prefetch: 2,
        device: Device::Cpu,
    };
    let phase = |run, feed, epochs| Phase {
        run,
        loader: &loader,
        feed,
        epochs,
        metrics_every: 8,
    };
    let mut m = ContrastiveModel::new(&cfg.pretraining(), 4, cpu(&cfg)).unwrap();
    fit::fit_fresh(&mut m, &phase("pretraining", Feed::Zipped, 2), &mut Silent).unwrap();
    let run = |batch| RunLength {
        steps_per_epoch: 8,
        epochs: 2,
        batch,
    };
    let contrastive = m.contrastive_optimizer.schedule();
    assert_eq!(
        *contrastive,
        Schedule::new(&cfg.pretrain.optimizer, run(64))
    );
    // 1e-3 x 64 / 256 at the end of the 8 warm-up steps, 0 at the 16th and last step.
    assert!((contrastive.rate(8) - 2.5e-4).abs() < 1e-15);
    assert!(contrastive.rate(16).abs() < 1e-15);
    assert_eq!(m.contrastive_optimizer.steps(), 16);
    let probe = Schedule::new(&cfg.pretrain.probe_optimizer, run(8));
    assert_eq!(*m.probe_optimizer.schedule(), probe);
    assert!((probe.rate(5) - 1e-3 * 8f64.sqrt()).abs() < 1e-15);
    // Three baseline epochs on `loader`: the schedule fitted to them, and the steps taken.
    let baseline = |loader: &Loader| {
        let mut clf = SupervisedModel::new(&cfg.supervised_baseline(), 4, cpu(&cfg)).unwrap();
        let phase = Phase {
            loader,
            ..phase("baseline", Feed::Labeled, 3)
        };
        fit::fit_fresh(&mut clf, &phase, &mut Silent).unwrap();
        (*clf.optimizer.schedule(), clf.optimizer.steps())
    };
    let supervised = |steps_per_epoch, batch| {
        let length = RunLength {
            steps_per_epoch,
            epochs: 3,
            batch,
        };
        Schedule::new(&cfg.baseline.optimizer, length)
    };
    assert_eq!(baseline(&loader), (supervised(8, 8), 24));
    // `baseline.batch_size = 20`: ceil(64 / 20) = 4 steps an epoch, scaled as batches of 20.
    let wide = loader.with_labeled_batch(Some(20));
    let sizes: Vec<usize> = wide
        .epoch(Feed::Labeled, 1, 0)
        .unwrap()
        .map(|b| b.unwrap().len())
        .collect();
    assert_eq!(sizes, [20, 20, 20, 4]);
    assert_eq!(baseline(&wide), (supervised(4, 20), 12));
    assert_eq!(loader.with_labeled_batch(None).plan, loader.plan);
}

#[test]
fn contrastive_learning_and_the_baseline_really_learn() {
    tch::manual_seed(2);
    let mut cfg = small_config(32, 32);
    cfg.pretrain.optimizer.learning_rate = 2e-3;
    let ds = texture_dataset(64, 448, 128);
    let plan = BatchPlan::new(448, 64, 64).unwrap(); // 8 steps of 56 + 8
    let mut m = ContrastiveModel::new(&cfg.pretraining(), 4, cpu(&cfg)).unwrap();
    let loader = Loader {
        ds: &ds,
        plan,
        seed: 7,
        resident: None,
        replica: None,
        prefetch: 2,
        device: Device::Cpu,
    };
    let h = fit::fit_fresh(
        &mut m,
        &Phase {
            run: "pretraining",
            loader: &loader,
            feed: Feed::Zipped,
            epochs: 30,
            metrics_every: 8,
        },
        &mut Silent,
    )
    .unwrap(); // 240 steps
    let first = h.epochs[0].get("c_acc").unwrap();
    let last = h.epochs.last().unwrap().get("c_acc").unwrap();
    // Chance is 1/64 = 0.016.
    assert!(last > 0.2 && last > 2.0 * first, "c_acc {first} -> {last}");
    assert!(h.epochs.last().unwrap().get("c_loss").unwrap() < h.epochs[0].get("c_loss").unwrap());

    let mut clf = SupervisedModel::new(&cfg.supervised_baseline(), 4, cpu(&cfg)).unwrap();
    let h = fit::fit_fresh(
        &mut clf,
        &Phase {
            run: "baseline",
            loader: &loader,
            feed: Feed::Labeled,
            epochs: 15,
            metrics_every: 5,
        },
        &mut Silent,
    )
    .unwrap();
    let best = h.best("val_acc").unwrap();
    assert!(best > 0.7, "baseline val_acc {best} (chance 0.25)");
}

#[test]
fn a_run_folder_records_the_config_first_and_a_bad_checkpoint_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(32, 8);
    let run = RunDir::create(&dir.path().join("run"), &cfg).unwrap();
    let back = Config::load(Some(&run.file("config.toml")), &[]).unwrap();
    assert_eq!(back, cfg);
    std::fs::write(dir.path().join("enc.safetensors"), b"nope").unwrap();
    let m = SupervisedModel::new(&cfg.finetuning(), 4, cpu(&cfg)).unwrap();
    let e = crate::run_dir::checkpoint::load(&m.vs, "encoder", &dir.path().join("enc.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("enc.safetensors") && e.contains("cannot read checkpoint"),
        "{e}"
    );
}

#[test]
fn a_bf16_step_is_finite_and_close_to_the_fp32_step() {
    let cfg = small_config(32, 16);
    let images = {
        tch::manual_seed(5);
        random_images(12, 32)
    };
    let labels = Tensor::from_slice(&[0i64, 1, 2, 0]);
    let step = |precision: accel::Precision| {
        let compute = Compute {
            precision,
            ..cpu(&cfg)
        };
        let mut m = ContrastiveModel::new(&cfg.pretraining(), 3, compute).unwrap();
        let v = m.step(&images, &labels).unwrap();
        Vec::<f64>::try_from(v.to_kind(Kind::Double)).unwrap()
    };
    let (fp32, bf16) = (step(accel::Precision::Fp32), step(accel::Precision::Bf16));
    assert!(bf16.iter().all(|v| v.is_finite()), "{bf16:?}");
    // c_loss of 12 pairs starts at the order of ln(12) = 2.48 (exactly that for uniform
    // similarities; temperature 0.1 sharpens a random encoder's); bf16 products keep 8 bits.
    assert!(
        fp32[0] > 0.5 * 12f64.ln() && fp32[0] < 2.0 * 12f64.ln(),
        "{fp32:?}"
    );
    assert!(
        (fp32[0] - bf16[0]).abs() < 0.02 * fp32[0],
        "c_loss {fp32:?} vs {bf16:?}"
    );
    assert!(
        (fp32[2] - bf16[2]).abs() < 0.02 * fp32[2],
        "p_loss {fp32:?} vs {bf16:?}"
    );
}

#[test]
fn channels_last_and_nchw_steps_agree() {
    let cfg = small_config(32, 16);
    let images = {
        tch::manual_seed(6);
        random_images(10, 32)
    };
    let labels = Tensor::from_slice(&[1i64, 0]);
    let run = |format: accel::MemoryFormat| {
        let compute = Compute {
            format,
            ..cpu(&cfg)
        };
        let mut m = ContrastiveModel::new(&cfg.pretraining(), 2, compute).unwrap();
        let metrics = (0..3)
            .map(|_| {
                Vec::<f64>::try_from(m.step(&images, &labels).unwrap().to_kind(Kind::Double))
                    .unwrap()
            })
            .collect::<Vec<_>>();
        (
            metrics,
            m.vs.variables()["encoder.conv2.weight"].contiguous(),
        )
    };
    let (a, wa) = run(accel::MemoryFormat::Contiguous);
    let (b, wb) = run(accel::MemoryFormat::ChannelsLast);
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!((x - y).abs() < 1e-4 * x.abs().max(1.0), "{a:?} vs {b:?}");
    }
    assert!(
        (wa - wb).abs().max().double_value(&[]) < 1e-5,
        "weights after 3 steps"
    );
}

#[test]
fn encoder_slices_give_the_loss_of_one_pass() {
    let images = {
        tch::manual_seed(8);
        random_images(9, 32)
    };
    let labels = Tensor::from_slice(&[1i64]);
    // The example's head, and one with BatchNorm (its statistics must be the whole batch's).
    for batch_norm in [false, true] {
        let mut cfg = small_config(32, 16);
        cfg.model.projection_batch_norm = batch_norm;
        // In fp32: with bf16 autocast (`auto` on CPUs with AMX) oneDNN's kernels for other
        // batch sizes round differently, which says nothing about the slicing.
        let first_step = |encoder_chunk| {
            let compute = Compute {
                encoder_chunk,
                precision: accel::Precision::Fp32,
                ..cpu(&cfg)
            };
            let mut m = ContrastiveModel::new(&cfg.pretraining(), 2, compute).unwrap();
            let v = m.step(&images, &labels).unwrap();
            let w = m.vs.variables()["encoder.dense.weight"].copy();
            (Vec::<f64>::try_from(v.to_kind(Kind::Double)).unwrap(), w)
        };
        let (whole, w_whole) = first_step(None);
        let (sliced, w_sliced) = first_step(Some(4)); // 18 views: slices of 4, 4, 4, 4, 2
        // c_loss and c_acc come from the one forward pass that slicing splits, so they agree to
        // rounding. The probe's are read after the contrastive update: Adam's first step is
        // nearly sign(g), so a gradient that rounds across 0 moves its weight the other way
        // (p_loss moved by 2.8e-4 that way on a 2-core AMD EPYC without AVX-512).
        for (i, (x, y)) in whole.iter().zip(&sliced).enumerate() {
            let tolerance = if i < 2 { 2e-4 } else { 1e-3 };
            assert!(
                (x - y).abs() < tolerance,
                "bn {batch_norm}: {whole:?} vs {sliced:?}"
            );
        }
        let dw = (w_whole - w_sliced).abs().max().double_value(&[]);
        assert!(dw < 1e-6);
    }
}

/// A ResNet-18 encoder's BatchNorms use batch statistics (and move their running ones) only in
/// the contrastive and supervised steps; the probe's features, validation and kNN run it in
/// inference mode, as the example's `training=False`; the statistics travel with snapshots.
#[test]
fn a_resnet_encoders_batch_norm_trains_only_where_the_example_trains() {
    tch::manual_seed(4);
    let mut cfg = small_config(16, 8);
    cfg.model.encoder = models::Architecture::Resnet18;
    let key = "encoder.layer3.0.bn2.running_mean";
    let stats = |vs: &tch::nn::VarStore| vs.variables()[key].copy();
    let mut m = ContrastiveModel::new(&cfg.pretraining(), 2, cpu(&cfg)).unwrap();
    assert_eq!(m.linear_probe.summary().rows[0].output_shape, [2]);
    let images = random_images(6, 16);
    let labels = Tensor::from_slice(&[0i64, 1]);
    let before = stats(&m.vs);
    let _ = m.contrastive_step(&images).unwrap();
    let after_contrastive = stats(&m.vs);
    assert!(
        !after_contrastive.equal(&before),
        "the contrastive step trains BatchNorm"
    );
    let _ = m.probe_step(&images.narrow(0, 4, 2), &labels).unwrap();
    let batch = Batch {
        images: images.shallow_clone(),
        labels: Tensor::from_slice(&[0i64, 1, 0, 1, 0, 1]),
        shard: None,
    };
    let _ = m.test_sums(&batch);
    assert!(
        stats(&m.vs).equal(&after_contrastive),
        "probe and validation leave it alone"
    );
    let snapshot = m.snapshot();
    assert!(
        snapshot
            .tensors
            .iter()
            .any(|(k, t)| k == key && t.equal(&after_contrastive))
    );
    let mut clf = SupervisedModel::new(&cfg.supervised_baseline(), 2, cpu(&cfg)).unwrap();
    let before = stats(&clf.vs);
    let _ = clf.test_sums(&batch);
    assert!(stats(&clf.vs).equal(&before));
    let _ = clf.step(&images, &batch.labels).unwrap();
    assert!(
        !stats(&clf.vs).equal(&before),
        "a supervised step trains BatchNorm"
    );
    // `finetune.freeze_batch_norm`: the statistics stay, the weights (BatchNorm's own included)
    // still learn.
    cfg.finetune.freeze_batch_norm = true;
    let mut frozen = SupervisedModel::new(&cfg.finetuning(), 2, cpu(&cfg)).unwrap();
    let weight = "encoder.layer3.0.bn2.weight";
    let (stats_before, w_before) = (stats(&frozen.vs), frozen.vs.variables()[weight].copy());
    let _ = frozen.step(&images, &batch.labels).unwrap();
    assert!(stats(&frozen.vs).equal(&stats_before), "frozen statistics");
    assert!(
        !frozen.vs.variables()[weight].equal(&w_before),
        "BatchNorm still learns"
    );
    let baseline = SupervisedModel::new(&cfg.supervised_baseline(), 2, cpu(&cfg)).unwrap();
    assert!(baseline.train_mode, "only fine-tuning freezes");
}

/// A BatchNorm head's running statistics move in training and travel with the snapshot that
/// `--resume` restores.
#[test]
fn a_batch_norm_heads_statistics_are_trained_and_checkpointed() {
    let mut cfg = small_config(32, 8);
    cfg.model.projection_layers = 3;
    cfg.model.projection_batch_norm = true;
    let mut m = ContrastiveModel::new(&cfg.pretraining(), 2, cpu(&cfg)).unwrap();
    let key = "projection_head.bn2.running_var";
    let before = m.vs.variables()[key].copy();
    let _ = m
        .step(&random_images(6, 32), &Tensor::from_slice(&[0i64, 1]))
        .unwrap();
    let after = m.vs.variables()[key].copy();
    assert!(!after.equal(&before), "{key} moved");
    let snapshot = m.snapshot();
    let saved = snapshot
        .tensors
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, t)| t);
    assert!(
        saved.is_some_and(|t| t.equal(&after)),
        "{key} is in the snapshot"
    );
    assert!(
        !snapshot
            .tensors
            .iter()
            .any(|(k, _)| k.contains("optimizer.m.projection_head.bn2.running")),
        "no Adam moments for statistics"
    );
    let mut other = ContrastiveModel::new(&cfg.pretraining(), 2, cpu(&cfg)).unwrap();
    let tensors: HashMap<String, Tensor> = snapshot.tensors.into_iter().collect();
    other.restore(&tensors, &snapshot.streams).unwrap();
    assert!(other.vs.variables()[key].equal(&after));
}

/// A step that returns known values: step `k` (counting from 1 over the run) gives `[k, 2k]`.
/// A model whose step `k` (1-based, counted over the run) has loss `k` and accuracy `2k`.
struct Counting {
    k: f64,
    /// The step whose loss is NaN.
    nan_at: Option<f64>,
}

impl TrainStep for Counting {
    const METRICS: &'static [&'static str] = &["loss", "acc"];
    const VALIDATION: [&'static str; 2] = ["val_loss", "val_acc"];
    const VIEWS: usize = 1;

    fn train_step(&mut self, _batch: &Batch) -> crate::error::Result<Tensor> {
        self.k += 1.0;
        let loss = if Some(self.k) == self.nan_at {
            f32::NAN
        } else {
            self.k as f32
        };
        Ok(Tensor::from_slice(&[loss, 2.0 * self.k as f32]))
    }

    fn test_sums(&self, batch: &Batch) -> Tensor {
        let n = batch.labels.size()[0] as f32;
        Tensor::from_slice(&[0.5 * n, 0.25 * n])
    }

    fn device(&self) -> Device {
        Device::Cpu
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            tensors: vec![("k".into(), Tensor::from(self.k))],
            streams: [("augmenter".to_string(), self.k as u128)].into(),
        }
    }

    fn restore(&mut self, tensors: &HashMap<String, Tensor>, _: &Streams) -> Result<(), String> {
        self.k = tensors.get("k").ok_or("missing 'k'")?.double_value(&[]);
        Ok(())
    }
}

#[derive(Default)]
struct Recorder {
    steps: Vec<(usize, Vec<(&'static str, f64)>)>,
}

impl Observer for Recorder {
    fn step(&mut self, s: &StepReport) {
        self.steps.push((s.step, s.means.to_vec()));
    }
}

#[test]
fn epoch_metrics_read_from_the_device_equal_the_per_step_means() {
    let ds = texture_dataset(16, 48, 8);
    let plan = BatchPlan::new(48, 16, 16).unwrap(); // 4 steps of 12 + 4
    let loader = Loader {
        ds: &ds,
        plan,
        seed: 1,
        resident: None,
        replica: None,
        prefetch: 2,
        device: Device::Cpu,
    };
    let mut rec = Recorder::default();
    let h = fit::fit_fresh(
        &mut Counting {
            k: 0.0,
            nan_at: None,
        },
        &Phase {
            run: "run",
            loader: &loader,
            feed: Feed::Zipped,
            epochs: 2,
            metrics_every: 3,
        },
        &mut rec,
    )
    .unwrap();
    // Epoch 1: steps 1..4 -> mean 2.5; epoch 2: steps 5..8 -> mean 6.5.
    assert_eq!(h.epochs[0].metrics[0], ("loss".to_string(), 2.5));
    assert_eq!(h.epochs[0].metrics[1], ("acc".to_string(), 5.0));
    assert_eq!(h.epochs[1].metrics[0], ("loss".to_string(), 6.5));
    // Validation: 8 test images in one batch of 16: loss 0.5, accuracy 0.25.
    assert_eq!(h.epochs[1].get("val_loss"), Some(0.5));
    assert_eq!(h.epochs[1].get("val_acc"), Some(0.25));
    // Reads every 3 steps and at the epoch's end; between them the last read stands.
    let shown: Vec<(usize, f64)> = rec
        .steps
        .iter()
        .map(|(s, m)| (*s, m.first().map_or(f64::NAN, |m| m.1)))
        .collect();
    assert_eq!(shown[2], (3, 2.0), "mean of steps 1..3");
    assert_eq!(shown[3], (4, 2.5));
    assert_eq!(shown[6], (3, 6.0), "epoch 2: mean of steps 5..7");
    assert_eq!(shown[4].0, 1);
    assert!(h.epochs[0].images_per_second > 0.0);
}

#[test]
fn resident_batches_are_the_host_batches() {
    let ds = texture_dataset(16, 48, 20);
    let plan = BatchPlan::new(48, 16, 16).unwrap();
    // The device copy works the same on any device; the CPU stands in for CUDA here.
    let resident = Resident::upload(&ds, Device::Cpu).unwrap();
    assert_eq!(resident.bytes(), (16 + 48 + 20) * 3 * 32 * 32);
    let host = Loader {
        ds: &ds,
        plan,
        seed: 3,
        resident: None,
        replica: None,
        prefetch: 2,
        device: Device::Cpu,
    };
    let dev = Loader {
        resident: Some(&resident),
        ..host
    };
    // Gathered by the caller rather than on the loader thread.
    let inline = Loader {
        prefetch: 0,
        ..host
    };
    let all = |l: &Loader, feed, epoch, start| -> Vec<Batch> {
        l.epoch(feed, epoch, start)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    for feed in [Feed::Zipped, Feed::Labeled] {
        for epoch in [1, 2] {
            assert_eq!(
                host.epoch(feed, epoch, 0).unwrap().steps(),
                dev.epoch(feed, epoch, 0).unwrap().steps()
            );
            let a = all(&host, feed, epoch, 0);
            for other in [&dev, &inline] {
                let b = all(other, feed, epoch, 0);
                assert_eq!(a.len(), b.len());
                for (n, (x, y)) in a.iter().zip(&b).enumerate() {
                    assert!(x.images.equal(&y.images), "{feed:?} epoch {epoch} step {n}");
                    assert!(x.labels.equal(&y.labels));
                }
            }
            assert_eq!(a.len(), 4, "4 steps of 12 + 4 or of 4 labeled images");
            // A resumed epoch starts mid-way: the same last batches, from either loader.
            for loader in [&host, &dev, &inline] {
                let rest = all(loader, feed, epoch, 2);
                assert_eq!(rest.len(), 2, "{feed:?}");
                for (x, y) in a[2..].iter().zip(&rest) {
                    assert!(x.images.equal(&y.images) && x.labels.equal(&y.labels));
                }
                assert_eq!(loader.epoch(feed, epoch, 9).unwrap().count(), 0);
            }
        }
    }
    let (a, b) = (host.test().unwrap(), dev.test().unwrap());
    let (a, b): (Vec<Batch>, Vec<Batch>) = (
        a.collect::<Result<_, _>>().unwrap(),
        b.collect::<Result<_, _>>().unwrap(),
    );
    assert_eq!(a.len(), 2, "20 test images in batches of 16");
    for (x, y) in a.iter().zip(&b) {
        assert!(x.images.equal(&y.images) && x.labels.equal(&y.labels));
    }
}

/// Batches of `ds` (48 unlabeled, 16 labeled, 8 test images): 4 steps per epoch.
fn four_steps(ds: &Dataset) -> Loader<'_> {
    Loader {
        ds,
        plan: BatchPlan::new(48, 16, 16).unwrap(),
        seed: 1,
        resident: None,
        replica: None,
        prefetch: 2,
        device: Device::Cpu,
    }
}

/// Asks to stop after step `at` of the run.
struct StopAt {
    at: usize,
    seen: std::cell::Cell<usize>,
}

impl Observer for StopAt {
    fn step(&mut self, _: &StepReport) {
        self.seen.set(self.seen.get() + 1);
    }
    fn should_stop(&self) -> bool {
        self.seen.get() + 1 >= self.at
    }
}

#[test]
fn a_stopped_run_saves_its_position_and_resumes_to_the_same_history() {
    let ds = texture_dataset(16, 48, 8);
    let loader = four_steps(&ds);
    let phase = Phase {
        run: "run",
        loader: &loader,
        feed: Feed::Zipped,
        epochs: 3,
        metrics_every: 3,
    };
    let straight = fit::fit_fresh(
        &mut Counting {
            k: 0.0,
            nan_at: None,
        },
        &phase,
        &mut Silent,
    )
    .unwrap();

    // Stop during step 6 (epoch 2, step 2): the checkpoint holds the position and partial sums.
    let mut saved: Vec<(f64, History, Position)> = Vec::new();
    let mut m = Counting {
        k: 0.0,
        nan_at: None,
    };
    let mut obs = StopAt {
        at: 6,
        seen: Default::default(),
    };
    let err = fit::fit(
        &mut m,
        &phase,
        History::new("run"),
        Position::default(),
        &mut |m: &Counting, h: &History, p: &Position| {
            saved.push((m.k, h.clone(), p.clone()));
            Ok(())
        },
        &mut obs,
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            TrainError::Interrupted {
                epoch: 2,
                step: 2,
                ..
            }
        ),
        "{err}"
    );
    let positions: Vec<(usize, usize)> = saved.iter().map(|(_, _, p)| (p.epoch, p.step)).collect();
    assert_eq!(
        positions,
        [(1, 0), (1, 2)],
        "after epoch 1, then at the stop"
    );
    let (k, h, pos) = saved.pop().unwrap();
    assert_eq!(
        (k, pos.sums.clone()),
        (6.0, vec![5.0 + 6.0, 2.0 * (5.0 + 6.0)])
    );

    // Asked before anything ran (Ctrl-C between two phases): no step, no checkpoint.
    let mut calls = 0;
    let err = fit::fit(
        &mut Counting {
            k: 0.0,
            nan_at: None,
        },
        &phase,
        History::new("run"),
        Position::default(),
        &mut |_: &Counting, _: &History, _: &Position| {
            calls += 1;
            Ok(())
        },
        &mut StopAt {
            at: 1,
            seen: Default::default(),
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::Interrupted {
                epoch: 1,
                step: 0,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(calls, 0);

    let mut m = Counting { k, nan_at: None };
    let resumed = fit::fit(
        &mut m,
        &phase,
        h,
        pos,
        &mut |_: &Counting, _: &History, _: &Position| Ok(()),
        &mut Silent,
    )
    .unwrap();
    let metrics = |h: &History| {
        h.epochs
            .iter()
            .map(|e| e.metrics.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(metrics(&resumed), metrics(&straight));
    assert_eq!(resumed.epochs[1].get("loss"), Some(6.5), "steps 5..8");
}

#[test]
fn a_non_finite_loss_names_its_exact_step_and_writes_no_checkpoint_of_that_epoch() {
    let ds = texture_dataset(16, 48, 8);
    let loader = four_steps(&ds);
    let phase = Phase {
        run: "pretraining",
        loader: &loader,
        feed: Feed::Zipped,
        epochs: 3,
        metrics_every: 4,
    };
    let mut saved = Vec::new();
    // Step 6 is epoch 2's second step; the metrics are read only after step 8.
    let mut m = Counting {
        k: 0.0,
        nan_at: Some(6.0),
    };
    let err = fit::fit(
        &mut m,
        &phase,
        History::new("pretraining"),
        Position::default(),
        &mut |_: &Counting, _: &History, p: &Position| {
            saved.push(p.epoch);
            Ok(())
        },
        &mut Silent,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("pretraining diverged: loss is NaN at epoch 2, step 2"),
        "{text}"
    );
    assert_eq!(saved, [1], "only epoch 1 was checkpointed");
}

//! The train steps' wiring, reproducibility and learning, on small generated data.

use std::collections::HashMap;
use std::sync::Arc;

use stl10_data::{BatchPlan, Dataset, ImageStore, Split};
use tch::{Device, Kind, Tensor};
use train::Config;
use train::experiment::RunDir;
use train::fit::{self, Silent};
use train::steps::{ContrastiveModel, SupervisedModel};

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

fn random_images(n: i64, size: i64) -> Tensor {
    Tensor::randint(256, [n, 3, size, size], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8)
}

#[test]
fn each_optimizer_steps_only_its_own_variables() {
    tch::manual_seed(0);
    let cfg = small_config(32, 8);
    let mut m = ContrastiveModel::new(&cfg, 3, Device::Cpu).unwrap();
    let (main0, probe0) = (snapshot(&m.vs), snapshot(&m.probe_vs));
    m.contrastive_step(&random_images(6, 32)).unwrap();
    assert!(
        changed(&probe0, &m.probe_vs).is_empty(),
        "optimizer A left the probe alone"
    );
    let moved = changed(&main0, &m.vs);
    assert!(
        moved.iter().any(|n| n.starts_with("encoder."))
            && moved.iter().any(|n| n.starts_with("projection_head.")),
        "{moved:?}"
    );

    let (main1, probe1) = (snapshot(&m.vs), snapshot(&m.probe_vs));
    m.probe_step(&random_images(4, 32), &Tensor::from_slice(&[0i64, 1, 2, 0]));
    assert!(
        changed(&main1, &m.vs).is_empty(),
        "optimizer B left encoder and head alone"
    );
    assert_eq!(
        changed(&probe1, &m.probe_vs),
        ["linear_probe.dense.bias", "linear_probe.dense.weight"]
    );
}

#[test]
fn finetuning_starts_from_the_saved_encoder_and_the_baseline_from_a_fresh_one() {
    tch::manual_seed(1);
    let cfg = small_config(32, 8);
    let dir = tempfile::tempdir().unwrap();
    let mut m = ContrastiveModel::new(&cfg, 3, Device::Cpu).unwrap();
    m.contrastive_step(&random_images(6, 32)).unwrap();
    let path = dir.path().join("encoder.safetensors");
    train::checkpoint::save(&m.vs, &["encoder"], &path).unwrap();
    let pretrained = snapshot(&m.vs);

    let ft = SupervisedModel::new(&cfg, 3, Device::Cpu, true).unwrap();
    assert_eq!(
        train::checkpoint::load(&ft.vs, "encoder", &path).unwrap(),
        10
    );
    let base = SupervisedModel::new(&cfg, 3, Device::Cpu, false).unwrap();
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
    tch::manual_seed(seed);
    let r = Vec::<f32>::try_from(
        Tensor::rand([n as i64, 5], (Kind::Float, Device::Cpu)).flatten(0, -1),
    )
    .unwrap();
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

#[test]
fn contrastive_learning_and_the_baseline_really_learn() {
    tch::manual_seed(2);
    let mut cfg = small_config(32, 32);
    cfg.pretrain.optimizer.learning_rate = 2e-3;
    let ds = texture_dataset(64, 448, 128);
    let plan = BatchPlan::new(448, 64, 64).unwrap(); // 8 steps of 56 + 8
    let mut m = ContrastiveModel::new(&cfg, 4, Device::Cpu).unwrap();
    let h = fit::pretrain(&mut m, &ds, plan, 30, 7, &mut Silent).unwrap(); // 240 steps
    let first = h.epochs[0].get("c_acc").unwrap();
    let last = h.epochs.last().unwrap().get("c_acc").unwrap();
    // Chance is 1/64 = 0.016.
    assert!(last > 0.2 && last > 2.0 * first, "c_acc {first} -> {last}");
    assert!(h.epochs.last().unwrap().get("c_loss").unwrap() < h.epochs[0].get("c_loss").unwrap());

    let mut clf = SupervisedModel::new(&cfg, 4, Device::Cpu, false).unwrap();
    let h = fit::supervised(&mut clf, "baseline", &ds, plan, 15, 7, &mut Silent).unwrap();
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
    let m = SupervisedModel::new(&cfg, 4, Device::Cpu, true).unwrap();
    let e = train::checkpoint::load(&m.vs, "encoder", &dir.path().join("enc.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("enc.safetensors") && e.contains("cannot read checkpoint"),
        "{e}"
    );
}

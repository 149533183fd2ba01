//! TensorBoard event files in a run folder, read back with the `tensorboard` crate's reader
//! (scripts/check-tensorboard.sh reads them with TensorBoard itself).

use std::collections::BTreeMap;
use std::path::Path;

use tensorboard::proto::{Kind, What};
use tensorboard::{event_files, read_events};
use test_support::fixtures::write_stl10;

use crate::util::{ok, root_set};

/// Every scalar of `run`'s event files: tag -> [(step, value)] in the order written.
fn scalars(run_dir: &Path, run: &str) -> BTreeMap<String, Vec<(i64, f32)>> {
    let mut out: BTreeMap<String, Vec<(i64, f32)>> = BTreeMap::new();
    for file in event_files(&run_dir.join("tensorboard").join(run)).unwrap() {
        for e in read_events(&file).unwrap() {
            let Some(What::Summary(s)) = e.what else {
                continue;
            };
            for v in s.value {
                if let Some(Kind::SimpleValue(x)) = v.kind {
                    out.entry(v.tag).or_default().push((e.step, x));
                }
            }
        }
    }
    out
}

fn history(run_dir: &Path, run: &str, metric: &str) -> Vec<(i64, f32)> {
    let text = std::fs::read_to_string(run_dir.join(format!("{run}.json"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["epoch"].as_i64().unwrap(),
                e[metric].as_f64().unwrap() as f32,
            )
        })
        .collect()
}

#[test]
fn every_run_logs_its_history_its_steps_and_its_rates_and_the_switch_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    write_stl10(dir.path(), 10, 6, 40).unwrap();
    let out = dir.path().join("run");
    let root = root_set(dir.path());
    // 10 labeled images in batches of 2: 5 supervised steps an epoch, metrics read at steps 2
    // and 4 and at the epoch's last.
    let sets = [
        root.as_str(),
        "data.batch_size=10",
        "model.width=8",
        "baseline.epochs=2",
        "pretrain.epochs=1",
        "finetune.epochs=1",
        "runtime.metrics_every=2",
        "baseline.optimizer.learning_rate=0.003",
    ];
    let mut args = vec!["experiment", "--out", out.to_str().unwrap()];
    for s in &sets {
        args.extend(["--set", s]);
    }
    ok(&args);

    let baseline = scalars(&out, "baseline");
    for metric in ["loss", "acc", "val_loss", "val_acc", "train_seconds"] {
        assert_eq!(
            baseline[&format!("epoch/{metric}")],
            history(&out, "baseline", metric),
            "{metric}"
        );
    }
    let steps: Vec<i64> = baseline["step/loss"].iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, [2, 4, 5, 7, 9, 10]);
    assert!(
        baseline["learning_rate/optimizer"]
            .iter()
            .all(|&(_, r)| r == 0.003f32)
    );
    let pretraining = scalars(&out, "pretraining");
    for tag in [
        "epoch/val_knn_acc",
        "step/c_loss",
        "learning_rate/probe_optimizer",
    ] {
        assert!(
            pretraining.contains_key(tag),
            "{tag} in {:?}",
            pretraining.keys()
        );
    }
    assert_eq!(
        pretraining["epoch/val_p_acc"],
        history(&out, "pretraining", "val_p_acc")
    );
    assert!(
        out.join("tensorboard/pretraining/projector_config.pbtxt")
            .is_file()
    );
    assert!(out.join("tensorboard/finetuning").is_dir());

    let off = dir.path().join("off");
    let mut args = vec![
        "baseline",
        "--out",
        off.to_str().unwrap(),
        "--set",
        "log.tensorboard=false",
    ];
    for s in &sets {
        args.extend(["--set", s]);
    }
    ok(&args);
    assert!(off.join("baseline.json").is_file() && !off.join("tensorboard").exists());
}

//! The commands that use a trained representation: the kNN monitor and `knn`, `embed`,
//! `predict` and `sweep`, end to end on fixtures.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use test_support::fixtures::{label_of, write_stl10};

use crate::util::{ok, root_set, run, stderr, stdout};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `args` followed by `--set` for each of `sets`.
fn with_sets(args: &[&str], sets: &[String]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    for set in sets {
        v.push("--set".into());
        v.push(set.clone());
    }
    v
}

fn ok_v(args: &[String]) -> String {
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn run_v(args: &[String]) -> std::process::Output {
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// An STL-10-layout fixture of `train` labeled images (`train / 10` per class), 12 test and 60
/// unlabeled images, and the sets that make every phase one quick epoch.
fn fixture(dir: &Path, train: usize) -> Vec<String> {
    write_stl10(dir, train, 12, 60).unwrap();
    vec![
        root_set(dir),
        "data.batch_size=10".into(),
        "model.width=8".into(),
        "baseline.epochs=1".into(),
        "pretrain.epochs=2".into(),
        "finetune.epochs=1".into(),
        "eval.linear_epochs=5".into(),
        "eval.linear_min_steps=20".into(),
    ]
}

/// A finished experiment in `dir/run`.
fn experiment(dir: &Path) -> PathBuf {
    let sets = fixture(&dir.join("data"), 20);
    let out = dir.join("run");
    let stdout = ok_v(&with_sets(&["experiment", "--out", &s(&out)], &sets));
    assert!(stdout.contains("Maximal kNN accuracy: "), "{stdout}");
    out
}

fn history(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn knn_is_monitored_every_epoch_and_the_command_reproduces_the_last_value() {
    let dir = tempfile::tempdir().unwrap();
    let out = experiment(dir.path());
    let h = history(&out.join("pretraining.json"));
    let epochs = h["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    for e in epochs {
        let acc = e["val_knn_acc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{e}");
    }
    let csv = std::fs::read_to_string(out.join("pretraining.csv")).unwrap();
    assert!(
        csv.starts_with("epoch,c_loss,c_acc,p_loss,p_acc,val_p_loss,val_p_acc,val_knn_acc,"),
        "{csv}"
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("| self-supervised pretraining (kNN), k = 200"),
        "{report}"
    );
    for png in ["embedding.png", "val_acc.png"] {
        let img = image::open(out.join(png)).unwrap();
        assert!(img.width() > 500 && img.height() > 400, "{png}");
    }
    // The saved encoder is the last epoch's: `knn` on it, with the run folder's own
    // configuration (no --config), gives the last monitored value.
    let last = epochs[1]["val_knn_acc"].as_f64().unwrap();
    let stdout = ok(&["knn", "--encoder", &s(&out.join("encoder.safetensors"))]);
    let printed: f64 = stdout
        .split("val_knn_acc: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!((printed - last).abs() < 5e-5, "{printed} vs {last}");

    // Off by configuration: no such column.
    let sets = fixture(&dir.path().join("data2"), 10);
    let out2 = dir.path().join("no-knn");
    ok_v(&with_sets(
        &[
            "pretrain",
            "--out",
            &s(&out2),
            "--set",
            "eval.knn_monitor=false",
        ],
        &sets,
    ));
    let h = history(&out2.join("pretraining.json"));
    assert!(h["epochs"][0].get("val_knn_acc").is_none(), "{h}");
}

#[test]
fn embed_writes_npy_files_numpy_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let sets = fixture(&dir.path().join("data"), 10);
    let out = dir.path().join("run");
    ok_v(&with_sets(&["pretrain", "--out", &s(&out)], &sets));
    let encoder = out.join("encoder.safetensors");
    let feats = dir.path().join("e/test.npy");
    std::fs::create_dir_all(feats.parent().unwrap()).unwrap();
    let stdout = ok(&[
        "embed",
        "--encoder",
        &s(&encoder),
        "--split",
        "test",
        "--out",
        &s(&feats),
        "--plot",
    ]);
    assert!(stdout.contains("[12, 8] float32"), "{stdout}");
    let x: Array2<f32> = ndarray_npy::read_npy(&feats).unwrap();
    assert_eq!(x.shape(), &[12, 8]);
    assert!(
        x.iter().all(|v| v.is_finite() && *v >= 0.0),
        "ReLU features"
    );
    let labels: Array1<i64> = ndarray_npy::read_npy(dir.path().join("e/labels.npy")).unwrap();
    let want: Vec<i64> = (1000..1012).map(|i| i64::from(label_of(i))).collect();
    assert_eq!(labels.to_vec(), want);
    assert!(image::open(dir.path().join("e/embedding.png")).is_ok());

    // The projection head's outputs, of the unlabeled split: no labels file.
    // Into a folder that does not exist yet.
    let proj = dir.path().join("p/q/unlabeled.npy");
    ok(&[
        "embed",
        "--encoder",
        &s(&encoder),
        "--split",
        "unlabeled",
        "--projection",
        "--out",
        &s(&proj),
    ]);
    let p: Array2<f32> = ndarray_npy::read_npy(&proj).unwrap();
    assert_eq!(p.shape(), &[60, 8]);
    assert!(
        p.iter().any(|v| *v < 0.0),
        "the head's last layer has no ReLU"
    );
    assert!(!dir.path().join("p/q/labels.npy").exists());

    let bad = run(&["embed", "--encoder", &s(&encoder), "--split", "validation"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = stderr(&bad);
    assert!(
        err.contains("--split") && err.contains("validation"),
        "{err}"
    );
}

#[test]
fn predict_agrees_with_evaluate_and_skips_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = experiment(dir.path());
    let checkpoint = out.join("finetuned.safetensors");
    // The test split as PNG files named after their class.
    let images = dir.path().join("images");
    ok(&[
        "data",
        "export",
        "--config",
        &s(&out.join("config.toml")),
        "--split",
        "test",
        "--count",
        "12",
        "--out",
        &s(&images),
    ]);
    let json = ok(&[
        "predict",
        "--checkpoint",
        &s(&checkpoint),
        &s(&images),
        "--format",
        "json",
        "--top",
        "2",
    ]);
    let answers: serde_json::Value = serde_json::from_str(&json).unwrap();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 12);
    let mut right = 0;
    for a in answers {
        let top = a["top"].as_array().unwrap();
        assert_eq!(top.len(), 2);
        let (p1, p2) = (
            top[0]["probability"].as_f64().unwrap(),
            top[1]["probability"].as_f64().unwrap(),
        );
        assert!(p1 >= p2 && p1 <= 1.0 && p2 >= 0.0, "{a}");
        let path = a["path"].as_str().unwrap();
        let class = top[0]["class"].as_str().unwrap();
        right += usize::from(path.ends_with(&format!("_{class}.png")));
    }
    // PNG is lossless and 96x96 files are taken as they are: the same accuracy as evaluate.
    let eval = ok(&["evaluate", "--checkpoint", &s(&checkpoint)]);
    let val_acc: f64 = eval
        .split("val_acc: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{eval}"));
    assert!(
        (right as f64 / 12.0 - val_acc).abs() < 1e-4,
        "{right}/12 vs {val_acc}"
    );

    // A JPEG of another size and shape, and a corrupt file among good ones.
    let mixed = dir.path().join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    let photo = image::RgbImage::from_fn(150, 90, |x, y| image::Rgb([x as u8, y as u8, 128]));
    photo.save(mixed.join("photo.jpg")).unwrap();
    // Test image 0 is fixture image 1000, class 0.
    std::fs::copy(images.join("00000_airplane.png"), mixed.join("a.png")).unwrap();
    std::fs::write(mixed.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let result = run(&[
        "predict",
        "--checkpoint",
        &s(&checkpoint),
        &s(&mixed),
        "--format",
        "csv",
    ]);
    assert_eq!(result.status.code(), Some(1));
    let csv = stdout(&result);
    assert!(csv.starts_with("path,rank,class,probability\n"), "{csv}");
    assert_eq!(
        csv.lines().filter(|l| l.contains("photo.jpg,1,")).count(),
        1,
        "{csv}"
    );
    assert_eq!(
        csv.lines().filter(|l| l.contains("a.png,")).count(),
        3,
        "{csv}"
    );
    let err = stderr(&result);
    assert!(
        err.contains("broken.png") && err.contains("1 of 3 images"),
        "{err}"
    );
    // The table on a terminal.
    let table = ok(&[
        "predict",
        "--checkpoint",
        &s(&checkpoint),
        &s(&mixed.join("photo.jpg")),
    ]);
    assert!(
        table.starts_with("image") && table.contains("top 3") && table.contains('%'),
        "{table}"
    );

    // A checkpoint of the wrong kind.
    let wrong = run(&[
        "predict",
        "--checkpoint",
        &s(&out.join("encoder.safetensors")),
        &s(&mixed),
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    let err = stderr(&wrong);
    assert!(
        err.contains("--checkpoint") && err.contains("holds no classifier"),
        "{err}"
    );
}

#[test]
fn sweep_trains_every_budget_on_nested_subsets() {
    let dir = tempfile::tempdir().unwrap();
    let sets = fixture(&dir.path().join("data"), 30);
    let out = dir.path().join("sweep");
    let stdout = ok_v(&with_sets(
        &["sweep", "--labels-per-class", "2,1,all", "--out", &s(&out)],
        &sets,
    ));
    assert!(stdout.contains("labels/class"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(
        rows.iter().map(|r| (r[0], r[1])).collect::<Vec<_>>(),
        [("1", "10"), ("2", "20"), ("all", "30")],
        "{csv}"
    );
    // The experiment's schedule: (60 + 30) / 10 = 9 pretraining steps, so labeled batches of
    // 30 / 9 = 3 and supervised epochs of 10 steps; 10 labels fill them three times, 20
    // twice (14 steps), all 30 once.
    let schedule: Vec<(&str, &str)> = rows.iter().map(|r| (r[2], r[3])).collect();
    assert_eq!(schedule, [("3", "10"), ("3", "14"), ("3", "10")], "{csv}");
    for r in &rows {
        for v in &r[4..] {
            let acc: f64 = v.parse().unwrap();
            assert!((0.0..=1.0).contains(&acc), "{csv}");
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    // Each budget's runs have their own folder; the baseline's best is what the table says.
    let b1 = history(&out.join("labels-1/baseline.json"));
    let best = b1["epochs"][0]["val_acc"].as_f64().unwrap();
    assert!((best - rows[0][4].parse::<f64>().unwrap()).abs() < 1e-4);
    assert!(out.join("labels-all/finetuned.safetensors").is_file());
    // TensorBoard: the pretraining at the root, each budget's two runs in its folder.
    for run in [
        "tensorboard/pretraining",
        "labels-1/tensorboard/baseline",
        "labels-all/tensorboard/finetuning",
    ] {
        let files = tensorboard::event_files(&out.join(run)).unwrap();
        assert_eq!(files.len(), 1, "{run}");
    }
    assert!(
        out.join("tensorboard/pretraining/projector_config.pbtxt")
            .is_file()
    );
    let classes = std::fs::read_to_string(out.join("labels-1/classes.txt")).unwrap();
    assert!(classes.starts_with("airplane\nbird\n"), "{classes}");
    assert!(out.join("encoder.safetensors").is_file());
    let img = image::open(out.join("label_efficiency.png")).unwrap();
    assert!(img.width() > 500);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("## Label efficiency") && report.contains("| all | 30 |"),
        "{report}"
    );

    // Reusing the encoder skips pretraining.
    let again = dir.path().join("again");
    ok_v(&with_sets(
        &[
            "sweep",
            "--labels-per-class",
            "1",
            "--encoder",
            &s(&out.join("encoder.safetensors")),
            "--out",
            &s(&again),
        ],
        &sets,
    ));
    assert!(!again.join("pretraining.json").exists());
    let csv2 = std::fs::read_to_string(again.join("sweep.csv")).unwrap();
    // Same encoder, subset and seed: the frozen-feature scores repeat exactly.
    let row2: Vec<&str> = csv2.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row2[6..], rows[0][6..], "{csv2} vs {csv}");

    // More labels than a class has, and a malformed list: errors naming the argument.
    for (list, words) in [("4", "class 'airplane' has 3"), ("ten", "neither a number")] {
        let r = run_v(&with_sets(
            &[
                "sweep",
                "--labels-per-class",
                list,
                "--out",
                &s(&dir.path().join("x")),
            ],
            &sets,
        ));
        assert_eq!(r.status.code(), Some(1), "{list}");
        let err = stderr(&r);
        assert!(
            err.contains("--labels-per-class") && err.contains(words),
            "{list}: {err}"
        );
    }
}

#[test]
fn folds_train_on_each_predefined_fold_alone_and_report_mean_and_std() {
    let dir = tempfile::tempdir().unwrap();
    // 40 training images: the fixture's fold k holds the images i with i % 10 == k.
    let sets = fixture(&dir.path().join("data"), 40);
    let run_dir = dir.path().join("run");
    ok_v(&with_sets(&["pretrain", "--out", &s(&run_dir)], &sets));
    let out = dir.path().join("folds");
    let encoder = run_dir.join("encoder.safetensors");
    let stdout = ok_v(&with_sets(
        &["folds", "--encoder", &s(&encoder), "--out", &s(&out)],
        &sets,
    ));
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("folds.json")).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 10);
    for (k, r) in rows.iter().enumerate() {
        assert_eq!(
            (r["fold"].as_u64(), r["labels"].as_u64()),
            (Some(k as u64), Some(4))
        );
        // The fine-tuning of fold k saw only fold k: its history is in fold-<k>/.
        let h = history(&out.join(format!("fold-{k}/finetuning.json")));
        let best = h["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["val_acc"].as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!(
            (r["finetuned"].as_f64().unwrap() - best).abs() < 1e-12,
            "fold {k}"
        );
    }
    // The printed mean and std are numpy's over the ten folds.
    let linear: Vec<f64> = rows.iter().map(|r| r["linear"].as_f64().unwrap()).collect();
    let mean = linear.iter().sum::<f64>() / 10.0;
    let std = (linear.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 10.0).sqrt();
    let line = format!(
        "linear probe (frozen): {:.2} ± {:.2}%",
        mean * 100.0,
        std * 100.0
    );
    assert!(stdout.contains(&line), "{stdout}\nwanted: {line}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("| mean ± std |") && report.contains("| 9 | 4 |"),
        "{report}"
    );
    // The same table in report.html, and each fold's run folder has its TensorBoard logs.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<td>mean ± std</td>") && html.contains("STL-10 folds"),
        "{html}"
    );
    assert!(out.join("fold-9/tensorboard/finetuning").is_dir());
    assert_eq!(
        std::fs::read_to_string(out.join("folds.csv"))
            .unwrap()
            .lines()
            .count(),
        11
    );
}

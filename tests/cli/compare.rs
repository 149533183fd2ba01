//! `compare`: run folders side by side, end to end: a real tiny baseline run, an experiment
//! folder and a sweep folder written by hand, their picture, CSV and markdown, and the errors.

use std::path::Path;

use test_support::fixtures::write_stl10;
use train::experiment::run::Run;
use train::fit::metrics::{EpochRecord, History};

use crate::util::{ok, root_set, run, stderr};

/// A history of `run` with `val_acc`-like `metric` taking `values` epoch by epoch, and a loss
/// beside it.
fn history(run: Run, values: &[f64]) -> History {
    let mut h = History::new(run.name());
    for (i, v) in values.iter().enumerate() {
        let mut metrics = vec![
            (run.loss_metric().to_string(), 2.0 - v),
            (run.accuracy_metric().to_string(), *v),
        ];
        if run == Run::Pretraining {
            metrics.push(("val_knn_acc".into(), v / 2.0));
        }
        h.epochs.push(EpochRecord {
            epoch: i + 1,
            metrics,
            train_seconds: 1.0,
            images_per_second: 100.0 * (i + 1) as f64,
        });
    }
    h
}

/// A run folder `dir` holding `histories`, as a training command leaves it.
fn run_folder(dir: &Path, histories: &[History]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.toml"), "").unwrap();
    for h in histories {
        std::fs::write(dir.join(format!("{}.json", h.run)), h.to_json()).unwrap();
    }
}

/// The largest `metric` in the run folder's `<run>.json`, read independently of the crates.
fn max_in(dir: &Path, run: &str, metric: &str) -> f64 {
    let text = std::fs::read_to_string(dir.join(format!("{run}.json"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[metric].as_f64().unwrap())
        .fold(f64::MIN, f64::max)
}

#[test]
fn compare_draws_every_curve_and_tabulates_the_best_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_stl10(&data, 10, 6, 40).unwrap();
    let trained = tmp.path().join("trained");
    ok(&[
        "baseline",
        "--out",
        trained.to_str().unwrap(),
        "--no-progress",
        "--set",
        &root_set(&data),
        "--set",
        "data.batch_size=10",
        "--set",
        "model.width=8",
        "--set",
        "baseline.epochs=2",
    ]);
    let experiment = tmp.path().join("experiment");
    run_folder(
        &experiment,
        &[
            history(Run::Baseline, &[0.25, 0.5, 0.375]),
            history(Run::Pretraining, &[0.125, 0.25]),
            history(Run::Finetuning, &[0.5, 0.75, 0.625]),
        ],
    );
    let sweep = tmp.path().join("sweep");
    run_folder(&sweep, &[history(Run::Pretraining, &[0.5])]);
    for (budget, top) in [("all", 0.875), ("10", 0.375)] {
        run_folder(
            &sweep.join(format!("labels-{budget}")),
            &[
                history(Run::Baseline, &[top / 2.0, top]),
                history(Run::Finetuning, &[top, top / 4.0]),
            ],
        );
    }
    let picture = tmp.path().join("out/plot.png");
    let stdout = ok(&[
        "compare",
        trained.to_str().unwrap(),
        experiment.to_str().unwrap(),
        sweep.to_str().unwrap(),
        "--out",
        picture.to_str().unwrap(),
    ]);

    let (t, e, s) = (trained.display(), experiment.display(), sweep.display());
    let names = [
        format!("{t} baseline"),
        format!("{e} baseline"),
        format!("{e} pretraining"),
        format!("{e} finetuning"),
        format!("{s} pretraining"),
        format!("{s}/labels-10 baseline"),
        format!("{s}/labels-10 finetuning"),
        format!("{s}/labels-all baseline"),
        format!("{s}/labels-all finetuning"),
    ];
    // The CSV is the picture's path with `.csv`: one row per history, columns aligned by name.
    let csv = std::fs::read_to_string(tmp.path().join("out/plot.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 1 + names.len(), "{csv}");
    assert_eq!(
        rows.iter().skip(1).map(|r| r[0]).collect::<Vec<_>>(),
        names.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{csv}");
    let col = |name: &str| rows[0].iter().position(|c| *c == name).unwrap();
    let cell = |row: usize, name: &str| rows[row][col(name)];
    let num = |row: usize, name: &str| cell(row, name).parse::<f64>().unwrap();
    assert_eq!(num(1, "epochs"), 2.0);
    assert_eq!(num(1, "val_acc"), max_in(&trained, "baseline", "val_acc"));
    assert_eq!(num(2, "val_acc"), 0.5);
    // The smallest loss, not the largest: 2 - 0.5.
    assert_eq!(num(2, "val_loss"), 1.5);
    assert_eq!(num(2, "images_per_second"), 200.0);
    assert_eq!(num(3, "val_p_acc"), 0.25);
    assert_eq!(num(3, "val_knn_acc"), 0.125);
    assert_eq!(num(4, "val_acc"), 0.75);
    assert_eq!(num(6, "val_acc"), 0.375);
    assert_eq!(num(9, "val_acc"), 0.875);
    // A baseline has no probe nor kNN, the pretraining no val_acc.
    assert_eq!(cell(2, "val_p_acc"), "");
    assert_eq!(cell(2, "val_knn_acc"), "");
    assert_eq!(cell(3, "val_acc"), "");
    assert_eq!(cell(3, "run"), "pretraining");

    // The same table in markdown on stdout.
    let md: Vec<&str> = stdout.lines().collect();
    assert!(
        md[0].starts_with("| series | epochs | images/s |"),
        "{stdout}"
    );
    assert_eq!(md.len(), 2 + names.len(), "{stdout}");
    assert!(
        md[3].starts_with(&format!("| {e} baseline | 3 | 200 |")),
        "{stdout}"
    );

    // One curve per history, and the two pretrainings' kNN monitors: eleven lines in the legend,
    // each 22 pixels, under the 560-pixel chart.
    let png = image::open(&picture).unwrap();
    assert_eq!((png.width(), png.height()), (900, 560 + 11 * 22 + 20));
}

#[test]
fn compare_names_the_folder_that_is_not_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    run_folder(&good, &[history(Run::Baseline, &[0.5])]);
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::write(photos.join("cat.png"), "").unwrap();
    let picture = tmp.path().join("compare.png");
    let out = run(&[
        "compare",
        good.to_str().unwrap(),
        photos.to_str().unwrap(),
        "--out",
        picture.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("error: {}: not a run folder", photos.display())),
        "{}",
        stderr(&out)
    );
    assert!(!picture.exists(), "nothing written on an error");
    let missing = tmp.path().join("missing");
    let out = run(&["compare", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("error: {}: no such folder", missing.display())),
        "{}",
        stderr(&out)
    );
    // The table would overwrite the picture.
    let same = tmp.path().join("same.csv");
    let (g, s) = (good.to_str().unwrap(), same.to_str().unwrap());
    let out = run(&["compare", g, "--out", s]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the same file as --out"),
        "{}",
        stderr(&out)
    );
    assert!(!same.exists());
    // No RUN at all is a usage error.
    let out = run(&["compare"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("<RUN>"), "{}", stderr(&out));
}

use std::path::Path;

use test_support::fixtures::write_stl10;

use crate::util::{ok, root_set, run, stderr};

/// A tiny STL-10-layout fixture and the overrides that make one epoch of each phase quick:
/// (40 + 10) / 10 = 5 steps of 8 unlabeled + 2 labeled images, a narrow encoder.
fn tiny(dir: &Path) -> Vec<String> {
    write_stl10(dir, 10, 6, 40).unwrap();
    [
        root_set(dir),
        "data.batch_size=10".into(),
        "model.width=8".into(),
        "baseline.epochs=1".into(),
        "pretrain.epochs=1".into(),
        "finetune.epochs=1".into(),
    ]
    .to_vec()
}

/// `metric` epoch by epoch from the run folder's `<run>.json`.
fn series(out: &Path, run: &str, metric: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(out.join(format!("{run}.json"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let values: Vec<f64> = json["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[metric].as_f64().unwrap())
        .collect();
    assert!(!values.is_empty(), "{run}.json has no {metric}");
    values
}

fn with_sets<'a>(args: &[&'a str], sets: &'a [String]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    for s in sets {
        v.push("--set");
        v.push(s);
    }
    v
}

#[test]
fn experiment_writes_every_artifact_and_the_three_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut sets = tiny(dir.path());
    // Two epochs each, so that a maximum and a last epoch are different questions.
    sets.extend(["baseline", "pretrain", "finetune"].map(|t| format!("{t}.epochs=2")));
    let out = dir.path().join("run");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/stl10.toml");
    let stdout = ok(&with_sets(
        &[
            "experiment",
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &sets,
    ));
    for name in [
        "config.toml",
        "summary.txt",
        "augmentations.png",
        "val_acc.png",
        "val_loss.png",
        "report.md",
        "report.html",
        "baseline.csv",
        "baseline.json",
        "pretraining.csv",
        "pretraining.json",
        "finetuning.csv",
        "finetuning.json",
        "baseline.safetensors",
        "encoder.safetensors",
        "projection_head.safetensors",
        "linear_probe.safetensors",
        "finetuned.safetensors",
    ] {
        assert!(out.join(name).is_file(), "missing {name}");
    }
    assert_eq!(
        std::fs::read_dir(&out)
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("partial"))
            .count(),
        0,
        "no temporary files left"
    );
    for png in ["augmentations.png", "val_acc.png", "val_loss.png"] {
        let img = image::open(out.join(png)).unwrap();
        assert!(img.width() > 200 && img.height() > 200, "{png}");
    }
    // The seed's lines, in the seed's order.
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("Maximal validation accuracy: "))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].ends_with("(supervised baseline)")
            && lines[2].ends_with("(supervised fine-tuning)"),
        "{stdout}"
    );
    // Each printed maximum is the best epoch of its JSON history, as printed (2 decimals).
    for (line, (run, metric)) in lines.iter().zip([
        ("baseline", "val_acc"),
        ("pretraining", "val_p_acc"),
        ("finetuning", "val_acc"),
    ]) {
        let best = series(&out, run, metric)
            .into_iter()
            .fold(f64::MIN, f64::max);
        assert!(
            line.starts_with(&format!(
                "Maximal validation accuracy: {:.2}% (",
                best * 100.0
            )),
            "{line} vs best {metric} {best} of {run}.json"
        );
    }
    let knn = series(&out, "pretraining", "val_knn_acc");
    let knn_line = stdout
        .lines()
        .find(|l| l.starts_with("Maximal kNN accuracy: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let best = knn.into_iter().fold(f64::MIN, f64::max);
    assert!(
        knn_line.starts_with(&format!("Maximal kNN accuracy: {:.2}% (", best * 100.0)),
        "{knn_line} vs {best}"
    );
    evaluate_gives_the_last_finetuning_epoch(&out, &sets);

    // report.html is self-contained: its images are data URIs, never files.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let srcs: Vec<&str> = html.split("src=\"").skip(1).collect();
    assert!(
        !srcs.is_empty() && srcs.iter().all(|s| s.starts_with("data:image/png;base64,")),
        "report.html refers to something other than an embedded PNG"
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for label in [
        "supervised baseline",
        "self-supervised pretraining (linear probe)",
        "supervised fine-tuning",
    ] {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .unwrap_or_else(|| panic!("{report}"));
        assert!(row.contains('%'), "{row}");
        // report.html shows the same row: label and best accuracy.
        let best = row.split('|').nth(2).unwrap().trim();
        let cells = format!("<td>{label}</td><td>{best}</td>");
        assert!(html.contains(&cells), "{cells} not in report.html");
    }
    let csv = std::fs::read_to_string(out.join("pretraining.csv")).unwrap();
    assert!(
        csv.starts_with("epoch,c_loss,c_acc,p_loss,p_acc,val_p_loss,val_p_acc,"),
        "{csv}"
    );
    let values: Vec<f64> = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(values.iter().all(|v| v.is_finite()), "{csv}");
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(
        summary.contains("Model: \"encoder\"") && summary.contains("Model: \"linear_probe\""),
        "{summary}"
    );

    // The phases alone: fine-tune from the saved encoder, evaluate a checkpoint.
    let out2 = dir.path().join("ft");
    let stdout = ok(&with_sets(
        &[
            "finetune",
            "--encoder",
            out.join("encoder.safetensors").to_str().unwrap(),
            "--out",
            out2.to_str().unwrap(),
        ],
        &sets,
    ));
    assert!(
        stdout.contains("(supervised fine-tuning)") && out2.join("finetuned.safetensors").is_file(),
        "{stdout}"
    );
    evaluate_gives_the_last_finetuning_epoch(&out2, &sets);
}

/// `evaluate` on a run folder's `finetuned.safetensors` prints the validation loss and
/// accuracy of its last fine-tuning epoch (the folder's config.toml is used: no --config).
fn evaluate_gives_the_last_finetuning_epoch(run: &Path, sets: &[String]) {
    let checkpoint = run.join("finetuned.safetensors");
    let stdout = ok(&with_sets(
        &["evaluate", "--checkpoint", checkpoint.to_str().unwrap()],
        sets,
    ));
    let (loss, acc) = (
        *series(run, "finetuning", "val_loss").last().unwrap(),
        *series(run, "finetuning", "val_acc").last().unwrap(),
    );
    assert!(
        stdout.contains(&format!("val_loss: {loss:.4} - val_acc: {acc:.4}"))
            && stdout.contains(&format!("Validation accuracy: {:.2}%", acc * 100.0)),
        "{stdout} vs the last epoch's val_loss {loss}, val_acc {acc}"
    );
}

#[test]
fn a_cpu_experiment_is_bit_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let sets = tiny(dir.path());
    let metrics = |name: &str| {
        let out = dir.path().join(name);
        ok(&with_sets(
            &["pretrain", "--out", out.to_str().unwrap()],
            &sets,
        ));
        let csv = std::fs::read_to_string(out.join("pretraining.csv")).unwrap();
        // Drop the timing columns.
        csv.lines()
            .map(|l| l.split(',').take(7).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>()
    };
    assert_eq!(metrics("a"), metrics("b"));
}

#[test]
fn training_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let sets = tiny(dir.path());
    let bad = dir.path().join("not-an-encoder.safetensors");
    std::fs::write(&bad, b"junk").unwrap();
    let out = run(&with_sets(
        &[
            "finetune",
            "--encoder",
            bad.to_str().unwrap(),
            "--out",
            dir.path().join("x").to_str().unwrap(),
        ],
        &sets,
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not-an-encoder.safetensors"),
        "{}",
        stderr(&out)
    );

    let more = |extra: &str| [sets.clone(), vec![extra.to_string()]].concat();
    let out = run(&with_sets(&["pretrain"], &more("loss.temperature=0")));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("loss.temperature"),
        "{}",
        stderr(&out)
    );

    let out = run(&with_sets(&["baseline"], &more("data.batch_size=1000")));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no full batch of 1000"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn augment_preview_draws_the_seed_grid() {
    let dir = tempfile::tempdir().unwrap();
    let sets = tiny(dir.path());
    let draw = |name: &str, extra: &[&str]| {
        let png = dir.path().join(name);
        let mut sets = sets.clone();
        sets.extend(extra.iter().map(|s| s.to_string()));
        ok(&with_sets(
            &[
                "augment-preview",
                "--count",
                "3",
                "--out",
                png.to_str().unwrap(),
            ],
            &sets,
        ));
        image::open(&png).unwrap().to_rgb8()
    };
    let img = draw("grid.png", &[]);
    // Four titled rows of three 96-pixel tiles, 8 pixels apart, each below a 30-pixel title.
    let (pad, title, tile) = (8, 30, 96);
    assert_eq!(img.width(), pad + 3 * (tile + pad));
    assert_eq!(img.height(), 4 * (title + tile + pad) + pad);
    // Tile `i` of row `r` as RGB bytes, row by row.
    let tile_of = |img: &image::RgbImage, r: u32, i: u32| -> Vec<u8> {
        let (top, left) = (
            pad + r * (title + tile + pad) + title,
            pad + i * (tile + pad),
        );
        let mut px = Vec::new();
        for y in 0..tile {
            for x in 0..tile {
                px.extend(img.get_pixel(left + x, top + y).0);
            }
        }
        px
    };
    for i in 0..3 {
        // Row 0: the first three training images exactly as the fixture wrote them.
        let mut want = Vec::new();
        for y in 0..tile as usize {
            for x in 0..tile as usize {
                want.extend((0..3).map(|c| test_support::fixtures::pixel_value(i, c, y, x)));
            }
        }
        let original = tile_of(&img, 0, i as u32);
        assert!(
            original == want,
            "tile {i} of the Original row is not image {i}"
        );
        // Rows 1-3 (weak, strong, strong): the same image, changed, each strong view its own.
        let rows: Vec<Vec<u8>> = (1..4).map(|r| tile_of(&img, r, i as u32)).collect();
        for (r, t) in rows.iter().enumerate() {
            let changed = t.iter().zip(&original).filter(|(a, b)| a != b).count();
            assert!(
                changed > original.len() / 10,
                "row {} tile {i}: only {changed} of {} values changed",
                r + 1,
                original.len()
            );
        }
        assert!(
            rows[1] != rows[2],
            "tile {i}: the two strong views are equal"
        );
    }
    // Every row has its title drawn in dark pixels above the tiles.
    for r in 0..4 {
        let top = pad + r * (title + tile + pad);
        let dark = (top..top + title)
            .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&v| v < 100))
            .count();
        assert!(dark > 20, "row {r} has no title ({dark} dark pixels)");
    }
    // The seed draws the views: the same seed draws the same grid, another seed other views.
    assert!(draw("again.png", &[]) == img, "same seed, another grid");
    let other = draw("other.png", &["runtime.seed=7"]);
    assert!(tile_of(&other, 0, 0) == tile_of(&img, 0, 0));
    assert!(
        tile_of(&other, 2, 0) != tile_of(&img, 2, 0),
        "seed 7 drew seed 42's views"
    );
}

#[test]
fn supervised_runs_and_evaluate_need_no_unlabeled_images() {
    let dir = tempfile::tempdir().unwrap();
    // STL-10 without its unlabeled file: the baseline trains, evaluate reads its checkpoint.
    let sets = tiny(dir.path());
    std::fs::remove_file(dir.path().join("stl10_binary/unlabeled_X.bin")).unwrap();
    let out = dir.path().join("run");
    let stdout = ok(&with_sets(
        &["baseline", "--out", out.to_str().unwrap()],
        &sets,
    ));
    assert!(stdout.contains("(supervised baseline)"), "{stdout}");
    let ckpt = out.join("baseline.safetensors");
    let stdout = ok(&with_sets(
        &["evaluate", "--checkpoint", ckpt.to_str().unwrap()],
        &sets,
    ));
    assert!(stdout.contains("Validation accuracy:"), "{stdout}");
    // Pretraining says what is missing before it starts.
    let out = run(&with_sets(
        &["pretrain", "--out", out.to_str().unwrap()],
        &sets,
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no unlabeled images"),
        "{}",
        stderr(&out)
    );
}

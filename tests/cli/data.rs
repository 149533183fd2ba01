use std::path::Path;

use test_support::fixtures::{pixel_value, write_stl10};

use crate::util::{ok, root_set, run, stderr};

#[test]
fn inspect_prints_splits_counts_and_the_seed_batch_line() {
    let dir = tempfile::tempdir().unwrap();
    write_stl10(dir.path(), 40, 20, 800).unwrap();
    let out = ok(&[
        "data",
        "inspect",
        "--set",
        &root_set(dir.path()),
        "--set",
        "data.batch_size=84",
    ]);
    assert!(out.contains("image size: 96x96x3, 10 classes"), "{out}");
    assert!(out.contains("train: 40 images (labeled)"), "{out}");
    assert!(out.contains("unlabeled: 800 images (unlabeled)"), "{out}");
    assert!(out.contains("test: 20 images (labeled)"), "{out}");
    assert!(out.contains("airplane") && out.contains("truck"), "{out}");
    // (800 + 40) / 84 = 10 steps of 80 + 4.
    assert!(out.contains("steps per epoch: 10"), "{out}");
    assert!(
        out.contains("batch size is 80 (unlabeled) + 4 (labeled)"),
        "{out}"
    );
}

#[test]
fn export_writes_the_decoded_pixels() {
    let dir = tempfile::tempdir().unwrap();
    write_stl10(dir.path(), 5, 5, 5).unwrap();
    let out_dir = dir.path().join("png");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/stl10.toml");
    ok(&[
        "data",
        "export",
        "--config",
        config.to_str().unwrap(),
        "--set",
        &root_set(dir.path()),
        "--split",
        "test",
        "--count",
        "3",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let png = out_dir.join("00002_car.png");
    let img = image::open(&png).unwrap().into_rgb8();
    assert_eq!(img.dimensions(), (96, 96));
    // (x = col 10, y = row 4) of test image 2, which the fixture numbers 1002.
    let expected = [0, 1, 2].map(|c| pixel_value(1002, c, 4, 10));
    assert_eq!(img.get_pixel(10, 4).0, expected);
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 3);
}

#[test]
fn image_folders_are_inspected() {
    let dir = tempfile::tempdir().unwrap();
    for (class, n) in [("birds", 3), ("cats", 2)] {
        std::fs::create_dir_all(dir.path().join("train").join(class)).unwrap();
        for i in 0..n {
            image::RgbImage::from_pixel(10, 14, image::Rgb([i as u8, 0, 0]))
                .save(dir.path().join(format!("train/{class}/{i}.png")))
                .unwrap();
        }
    }
    let out = ok(&[
        "data",
        "inspect",
        "--set",
        "data.kind=folder",
        "--set",
        &root_set(dir.path()),
        "--set",
        "data.image_size=8",
        "--set",
        "data.labeled_per_class=1",
        "--set",
        "data.batch_size=3",
    ]);
    assert!(out.contains("image size: 8x8x3, 2 classes"), "{out}");
    assert!(
        out.contains("train: 2 images") && out.contains("unlabeled: 3 images"),
        "{out}"
    );
    assert!(out.contains("birds") && out.contains("cats"), "{out}");
}

#[test]
fn bad_input_exits_1_with_a_clear_message() {
    let out = run(&["data", "inspect", "--set", "data.root=/no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/no/such/dir"), "{}", stderr(&out));

    let out = run(&["data", "inspect", "--set", "data.image_sise=3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("image_sise"), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    write_stl10(dir.path(), 5, 5, 5).unwrap();
    std::fs::write(
        dir.path().join("stl10_binary/train_y.bin"),
        [1u8, 2, 3, 4, 99],
    )
    .unwrap();
    let out = run(&["data", "inspect", "--set", &root_set(dir.path())]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("train_y.bin") && err.contains("label 99 at index 4"),
        "{err}"
    );
}

#[test]
fn real_fashion_mnist_is_read_when_installed() {
    let root = Path::new("/usr/share/datasets/fashion-mnist");
    if !root.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Fashion-MNIST (scripts/setup.sh installs it)"
        );
        eprintln!(
            "skipped: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"
        );
        return;
    }
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/fashion-mnist.toml");
    let out = ok(&["data", "inspect", "--config", config.to_str().unwrap()]);
    assert!(out.contains("train: 1000 images (labeled)"), "{out}");
    assert!(out.contains("unlabeled: 59000 images"), "{out}");
    assert!(out.contains("test: 10000 images"), "{out}");
    assert!(
        out.contains("Ankle boot") && out.contains("   1000"),
        "{out}"
    );
    assert!(
        out.contains("batch size is 504 (unlabeled) + 8 (labeled)"),
        "{out}"
    );
}

/// `simclr-cli` with `SIMCLR_DATA` set to `data`.
fn with_data_dir(data: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_simclr-cli"))
        .env("SIMCLR_DATA", data)
        .args(args)
        .args(["--device", "cpu", "--threads", "1"])
        .output()
        .expect("simclr-cli runs")
}

#[test]
fn download_unpacks_where_data_root_looks_by_default_and_resumes() {
    use test_support::fixtures::{HttpServer, md5_hex, stl10_archive};
    let scratch = tempfile::tempdir().unwrap();
    let body = stl10_archive(scratch.path(), "stl10_binary").unwrap();
    let server = HttpServer::start(body.clone(), 2, Some(body.len() / 3));
    let data = tempfile::tempdir().unwrap();
    let md5 = md5_hex(&body);
    let args = [
        "data",
        "download",
        "stl10",
        "--url",
        &server.url,
        "--md5",
        &md5,
    ];
    let first = with_data_dir(data.path(), &args);
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("run the command again to resume"),
        "{}",
        stderr(&first)
    );
    let second = with_data_dir(data.path(), &args);
    assert!(second.status.success(), "{}", stderr(&second));
    let out = String::from_utf8_lossy(&second.stdout);
    let folder = data.path().join("stl10").join("stl10_binary");
    assert!(
        out.contains("resumed after") && out.contains(&folder.display().to_string()),
        "{out}"
    );
    assert_eq!(server.finish().len(), 2);
    // No data.root anywhere: the default is where the download went.
    let inspect = with_data_dir(data.path(), &["data", "inspect"]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(text.contains("train: 20 images (labeled)"), "{text}");
}

#[test]
fn download_errors_name_the_address() {
    let data = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/stl10_binary.tar.gz");
    let out = with_data_dir(
        data.path(),
        &["data", "download", "stl10", "--url", &url, "--md5", "00"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));
    // --url without --md5 is refused before anything is fetched.
    let out = with_data_dir(data.path(), &["data", "download", "stl10", "--url", &url]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--md5"), "{}", stderr(&out));
}

#[test]
fn inspect_reports_channel_statistics_and_draws_a_contact_sheet() {
    let dir = tempfile::tempdir().unwrap();
    write_stl10(dir.path(), 30, 10, 20).unwrap();
    let sheet = dir.path().join("sheet.png");
    let out = ok(&[
        "data",
        "inspect",
        "--set",
        &root_set(dir.path()),
        "--sheet",
        sheet.to_str().unwrap(),
        "--per-class",
        "2",
    ]);
    assert!(out.contains("pixel mean / std per channel"), "{out}");
    let train = out
        .lines()
        .find(|l| l.trim_start().starts_with("train ") && l.contains("mean"))
        .unwrap_or_else(|| panic!("{out}"));
    let fields: Vec<&str> = train.split_whitespace().collect();
    assert_eq!(fields.len(), 9, "{train}");
    // Channel R of every train pixel, from the fixture's formula.
    let values: Vec<f64> = (0..30)
        .flat_map(|i| (0..96 * 96).map(move |p| (i, p / 96, p % 96)))
        .map(|(i, y, x)| f64::from(pixel_value(i, 0, y, x)) / 255.0)
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    assert_eq!(fields[2], format!("{mean:.4}"), "{train}");
    // Ten rows (one per class) of two 96-pixel tiles: 8 + 2 * 104 wide, 10 * 134 + 8 high.
    let img = image::open(&sheet).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (216, 1348));
    // Row 0 is class 0, whose first image is train image 0: its top-left pixel starts the row.
    let px = img.get_pixel(8, 8 + 30);
    assert_eq!(px.0, [0, 1, 2].map(|c| pixel_value(0, c, 0, 0)), "{px:?}");
    // Row 3 (class 3), second tile: train image 13, pixel (5, 7).
    let px = img.get_pixel(8 + 104 + 7, 8 + 3 * 134 + 30 + 5);
    assert_eq!(px.0, [0, 1, 2].map(|c| pixel_value(13, c, 5, 7)), "{px:?}");
}

#[test]
fn cifar_archives_are_read_without_unpacking_and_pretrain_with_held_back_labels() {
    use stl10_data::cifar::CIFAR10;
    use test_support::fixtures::write_cifar;
    let dir = tempfile::tempdir().unwrap();
    write_cifar(dir.path(), &CIFAR10, 8, 10, true).unwrap();
    let sets = [
        "data.kind=cifar10".to_string(),
        "data.image_size=32".into(),
        root_set(dir.path()),
    ];
    let mut args = vec!["data", "inspect"];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let out = ok(&args);
    assert!(out.contains("image size: 32x32x3, 10 classes"), "{out}");
    assert!(
        out.contains("train: 40 images (labeled)") && out.contains("test: 10 images"),
        "{out}"
    );
    let run = dir.path().join("run");
    let mut args = vec!["pretrain", "--out", run.to_str().unwrap()];
    for s in &sets {
        args.extend(["--set", s]);
    }
    args.extend([
        "--set",
        "data.labeled_per_class=2",
        "--set",
        "data.batch_size=10",
        "--set",
        "model.width=8",
        "--set",
        "pretrain.epochs=1",
    ]);
    let out = ok(&args);
    assert!(out.contains("Maximal validation accuracy"), "{out}");
    assert!(run.join("encoder.safetensors").is_file());
}

/// Every `*.safetensors` of a run folder, by name, and its metric columns (timing dropped).
fn run_outputs(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    for run in ["baseline", "pretraining", "finetuning"] {
        let csv = std::fs::read_to_string(out.join(format!("{run}.csv"))).unwrap();
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let keep: Vec<usize> = (0..header.len())
            .filter(|&i| !header[i].contains("seconds") && !header[i].contains("per_s"))
            .collect();
        let metrics: String = csv
            .lines()
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                keep.iter().map(|&i| cells[i]).collect::<Vec<_>>().join(",") + "\n"
            })
            .collect();
        files.push((format!("{run}.csv"), metrics.into_bytes()));
    }
    files.sort();
    files
}

#[test]
fn packed_and_streamed_runs_equal_the_in_memory_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("folder");
    test_support::fixtures::EncodedFixture {
        train: 10,
        unlabeled: 40,
        test: 6,
        classes: 3,
        side: 40,
        jpeg_every: 2,
    }
    .write_folder(&src)
    .unwrap();
    let common = [
        "data.image_size=32",
        "data.batch_size=10",
        "model.width=8",
        "baseline.epochs=1",
        "pretrain.epochs=2",
        "finetune.epochs=1",
    ];
    let packed = dir.path().join("packed");
    let source = [
        "data.kind=folder".to_string(),
        format!("data.root={}", src.display()),
    ];
    let mut args = vec!["data", "pack", "--out", packed.to_str().unwrap()];
    for s in source.iter().map(String::as_str).chain(common) {
        args.extend(["--set", s]);
    }
    let out = ok(&args);
    assert!(
        out.contains("packed 10 train, 40 unlabeled, 6 test images (32x32)"),
        "{out}"
    );
    let out = ok(&["data", "verify", packed.to_str().unwrap()]);
    assert!(out.contains("all as the manifest says"), "{out}");

    let experiment = |name: &str, data: &[String]| {
        let out = dir.path().join(name);
        let mut args = vec!["experiment", "--out", out.to_str().unwrap()];
        for s in data.iter().map(String::as_str).chain(common) {
            args.extend(["--set", s]);
        }
        ok(&args);
        run_outputs(&out)
    };
    let in_memory = experiment(
        "in-memory",
        &[
            source[0].clone(),
            source[1].clone(),
            "data.streaming=never".into(),
        ],
    );
    let streamed = experiment(
        "streamed",
        &[
            source[0].clone(),
            source[1].clone(),
            "data.streaming=always".into(),
            "data.prefetch=0".into(),
        ],
    );
    let from_pack = experiment(
        "packed",
        &[
            "data.kind=packed".into(),
            format!("data.root={}", packed.display()),
        ],
    );
    assert!(
        in_memory.len() >= 5,
        "{:?}",
        in_memory.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (other, what) in [(&streamed, "streamed"), (&from_pack, "packed")] {
        assert_eq!(in_memory.len(), other.len(), "{what}");
        for (a, b) in in_memory.iter().zip(other) {
            assert_eq!(a.0, b.0);
            assert!(a.1 == b.1, "{what}: {} differs", a.0);
        }
    }
}

#[test]
fn verify_exits_1_naming_a_corrupted_shard() {
    let dir = tempfile::tempdir().unwrap();
    write_stl10(dir.path(), 10, 4, 20).unwrap();
    let packed = dir.path().join("packed");
    ok(&[
        "data",
        "pack",
        "--set",
        &root_set(dir.path()),
        "--out",
        packed.to_str().unwrap(),
    ]);
    let shard = packed.join("test/images-00000.npy");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[500] ^= 0x80;
    std::fs::write(&shard, bytes).unwrap();
    let out = run(&["data", "verify", packed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (crate::util::stdout(&out), stderr(&out));
    assert!(
        stdout.contains("test/images-00000.npy: SHA-256 mismatch"),
        "{stdout}"
    );
    assert!(stderr.contains("differs from its manifest"), "{stderr}");
}

#[test]
fn bench_data_times_each_input_path() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("folder");
    test_support::fixtures::EncodedFixture {
        train: 12,
        unlabeled: 36,
        test: 4,
        classes: 3,
        side: 20,
        jpeg_every: 2,
    }
    .write_folder(&src)
    .unwrap();
    let packed = dir.path().join("packed");
    let folder = format!("data.root={}", src.display());
    let common = ["data.image_size=16", "data.batch_size=12"];
    let with = |args: &[&'static str], sets: &[&str]| -> serde_json::Value {
        let mut all: Vec<&str> = args.to_vec();
        for s in sets.iter().chain(&common) {
            all.extend(["--set", s]);
        }
        let out = ok(&all);
        serde_json::from_str(out.lines().last().unwrap()).unwrap()
    };
    let bench = ["bench", "--data", "--images", "100", "--workers", "1"];
    let memory = with(
        &bench,
        &["data.kind=folder", &folder, "data.streaming=never"],
    );
    let streamed = with(
        &bench,
        &["data.kind=folder", &folder, "data.streaming=always"],
    );
    let mut args = vec!["data", "pack", "--out", packed.to_str().unwrap()];
    let sets = ["data.kind=folder".to_string(), folder.clone()];
    for s in sets.iter().map(String::as_str).chain(common) {
        args.extend(["--set", s]);
    }
    ok(&args);
    let root = format!("data.root={}", packed.display());
    let from_pack = with(&bench, &["data.kind=packed", &root]);
    for (report, path) in [
        (&memory, "in memory (decoded before training)"),
        (&streamed, "streamed (decoded batch by batch)"),
        (&from_pack, "packed (memory-mapped shards)"),
    ] {
        assert_eq!(report["path"], path, "{report}");
        // Steps of 9 + 3 images (four an epoch) until 100 are handed out: 9 steps, 108 images.
        assert_eq!(report["images"], 108, "{report}");
        assert_eq!(report["batch_images"], 12, "{report}");
        assert!(report["images_per_s"].as_f64().unwrap() > 0.0, "{report}");
    }
}

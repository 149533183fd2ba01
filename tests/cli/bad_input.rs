//! The bad-input matrix: crafted broken files, configurations, checkpoints and resume folders.
//! Every case must exit 1, print no panic or backtrace, and name the file or key at fault.

use std::path::{Path, PathBuf};

use test_support::fixtures::{write_idx, write_idx_set, write_stl10};

use crate::util::{ok, root_set, stderr};

/// Runs `simclr-cli` on the CPU without the other helpers' `--threads 1`, so a case can set it.
/// It runs in the system's temporary folder: a case that wrongly succeeded would write its
/// default `runs/latest` there, not into the source tree.
fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_simclr-cli"))
        .current_dir(std::env::temp_dir())
        .args(args)
        .args(["--device", "cpu"])
        .output()
        .expect("simclr-cli runs")
}

/// One case: what to run and the words its error must contain.
struct Case {
    name: &'static str,
    args: Vec<String>,
    expect: Vec<String>,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A valid STL-10 fixture in `root`, and the sets that make it quick.
fn stl10(root: &Path) -> Vec<String> {
    write_stl10(root, 20, 6, 40).unwrap();
    vec![
        "--set".into(),
        root_set(root),
        "--set".into(),
        "data.batch_size=10".into(),
        "--set".into(),
        "model.width=8".into(),
    ]
}

fn bin(root: &Path, name: &str) -> PathBuf {
    root.join("stl10_binary").join(name)
}

/// A copy of the STL-10 fixture with `name` replaced by `bytes` (or removed when `None`).
fn stl10_with(tmp: &Path, tag: &str, name: &str, bytes: Option<Vec<u8>>) -> Vec<String> {
    let root = tmp.join(tag);
    let sets = stl10(&root);
    match bytes {
        Some(b) => std::fs::write(bin(&root, name), b).unwrap(),
        None => std::fs::remove_file(bin(&root, name)).unwrap(),
    }
    sets
}

/// An IDX set in `tmp/tag` with `file` replaced by `bytes`.
fn idx_with(tmp: &Path, tag: &str, file: &str, bytes: Vec<u8>) -> Vec<String> {
    let root = tmp.join(tag);
    write_idx_set(&root, 20, 10, 28, 28).unwrap();
    std::fs::write(root.join(file), bytes).unwrap();
    vec![
        "--set".into(),
        root_set(&root),
        "--set".into(),
        "data.kind=idx".into(),
        "--set".into(),
        "data.image_size=32".into(),
    ]
}

/// An unpacked CIFAR-10 fixture in `tmp/tag` with `file` replaced by `bytes`.
fn cifar_with(tmp: &Path, tag: &str, file: &str, bytes: Vec<u8>) -> Vec<String> {
    use stl10_data::cifar::CIFAR10;
    let root = tmp.join(tag);
    test_support::fixtures::write_cifar(&root, &CIFAR10, 2, 4, false).unwrap();
    std::fs::write(root.join(CIFAR10.folder).join(file), bytes).unwrap();
    vec![
        "--set".into(),
        root_set(&root),
        "--set".into(),
        "data.kind=cifar10".into(),
        "--set".into(),
        "data.image_size=32".into(),
    ]
}

fn idx_header(dims: &[u32]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b
}

/// A folder data set in `tmp/tag` built by `make(root)`.
fn folder(tmp: &Path, tag: &str, make: impl FnOnce(&Path)) -> Vec<String> {
    let root = tmp.join(tag);
    std::fs::create_dir_all(&root).unwrap();
    make(&root);
    vec![
        "--set".into(),
        root_set(&root),
        "--set".into(),
        "data.kind=folder".into(),
        "--set".into(),
        "data.image_size=32".into(),
    ]
}

fn png(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([10, 20, 30]))
        .save(path)
        .unwrap();
}

fn with(head: &[&str], sets: &[String]) -> Vec<String> {
    head.iter()
        .map(|s| s.to_string())
        .chain(sets.iter().cloned())
        .collect()
}

#[test]
fn every_bad_input_exits_1_naming_the_culprit_without_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let good = t.join("good");
    let sets = stl10(&good);
    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name, args: Vec<String>, expect: &[&str]| {
        cases.push(Case {
            name,
            args,
            expect: expect.iter().map(|s| s.to_string()).collect(),
        })
    };

    // --- STL-10 binaries ---
    let img = 3 * 96 * 96;
    add(
        "stl10 truncated train_X",
        with(
            &["baseline"],
            &stl10_with(t, "s1", "train_X.bin", Some(vec![0; img + 7])),
        ),
        &["train_X.bin", "not a whole number"],
    );
    add(
        "stl10 label 0",
        with(
            &["baseline"],
            &stl10_with(t, "s2", "train_y.bin", Some(vec![0; 20])),
        ),
        &["train_y.bin", "outside 1..=10"],
    );
    add(
        "stl10 label 11",
        with(
            &["baseline"],
            &stl10_with(t, "s3", "train_y.bin", Some(vec![11; 20])),
        ),
        &["train_y.bin", "outside 1..=10"],
    );
    add(
        "stl10 too few labels",
        with(
            &["baseline"],
            &stl10_with(t, "s4", "train_y.bin", Some(vec![1; 5])),
        ),
        &["train_y.bin"],
    );
    add(
        "stl10 empty test_X",
        with(
            &["baseline"],
            &stl10_with(t, "s5", "test_X.bin", Some(Vec::new())),
        ),
        &["test_y.bin", "for 0 images"],
    );
    add(
        "stl10 missing class_names",
        with(&["baseline"], &stl10_with(t, "s6", "class_names.txt", None)),
        &["class_names.txt"],
    );
    add(
        "stl10 three class names",
        with(
            &["baseline"],
            &stl10_with(t, "s7", "class_names.txt", Some(b"a\nb\nc\n".to_vec())),
        ),
        &["class_names.txt", "expected 10 class names"],
    );
    add(
        "stl10 fold index out of range",
        with(
            &["baseline", "--set", "data.fold=0"],
            &stl10_with(t, "s8", "fold_indices.txt", Some(b"0 1 99999\n".repeat(10))),
        ),
        &["fold_indices.txt"],
    );
    add(
        "stl10 truncated unlabeled for pretraining",
        with(
            &["pretrain"],
            &stl10_with(t, "s9", "unlabeled_X.bin", Some(vec![0; 100])),
        ),
        &["unlabeled_X.bin"],
    );
    add(
        "stl10 no unlabeled file for pretraining",
        with(
            &["pretrain"],
            &stl10_with(t, "s10", "unlabeled_X.bin", None),
        ),
        &["no unlabeled images", "s10"],
    );
    add(
        "data.root missing",
        vec![
            "baseline".into(),
            "--set".into(),
            "data.root=/no/such/place".into(),
        ],
        &["/no/such/place", "does not exist"],
    );

    // --- image folders ---
    add(
        "folder without class folders",
        with(
            &["baseline"],
            &folder(t, "f1", |r| {
                std::fs::create_dir_all(r.join("train")).unwrap()
            }),
        ),
        &["train", "holds no class folders"],
    );
    add(
        "folder with an unreadable image",
        with(
            &["baseline"],
            &folder(t, "f2", |r| {
                png(&r.join("train/cat/a.png"));
                png(&r.join("test/cat/b.png"));
                std::fs::write(r.join("train/cat/broken.png"), b"\x89PNG not really").unwrap();
            }),
        ),
        &["broken.png"],
    );
    add(
        "folder test class unknown to train",
        with(
            &["baseline"],
            &folder(t, "f3", |r| {
                png(&r.join("train/cat/a.png"));
                png(&r.join("test/dog/b.png"));
            }),
        ),
        &["dog"],
    );
    add(
        "folder root empty",
        with(&["baseline"], &folder(t, "f4", |_| {})),
        &["f4"],
    );

    // --- IDX files ---
    let lab = "train-labels-idx1-ubyte.gz";
    let imgs = "train-images-idx3-ubyte.gz";
    add(
        "idx bad magic",
        with(
            &["baseline"],
            &idx_with(t, "i1", imgs, b"\x01\x02\x08\x03rest".to_vec()),
        ),
        &[imgs, "bad magic"],
    );
    add(
        "idx float elements",
        with(
            &["baseline"],
            &idx_with(
                t,
                "i2",
                imgs,
                idx_header(&[1, 1, 1])
                    .into_iter()
                    .map(|b| if b == 8 { 0x0d } else { b })
                    .collect(),
            ),
        ),
        &[imgs, "element type"],
    );
    add(
        "idx truncated header",
        with(
            &["baseline"],
            &idx_with(t, "i3", imgs, vec![0, 0, 8, 3, 0, 0]),
        ),
        &[imgs, "truncated IDX header"],
    );
    add(
        "idx dimensions overflow",
        with(
            &["baseline"],
            &idx_with(t, "i4", imgs, idx_header(&[u32::MAX, u32::MAX, u32::MAX])),
        ),
        &[imgs, "overflow"],
    );
    let mut short = idx_header(&[20, 28, 28]);
    short.extend(vec![0u8; 100]);
    add(
        "idx truncated body",
        with(&["baseline"], &idx_with(t, "i5", imgs, short)),
        &[imgs, "truncated?"],
    );
    let mut few = idx_header(&[3]);
    few.extend([1, 2, 3]);
    add(
        "idx label count differs",
        with(&["baseline"], &idx_with(t, "i6", lab, few)),
        &[lab, "counts differ"],
    );
    let mut high = idx_header(&[20]);
    high.extend([12u8; 20]);
    add(
        "idx label out of range",
        with(&["baseline"], &idx_with(t, "i7", lab, high)),
        &[lab, "outside 0..10"],
    );
    add(
        "idx corrupt gzip",
        with(
            &["baseline"],
            &idx_with(t, "i8", imgs, vec![0x1f, 0x8b, 8, 0, 1, 2, 3, 4]),
        ),
        &[imgs, "corrupt gzip"],
    );
    add(
        "idx empty images",
        with(
            &["baseline"],
            &idx_with(t, "i9", imgs, idx_header(&[5, 0, 0])),
        ),
        &[imgs, "empty"],
    );
    let mut flat = idx_header(&[20, 784]);
    flat.extend(vec![0u8; 20 * 784]);
    add(
        "idx two-dimensional images",
        with(&["baseline"], &idx_with(t, "i10", imgs, flat)),
        &[imgs, "expected 3 dimensions"],
    );

    // --- CIFAR binaries ---
    add(
        "cifar truncated batch",
        with(
            &["baseline"],
            &cifar_with(t, "c1", "data_batch_2.bin", vec![0; 3073 + 5]),
        ),
        &["data_batch_2.bin", "3073-byte records"],
    );
    let mut record = vec![0u8; 3073];
    record[0] = 10;
    add(
        "cifar label out of range",
        with(
            &["baseline"],
            &cifar_with(t, "c2", "test_batch.bin", record),
        ),
        &["test_batch.bin", "label 10 of record 0"],
    );

    // --- configuration files and --set ---
    let cfg_missing = t.join("nope.toml");
    add(
        "config file missing",
        with(&["baseline", "--config", &s(&cfg_missing)], &sets),
        &["nope.toml"],
    );
    let syntax = t.join("syntax.toml");
    std::fs::write(&syntax, "[data\nroot = 1").unwrap();
    add(
        "config TOML syntax",
        with(&["baseline", "--config", &s(&syntax)], &sets),
        &["syntax.toml"],
    );
    let unknown = t.join("unknown.toml");
    std::fs::write(&unknown, "[model]\ndepth = 3\n").unwrap();
    add(
        "config unknown key",
        with(&["baseline", "--config", &s(&unknown)], &sets),
        &["unknown.toml", "depth"],
    );
    add(
        "folds on a data set without STL-10's folds",
        with(
            &[
                "folds",
                "--encoder",
                &s(&t.join("enc.safetensors")),
                "--set",
                "data.kind=idx",
            ],
            &sets,
        ),
        &["data.kind", "the folds are STL-10's"],
    );
    add(
        "contact sheet with no images per class",
        with(
            &[
                "data",
                "inspect",
                "--sheet",
                &s(&t.join("sheet.png")),
                "--per-class",
                "0",
            ],
            &sets,
        ),
        &["sheet.png", "--per-class must be in 1..="],
    );
    // A valid file with a bad --set: the --set is at fault, not the file.
    let fine = t.join("fine.toml");
    std::fs::write(&fine, "[loss]\ntemperature = 0.2\n").unwrap();
    add(
        "set at fault beside a valid config",
        with(
            &[
                "baseline",
                "--config",
                &s(&fine),
                "--set",
                "loss.temperature=hot",
            ],
            &sets,
        ),
        &["--set loss.temperature=hot: loss.temperature: invalid type"],
    );
    for (name, set, key) in [
        ("set without =", "model.width", "model.width"),
        ("set wrong type", "model.width=\"wide\"", "model.width"),
        (
            "threads above i32",
            "runtime.threads=99999999999",
            "runtime.threads",
        ),
        (
            "image_size unbounded",
            "data.image_size=100000",
            "data.image_size",
        ),
        ("width unbounded", "model.width=10000000", "model.width"),
        ("batch_size zero", "data.batch_size=0", "data.batch_size"),
        (
            "negative temperature",
            "loss.temperature=-1",
            "loss.temperature",
        ),
        ("unknown data kind", "data.kind=tfrecord", "data.kind"),
        (
            "min_area above 1",
            "augment.contrastive.min_area=2",
            "augment.contrastive.min_area",
        ),
        (
            "unknown adam rule",
            "pretrain.optimizer.rule=sgd",
            "pretrain.optimizer.rule",
        ),
        (
            "metrics_every zero",
            "runtime.metrics_every=0",
            "runtime.metrics_every",
        ),
    ] {
        add(
            name,
            [with(&["baseline"], &sets), vec!["--set".into(), set.into()]].concat(),
            &[key],
        );
    }
    add(
        "--threads flag above i32",
        with(&["baseline", "--threads", "99999999999"], &sets),
        &["runtime.threads"],
    );

    // --- checkpoints ---
    let run_dir = t.join("trained");
    let trained = |extra: &[&str]| {
        with(
            &[&["baseline", "--out", &s(&run_dir)], extra].concat(),
            &sets,
        )
    };
    ok(&trained(&["--set", "baseline.epochs=1"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let baseline = run_dir.join("baseline.safetensors");
    let bytes = std::fs::read(&baseline).unwrap();
    let truncated = t.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    add(
        "checkpoint truncated",
        with(&["evaluate", "--checkpoint", &s(&truncated)], &sets),
        &["truncated.safetensors"],
    );
    let text = t.join("notes.safetensors");
    std::fs::write(&text, "just some text").unwrap();
    add(
        "checkpoint not safetensors",
        with(&["evaluate", "--checkpoint", &s(&text)], &sets),
        &["notes.safetensors", "cannot read checkpoint"],
    );
    add(
        "checkpoint of another width",
        [
            with(&["evaluate", "--checkpoint", &s(&baseline)], &sets),
            vec!["--set".into(), "model.width=16".into()],
        ]
        .concat(),
        &["baseline.safetensors", "shape"],
    );
    add(
        "encoder file given to evaluate",
        {
            // An encoder-only file lacks the classifier.
            let enc = t.join("encoder-only.safetensors");
            let named: Vec<(String, tch::Tensor)> = tch::Tensor::read_safetensors(&baseline)
                .unwrap()
                .into_iter()
                .filter(|(n, _)| n.starts_with("encoder."))
                .collect();
            tch::Tensor::write_safetensors(&named, &enc).unwrap();
            with(&["evaluate", "--checkpoint", &s(&enc)], &sets)
        },
        &["encoder-only.safetensors", "classifier"],
    );

    // --- using a trained model: predict, embed, knn, sweep ---
    let encoder_only = t.join("encoder-only.safetensors");
    let picture = t.join("picture.png");
    image::RgbImage::new(40, 30).save(&picture).unwrap();
    add(
        "predict with an encoder instead of a classifier",
        with(
            &["predict", "--checkpoint", &s(&encoder_only), &s(&picture)],
            &sets,
        ),
        &[
            "--checkpoint",
            "encoder-only.safetensors",
            "holds no classifier",
        ],
    );
    add(
        "predict a missing image",
        with(
            &[
                "predict",
                "--checkpoint",
                &s(&baseline),
                &s(&t.join("gone.png")),
            ],
            &sets,
        ),
        &["gone.png", "no such file"],
    );
    let empty_dir = t.join("no-images");
    std::fs::create_dir_all(&empty_dir).unwrap();
    add(
        "predict a folder without images",
        with(
            &["predict", "--checkpoint", &s(&baseline), &s(&empty_dir)],
            &sets,
        ),
        &["no-images", "holds no JPEG or PNG"],
    );
    add(
        "embed an unknown split",
        with(
            &[
                "embed",
                "--encoder",
                &s(&baseline),
                "--split",
                "val",
                "--out",
                &s(&t.join("f.npy")),
            ],
            &sets,
        ),
        &["--split", "'val'"],
    );
    add(
        "knn with a file without an encoder",
        with(&["knn", "--encoder", &s(&picture)], &sets),
        &["picture.png", "cannot read checkpoint"],
    );
    for (list, words) in [
        (
            "21",
            &["--labels-per-class", "21 is more than the data has"][..],
        ),
        ("5,x", &["--labels-per-class", "'x'"][..]),
        ("0", &["--labels-per-class", "at least 1"][..]),
    ] {
        add(
            "sweep with a bad label budget",
            with(
                &[
                    "sweep",
                    "--labels-per-class",
                    list,
                    "--out",
                    &s(&t.join("sw")),
                ],
                &sets,
            ),
            words,
        );
    }
    add(
        "checkpoint missing",
        with(
            &[
                "finetune",
                "--encoder",
                &s(&t.join("gone.safetensors")),
                "--out",
                &s(&t.join("ft")),
            ],
            &sets,
        ),
        &["gone.safetensors"],
    );

    // --- resume folders ---
    add(
        "resume a folder that does not exist",
        vec!["baseline".into(), "--resume".into(), s(&t.join("no-run"))],
        &["no-run"],
    );
    add(
        "resume with another seed",
        vec![
            "baseline".into(),
            "--resume".into(),
            s(&run_dir),
            "--seed".into(),
            "5".into(),
        ],
        &["config.toml", "runtime.seed"],
    );
    let copy = |tag: &str| {
        let dst = t.join(tag);
        std::fs::create_dir_all(dst.join("state")).unwrap();
        std::fs::copy(run_dir.join("config.toml"), dst.join("config.toml")).unwrap();
        for e in std::fs::read_dir(run_dir.join("state")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join("state").join(e.file_name())).unwrap();
        }
        dst
    };
    let r1 = copy("r1");
    std::fs::write(r1.join("state/baseline.json"), "{ not json").unwrap();
    add(
        "resume state not JSON",
        vec![
            "baseline".into(),
            "--resume".into(),
            s(&r1),
            "--set".into(),
            "baseline.epochs=2".into(),
        ],
        &["baseline.json", "not a phase checkpoint"],
    );
    let r2 = copy("r2");
    for e in std::fs::read_dir(r2.join("state")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            std::fs::remove_file(p).unwrap();
        }
    }
    add(
        "resume state tensors missing",
        vec![
            "baseline".into(),
            "--resume".into(),
            s(&r2),
            "--set".into(),
            "baseline.epochs=2".into(),
        ],
        &[
            "baseline.e0001.s000000.safetensors",
            "cannot read checkpoint tensors",
        ],
    );
    let r3 = copy("r3");
    std::fs::write(
        r3.join("state/baseline.e0001.s000000.safetensors"),
        &bytes[..100],
    )
    .unwrap();
    add(
        "resume state tensors truncated",
        vec![
            "baseline".into(),
            "--resume".into(),
            s(&r3),
            "--set".into(),
            "baseline.epochs=2".into(),
        ],
        &["baseline.e0001.s000000.safetensors"],
    );
    let r4 = copy("r4");
    // The final checkpoint has weights but no optimizer state.
    std::fs::copy(
        &baseline,
        r4.join("state/baseline.e0001.s000000.safetensors"),
    )
    .unwrap();
    add(
        "resume state without optimizer",
        vec![
            "baseline".into(),
            "--resume".into(),
            s(&r4),
            "--set".into(),
            "baseline.epochs=2".into(),
        ],
        &[
            "baseline.e0001.s000000.safetensors",
            "missing 'optimizer.step'",
        ],
    );
    add(
        "resume a folder without config.toml",
        vec!["baseline".into(), "--resume".into(), s(&r4.join("state"))],
        &["not a run folder"],
    );

    // --- preview ---
    add(
        "augment-preview count too large",
        with(
            &[
                "augment-preview",
                "--count",
                "100000",
                "--out",
                &s(&t.join("g.png")),
            ],
            &sets,
        ),
        &["--count", "100000"],
    );
    let empty_train = {
        let root = t.join("idx-empty");
        std::fs::create_dir_all(&root).unwrap();
        for (prefix, n) in [("train", 0usize), ("t10k", 2)] {
            write_idx(
                &root.join(format!("{prefix}-images-idx3-ubyte")),
                &[n, 28, 28],
                &vec![0; n * 784],
                false,
            )
            .unwrap();
            write_idx(
                &root.join(format!("{prefix}-labels-idx1-ubyte")),
                &[n],
                &vec![0; n],
                false,
            )
            .unwrap();
        }
        root
    };
    add(
        "augment-preview on an empty train split",
        vec![
            "augment-preview".into(),
            "--out".into(),
            s(&t.join("h.png")),
            "--set".into(),
            root_set(&empty_train),
            "--set".into(),
            "data.kind=idx".into(),
            "--set".into(),
            "data.image_size=32".into(),
        ],
        &["idx-empty", "train split is empty"],
    );

    assert!(cases.len() >= 35, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let out = run(&args);
        let err = stderr(&out);
        let clean = !["panicked", "backtrace", "internal error"]
            .iter()
            .any(|w| err.contains(w));
        let named = c.expect.iter().all(|e| err.contains(e.as_str()));
        if out.status.code() != Some(1) || !clean || !named {
            failures.push(format!(
                "{} (simclr-cli {}): exit {:?}, expected {:?} in:\n{err}",
                c.name,
                c.args.join(" "),
                out.status.code(),
                c.expect
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs --features cli/test-hooks"
)]
fn a_panic_is_reported_as_a_bug_in_one_line_with_exit_2() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_simclr-cli"))
        .arg("info")
        .env("SIMCLR_TEST_PANIC", "1")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "internal error, a bug in simclr-cli (please report it): SIMCLR_TEST_PANIC is set at "
        ),
        "{err}"
    );
}

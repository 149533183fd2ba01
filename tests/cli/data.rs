use std::path::Path;

use stl10_data::fixtures::{pixel_value, write_stl10};

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

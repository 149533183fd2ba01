use std::path::Path;

use stl10_data::{DataConfig, DataKind, load};
use tch::Kind;
use test_support::fixtures::{label_of, pixel_value, write_stl10};

fn cfg(root: &Path) -> DataConfig {
    DataConfig {
        kind: DataKind::Stl10,
        root: root.to_path_buf(),
        ..DataConfig::default()
    }
}

fn fixture(train: usize, test: usize, unlabeled: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_stl10(dir.path(), train, test, unlabeled).unwrap();
    dir
}

fn bin(dir: &tempfile::TempDir, name: &str) -> std::path::PathBuf {
    dir.path().join("stl10_binary").join(name)
}

#[test]
fn pixels_come_out_row_major_in_rgb_order() {
    let dir = fixture(12, 5, 7);
    let ds = load(&cfg(dir.path()), 0).unwrap();
    assert_eq!(
        (ds.train.len(), ds.test.len(), ds.unlabeled.len()),
        (12, 5, 7)
    );
    let batch = ds.train.images(&[3, 0]).unwrap();
    assert_eq!(batch.size(), [2, 3, 96, 96]);
    assert_eq!(batch.kind(), Kind::Uint8);
    for (b, img) in [(0usize, 3usize), (1, 0)] {
        for (c, r, col) in [(0, 0, 1), (1, 5, 2), (2, 95, 0), (0, 17, 63), (2, 40, 95)] {
            let got = batch.int64_value(&[b as i64, c as i64, r as i64, col as i64]);
            assert_eq!(
                got,
                i64::from(pixel_value(img, c, r, col)),
                "image {img} c{c} r{r} col{col}"
            );
        }
    }
    // The whole unlabeled image 6 (fixture number 2006), compared pixel by pixel.
    let t = ds.unlabeled.images(&[6]).unwrap();
    let flat: Vec<u8> = Vec::try_from(t.flatten(0, -1)).unwrap();
    let expected: Vec<u8> = (0..3)
        .flat_map(|c| {
            (0..96).flat_map(move |r| (0..96).map(move |col| pixel_value(2006, c, r, col)))
        })
        .collect();
    assert_eq!(flat, expected);
    let test = ds.test.images(&[4]).unwrap();
    assert_eq!(
        test.int64_value(&[0, 1, 2, 3]),
        i64::from(pixel_value(1004, 1, 2, 3))
    );
}

#[test]
fn labels_map_one_based_bytes_to_classes() {
    let dir = fixture(23, 4, 1);
    let ds = load(&cfg(dir.path()), 0).unwrap();
    let expected: Vec<i64> = (0..23).map(|i| i64::from(label_of(i))).collect();
    assert_eq!(ds.train.labels().unwrap(), expected.as_slice());
    assert_eq!(ds.class_names[0], "airplane");
    assert_eq!(ds.class_names[9], "truck");
    assert!(ds.unlabeled.labels().is_none());
    assert_eq!(ds.train.class_counts(10)[2], 3); // images 2, 12, 22
}

#[test]
fn root_may_be_the_binary_folder_itself() {
    let dir = fixture(2, 2, 2);
    let ds = load(&cfg(&dir.path().join("stl10_binary")), 0).unwrap();
    assert_eq!(ds.train.len(), 2);
}

#[test]
fn a_fold_selects_its_predefined_indices() {
    let dir = fixture(40, 2, 2);
    let ds = load(
        &DataConfig {
            fold: Some(3),
            ..cfg(dir.path())
        },
        0,
    )
    .unwrap();
    assert_eq!(ds.train.len(), 4); // 3, 13, 23, 33
    assert_eq!(ds.train.labels().unwrap(), &[3, 3, 3, 3]);
    let img = ds.train.images(&[2]).unwrap();
    assert_eq!(
        img.int64_value(&[0, 0, 9, 4]),
        i64::from(pixel_value(23, 0, 9, 4))
    );
}

fn err(dir: &tempfile::TempDir) -> String {
    load(&cfg(dir.path()), 0).unwrap_err().to_string()
}

#[test]
fn truncated_image_file_is_named() {
    let dir = fixture(3, 2, 2);
    let p = bin(&dir, "train_X.bin");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = err(&dir);
    assert!(
        e.contains("train_X.bin") && e.contains("not a whole number of 27648-byte images"),
        "{e}"
    );
}

#[test]
fn label_count_mismatch_is_named() {
    let dir = fixture(3, 2, 2);
    std::fs::write(bin(&dir, "test_y.bin"), [1u8, 2, 3]).unwrap();
    let e = err(&dir);
    assert!(
        e.contains("test_y.bin") && e.contains("3 labels for 2 images"),
        "{e}"
    );
}

#[test]
fn labels_outside_one_to_ten_are_named() {
    for bad in [0u8, 11] {
        let dir = fixture(3, 2, 2);
        std::fs::write(bin(&dir, "train_y.bin"), [1u8, bad, 3]).unwrap();
        let e = err(&dir);
        assert!(
            e.contains("train_y.bin") && e.contains(&format!("label {bad} at index 1")),
            "{e}"
        );
    }
}

#[test]
fn missing_files_are_named() {
    // Supervised runs do not need the unlabeled file: without it the split is empty.
    let dir = fixture(2, 2, 2);
    std::fs::remove_file(bin(&dir, "unlabeled_X.bin")).unwrap();
    let ds = load(&cfg(dir.path()), 0).unwrap();
    assert_eq!((ds.unlabeled.len(), ds.train.len()), (0, 2));
    for name in ["class_names.txt", "test_X.bin", "train_y.bin"] {
        let dir = fixture(2, 2, 2);
        std::fs::remove_file(bin(&dir, name)).unwrap();
        let e = err(&dir);
        assert!(
            e.contains(name) && e.contains("No such file"),
            "{name}: {e}"
        );
    }
    let e = load(&cfg(Path::new("/definitely/not/here")), 0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/definitely/not/here") && e.contains("does not exist"),
        "{e}"
    );
}

#[test]
fn bad_class_names_and_folds_are_named() {
    let dir = fixture(5, 2, 2);
    std::fs::write(bin(&dir, "class_names.txt"), "a\nb\n").unwrap();
    let e = err(&dir);
    assert!(
        e.contains("class_names.txt") && e.contains("expected 10 class names, found 2"),
        "{e}"
    );

    let dir = fixture(5, 2, 2);
    std::fs::write(bin(&dir, "fold_indices.txt"), "0 1 7\n").unwrap();
    let e = load(
        &DataConfig {
            fold: Some(0),
            ..cfg(dir.path())
        },
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("fold_indices.txt") && e.contains("index 7 is outside the 5"),
        "{e}"
    );
    let e = load(
        &DataConfig {
            fold: Some(4),
            ..cfg(dir.path())
        },
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("has 1 folds, fold 4"), "{e}");
}

#[test]
fn invalid_settings_name_the_key() {
    let dir = fixture(2, 2, 2);
    let e = load(
        &DataConfig {
            image_size: 64,
            ..cfg(dir.path())
        },
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("data.image_size") && e.contains("96x96"), "{e}");
    let e = load(
        &DataConfig {
            fold: Some(10),
            ..cfg(dir.path())
        },
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("data.fold"), "{e}");
    let e = load(
        &DataConfig {
            labeled_per_class: Some(1),
            ..cfg(dir.path())
        },
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("data.labeled_per_class"), "{e}");
}

#[test]
fn channel_means_and_stds_match_a_float64_reference() {
    let dir = tempfile::tempdir().unwrap();
    write_stl10(dir.path(), 7, 3, 2).unwrap();
    let ds = load(&cfg(dir.path()), 0).unwrap();
    let [r, g, b] = ds.train.channel_stats().unwrap().unwrap();
    for (c, (mean, std)) in [r, g, b].into_iter().enumerate() {
        // Every pixel of train images 0..7 from the fixture's formula, scaled to 0..1.
        let values: Vec<f64> = (0..7)
            .flat_map(|i| (0..96).flat_map(move |y| (0..96).map(move |x| (i, y, x))))
            .map(|(i, y, x)| f64::from(pixel_value(i, c, y, x)) / 255.0)
            .collect();
        let want = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - want).powi(2)).sum::<f64>() / values.len() as f64;
        assert!((mean - want).abs() < 1e-9, "channel {c}: {mean} vs {want}");
        assert!(
            (std - var.sqrt()).abs() < 1e-9,
            "channel {c}: {std} vs {}",
            var.sqrt()
        );
    }
    assert!(
        stl10_data::Split::empty(96)
            .channel_stats()
            .unwrap()
            .is_none()
    );
}

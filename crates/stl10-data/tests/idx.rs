use std::path::Path;

use stl10_data::{DataConfig, DataKind, load};
use test_support::fixtures::{label_of, pixel_value, write_idx, write_idx_set};

fn cfg(root: &Path, size: usize) -> DataConfig {
    DataConfig {
        kind: DataKind::Idx,
        root: root.to_path_buf(),
        image_size: size,
        ..DataConfig::default()
    }
}

#[test]
fn grayscale_is_padded_around_the_centre_into_three_channels() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 30, 10, 28, 28).unwrap();
    let ds = load(&cfg(dir.path(), 32), 0).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (30, 10));
    let img = ds.train.images(&[7]).unwrap();
    assert_eq!(img.size(), [1, 3, 32, 32]);
    for c in 0..3 {
        // (r, col) of the 28x28 source lands at (r + 2, col + 2); the border is zero.
        assert_eq!(
            img.int64_value(&[0, c, 2, 2]),
            i64::from(pixel_value(7, 0, 0, 0))
        );
        assert_eq!(
            img.int64_value(&[0, c, 12, 29]),
            i64::from(pixel_value(7, 0, 10, 27))
        );
        assert_eq!(img.int64_value(&[0, c, 0, 5]), 0);
        assert_eq!(img.int64_value(&[0, c, 31, 31]), 0);
    }
    assert_eq!(ds.train.labels().unwrap()[13], i64::from(label_of(13)));
    assert_eq!(
        ds.class_names,
        (0..10).map(|i| i.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn larger_sources_come_out_at_the_configured_size_and_plain_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    for prefix in ["train", "t10k"] {
        let data = vec![200u8; 2 * 40 * 40];
        write_idx(
            &dir.path().join(format!("{prefix}-images-idx3-ubyte")),
            &[2, 40, 40],
            &data,
            false,
        )
        .unwrap();
        write_idx(
            &dir.path().join(format!("{prefix}-labels-idx1-ubyte")),
            &[2],
            &[1, 9],
            false,
        )
        .unwrap();
    }
    let ds = load(&cfg(dir.path(), 20), 0).unwrap();
    let img = ds.test.images(&[1]).unwrap();
    assert_eq!(img.size(), [1, 3, 20, 20]);
    assert_eq!(img.int64_value(&[0, 2, 10, 10]), 200);
    assert_eq!(ds.test.labels().unwrap(), &[1, 9]);
}

#[test]
fn labeled_per_class_keeps_n_per_class_and_moves_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 100, 10, 28, 28).unwrap();
    let c = DataConfig {
        labeled_per_class: Some(3),
        ..cfg(dir.path(), 28)
    };
    let ds = load(&c, 5).unwrap();
    assert_eq!(ds.train.len(), 30);
    assert_eq!(ds.unlabeled.len(), 70);
    assert_eq!(ds.train.class_counts(10), vec![3; 10]);
    assert!(ds.unlabeled.labels().is_none());
    // Disjoint and together every training image exactly once.
    let mut all: Vec<usize> = (0..30).map(|i| ds.train.store_index(i)).collect();
    all.extend((0..70).map(|i| ds.unlabeled.store_index(i)));
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    // Labels still match the images they came with.
    for i in 0..30 {
        assert_eq!(
            ds.train.labels().unwrap()[i],
            i64::from(label_of(ds.train.store_index(i)))
        );
    }
    let again = load(&c, 5).unwrap();
    let picks =
        |d: &stl10_data::Dataset| (0..30).map(|i| d.train.store_index(i)).collect::<Vec<_>>();
    assert_eq!(picks(&ds), picks(&again), "same seed, same selection");
    assert_ne!(
        picks(&ds),
        picks(&load(&c, 6).unwrap()),
        "another seed, another selection"
    );
    let e = load(
        &DataConfig {
            labeled_per_class: Some(11),
            ..c
        },
        5,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("data.labeled_per_class") && e.contains("fewer than 11"),
        "{e}"
    );
}

#[test]
fn corrupt_idx_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 10, 10, 28, 28).unwrap();
    let labels = dir.path().join("t10k-labels-idx1-ubyte.gz");
    write_idx(&labels, &[10], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 12], true).unwrap();
    let e = load(&cfg(dir.path(), 28), 0).unwrap_err().to_string();
    assert!(
        e.contains("t10k-labels-idx1-ubyte.gz") && e.contains("label 12 at index 9"),
        "{e}"
    );

    write_idx(&labels, &[9], &[0; 9], true).unwrap();
    let e = load(&cfg(dir.path(), 28), 0).unwrap_err().to_string();
    assert!(e.contains("9 labels for 10 images"), "{e}");

    let images = dir.path().join("train-images-idx3-ubyte.gz");
    std::fs::write(&images, [0x1f, 0x8b, 1, 2, 3]).unwrap();
    let e = load(&cfg(dir.path(), 28), 0).unwrap_err().to_string();
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("corrupt gzip"),
        "{e}"
    );

    write_idx(&images, &[10, 28, 28], &[0; 100], false).unwrap();
    let e = load(&cfg(dir.path(), 28), 0).unwrap_err().to_string();
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("truncated"),
        "{e}"
    );

    std::fs::remove_file(&images).unwrap();
    let e = load(&cfg(dir.path(), 28), 0).unwrap_err().to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("missing"),
        "{e}"
    );
}

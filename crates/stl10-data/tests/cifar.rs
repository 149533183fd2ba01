//! The CIFAR-10 and CIFAR-100 binary readers on fixtures in the official layouts, unpacked and
//! still in their archive, and their errors.

use std::path::Path;

use stl10_data::cifar::{CIFAR10, CIFAR100, Layout};
use stl10_data::{DataConfig, DataKind, load};
use test_support::fixtures::{cifar100_label_of, label_of, pixel_value, write_cifar};

fn cfg(root: &Path, kind: DataKind) -> DataConfig {
    DataConfig {
        kind,
        root: root.to_path_buf(),
        image_size: 32,
        ..DataConfig::default()
    }
}

fn check_pixels(ds: &stl10_data::Dataset, train_image: usize) {
    let img = ds.train.images(&[train_image]).unwrap();
    assert_eq!(img.size(), [1, 3, 32, 32]);
    for (c, y, x) in [(0, 0, 0), (1, 3, 17), (2, 31, 5)] {
        assert_eq!(
            img.int64_value(&[0, c, y, x]),
            i64::from(pixel_value(train_image, c as usize, y as usize, x as usize)),
            "image {train_image} ({c}, {y}, {x})"
        );
    }
}

#[test]
fn cifar10_reads_five_batches_and_the_test_batch_unpacked_or_archived() {
    for archive in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_cifar(dir.path(), &CIFAR10, 4, 6, archive).unwrap();
        let ds = load(&cfg(dir.path(), DataKind::Cifar10), 0).unwrap();
        assert_eq!(
            (ds.train.len(), ds.test.len(), ds.unlabeled.len()),
            (20, 6, 0)
        );
        // Image 13 is the second batch's fourth record: batches are read in order.
        check_pixels(&ds, 13);
        let labels = ds.train.labels().unwrap();
        assert_eq!(labels[13], i64::from(label_of(13)), "archive {archive}");
        assert_eq!(ds.test.labels().unwrap()[2], i64::from(label_of(1002)));
        assert_eq!(ds.class_names.len(), 10);
        assert_eq!(ds.class_names[9], "class_9");
    }
}

#[test]
fn cifar100_uses_the_fine_labels_and_accepts_the_unpacked_folder_as_root() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar(dir.path(), &CIFAR100, 30, 5, false).unwrap();
    let ds = load(
        &cfg(&dir.path().join(CIFAR100.folder), DataKind::Cifar100),
        0,
    )
    .unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (30, 5));
    check_pixels(&ds, 29);
    assert_eq!(
        ds.train.labels().unwrap()[29],
        i64::from(cifar100_label_of(29))
    );
    assert_eq!(ds.class_names.len(), 100);
}

/// `(file, bytes)` replaced in an unpacked fixture of `layout`.
fn broken(layout: &Layout, file: &str, bytes: Vec<u8>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_cifar(dir.path(), layout, 2, 2, false).unwrap();
    std::fs::write(dir.path().join(layout.folder).join(file), bytes).unwrap();
    dir
}

#[test]
fn bad_files_are_named_with_their_problem() {
    let err = |dir: &Path, kind| load(&cfg(dir, kind), 0).unwrap_err().to_string();
    let d = broken(&CIFAR10, "data_batch_3.bin", vec![0; 3073 * 2 + 100]);
    let e = err(d.path(), DataKind::Cifar10);
    assert!(
        e.contains("data_batch_3.bin") && e.contains("3073-byte records"),
        "{e}"
    );
    let mut record = vec![0u8; 3074];
    record[1] = 100; // fine label 100 of 0..100
    let d = broken(&CIFAR100, "test.bin", record);
    let e = err(d.path(), DataKind::Cifar100);
    assert!(
        e.contains("test.bin") && e.contains("label 100 of record 0"),
        "{e}"
    );
    let d = broken(&CIFAR10, "batches.meta.txt", b"cat\ndog\n".to_vec());
    let e = err(d.path(), DataKind::Cifar10);
    assert!(
        e.contains("batches.meta.txt") && e.contains("names 2 classes"),
        "{e}"
    );
    let empty = tempfile::tempdir().unwrap();
    let e = err(empty.path(), DataKind::Cifar10);
    assert!(
        e.contains("cifar-10-batches-bin/test_batch.bin") && e.contains("cifar-10-binary.tar.gz"),
        "{e}"
    );
    // An archive without one of the files, and one that is not gzip at all.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(CIFAR10.archive), b"not a tar.gz").unwrap();
    let e = err(d.path(), DataKind::Cifar10);
    assert!(
        e.contains("cifar-10-binary.tar.gz") && e.contains("cannot read the archive"),
        "{e}"
    );
    let d = tempfile::tempdir().unwrap();
    write_cifar(d.path(), &CIFAR100, 1, 1, true).unwrap();
    let e = err(d.path(), DataKind::Cifar10);
    assert!(e.contains("no cifar-10-batches-bin"), "{e}");
    let mut c = cfg(d.path(), DataKind::Cifar100);
    c.image_size = 96;
    let e = load(&c, 0).unwrap_err().to_string();
    assert!(e.contains("data.image_size") && e.contains("32x32"), "{e}");
}

//! Label budgets and single-image preparation: what the sweep and `predict` rely on.

use stl10_data::{
    DataConfig, DataKind, keep_labeled_per_class, load, load_image, per_class_selection,
};
use test_support::fixtures::write_idx_set;

#[test]
fn per_class_budgets_are_nested_balanced_and_match_labeled_per_class() {
    // 200 labels cycling through 4 classes: 50 per class.
    let labels: Vec<i64> = (0..200).map(|i| (i * 7 % 4) as i64).collect();
    let names: Vec<String> = (0..4).map(|c| format!("c{c}")).collect();
    let mut previous: Vec<usize> = Vec::new();
    for n in [1, 5, 20, 50] {
        let (keep, rest) = per_class_selection(&labels, &names, n, 9).unwrap();
        assert_eq!(keep.len(), 4 * n);
        assert_eq!(keep.len() + rest.len(), 200);
        for c in 0..4 {
            assert_eq!(keep.iter().filter(|&&i| labels[i] == c).count(), n);
        }
        assert!(
            previous.iter().all(|p| keep.contains(p)),
            "{n} is not a superset"
        );
        previous = keep;
    }
    // Another seed picks other images.
    let (a, _) = per_class_selection(&labels, &names, 5, 9).unwrap();
    let (b, _) = per_class_selection(&labels, &names, 5, 10).unwrap();
    assert_ne!(a, b);
    let e = per_class_selection(&labels, &names, 51, 9)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("class 'c0' has 50 training images, fewer than 51"),
        "{e}"
    );

    // `data.labeled_per_class` keeps exactly the same images, and `select` gathers them.
    let dir = tempfile::tempdir().unwrap();
    write_idx_set(dir.path(), 60, 10, 28, 28).unwrap();
    let cfg = DataConfig {
        kind: DataKind::Idx,
        root: dir.path().to_path_buf(),
        image_size: 32,
        ..DataConfig::default()
    };
    let full = load(&cfg, 0).unwrap();
    let all_labels = full.train.labels().unwrap().to_vec();
    let (keep, _) = per_class_selection(&all_labels, &full.class_names, 3, 42).unwrap();
    let kept = keep_labeled_per_class(full.clone(), 3, 42).unwrap();
    let chosen = full.train.select(&keep);
    assert_eq!(chosen.len(), 30);
    assert!(
        chosen
            .images(&[0, 7, 29])
            .unwrap()
            .equal(&kept.train.images(&[0, 7, 29]).unwrap())
    );
    assert_eq!(chosen.labels(), kept.train.labels());
    // Every split name resolves.
    for name in stl10_data::Dataset::SPLITS {
        assert!(full.split(name).is_some(), "{name}");
    }
    // Repeats are allowed: a tiled subset.
    let twice = full.train.select(&[4, 4, 9]);
    assert!(
        twice
            .images(&[0])
            .unwrap()
            .equal(&twice.images(&[1]).unwrap())
    );
    assert_eq!(
        twice.labels().unwrap(),
        [all_labels[4], all_labels[4], all_labels[9]]
    );
}

#[test]
fn single_images_are_prepared_as_their_reader_prepares_them() {
    let dir = tempfile::tempdir().unwrap();
    // 28 x 20 grayscale with a known pattern, as an IDX model sees it: padded to 32 x 32.
    let gray = image::GrayImage::from_fn(28, 20, |x, y| image::Luma([(x * 9 + y) as u8]));
    let p = dir.path().join("g.png");
    gray.save(&p).unwrap();
    let planar = load_image(&p, DataKind::Idx, 32).unwrap();
    assert_eq!(planar.len(), 3 * 32 * 32);
    let at = |c: usize, row: usize, col: usize| planar[c * 1024 + row * 32 + col];
    // Rows 6..26 and columns 2..30 hold the image; the rest is zero; all channels equal.
    for c in 0..3 {
        assert_eq!(at(c, 6, 2), 0);
        assert_eq!(at(c, 6 + 5, 2 + 3), 3 * 9 + 5);
        assert_eq!(at(c, 25, 29), (27 * 9 + 19) as u8);
        assert_eq!(at(c, 5, 10), 0);
        assert_eq!(at(c, 26, 10), 0);
    }
    // A colour image for a folder model: 64 x 32 in bands, green (8 columns) | red (24) |
    // blue (24) | green (8). Resized to cover 16 x 16 (to 32 x 16) and centre-cropped, it keeps
    // source columns 16..48: red then blue, no green; squeezing it instead would keep green.
    let rgb = image::RgbImage::from_fn(64, 32, |x, _| match x {
        0..8 | 56.. => image::Rgb([0, 250, 0]),
        8..32 => image::Rgb([250, 0, 0]),
        _ => image::Rgb([0, 0, 250]),
    });
    let q = dir.path().join("c.png");
    rgb.save(&q).unwrap();
    let planar = load_image(&q, DataKind::Folder, 16).unwrap();
    let at = |c: usize, row: usize, col: usize| planar[c * 256 + row * 16 + col];
    for row in [0, 8, 15] {
        assert!(
            at(0, row, 0) > 240 && at(1, row, 0) < 10,
            "left edge is red"
        );
        assert!(
            at(2, row, 15) > 240 && at(1, row, 15) < 10,
            "right edge is blue"
        );
    }
    let bad = dir.path().join("bad.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff garbage").unwrap();
    let e = load_image(&bad, DataKind::Idx, 32).unwrap_err().to_string();
    assert!(e.contains("bad.jpg"), "{e}");
    let e = load_image(&dir.path().join("none.png"), DataKind::Folder, 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("none.png"), "{e}");
}

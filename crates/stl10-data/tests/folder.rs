use std::path::Path;

use stl10_data::{DataConfig, DataKind, load};

fn cfg(root: &Path, size: usize) -> DataConfig {
    DataConfig {
        kind: DataKind::Folder,
        root: root.to_path_buf(),
        image_size: size,
        ..DataConfig::default()
    }
}

/// A solid image of `rgb` with one distinct pixel at (row 1, col 2).
fn write_image(path: &Path, side: u32, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut img = image::RgbImage::from_pixel(side, side, image::Rgb(rgb));
    img.put_pixel(2, 1, image::Rgb([1, 2, 3]));
    img.save(path).unwrap();
}

fn tree(root: &Path) {
    write_image(&root.join("train/cat/a.png"), 8, [10, 20, 30]);
    write_image(&root.join("train/cat/b.PNG"), 8, [11, 21, 31]);
    write_image(&root.join("train/ant/x.png"), 8, [40, 50, 60]);
    write_image(&root.join("unlabeled/deep/er/u.png"), 8, [70, 80, 90]);
    write_image(&root.join("unlabeled/v.png"), 8, [71, 81, 91]);
    write_image(&root.join("test/ant/t.png"), 8, [5, 6, 7]);
    write_image(&root.join("test/cat/t.png"), 8, [8, 9, 10]);
    std::fs::write(root.join("train/cat/notes.txt"), "not an image").unwrap();
}

#[test]
fn classes_come_from_sorted_folders_and_pixels_survive() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let ds = load(&cfg(dir.path(), 8), 0).unwrap();
    assert_eq!(ds.class_names, ["ant", "cat"]);
    assert_eq!(ds.train.labels().unwrap(), &[0, 1, 1]);
    assert_eq!((ds.unlabeled.len(), ds.test.len()), (2, 2));
    let t = ds.train.images(&[1]).unwrap();
    assert_eq!(t.size(), [1, 3, 8, 8]);
    assert_eq!(
        [0, 1, 2].map(|c| t.int64_value(&[0, c, 5, 5])),
        [10, 20, 30],
        "cat/a.png is the first cat"
    );
    assert_eq!(
        [0, 1, 2].map(|c| t.int64_value(&[0, c, 1, 2])),
        [1, 2, 3],
        "row 1, col 2"
    );
    let u = ds.unlabeled.images(&[0]).unwrap();
    assert_eq!(
        u.int64_value(&[0, 2, 0, 0]),
        90,
        "nested unlabeled images are found"
    );
}

#[test]
fn images_come_out_at_the_configured_size() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let ds = load(&cfg(dir.path(), 4), 0).unwrap();
    let t = ds.test.images(&[1]).unwrap();
    assert_eq!(t.size(), [1, 3, 4, 4]);
    assert_eq!(t.int64_value(&[0, 1, 3, 3]), 9);
}

#[test]
fn empty_class_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    std::fs::create_dir_all(dir.path().join("train/zebra")).unwrap();
    let e = load(&cfg(dir.path(), 8), 0).unwrap_err().to_string();
    assert!(
        e.contains("train/zebra") && e.contains("no JPEG or PNG"),
        "{e}"
    );
}

#[test]
fn unreadable_images_fail_or_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    std::fs::write(
        dir.path().join("train/cat/broken.jpg"),
        b"\xff\xd8 not really a jpeg",
    )
    .unwrap();
    let e = load(&cfg(dir.path(), 8), 0).unwrap_err().to_string();
    assert!(
        e.contains("broken.jpg") && e.contains("cannot decode"),
        "{e}"
    );
    let ds = load(
        &DataConfig {
            skip_unreadable: true,
            ..cfg(dir.path(), 8)
        },
        0,
    )
    .unwrap();
    assert_eq!(ds.skipped, 1);
    assert_eq!(ds.train.labels().unwrap(), &[0, 1, 1]);
}

#[test]
fn test_classes_must_match_and_train_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    write_image(&dir.path().join("test/dog/t.png"), 8, [0, 0, 0]);
    let e = load(&cfg(dir.path(), 8), 0).unwrap_err().to_string();
    assert!(
        e.contains("test") && e.contains("differ from train classes"),
        "{e}"
    );
    let empty = tempfile::tempdir().unwrap();
    let e = load(&cfg(empty.path(), 8), 0).unwrap_err().to_string();
    assert!(e.contains("train") && e.contains("missing"), "{e}");
}

#[test]
fn export_writes_pngs_named_by_index_and_class() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let ds = load(&cfg(dir.path(), 8), 0).unwrap();
    let out = dir.path().join("out");
    let written = stl10_data::export_png(&ds.train, &ds.class_names, 5, &out).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into())
        .collect();
    assert_eq!(names, ["00000_ant.png", "00001_cat.png", "00002_cat.png"]);
    let back = image::open(&written[1]).unwrap().into_rgb8();
    assert_eq!(back.get_pixel(5, 5).0, [10, 20, 30]);
    assert_eq!(back.get_pixel(2, 1).0, [1, 2, 3]);
}

#[test]
fn images_over_the_pixel_limit_are_refused_before_decoding() {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(100, 60, image::Rgb([1, 2, 3]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let path = std::path::Path::new("big.png");
    let e = stl10_data::folder::decode_planar_limited(&png, path, 8, 5999)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("big.png") && e.contains("100 x 60 pixels is more than the limit of 5999"),
        "{e}"
    );
    let ok = stl10_data::folder::decode_planar_limited(&png, path, 8, 6000).unwrap();
    assert_eq!(ok.len(), 3 * 8 * 8);
    assert_eq!(&ok[..2], &[1, 1], "red plane");
}

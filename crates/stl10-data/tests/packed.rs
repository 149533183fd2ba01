//! Packing (`data pack`), packed data sets, WebDataset shards and streamed folders: every source
//! kind packs and reads back bit for bit, an interrupted pack resumes to the same bytes, and
//! corrupt or unreadable files are named.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use stl10_data::cifar::CIFAR10;
use stl10_data::pack::{PackObserver, PackOptions, pack};
use stl10_data::packed::{Manifest, verify};
use stl10_data::{BatchPlan, DataConfig, DataKind, Dataset, Streaming, ZippedEpoch, load};
use test_support::fixtures::{EncodedFixture, write_cifar, write_idx_set, write_stl10};

const FIXTURE: EncodedFixture = EncodedFixture {
    train: 23,
    unlabeled: 31,
    test: 9,
    classes: 4,
    side: 12,
    jpeg_every: 3,
};

fn cfg(kind: DataKind, root: &Path, size: usize) -> DataConfig {
    DataConfig {
        kind,
        root: root.to_path_buf(),
        image_size: size,
        ..DataConfig::default()
    }
}

/// Shards of about `images` images of `size` pixels.
fn shards_of(images: usize, size: usize) -> PackOptions {
    PackOptions {
        shard_bytes: images * 3 * size * size,
        skip_unreadable: false,
    }
}

/// An STL-10 fixture of `(train, test, unlabeled)` images in `dir/stl10`, packed into
/// `dir/packed` in one shard a split.
fn stl10_packed(dir: &Path, (train, test, unlabeled): (usize, usize, usize)) -> (PathBuf, PathBuf) {
    let (src, out) = (dir.join("stl10"), dir.join("packed"));
    write_stl10(&src, train, test, unlabeled).unwrap();
    pack(
        &cfg(DataKind::Stl10, &src, 96),
        &out,
        &PackOptions::default(),
        &mut (),
    )
    .unwrap();
    (src, out)
}

/// The error loading `root` as `kind` at `size` gives.
fn load_err(kind: DataKind, root: &Path, size: usize) -> String {
    load(&cfg(kind, root, size), 0).unwrap_err().to_string()
}

fn packed(root: &Path, size: usize) -> Dataset {
    load(&cfg(DataKind::Packed, root, size), 0).unwrap()
}

/// Every image and label of every split of `a` equals `b`'s.
fn assert_same(a: &Dataset, b: &Dataset, what: &str) {
    assert_eq!(a.class_names, b.class_names, "{what}: class names");
    for name in Dataset::SPLITS {
        let (x, y) = (a.split(name).unwrap(), b.split(name).unwrap());
        assert_eq!(x.len(), y.len(), "{what}: {name} count");
        assert_eq!(x.labels(), y.labels(), "{what}: {name} labels");
        let all: Vec<usize> = (0..x.len()).collect();
        let (xi, yi) = (x.images(&all).unwrap(), y.images(&all).unwrap());
        assert_eq!(xi.size(), yi.size(), "{what}: {name} shape");
        assert!(xi.equal(&yi), "{what}: {name} pixels differ");
    }
}

/// Each source kind, written as a fixture, and its configuration.
fn sources(dir: &Path) -> Vec<(&'static str, DataConfig)> {
    let stl = dir.join("stl10");
    write_stl10(&stl, 30, 12, 40).unwrap();
    let folder = dir.join("folder");
    FIXTURE.write_folder(&folder).unwrap();
    let wds = dir.join("wds");
    FIXTURE.write_webdataset(&wds, 7).unwrap();
    let cifar = dir.join("cifar");
    write_cifar(&cifar, &CIFAR10, 6, 8, false).unwrap();
    let idx = dir.join("idx");
    write_idx_set(&idx, 40, 10, 28, 28).unwrap();
    let mut idx_cfg = cfg(DataKind::Idx, &idx, 32);
    idx_cfg.labeled_per_class = None;
    vec![
        ("stl10", cfg(DataKind::Stl10, &stl, 96)),
        ("folder", cfg(DataKind::Folder, &folder, 16)),
        ("webdataset", cfg(DataKind::Webdataset, &wds, 16)),
        ("cifar10", cfg(DataKind::Cifar10, &cifar, 32)),
        ("idx", idx_cfg),
    ]
}

#[test]
fn every_source_kind_packs_and_reads_back_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, source) in sources(dir.path()) {
        let out = dir.path().join(format!("{name}.packed"));
        // Shards of 5 images: every split spans several, the last one partial.
        let outcome = pack(&source, &out, &shards_of(5, source.image_size), &mut ()).unwrap();
        let manifest = outcome.manifest.expect("finished");
        assert!(manifest.train.shards.len() > 1, "{name}: several shards");
        let original = load(&source, 0).unwrap();
        let back = packed(&out, source.image_size);
        assert_same(&original, &back, name);
        assert_eq!(manifest.source_kind, name);
        // The sources name each image's origin, in order.
        let sources = std::fs::read_to_string(out.join("train/sources-00000.txt")).unwrap();
        let first = sources.lines().next().unwrap();
        let expected = match name {
            "folder" => "class_0/00000.jpg".to_string(),
            "webdataset" => "shard-0000.tar:sample00000.jpg".to_string(),
            "stl10" => "train_X.bin#0".to_string(),
            _ => "#0".to_string(),
        };
        assert!(first.ends_with(&expected), "{name}: {first}");
    }
}

#[test]
fn packed_shards_are_plain_npy_arrays_of_hwc_images() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = stl10_packed(dir.path(), (3, 2, 2));
    let bytes = std::fs::read(out.join("train/images-00000.npy")).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '|u1'"), "{header}");
    assert!(header.contains("'shape': (3, 96, 96, 3)"), "{header}");
    assert_eq!((10 + header_len) % 16, 0, "numpy aligns the data");
    // Image 1, row 4, column 10, green: interleaved [H][W][C] after the header.
    let at = 10 + header_len + ((96 + 4) * 96 + 10) * 3 + 1;
    assert_eq!(bytes[at], test_support::fixtures::pixel_value(1, 1, 4, 10));
    assert_eq!(bytes.len(), 10 + header_len + 3 * 96 * 96 * 3);
}

/// Stops after `after` shards; counts what it saw.
struct StopAfter {
    after: usize,
    shards: usize,
    start: Option<(usize, usize)>,
}

impl PackObserver for StopAfter {
    fn start(&mut self, total: usize, done: usize) {
        self.start = Some((total, done));
    }
    fn packed(&mut self, _images: usize) {
        self.shards += 1;
    }
    fn should_stop(&self) -> bool {
        self.shards >= self.after
    }
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn an_interrupted_pack_resumes_to_the_same_bytes_keeping_finished_shards() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("folder");
    FIXTURE.write_folder(&src).unwrap();
    let source = cfg(DataKind::Folder, &src, 16);
    let options = shards_of(4, 16);
    let whole = dir.path().join("whole");
    pack(&source, &whole, &options, &mut ()).unwrap();

    let resumed = dir.path().join("resumed");
    let mut first = StopAfter {
        after: 3,
        shards: 0,
        start: None,
    };
    let outcome = pack(&source, &resumed, &options, &mut first).unwrap();
    assert!(outcome.manifest.is_none(), "stopped before the manifest");
    assert_eq!(outcome.shards_written, 3);
    assert!(
        Manifest::read(&resumed)
            .unwrap_err()
            .to_string()
            .contains("packing did not finish")
    );
    let kept = resumed.join("train/images-00000.npy");
    let inode = std::fs::metadata(&kept).unwrap().ino();

    let mut second = StopAfter {
        after: usize::MAX,
        shards: 0,
        start: None,
    };
    let outcome = pack(&source, &resumed, &options, &mut second).unwrap();
    assert!(outcome.manifest.is_some());
    assert_eq!(outcome.shards_kept, 3);
    let total = FIXTURE.train + FIXTURE.unlabeled + FIXTURE.test;
    assert_eq!(second.start, Some((total, 12)), "3 shards of 4 images kept");
    assert_eq!(
        std::fs::metadata(&kept).unwrap().ino(),
        inode,
        "a finished shard is never rewritten"
    );
    let (a, b) = (files_below(&whole), files_below(&resumed));
    let rel = |v: &[PathBuf], root: &Path| {
        v.iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect::<Vec<_>>()
    };
    assert_eq!(rel(&a, &whole), rel(&b, &resumed), "the same files");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            std::fs::read(x).unwrap(),
            std::fs::read(y).unwrap(),
            "{} differs",
            y.display()
        );
    }
    // Run again: nothing to do; another source into the same folder is refused.
    let again = pack(&source, &resumed, &options, &mut ()).unwrap();
    assert!(again.already_packed);
    let other = DataConfig {
        image_size: 8,
        ..source.clone()
    };
    let err = pack(&other, &resumed, &options, &mut ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("a pack of another source (folder at"), "{err}");
}

#[test]
fn a_shard_rewritten_during_an_interruption_is_packed_again() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("folder");
    FIXTURE.write_folder(&src).unwrap();
    let source = cfg(DataKind::Folder, &src, 16);
    let options = shards_of(4, 16);
    let out = dir.path().join("packed");
    let mut stop = StopAfter {
        after: 2,
        shards: 0,
        start: None,
    };
    pack(&source, &out, &options, &mut stop).unwrap();
    let shard = out.join("train/images-00001.npy");
    let mut bytes = std::fs::read(&shard).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&shard, bytes).unwrap();
    let outcome = pack(&source, &out, &options, &mut ()).unwrap();
    assert_eq!(outcome.shards_kept, 1, "the damaged shard is not kept");
    let verified = verify(&out).unwrap();
    assert!(verified.problems.is_empty(), "{:?}", verified.problems);
    assert_same(&load(&source, 0).unwrap(), &packed(&out, 16), "repacked");
}

#[test]
fn verify_names_a_flipped_byte_and_training_a_truncated_shard() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("stl10");
    write_stl10(&src, 10, 4, 12).unwrap();
    let out = dir.path().join("packed");
    pack(
        &cfg(DataKind::Stl10, &src, 96),
        &out,
        &shards_of(4, 96),
        &mut (),
    )
    .unwrap();
    let good = verify(&out).unwrap();
    assert!(good.problems.is_empty(), "{:?}", good.problems);
    assert!(good.files >= 3 * 4, "{} files", good.files);

    let shard = out.join("unlabeled/images-00001.npy");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[1000] ^= 0x01;
    std::fs::write(&shard, &bytes).unwrap();
    let bad = verify(&out).unwrap();
    assert_eq!(bad.problems.len(), 1, "{:?}", bad.problems);
    let problem = &bad.problems[0];
    assert!(problem.contains("unlabeled/images-00001.npy"), "{problem}");
    assert!(problem.contains("SHA-256 mismatch"), "{problem}");

    bytes.truncate(bytes.len() - 7);
    std::fs::write(&shard, &bytes).unwrap();
    let err = load_err(DataKind::Packed, &out, 96);
    assert!(err.contains("unlabeled/images-00001.npy"), "{err}");
    assert!(err.contains("the manifest says"), "{err}");
}

#[test]
fn unreadable_images_stop_the_pack_naming_them_or_are_skipped_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("folder");
    FIXTURE.write_folder(&src).unwrap();
    // A JPEG cut short: its header reads, its pixels do not.
    let broken = src.join("train/class_3/00003.jpg");
    let bytes = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    let source = cfg(DataKind::Folder, &src, 16);
    let out = dir.path().join("packed");
    let err = pack(&source, &out, &shards_of(8, 16), &mut ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("class_3/00003.jpg"), "{err}");

    let skipping = PackOptions {
        skip_unreadable: true,
        ..shards_of(8, 16)
    };
    let out = dir.path().join("skipping");
    let manifest = pack(&source, &out, &skipping, &mut ())
        .unwrap()
        .manifest
        .unwrap();
    let skipped: Vec<_> = manifest.skipped().collect();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].source.ends_with("class_3/00003.jpg"));
    let back = packed(&out, 16);
    assert_eq!(back.train.len(), FIXTURE.train - 1);
    assert_eq!(back.skipped, 1);
    // The rest, labels with them, are the images the reader skipping the file gives.
    let reader = load(
        &DataConfig {
            skip_unreadable: true,
            ..source.clone()
        },
        0,
    )
    .unwrap();
    assert_same(&reader, &back, "skipping");
}

#[test]
fn a_streamed_folder_gives_the_batches_of_the_decoded_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("folder");
    FIXTURE.write_folder(&src).unwrap();
    let with = |streaming| DataConfig {
        streaming,
        ..cfg(DataKind::Folder, &src, 16)
    };
    let decoded = load(&with(Streaming::Never), 0).unwrap();
    let streamed = load(&with(Streaming::Always), 0).unwrap();
    assert!(!decoded.unlabeled.store().decodes());
    assert!(streamed.unlabeled.store().decodes());
    assert_same(&decoded, &streamed, "streamed folder");
    let plan = BatchPlan::new(FIXTURE.unlabeled, FIXTURE.train, 18).unwrap();
    for epoch in 1..=2 {
        let a = ZippedEpoch::new(&decoded.unlabeled, &decoded.train, plan, 7, epoch);
        let b = ZippedEpoch::new(&streamed.unlabeled, &streamed.train, plan, 7, epoch);
        for (x, y) in a.zip(b) {
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(x.unlabeled.equal(&y.unlabeled) && x.labeled.equal(&y.labeled));
            assert!(x.labels.equal(&y.labels));
        }
    }
}

#[test]
fn a_streamed_image_that_breaks_after_loading_is_named_by_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("folder");
    FIXTURE.write_folder(&src).unwrap();
    let ds = load(
        &DataConfig {
            streaming: Streaming::Always,
            ..cfg(DataKind::Folder, &src, 16)
        },
        0,
    )
    .unwrap();
    let victim = src.join("unlabeled/02003.png");
    // A header that reads, a body that does not.
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes.truncate(40);
    std::fs::write(&victim, bytes).unwrap();
    let all: Vec<usize> = (0..ds.unlabeled.len()).collect();
    let err = ds.unlabeled.images(&all).unwrap_err().to_string();
    assert!(err.contains("unlabeled/02003.png"), "{err}");
}

#[test]
fn webdataset_shards_read_as_their_folder_twin() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, wds) = (dir.path().join("folder"), dir.path().join("wds"));
    FIXTURE.write_folder(&folder).unwrap();
    FIXTURE.write_webdataset(&wds, 5).unwrap();
    let a = load(&cfg(DataKind::Folder, &folder, 16), 0).unwrap();
    for streaming in [Streaming::Never, Streaming::Always] {
        let b = load(
            &DataConfig {
                streaming,
                ..cfg(DataKind::Webdataset, &wds, 16)
            },
            0,
        )
        .unwrap();
        // The folder lists images by class; the shards in key order: compare by image number.
        assert_eq!(a.class_names, b.class_names);
        let (la, lb) = (a.train.labels().unwrap(), b.train.labels().unwrap());
        let by_number: Vec<usize> = {
            let mut order: Vec<usize> = (0..FIXTURE.train).collect();
            order.sort_by_key(|&i| (i % FIXTURE.classes, i));
            let mut pos = vec![0; FIXTURE.train];
            for (p, &i) in order.iter().enumerate() {
                pos[i] = p;
            }
            pos
        };
        for i in 0..FIXTURE.train {
            assert_eq!(lb[i], la[by_number[i]]);
            let (x, y) = (
                a.train.images(&[by_number[i]]).unwrap(),
                b.train.images(&[i]).unwrap(),
            );
            assert!(x.equal(&y), "sample {i}");
        }
        let all: Vec<usize> = (0..FIXTURE.unlabeled).collect();
        assert!(
            a.unlabeled
                .images(&all)
                .unwrap()
                .equal(&b.unlabeled.images(&all).unwrap())
        );
    }
}

#[test]
fn webdataset_samples_without_a_class_or_an_image_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("train")).unwrap();
    let write = |members: &[(&str, &[u8])]| {
        let file = std::fs::File::create(root.join("train/bad.tar")).unwrap();
        let mut tar = tar::Builder::new(file);
        for (name, bytes) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, name, *bytes).unwrap();
        }
        tar.finish().unwrap();
    };
    let png = test_support::fixtures::encoded_image(0, 8, false);
    write(&[("a.png", &png), ("a.cls", b"0"), ("b.png", &png)]);
    let err = load_err(DataKind::Webdataset, root, 8);
    assert!(
        err.contains("bad.tar") && err.contains("'b' has no .cls"),
        "{err}"
    );
    write(&[("a.png", &png), ("a.cls", b"zero")]);
    let err = load_err(DataKind::Webdataset, root, 8);
    assert!(err.contains("a.cls: 'zero' is not a class number"), "{err}");
    write(&[("a.cls", b"1")]);
    let err = load_err(DataKind::Webdataset, root, 8);
    assert!(err.contains("'a' has no .jpg"), "{err}");
}

#[test]
fn a_packed_data_set_is_read_at_its_own_size_and_with_stl10_folds() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = stl10_packed(dir.path(), (30, 4, 8));
    let err = load_err(DataKind::Packed, &out, 64);
    assert!(
        err.contains("data.image_size") && err.contains("96x96"),
        "{err}"
    );
    let fold = |kind| DataConfig {
        fold: Some(3),
        ..cfg(kind, if kind == DataKind::Packed { &out } else { &src }, 96)
    };
    let (a, b) = (
        load(&fold(DataKind::Stl10), 0).unwrap(),
        load(&fold(DataKind::Packed), 0).unwrap(),
    );
    assert_eq!(b.train.len(), 3, "fold 3 of 30: 3, 13, 23");
    assert_same(&a, &b, "fold 3");
    // A training configuration packs too: its fold is for training on the pack.
    let again = pack(
        &fold(DataKind::Stl10),
        &out,
        &PackOptions::default(),
        &mut (),
    )
    .unwrap();
    assert!(again.already_packed);
    assert_eq!(again.set_aside, ["data.fold"]);
    let missing = dir.path().join("nothing");
    std::fs::create_dir_all(&missing).unwrap();
    let err = load_err(DataKind::Packed, &missing, 96);
    assert!(err.contains("not a packed data set"), "{err}");
}

#[test]
fn the_folds_file_is_vouched_for_and_manifest_paths_stay_inside() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = stl10_packed(dir.path(), (20, 4, 4));
    let folds = out.join("fold_indices.txt");
    let mut text = std::fs::read(&folds).unwrap();
    text[0] = if text[0] == b'1' { b'2' } else { b'1' };
    std::fs::write(&folds, &text).unwrap();
    let problems = verify(&out).unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("fold_indices.txt: SHA-256 mismatch"),
        "{problems:?}"
    );

    let manifest = out.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let outside = text.replacen("\"train/images-00000.npy\"", "\"../elsewhere.npy\"", 1);
    assert_ne!(text, outside);
    std::fs::write(&manifest, outside).unwrap();
    let err = load_err(DataKind::Packed, &out, 96);
    assert!(
        err.contains("'../elsewhere.npy' is not a path inside"),
        "{err}"
    );
}

#[test]
fn a_tar_member_claiming_more_bytes_than_its_shard_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("train")).unwrap();
    let png = test_support::fixtures::encoded_image(0, 8, false);
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes) in [("a.cls", &b"0"[..]), ("a.png", &png[..])] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes).unwrap();
    }
    let mut bytes = tar.into_inner().unwrap();
    // The second header (after the first's 512-byte header and 512-byte block) claims 64 GiB.
    let header = &mut bytes[1024..1536];
    header[124..136].copy_from_slice(b"00001000000\0");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    std::fs::write(root.join("train/big.tar"), bytes).unwrap();
    let err = load_err(DataKind::Webdataset, root, 8);
    assert!(
        err.contains("big.tar") && err.contains("a.png") && err.contains("past the shard's end"),
        "{err}"
    );
}

//! A packed data set (a small valid one, packed once) with one of its files replaced by the
//! input's bytes after the first, which picks the file (the manifest, an image shard, a label
//! shard): opening it as training does and verifying it give an error naming the problem or a
//! data set, never a panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stl10_data::pack::{PackOptions, pack};
use stl10_data::packed::verify;
use stl10_data::{DataConfig, DataKind, load};

/// The valid pack every input starts from (kept for the whole run).
fn valid() -> &'static PathBuf {
    static PACK: OnceLock<PathBuf> = OnceLock::new();
    PACK.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        test_support::fixtures::write_stl10(&dir.join("src"), 4, 3, 5).expect("fixture");
        let source = DataConfig {
            root: dir.join("src"),
            ..DataConfig::default()
        };
        let options = PackOptions {
            shard_bytes: 2 * 3 * 96 * 96,
            skip_unreadable: false,
        };
        pack(&source, &dir.join("packed"), &options, &mut ()).expect("pack");
        dir.join("packed")
    })
}

const FILES: [&str; 3] = [
    "manifest.json",
    "train/images-00001.npy",
    "train/labels-00000.npy",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("packed");
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        for entry in std::fs::read_dir(from).expect("pack folder") {
            let path = entry.expect("entry").path();
            let target = to.join(path.file_name().expect("name"));
            if path.is_dir() {
                std::fs::create_dir_all(&target).expect("split folder");
                for f in std::fs::read_dir(&path).expect("split") {
                    let f = f.expect("file").path();
                    std::fs::copy(&f, target.join(f.file_name().expect("name"))).expect("copy");
                }
            } else {
                std::fs::copy(&path, &target).expect("copy");
            }
        }
    };
    std::fs::create_dir_all(&root).expect("root");
    copy(valid(), &root);
    std::fs::write(root.join(FILES[pick as usize % FILES.len()]), bytes).expect("replace");
    let cfg = DataConfig {
        kind: DataKind::Packed,
        root: root.clone(),
        ..DataConfig::default()
    };
    if let Ok(ds) = load(&cfg, 0) {
        let all: Vec<usize> = (0..ds.train.len()).collect();
        let _ = ds.train.images(&all);
    }
    let _ = verify(&root);
});

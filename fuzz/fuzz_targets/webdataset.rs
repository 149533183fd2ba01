//! One WebDataset tar shard (any bytes) as the only shard of a train split, indexed and decoded
//! at 8 x 8 as the reader does: an error or a data set, never a panic or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stl10_data::{DataConfig, DataKind, Streaming, load};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("train")).expect("train folder");
    std::fs::write(dir.path().join("train/shard.tar"), data).expect("shard");
    let cfg = DataConfig {
        kind: DataKind::Webdataset,
        root: dir.path().to_path_buf(),
        image_size: 8,
        streaming: Streaming::Never,
        ..DataConfig::default()
    };
    if let Ok(ds) = load(&cfg, 0) {
        assert_eq!(ds.train.labels().map(<[i64]>::len), Some(ds.train.len()));
    }
});

//! An IDX image file and an IDX label file (the input split at its first byte's position),
//! parsed and turned into a labeled split of 32 x 32 images.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use stl10_data::idx::{parse_idx, split_from_arrays};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let (labels, images) = rest.split_at(cut);
    let paths = (Path::new("images.idx"), Path::new("labels.idx"));
    let (Ok(img), Ok(lab)) = (
        parse_idx(images.to_vec(), paths.0),
        parse_idx(labels.to_vec(), paths.1),
    ) else {
        return;
    };
    if let Ok(split) = split_from_arrays(img, lab, paths, 32, 10) {
        assert!(split.labels().unwrap().iter().all(|l| (0..10).contains(l)));
    }
});

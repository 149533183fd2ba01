//! CIFAR record files and class-name files, for both layouts (the first byte picks the layout
//! and which parser), and an archive written from the input (a broken tar.gz must be an error).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use stl10_data::cifar::{CIFAR10, CIFAR100, class_names, parse_records, read_archive};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let layout = if which & 1 == 0 { CIFAR10 } else { CIFAR100 };
    match (which >> 1) % 3 {
        0 => {
            if let Ok((pixels, labels)) = parse_records(rest, Path::new("batch.bin"), &layout) {
                assert_eq!(pixels.len(), labels.len() * 3 * 32 * 32);
                assert!(labels.iter().all(|&l| (l as usize) < layout.classes));
            }
        }
        1 => {
            if let Ok(names) = class_names(rest, Path::new("names.txt"), &layout) {
                assert_eq!(names.len(), layout.classes);
            }
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(layout.archive);
            std::fs::write(&path, rest).unwrap();
            let _ = read_archive(&path, &layout);
        }
    }
});

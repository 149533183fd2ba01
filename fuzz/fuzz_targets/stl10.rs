//! STL-10's label, class-name and fold files, and the image file size check: the first byte
//! picks the file, the rest is its contents.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use stl10_data::stl10::{parse_class_names, parse_fold, parse_labels};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let path = Path::new("fuzz.bin");
    match which % 3 {
        0 => {
            let expected = rest.len().saturating_sub(usize::from(which >> 6));
            if let Ok(labels) = parse_labels(rest, expected, path) {
                assert!(labels.iter().all(|l| (0..10).contains(l)));
            }
        }
        1 => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(names) = parse_class_names(&text, path) {
                assert_eq!(names.len(), 10);
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let fold = usize::from(which >> 2) % 12;
            if let Ok(indices) = parse_fold(&text, fold, 5000, path) {
                assert!(indices.iter().all(|&i| i < 5000));
            }
        }
    }
});

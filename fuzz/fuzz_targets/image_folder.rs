//! One image file of an image folder (JPEG, PNG or anything else), decoded and fitted to
//! 32 x 32 as the folder reader does, with a one-megapixel limit instead of the reader's 64 so
//! that large (valid, slow) images do not dominate the run.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use stl10_data::folder::decode_planar_limited;

fuzz_target!(|data: &[u8]| {
    if let Ok(planar) = decode_planar_limited(data, Path::new("fuzz.png"), 32, 1 << 20) {
        assert_eq!(planar.len(), 3 * 32 * 32);
    }
});

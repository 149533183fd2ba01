//! One image file prepared as a reader would prepare it, for prediction on new images.

use std::path::Path;

use crate::config::DataKind;
use crate::error::{DataError, Result};
use crate::folder::{MAX_PIXELS, decode_planar_bytes};

/// The image at `path` as planar RGB bytes `[3][size][size]`, prepared the way the `kind`
/// reader prepares its training images: STL-10 and folders resize to cover the square and
/// centre-crop (an image of exactly `size` x `size` is taken as it is); IDX data is grayscale,
/// so the image is made grayscale, padded around the centre when it fits (Fashion-MNIST's
/// 28 -> 32) and resized otherwise, then repeated over the three channels. Errors name the file.
pub fn load_image(path: &Path, kind: DataKind, size: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    match kind {
        DataKind::Stl10
        | DataKind::Folder
        | DataKind::Webdataset
        | DataKind::Packed
        | DataKind::Cifar10
        | DataKind::Cifar100 => decode_planar_bytes(&bytes, path, size),
        DataKind::Idx => {
            let bad = |problem: String| DataError::Image {
                path: path.to_path_buf(),
                problem,
            };
            let reader = image::ImageReader::new(std::io::Cursor::new(&bytes))
                .with_guessed_format()
                .map_err(|e| DataError::io(path, e))?;
            let (w, h) = reader.into_dimensions().map_err(|e| bad(e.to_string()))?;
            if u64::from(w) * u64::from(h) > MAX_PIXELS {
                return Err(bad(format!(
                    "{w} x {h} pixels is more than the limit of {MAX_PIXELS}"
                )));
            }
            let gray = image::load_from_memory(&bytes)
                .map_err(|e| bad(e.to_string()))?
                .into_luma8();
            let (cols, rows) = gray.dimensions();
            Ok(crate::idx::fit(
                gray.as_raw(),
                rows as usize,
                cols as usize,
                size,
            ))
        }
    }
}

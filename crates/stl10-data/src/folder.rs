//! Image folders: `ROOT/train/<class>/*`, optional `ROOT/unlabeled/**`, `ROOT/test/<class>/*`.
//!
//! JPEG and PNG files are decoded in parallel, resized to cover the configured square and
//! centre-cropped (torchvision's `Resize` + `CenterCrop`), and stored as planar RGB: all of them
//! before training, or, when streamed (`data.streaming`), batch by batch as the steps ask.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fast_image_resize as fir;
use rayon::prelude::*;

use crate::config::DataConfig;
use crate::encoded::Encoded;
use crate::error::{DataError, Result};
use crate::images::{CHANNELS, Dataset, ImageStore, Split};

const EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| DataError::io(dir, err)))
        .collect::<Result<Vec<_>>>()?;
    entries.sort();
    Ok(entries)
}

/// Every image file below `dir`, at any depth, in sorted order.
fn images_below(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for path in read_dir_sorted(dir)? {
        if path.is_dir() {
            images_below(&path, out)?;
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Image files with their labels.
type LabeledFiles = Vec<(PathBuf, i64)>;

/// `(class names, [(file, label)])` of a `<split>/<class>/*` folder.
fn labeled_files(dir: &Path) -> Result<(Vec<String>, LabeledFiles)> {
    let mut names = Vec::new();
    let mut files = Vec::new();
    for class_dir in read_dir_sorted(dir)?.into_iter().filter(|p| p.is_dir()) {
        let label = names.len() as i64;
        let mut found = Vec::new();
        images_below(&class_dir, &mut found)?;
        if found.is_empty() {
            return Err(DataError::format(
                &class_dir,
                "class folder holds no JPEG or PNG images",
            ));
        }
        names.push(
            class_dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        files.extend(found.into_iter().map(|f| (f, label)));
    }
    if names.is_empty() {
        return Err(DataError::format(dir, "holds no class folders"));
    }
    Ok((names, files))
}

/// Decodes one image and returns it as planar `[C][H][W]` bytes at `size` x `size`.
pub fn decode_planar(path: &Path, size: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_planar_bytes(&bytes, path, size)
}

/// Largest image the folder reader decodes: 64 megapixels (a 9000 x 7000 photo; 192 MB as RGB).
pub const MAX_PIXELS: u64 = 64 << 20;

/// [`decode_planar`] on the file's bytes; `path` names the file in errors. The format is
/// guessed from the bytes; images over [`MAX_PIXELS`] are refused before decoding.
pub fn decode_planar_bytes(bytes: &[u8], path: &Path, size: usize) -> Result<Vec<u8>> {
    decode_planar_limited(bytes, path, size, MAX_PIXELS)
}

/// [`decode_planar_bytes`] with another pixel limit (the fuzzer's is smaller, to stay fast).
pub fn decode_planar_limited(
    bytes: &[u8],
    path: &Path,
    size: usize,
    max_pixels: u64,
) -> Result<Vec<u8>> {
    let bad = |problem: String| DataError::Image {
        path: path.to_path_buf(),
        problem,
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let mut limits = image::Limits::default();
    // Room for the decoded image at up to 16 bytes per pixel (RGBA, 32-bit float).
    limits.max_alloc = Some(max_pixels.saturating_mul(16));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(bad(format!(
            "{w} x {h} pixels is more than the limit of {max_pixels}"
        )));
    }
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    let rgb = cover_and_crop(img.into_rgb8(), size as u32).map_err(bad)?;
    let plane = size * size;
    let mut out = vec![0u8; CHANNELS * plane];
    for (i, px) in rgb.chunks_exact(CHANNELS).enumerate() {
        for c in 0..CHANNELS {
            out[c * plane + i] = px[c];
        }
    }
    Ok(out)
}

thread_local! {
    /// Each decoding thread's resizer, its buffers kept between images.
    static RESIZER: std::cell::RefCell<fir::Resizer> = std::cell::RefCell::new(fir::Resizer::new());
}

/// `rgb` scaled to cover a `side` x `side` square and centre-cropped, as interleaved RGB rows:
/// image's `resize_to_fill` geometry (the scaled size rounded, the crop's offset in whole scaled
/// pixels) with the triangle filter (bilinear, widened when shrinking), computed by
/// fast_image_resize on the cropped part of the source only.
fn cover_and_crop(rgb: image::RgbImage, side: u32) -> std::result::Result<Vec<u8>, String> {
    let (w, h) = rgb.dimensions();
    if (w, h) == (side, side) {
        return Ok(rgb.into_raw());
    }
    let ratio = f64::max(
        f64::from(side) / f64::from(w),
        f64::from(side) / f64::from(h),
    );
    let scaled = |n: u32| ((f64::from(n) * ratio).round() as u32).max(side);
    let (nw, nh) = (scaled(w), scaled(h));
    let (cx, cy) = ((nw - side) / 2, (nh - side) / 2);
    if (nw, nh) == (w, h) {
        let (cx, cy, side) = (cx as usize, cy as usize, side as usize);
        let raw = rgb.as_raw();
        let row = w as usize * CHANNELS;
        let mut out = Vec::with_capacity(side * side * CHANNELS);
        for y in cy..cy + side {
            out.extend_from_slice(&raw[y * row + cx * CHANNELS..y * row + (cx + side) * CHANNELS]);
        }
        return Ok(out);
    }
    let src = fir::images::Image::from_vec_u8(w, h, rgb.into_raw(), fir::PixelType::U8x3)
        .map_err(|e| e.to_string())?;
    let mut dst = fir::images::Image::new(side, side, fir::PixelType::U8x3);
    // The crop in source pixels: scaled-image pixels times (source / scaled) on each axis.
    let (sx, sy) = (f64::from(w) / f64::from(nw), f64::from(h) / f64::from(nh));
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear))
        .crop(
            f64::from(cx) * sx,
            f64::from(cy) * sy,
            f64::from(side) * sx,
            f64::from(side) * sy,
        );
    RESIZER
        .with(|r| r.borrow_mut().resize(&src, &mut dst, &options))
        .map_err(|e| e.to_string())?;
    Ok(dst.into_vec())
}

/// How a reader of encoded files makes its stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decode {
    /// Everything before training.
    Upfront,
    /// Batch by batch, every header checked first.
    Stream,
    /// Batch by batch, nothing checked (packing, which decodes each image once and reports).
    Index,
}

impl Decode {
    /// `Stream` or `Upfront` as `cfg.streaming` decides for `images`; `Index` when `index`.
    pub(crate) fn choose(cfg: &DataConfig, images: usize, index: bool) -> Self {
        if index {
            Decode::Index
        } else if cfg.streams(images) {
            Decode::Stream
        } else {
            Decode::Upfront
        }
    }
}

/// The images of `enc` as a store, made as `how` says (unreadable images fail the load, or are
/// skipped when `skip`). Returns the store and, for each kept image, its position.
pub(crate) fn store_of(
    enc: Encoded,
    size: usize,
    skip: bool,
    how: Decode,
) -> Result<(ImageStore, Vec<usize>)> {
    if how == Decode::Index {
        let kept = (0..enc.len()).collect();
        return Ok((ImageStore::encoded(enc, size), kept));
    }
    if how == Decode::Stream {
        let kept = enc.readable(skip)?;
        let enc = if kept.len() == enc.len() {
            enc
        } else {
            enc.select(&kept)
        };
        return Ok((ImageStore::encoded(enc, size), kept));
    }
    let decoded: Vec<Result<Vec<u8>>> = (0..enc.len())
        .into_par_iter()
        .map(|i| enc.decode(i, size))
        .collect();
    let mut bytes = Vec::with_capacity(enc.len() * CHANNELS * size * size);
    let mut kept = Vec::with_capacity(enc.len());
    for (i, d) in decoded.into_iter().enumerate() {
        match d {
            Ok(b) => {
                bytes.extend_from_slice(&b);
                kept.push(i);
            }
            Err(DataError::Image { .. }) if skip => {}
            Err(e) => return Err(e),
        }
    }
    Ok((ImageStore::from_chw(bytes, size), kept))
}

/// The split of a listed `<split>/<class>/*` folder, its store made as `how` says.
fn labeled_split(
    (names, files): (Vec<String>, LabeledFiles),
    cfg: &DataConfig,
    how: Decode,
) -> Result<(Vec<String>, Split, usize)> {
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let (store, kept) = store_of(
        Encoded::files(paths),
        cfg.image_size,
        cfg.skip_unreadable,
        how,
    )?;
    let labels = kept.iter().map(|&i| files[i].1).collect();
    let skipped = files.len() - kept.len();
    Ok((names, Split::new(Arc::new(store), Some(labels)), skipped))
}

/// Loads `ROOT/train`, `ROOT/unlabeled` (if present) and `ROOT/test` (if present).
/// Whether the files are streamed is `cfg.streaming`'s call, made on the number of images;
/// `index` lists them only (for packing).
pub(crate) fn load(cfg: &DataConfig, index: bool) -> Result<Dataset> {
    let size = cfg.image_size;
    let train_dir = cfg.root.join("train");
    if !train_dir.is_dir() {
        return Err(DataError::format(
            &train_dir,
            "missing: an image folder needs ROOT/train/<class>/ folders",
        ));
    }
    let unlabeled_dir = cfg.root.join("unlabeled");
    let mut unlabeled_files = Vec::new();
    if unlabeled_dir.is_dir() {
        images_below(&unlabeled_dir, &mut unlabeled_files)?;
        if unlabeled_files.is_empty() {
            return Err(DataError::format(
                &unlabeled_dir,
                "holds no JPEG or PNG images",
            ));
        }
    }
    // Counted roughly (train and unlabeled; the test split is usually the smaller).
    let train_files = labeled_files(&train_dir)?;
    let how = Decode::choose(cfg, unlabeled_files.len() + train_files.1.len(), index);
    let (class_names, train, mut skipped) = labeled_split(train_files, cfg, how)?;

    let unlabeled = if !unlabeled_files.is_empty() {
        let files = unlabeled_files;
        let (store, kept) = store_of(
            Encoded::files(files.clone()),
            size,
            cfg.skip_unreadable,
            how,
        )?;
        skipped += files.len() - kept.len();
        Split::new(Arc::new(store), None)
    } else {
        Split::empty(size)
    };

    let test_dir = cfg.root.join("test");
    let test = if test_dir.is_dir() {
        let (test_names, test, test_skipped) = labeled_split(labeled_files(&test_dir)?, cfg, how)?;
        if test_names != class_names {
            return Err(DataError::format(
                &test_dir,
                format!("test classes {test_names:?} differ from train classes {class_names:?}"),
            ));
        }
        skipped += test_skipped;
        test
    } else {
        Split::empty(size)
    };

    Ok(Dataset {
        train,
        unlabeled,
        test,
        class_names,
        image_size: size,
        skipped,
    })
}

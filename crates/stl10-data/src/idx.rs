//! IDX files as MNIST and Fashion-MNIST ship them, plain or gzip-compressed.
//!
//! Grayscale images become 3 identical channels; images smaller than the configured size are
//! zero-padded around the centre (28 -> 32 adds 2 pixels per side), larger ones are resized.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::read::GzDecoder;
use image::imageops::FilterType;

use crate::config::DataConfig;
use crate::error::{DataError, Result};
use crate::images::{CHANNELS, Dataset, ImageStore, Split};

/// An IDX array of unsigned bytes.
#[derive(Debug)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes (type 0x08), gunzipping it when it is gzip data.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_idx(raw, path)
}

/// [`read_idx`] on the file's bytes; `path` names the file in errors.
pub fn parse_idx(raw: Vec<u8>, path: &Path) -> Result<IdxArray> {
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("corrupt gzip data: {e}")))?;
        out
    } else {
        raw
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::format(
            path,
            "not an IDX file (bad magic number)",
        ));
    }
    if bytes[2] != 0x08 {
        return Err(DataError::format(
            path,
            format!(
                "IDX element type 0x{:02x}; only unsigned bytes (0x08) are supported",
                bytes[2]
            ),
        ));
    }
    let ndims = bytes[3] as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(DataError::format(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| {
            let b = &bytes[4 + 4 * d..8 + 4 * d];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::format(path, format!("header dimensions {dims:?} overflow")))?;
    let body = bytes.len() - header;
    if body != expected {
        return Err(DataError::format(
            path,
            format!(
                "header promises {dims:?} = {expected} bytes of data, file holds {body} (truncated?)"
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// `name` or `name.gz` in `root`, whichever exists.
fn find(root: &Path, name: &str) -> Result<PathBuf> {
    let plain = root.join(name);
    let gz = root.join(format!("{name}.gz"));
    if plain.is_file() {
        Ok(plain)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(DataError::format(
            plain,
            "missing (looked for it plain and as .gz)",
        ))
    }
}

/// Grayscale `rows` x `cols` to planar RGB at `size` x `size`.
pub(crate) fn fit(gray: &[u8], rows: usize, cols: usize, size: usize) -> Vec<u8> {
    let plane = size * size;
    let mut one = vec![0u8; plane];
    if rows <= size && cols <= size {
        let (top, left) = ((size - rows) / 2, (size - cols) / 2);
        for r in 0..rows {
            one[(top + r) * size + left..(top + r) * size + left + cols]
                .copy_from_slice(&gray[r * cols..(r + 1) * cols]);
        }
    } else {
        let img = image::GrayImage::from_raw(cols as u32, rows as u32, gray.to_vec())
            .expect("IDX dims checked against the data length");
        let resized = image::imageops::resize(&img, size as u32, size as u32, FilterType::Triangle);
        one.copy_from_slice(resized.as_raw());
    }
    one.repeat(CHANNELS)
}

fn labeled_split(images: &Path, labels: &Path, size: usize, classes: usize) -> Result<Split> {
    let img = read_idx(images)?;
    let lab = read_idx(labels)?;
    split_from_arrays(img, lab, (images, labels), size, classes)
}

/// A labeled split from an image array `[N, rows, cols]` and a label array `[N]` (read from
/// `paths`, named in errors), images fitted to `size` x `size`, labels in `0..classes`.
pub fn split_from_arrays(
    img: IdxArray,
    lab: IdxArray,
    (images, labels): (&Path, &Path),
    size: usize,
    classes: usize,
) -> Result<Split> {
    if img.dims.len() != 3 {
        return Err(DataError::format(
            images,
            format!(
                "expected 3 dimensions (count, rows, cols), got {:?}",
                img.dims
            ),
        ));
    }
    if lab.dims.len() != 1 {
        return Err(DataError::format(
            labels,
            format!("expected 1 dimension (count), got {:?}", lab.dims),
        ));
    }
    let (n, rows, cols) = (img.dims[0], img.dims[1], img.dims[2]);
    if rows == 0 || cols == 0 {
        return Err(DataError::format(
            images,
            format!("images of {rows} x {cols} pixels are empty"),
        ));
    }
    if lab.dims[0] != n {
        return Err(DataError::format(
            labels,
            format!(
                "{} labels for {n} images in {} (counts differ)",
                lab.dims[0],
                images.display()
            ),
        ));
    }
    if let Some((i, &l)) = lab
        .data
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= classes)
    {
        return Err(DataError::format(
            labels,
            format!("label {l} at index {i} is outside 0..{classes}"),
        ));
    }
    let px = rows * cols;
    let mut bytes = Vec::with_capacity(n * CHANNELS * size * size);
    for i in 0..n {
        bytes.extend(fit(&img.data[i * px..(i + 1) * px], rows, cols, size));
    }
    let labels = lab.data.iter().map(|&l| i64::from(l)).collect();
    Ok(Split::new(
        Arc::new(ImageStore::from_chw(bytes, size).with_origin(images.display())),
        Some(labels),
    ))
}

/// Loads `train-*` as the labeled split and `t10k-*` as the test split.
pub fn load(cfg: &DataConfig) -> Result<Dataset> {
    let root = &cfg.root;
    let class_names = cfg
        .class_names
        .clone()
        .unwrap_or_else(|| (0..10).map(|i| i.to_string()).collect());
    let classes = class_names.len();
    let train = labeled_split(
        &find(root, "train-images-idx3-ubyte")?,
        &find(root, "train-labels-idx1-ubyte")?,
        cfg.image_size,
        classes,
    )?;
    let test = labeled_split(
        &find(root, "t10k-images-idx3-ubyte")?,
        &find(root, "t10k-labels-idx1-ubyte")?,
        cfg.image_size,
        classes,
    )?;
    Ok(Dataset {
        train,
        unlabeled: Split::empty(cfg.image_size),
        test,
        class_names,
        image_size: cfg.image_size,
        skipped: 0,
    })
}

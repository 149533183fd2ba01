//! Writers for small data sets in the official formats, for tests, benches and demos.
//!
//! Every pixel encodes where it is: [`pixel_value`] of (image, channel, row, column), so a reader
//! that transposes, swaps channels or mixes images up reads different values.

use std::io::Write;
use std::path::Path;

use crate::stl10::STL10_SIZE;

/// The value fixtures store at `(image, channel, row, col)`; row and column weigh differently.
pub fn pixel_value(image: usize, channel: usize, row: usize, col: usize) -> u8 {
    ((image * 11 + channel * 85 + row * 3 + col * 7) % 256) as u8
}

/// Bytes of `n` STL-10 images (starting at image number `first`) in the official layout:
/// channel planes R, G, B, each column-major.
pub fn stl10_image_bytes(first: usize, n: usize) -> Vec<u8> {
    let s = STL10_SIZE;
    let mut out = Vec::with_capacity(n * 3 * s * s);
    for i in first..first + n {
        for c in 0..3 {
            for col in 0..s {
                for row in 0..s {
                    out.push(pixel_value(i, c, row, col));
                }
            }
        }
    }
    out
}

/// Label of fixture image `i` (0-based class), cycling through 10 classes.
pub fn label_of(i: usize) -> u8 {
    (i % 10) as u8
}

/// Writes an STL-10 `stl10_binary/` folder under `root` with `train`, `test` and `unlabeled`
/// images, `class_names.txt` and ten folds of `fold_indices.txt` (fold k: indices i with
/// `i % 10 == k`). Train images are numbered from 0, test from 1000, unlabeled from 2000.
pub fn write_stl10(
    root: &Path,
    train: usize,
    test: usize,
    unlabeled: usize,
) -> std::io::Result<()> {
    let dir = root.join("stl10_binary");
    std::fs::create_dir_all(&dir)?;
    let labels = |first: usize, n: usize| {
        (first..first + n)
            .map(|i| label_of(i) + 1)
            .collect::<Vec<u8>>()
    };
    std::fs::write(dir.join("train_X.bin"), stl10_image_bytes(0, train))?;
    std::fs::write(dir.join("train_y.bin"), labels(0, train))?;
    std::fs::write(dir.join("test_X.bin"), stl10_image_bytes(1000, test))?;
    std::fs::write(dir.join("test_y.bin"), labels(1000, test))?;
    std::fs::write(
        dir.join("unlabeled_X.bin"),
        stl10_image_bytes(2000, unlabeled),
    )?;
    let names = [
        "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
    ];
    std::fs::write(dir.join("class_names.txt"), names.join("\n") + "\n")?;
    let mut folds = String::new();
    for k in 0..10 {
        let idx: Vec<String> = (k..train).step_by(10).map(|i| i.to_string()).collect();
        folds.push_str(&idx.join(" "));
        folds.push('\n');
    }
    std::fs::write(dir.join("fold_indices.txt"), folds)
}

/// Writes an IDX file of unsigned bytes with `dims`, gzip-compressed when `gz`.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8], gz: bool) -> std::io::Result<()> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        bytes.extend_from_slice(&(d as u32).to_be_bytes());
    }
    bytes.extend_from_slice(data);
    if gz {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes)?;
        bytes = enc.finish()?;
    }
    std::fs::write(path, bytes)
}

/// Writes MNIST-style `train-*`/`t10k-*` IDX files (gzip) with `rows` x `cols` images whose
/// pixel `(r, c)` of image `i` is [`pixel_value`]`(i, 0, r, c)` and labels [`label_of`].
pub fn write_idx_set(
    root: &Path,
    train: usize,
    test: usize,
    rows: usize,
    cols: usize,
) -> std::io::Result<()> {
    std::fs::create_dir_all(root)?;
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let mut px = Vec::with_capacity(n * rows * cols);
        for i in 0..n {
            for r in 0..rows {
                for c in 0..cols {
                    px.push(pixel_value(i, 0, r, c));
                }
            }
        }
        let labels: Vec<u8> = (0..n).map(label_of).collect();
        write_idx(
            &root.join(format!("{prefix}-images-idx3-ubyte.gz")),
            &[n, rows, cols],
            &px,
            true,
        )?;
        write_idx(
            &root.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            &[n],
            &labels,
            true,
        )?;
    }
    Ok(())
}

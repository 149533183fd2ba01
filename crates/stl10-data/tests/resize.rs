//! How images of another size become the configured square, pixel for pixel, on patterned
//! non-square images: folders (and STL-10 files given to `predict`) scale to cover the square
//! and crop its centre; larger IDX images are resized to the square.

use std::path::Path;

use stl10_data::{DataConfig, DataKind, load};
use test_support::fixtures::write_idx;

/// A `w` x `h` PNG whose every pixel and channel differs: `(17x + 29y + 71c) mod 256`.
fn patterned(w: u32, h: u32) -> (Vec<u8>, image::RgbImage) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([0, 1, 2].map(|c| ((17 * x + 29 * y + 71 * c) % 256) as u8))
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    (png, img)
}

/// Pixel `(c, y, x)` of planar `[3][size][size]` bytes.
fn at(planar: &[u8], size: usize, c: usize, y: usize, x: usize) -> u8 {
    planar[c * size * size + y * size + x]
}

#[test]
fn an_image_of_the_right_height_or_width_is_centre_cropped_pixel_for_pixel() {
    let path = Path::new("wide.png");
    // 7 x 4 to 4 x 4: columns 1..5 (the crop starts at (7 - 4) / 2 = 1), rows as they are.
    let (png, img) = patterned(7, 4);
    let out = stl10_data::folder::decode_planar_bytes(&png, path, 4).unwrap();
    for (c, y, x) in (0..3).flat_map(|c| (0..4).flat_map(move |y| (0..4).map(move |x| (c, y, x)))) {
        let want = img.get_pixel(x as u32 + 1, y as u32).0[c];
        assert_eq!(
            at(&out, 4, c, y, x),
            want,
            "wide, channel {c} at ({y}, {x})"
        );
    }
    // 4 x 9 to 4 x 4: rows 2..6.
    let (png, img) = patterned(4, 9);
    let out = stl10_data::folder::decode_planar_bytes(&png, path, 4).unwrap();
    for (c, y, x) in (0..3).flat_map(|c| (0..4).flat_map(move |y| (0..4).map(move |x| (c, y, x)))) {
        let want = img.get_pixel(x as u32, y as u32 + 2).0[c];
        assert_eq!(
            at(&out, 4, c, y, x),
            want,
            "tall, channel {c} at ({y}, {x})"
        );
    }
}

/// The triangle filter's weights of source pixels for output pixel `o` when `n` source pixels
/// are scaled by `scale`: pixel centres at `i + 0.5`, the kernel widened by `1 / scale` when
/// shrinking, weights renormalised at the edges (bilinear interpolation when enlarging).
fn taps(o: usize, n: usize, scale: f64) -> Vec<(usize, f64)> {
    let centre = (o as f64 + 0.5) / scale;
    let width = (1.0 / scale).max(1.0);
    let w: Vec<(usize, f64)> = (0..n)
        .map(|i| {
            (
                i,
                (1.0 - ((i as f64 + 0.5 - centre) / width).abs()).max(0.0),
            )
        })
        .filter(|(_, w)| *w > 0.0)
        .collect();
    let total: f64 = w.iter().map(|(_, w)| w).sum();
    w.into_iter().map(|(i, v)| (i, v / total)).collect()
}

#[test]
fn a_small_wide_image_is_scaled_to_cover_then_centre_cropped() {
    // 4 x 2 to 4 x 4: scaled by 2 to 8 x 4 (covering the square), then columns 2..6 kept.
    // Expected pixels: bilinear interpolation (the triangle filter) computed here in f64.
    let (png, img) = patterned(4, 2);
    let out = stl10_data::folder::decode_planar_bytes(&png, Path::new("small.png"), 4).unwrap();
    for c in 0..3 {
        for y in 0..4 {
            for x in 0..4 {
                let mut want = 0.0;
                for (sy, wy) in taps(y, 2, 2.0) {
                    for (sx, wx) in taps(x + 2, 4, 2.0) {
                        want += wy * wx * f64::from(img.get_pixel(sx as u32, sy as u32).0[c]);
                    }
                }
                let got = f64::from(at(&out, 4, c, y, x));
                assert!(
                    (got - want).abs() <= 1.0,
                    "channel {c} at ({y}, {x}): {got} vs {want:.2}"
                );
            }
        }
    }
    // The crop is centred: the left and right halves of the scaled image are not both kept.
    let left = at(&out, 4, 0, 0, 0);
    assert_ne!(
        left,
        img.get_pixel(0, 0).0[0],
        "the first column is cropped away"
    );
}

#[test]
fn a_larger_idx_image_is_resized_with_the_triangle_filter() {
    // 40 rows x 60 columns to 20 x 20: each axis on its own (2x and 3x smaller).
    let (rows, cols, size) = (40usize, 60usize, 20usize);
    let source: Vec<u8> = (0..rows * cols)
        .map(|i| ((7 * (i % cols) + 13 * (i / cols)) % 256) as u8)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for prefix in ["train", "t10k"] {
        let images = dir.path().join(format!("{prefix}-images-idx3-ubyte"));
        write_idx(&images, &[1, rows, cols], &source, false).unwrap();
        let labels = dir.path().join(format!("{prefix}-labels-idx1-ubyte"));
        write_idx(&labels, &[1], &[3], false).unwrap();
    }
    let cfg = DataConfig {
        kind: DataKind::Idx,
        root: dir.path().to_path_buf(),
        image_size: size,
        ..DataConfig::default()
    };
    let img = load(&cfg, 0).unwrap().test.images(&[0]).unwrap();
    assert_eq!(img.size(), [1, 3, size as i64, size as i64]);
    for y in 0..size {
        for x in 0..size {
            let mut want = 0.0;
            for (sy, wy) in taps(y, rows, size as f64 / rows as f64) {
                for (sx, wx) in taps(x, cols, size as f64 / cols as f64) {
                    want += wy * wx * f64::from(source[sy * cols + sx]);
                }
            }
            for c in 0..3 {
                let got = img.int64_value(&[0, c, y as i64, x as i64]) as f64;
                assert!(
                    (got - want).abs() <= 1.0,
                    "({y}, {x}) channel {c}: {got} vs {want:.2}"
                );
            }
        }
    }
}

#[test]
fn a_large_wide_image_is_shrunk_to_cover_with_the_widened_triangle_filter() {
    // 60 x 40 to 20 x 20: scaled by 1/2 to 30 x 20, then scaled columns 5..25 kept; each output
    // pixel averages a 4-pixel-wide triangle of source pixels (the kernel widened by 2).
    let (png, img) = patterned(60, 40);
    let out = stl10_data::folder::decode_planar_bytes(&png, Path::new("large.png"), 20).unwrap();
    // Within one: the two passes round to 8 bits in between, as Pillow's resize does.
    for c in 0..3 {
        for y in 0..20 {
            for x in 0..20 {
                let mut want = 0.0;
                for (sy, wy) in taps(y, 40, 0.5) {
                    for (sx, wx) in taps(x + 5, 60, 0.5) {
                        want += wy * wx * f64::from(img.get_pixel(sx as u32, sy as u32).0[c]);
                    }
                }
                let got = f64::from(at(&out, 20, c, y, x));
                assert!(
                    (got - want).abs() <= 1.0,
                    "channel {c} at ({y}, {x}): {got} vs {want:.2}"
                );
            }
        }
    }
}

//! The embedding projector's files: per embedding, its vectors (`tensors.tsv`), a row of
//! metadata per vector (`metadata.tsv`) and an optional sprite of thumbnails (`sprite.png`), in
//! a folder named after it; and `projector_config.pbtxt`, which lists them, in the log folder.

use std::fmt::Write as _;
use std::path::Path;

use crate::Error;

/// The largest sprite the projector shows, in pixels a side.
pub const MAX_SPRITE_SIDE: usize = 8192;

/// One set of vectors to project.
pub struct Embedding<'a> {
    /// Its name in the projector, and the folder of its files (letters, digits, `_`, `-`).
    pub name: &'a str,
    /// `[rows, dim]`, row-major.
    pub values: &'a [f32],
    pub dim: usize,
    /// The metadata's column names: with one column the file has no header row (the
    /// projector's rule), with more it has one.
    pub columns: &'a [&'a str],
    /// One row of `columns.len()` fields per vector.
    pub metadata: &'a [Vec<String>],
    pub sprite: Option<Sprite<'a>>,
}

/// Thumbnails, one per vector: RGB bytes `[rows, size, size, 3]`.
pub struct Sprite<'a> {
    pub thumbnails: &'a [u8],
    pub size: usize,
}

/// Writes every embedding's files and the configuration listing them into `dir` (a run's log
/// folder), each file atomically. Shapes that do not agree are an error naming the embedding.
pub fn write(dir: &Path, embeddings: &[Embedding]) -> Result<(), Error> {
    let mut config = String::new();
    for e in embeddings {
        let rows = check(dir, e)?;
        let folder = dir.join(e.name);
        std::fs::create_dir_all(&folder).map_err(|err| Error::io(&folder, err))?;
        crate::write_atomically(&folder.join("tensors.tsv"), tensors_tsv(e).as_bytes())?;
        crate::write_atomically(&folder.join("metadata.tsv"), metadata_tsv(e).as_bytes())?;
        let _ = writeln!(config, "embeddings {{");
        let _ = writeln!(config, "  tensor_name: \"{}\"", e.name);
        let _ = writeln!(config, "  tensor_shape: {rows}\n  tensor_shape: {}", e.dim);
        let _ = writeln!(config, "  tensor_path: \"{}/tensors.tsv\"", e.name);
        let _ = writeln!(config, "  metadata_path: \"{}/metadata.tsv\"", e.name);
        if let Some(sprite) = &e.sprite {
            let png = sprite_png(sprite, rows).map_err(|err| Error::invalid(&folder, err))?;
            crate::write_atomically(&folder.join("sprite.png"), &png)?;
            let _ = writeln!(config, "  sprite {{");
            let _ = writeln!(config, "    image_path: \"{}/sprite.png\"", e.name);
            for _ in 0..2 {
                let _ = writeln!(config, "    single_image_dim: {}", sprite.size);
            }
            let _ = writeln!(config, "  }}");
        }
        let _ = writeln!(config, "}}");
    }
    crate::write_atomically(&dir.join("projector_config.pbtxt"), config.as_bytes())
}

/// The rows of `e`, or an error naming it when its parts disagree.
fn check(dir: &Path, e: &Embedding) -> Result<usize, Error> {
    let bad = |problem: String| Error::invalid(&dir.join(e.name), format!("{}: {problem}", e.name));
    let name_ok = !e.name.is_empty()
        && e.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !name_ok {
        return Err(bad("a name of letters, digits, _ and - is needed".into()));
    }
    if e.dim == 0 || !e.values.len().is_multiple_of(e.dim) {
        return Err(bad(format!(
            "{} values do not make rows of {}",
            e.values.len(),
            e.dim
        )));
    }
    let rows = e.values.len() / e.dim;
    if e.columns.is_empty() || e.metadata.len() != rows {
        return Err(bad(format!(
            "{} metadata rows for {rows} vectors",
            e.metadata.len()
        )));
    }
    if let Some(row) = e.metadata.iter().find(|r| r.len() != e.columns.len()) {
        return Err(bad(format!(
            "a metadata row of {} fields for {} columns",
            row.len(),
            e.columns.len()
        )));
    }
    if let Some(s) = &e.sprite
        && s.thumbnails.len() != rows * s.size * s.size * 3
    {
        return Err(bad(format!(
            "{} thumbnail bytes for {rows} RGB images of {}x{}",
            s.thumbnails.len(),
            s.size,
            s.size
        )));
    }
    Ok(rows)
}

fn tensors_tsv(e: &Embedding) -> String {
    let mut out = String::with_capacity(e.values.len() * 10);
    for row in e.values.chunks(e.dim) {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            let _ = write!(out, "{v}");
        }
        out.push('\n');
    }
    out
}

fn metadata_tsv(e: &Embedding) -> String {
    let field = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let line =
        |fields: &mut dyn Iterator<Item = String>| fields.collect::<Vec<_>>().join("\t") + "\n";
    let mut out = String::new();
    if e.columns.len() > 1 {
        out.push_str(&line(&mut e.columns.iter().map(|c| field(c))));
    }
    for row in e.metadata {
        out.push_str(&line(&mut row.iter().map(|c| field(c))));
    }
    out
}

/// The thumbnails in a grid of `ceil(sqrt(rows))` a row, as the projector cuts its sprite,
/// the rest black.
fn sprite_png(s: &Sprite, rows: usize) -> Result<Vec<u8>, String> {
    let per_row = (rows as f64).sqrt().ceil().max(1.0) as usize;
    let (width, height) = (per_row * s.size, rows.div_ceil(per_row) * s.size);
    if width > MAX_SPRITE_SIDE || height > MAX_SPRITE_SIDE {
        return Err(format!(
            "a sprite of {width}x{height} pixels is over the projector's {MAX_SPRITE_SIDE}; use smaller thumbnails"
        ));
    }
    let mut grid = image::RgbImage::new(width as u32, height as u32);
    let thumb = s.size * s.size * 3;
    for (i, pixels) in s.thumbnails.chunks(thumb).enumerate() {
        let (x0, y0) = ((i % per_row) * s.size, (i / per_row) * s.size);
        for (p, rgb) in pixels.chunks(3).enumerate() {
            let (x, y) = (x0 + p % s.size, y0 + p / s.size);
            grid.put_pixel(x as u32, y as u32, image::Rgb([rgb[0], rgb[1], rgb[2]]));
        }
    }
    let mut png = Vec::new();
    grid.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_hold_the_vectors_metadata_and_thumbnails_where_the_config_says() {
        let dir = tempfile::tempdir().unwrap();
        let values = [0.5f32, -1.0, 2.25, 3.0, 1e-8, 7.0, 0.0, -0.125, 4.0];
        let metadata: Vec<Vec<String>> = ["cat", "dog\tx", "cat"]
            .iter()
            .enumerate()
            .map(|(i, c)| vec![c.to_string(), i.to_string()])
            .collect();
        // Three 2x2 thumbnails, each one flat colour: red, green, blue.
        let mut thumbnails = Vec::new();
        for c in [[255, 0, 0], [0, 255, 0], [0, 0, 255]] {
            for _ in 0..4 {
                thumbnails.extend(c);
            }
        }
        let e = Embedding {
            name: "test_features",
            values: &values,
            dim: 3,
            columns: &["class", "index"],
            metadata: &metadata,
            sprite: Some(Sprite {
                thumbnails: &thumbnails,
                size: 2,
            }),
        };
        write(dir.path(), &[e]).unwrap();
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(
            read("test_features/tensors.tsv"),
            "0.5\t-1\t2.25\n3\t0.00000001\t7\n0\t-0.125\t4\n"
        );
        assert_eq!(
            read("test_features/metadata.tsv"),
            "class\tindex\ncat\t0\ndog x\t1\ncat\t2\n"
        );
        let config = read("projector_config.pbtxt");
        for line in [
            "tensor_name: \"test_features\"",
            "tensor_path: \"test_features/tensors.tsv\"",
            "metadata_path: \"test_features/metadata.tsv\"",
            "image_path: \"test_features/sprite.png\"",
            "single_image_dim: 2",
            "tensor_shape: 3",
        ] {
            assert!(config.contains(line), "{line} in {config}");
        }
        // 3 thumbnails: 2 a row (ceil(sqrt(3))), 2 rows; the fourth cell black.
        let sprite = image::open(dir.path().join("test_features/sprite.png"))
            .unwrap()
            .to_rgb8();
        assert_eq!(sprite.dimensions(), (4, 4));
        assert_eq!(sprite.get_pixel(1, 1).0, [255, 0, 0]);
        assert_eq!(sprite.get_pixel(2, 0).0, [0, 255, 0]);
        assert_eq!(sprite.get_pixel(0, 3).0, [0, 0, 255]);
        assert_eq!(sprite.get_pixel(3, 3).0, [0, 0, 0]);
    }

    #[test]
    fn shapes_that_disagree_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = vec![vec!["a".to_string()]];
        let error = |values: &[f32]| {
            let e = Embedding {
                name: "f",
                values,
                dim: 2,
                columns: &["label"],
                metadata: &metadata,
                sprite: None,
            };
            write(dir.path(), &[e]).unwrap_err().to_string()
        };
        let err = error(&[1.0, 2.0, 3.0]);
        assert!(err.contains("f: 3 values do not make rows of 2"), "{err}");
        let err = error(&[1.0, 2.0, 3.0, 4.0]);
        assert!(err.contains("1 metadata rows for 2 vectors"), "{err}");
    }
}

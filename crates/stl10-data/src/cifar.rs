//! The official binary versions of CIFAR-10 and CIFAR-100, unpacked or still in their
//! `.tar.gz` (read as a stream, nothing written).
//!
//! - CIFAR-10 (`cifar-10-binary.tar.gz` -> `cifar-10-batches-bin/`): `data_batch_1.bin` ..
//!   `data_batch_5.bin` (50,000 training images), `test_batch.bin` (10,000), `batches.meta.txt`
//!   (the class names); each record is 1 label byte and 3,072 pixel bytes.
//! - CIFAR-100 (`cifar-100-binary.tar.gz` -> `cifar-100-binary/`): `train.bin`, `test.bin`,
//!   `fine_label_names.txt`; each record is a coarse and a fine label byte (the 100 fine classes
//!   are used) and 3,072 pixel bytes.
//!
//! Pixels are the R, G and B planes of a 32x32 image, each row-major: the planar layout the
//! data set keeps in memory. `data.root` is the unpacked folder, the folder holding it, or the
//! folder holding the archive (or the archive itself).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{DataConfig, DataKind};
use crate::error::{DataError, Result};
use crate::images::{Dataset, ImageStore, Split};

/// CIFAR's image side.
pub const CIFAR_SIZE: usize = 32;
const PIXELS: usize = 3 * CIFAR_SIZE * CIFAR_SIZE;

/// What tells the two data sets apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The folder the archive unpacks to.
    pub folder: &'static str,
    pub archive: &'static str,
    pub train: &'static [&'static str],
    pub test: &'static str,
    pub names: &'static str,
    /// Label bytes before each image; the last one is the label used.
    pub label_bytes: usize,
    pub classes: usize,
}

pub const CIFAR10: Layout = Layout {
    folder: "cifar-10-batches-bin",
    archive: "cifar-10-binary.tar.gz",
    train: &[
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ],
    test: "test_batch.bin",
    names: "batches.meta.txt",
    label_bytes: 1,
    classes: 10,
};

pub const CIFAR100: Layout = Layout {
    folder: "cifar-100-binary",
    archive: "cifar-100-binary.tar.gz",
    train: &["train.bin"],
    test: "test.bin",
    names: "fine_label_names.txt",
    label_bytes: 2,
    classes: 100,
};

impl Layout {
    /// The layout of a CIFAR kind, `None` for the other kinds.
    pub fn of(kind: DataKind) -> Option<Layout> {
        match kind {
            DataKind::Cifar10 => Some(CIFAR10),
            DataKind::Cifar100 => Some(CIFAR100),
            _ => None,
        }
    }

    fn files(&self) -> Vec<&'static str> {
        let mut all = self.train.to_vec();
        all.extend([self.test, self.names]);
        all
    }
}

/// The files of `layout` under `root`, by name, from the unpacked folder or the archive.
fn read_files(root: &Path, layout: &Layout) -> Result<(HashMap<&'static str, Vec<u8>>, PathBuf)> {
    for dir in [root.join(layout.folder), root.to_path_buf()] {
        if dir.join(layout.test).is_file() {
            let mut files = HashMap::new();
            for name in layout.files() {
                let path = dir.join(name);
                let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
                files.insert(name, bytes);
            }
            return Ok((files, dir));
        }
    }
    let archive = if root.is_file() {
        root.to_path_buf()
    } else {
        root.join(layout.archive)
    };
    if !archive.is_file() {
        return Err(DataError::format(
            root,
            format!(
                "no {}/{} here, nor the archive {}",
                layout.folder, layout.test, layout.archive
            ),
        ));
    }
    Ok((read_archive(&archive, layout)?, archive))
}

/// The files of `layout` out of the tar.gz at `path`, streamed; an error names what is missing.
pub fn read_archive(path: &Path, layout: &Layout) -> Result<HashMap<&'static str, Vec<u8>>> {
    let bad = |e: std::io::Error| DataError::format(path, format!("cannot read the archive: {e}"));
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let wanted = layout.files();
    let mut files = HashMap::new();
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let entry_path = entry.path().map_err(bad)?.into_owned();
        let name = entry_path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        if let Some(&want) = wanted.iter().find(|&&w| w == name) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(bad)?;
            files.insert(want, bytes);
        }
    }
    if let Some(missing) = wanted.iter().find(|w| !files.contains_key(*w)) {
        return Err(DataError::format(path, format!("has no {missing}")));
    }
    Ok(files)
}

/// Images and labels of the records in `bytes` (from `file`, named in errors).
pub fn parse_records(bytes: &[u8], file: &Path, layout: &Layout) -> Result<(Vec<u8>, Vec<i64>)> {
    let record = layout.label_bytes + PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(DataError::format(
            file,
            format!(
                "size {} bytes is not a whole number of {record}-byte records",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / record;
    let (mut pixels, mut labels) = (Vec::with_capacity(n * PIXELS), Vec::with_capacity(n));
    for (i, r) in bytes.chunks_exact(record).enumerate() {
        let label = r[layout.label_bytes - 1];
        if usize::from(label) >= layout.classes {
            return Err(DataError::format(
                file,
                format!(
                    "label {label} of record {i} is outside 0..{}",
                    layout.classes
                ),
            ));
        }
        labels.push(i64::from(label));
        pixels.extend_from_slice(&r[layout.label_bytes..]);
    }
    Ok((pixels, labels))
}

/// One line per class, blank lines ignored; exactly `layout.classes` of them.
pub fn class_names(text: &[u8], file: &Path, layout: &Layout) -> Result<Vec<String>> {
    let names: Vec<String> = String::from_utf8_lossy(text)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != layout.classes {
        return Err(DataError::format(
            file,
            format!("names {} classes, {} expected", names.len(), layout.classes),
        ));
    }
    Ok(names)
}

/// Loads the training images as the labeled split and the test images as the test split (no
/// unlabeled split; `data.labeled_per_class` makes one).
pub fn load(cfg: &DataConfig) -> Result<Dataset> {
    let layout = Layout::of(cfg.kind).expect("called for a CIFAR kind");
    let (files, from) = read_files(&cfg.root, &layout)?;
    let at = |name: &str| from.join(name);
    let split = |names: &[&'static str]| -> Result<Split> {
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        for name in names {
            let (p, l) = parse_records(&files[name], &at(name), &layout)?;
            pixels.extend(p);
            labels.extend(l);
        }
        let store =
            Arc::new(ImageStore::from_chw(pixels, CIFAR_SIZE).with_origin(at(names[0]).display()));
        Ok(Split::new(store, Some(labels)))
    };
    Ok(Dataset {
        train: split(layout.train)?,
        unlabeled: Split::empty(CIFAR_SIZE),
        test: split(&[layout.test])?,
        class_names: class_names(&files[layout.names], &at(layout.names), &layout)?,
        image_size: CIFAR_SIZE,
        skipped: 0,
    })
}

//! Packed data sets, as `data pack` writes them ([`crate::pack`]) and `data.kind = "packed"`
//! reads them: per split, shards of `[n, H, W, 3]` uint8 images in numpy's `.npy` format
//! (memory-mapped, so numpy and PyTorch can map them too), int64 labels beside them, the source
//! of every image as text, and `manifest.json` with each file's size and SHA-256.
//!
//! ```text
//! ROOT/manifest.json            what is packed, from where; every file's size and SHA-256
//! ROOT/train/images-00000.npy   uint8 [n, H, W, 3]
//! ROOT/train/labels-00000.npy   int64 [n]
//! ROOT/train/sources-00000.txt  the source of each image, one a line
//! ROOT/unlabeled/...            images and sources only
//! ROOT/test/...
//! ROOT/fold_indices.txt         STL-10's folds, when packed from STL-10
//! ```
//!
//! Reading maps the shards and checks each one's size and `.npy` header against the manifest;
//! `data verify` ([`verify`]) hashes every byte.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use ndarray::{ArrayView1, ArrayView4};
use ndarray_npy::ViewNpyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::DataConfig;
use crate::error::{DataError, Result};
use crate::images::{CHANNELS, Dataset, ImageStore, Split};

/// `format` of every manifest this version writes and reads.
pub const FORMAT: &str = "simclr-rs packed data set, version 1";
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// STL-10's folds, copied beside the manifest.
pub const FOLDS: &str = "fold_indices.txt";

/// What a packed data set holds and where each file's bytes are vouched for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// Side of the square images.
    pub image_size: usize,
    /// The `data.kind` and `data.root` it was packed from.
    pub source_kind: String,
    pub source_root: PathBuf,
    pub class_names: Vec<String>,
    /// `fold_indices.txt` (STL-10's folds), when packed.
    pub folds: Option<FileRecord>,
    pub train: SplitManifest,
    pub unlabeled: SplitManifest,
    pub test: SplitManifest,
}

/// One split: its shards in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitManifest {
    pub images: usize,
    pub labeled: bool,
    pub shards: Vec<ShardRecord>,
}

/// One shard: which source images it covers, what it kept, its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRecord {
    /// Position in the source split of its first image, and how many it covers.
    pub first: usize,
    pub covers: usize,
    /// Images it holds (`covers` less those skipped).
    pub images: usize,
    /// Images, labels (labeled splits) and sources, relative to the data set's root.
    pub files: Vec<FileRecord>,
    pub skipped: Vec<Skipped>,
}

/// One file's size and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// A source image that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    pub source: String,
    pub problem: String,
}

impl Manifest {
    /// The splits with their names.
    pub fn splits(&self) -> [(&'static str, &SplitManifest); 3] {
        [
            ("train", &self.train),
            ("unlabeled", &self.unlabeled),
            ("test", &self.test),
        ]
    }

    /// Every file it vouches for.
    pub fn files(&self) -> impl Iterator<Item = &FileRecord> {
        self.splits()
            .into_iter()
            .flat_map(|(_, s)| s.shards.iter().flat_map(|r| r.files.iter()))
            .chain(&self.folds)
    }

    /// Every image skipped while packing.
    pub fn skipped(&self) -> impl Iterator<Item = &Skipped> {
        self.splits()
            .into_iter()
            .flat_map(|(_, s)| s.shards.iter().flat_map(|r| r.skipped.iter()))
    }

    /// Reads `ROOT/manifest.json`; a missing one means the pack never finished.
    pub fn read(root: &Path) -> Result<Self> {
        let path = root.join(MANIFEST);
        if !path.is_file() {
            return Err(DataError::format(
                &path,
                if root.join(crate::pack::PLAN).is_file() {
                    "missing: packing did not finish (run the same `data pack` again to resume)"
                } else {
                    "missing: not a packed data set (make one with `simclr-cli data pack`)"
                },
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| DataError::format(&path, format!("not a manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(DataError::format(
                &path,
                format!("format '{}', expected '{FORMAT}'", manifest.format),
            ));
        }
        let sizes = 1..=crate::config::MAX_IMAGE_SIZE;
        if !sizes.contains(&manifest.image_size) {
            return Err(DataError::format(
                &path,
                format!("image_size {} is outside {sizes:?}", manifest.image_size),
            ));
        }
        // Files are named below the root, never outside it.
        let inside = |name: &str| {
            !name.is_empty()
                && Path::new(name)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
        };
        if let Some(f) = manifest.files().find(|f| !inside(&f.name)) {
            return Err(DataError::format(
                &path,
                format!(
                    "file '{}' is not a path inside the data set's folder",
                    f.name
                ),
            ));
        }
        Ok(manifest)
    }
}

/// The reader whose preparation new images should get to look like `cfg`'s training images:
/// `cfg.kind`, or for a packed data set the kind it was packed from (an IDX pack's images are
/// grayscale made RGB); a pack whose manifest cannot be read counts as a folder.
pub fn prepared_as(cfg: &DataConfig) -> crate::DataKind {
    if cfg.kind != crate::DataKind::Packed {
        return cfg.kind;
    }
    Manifest::read(&cfg.root)
        .ok()
        .and_then(|m| serde_json::from_value(serde_json::Value::String(m.source_kind)).ok())
        .unwrap_or(crate::DataKind::Folder)
}

/// A file's size and SHA-256, read in 1 MiB pieces.
pub(crate) fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hex(&hasher.finalize())))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Memory-mapped image shards of one split, addressed as one run of images.
pub(crate) struct Shards {
    maps: Vec<(Mmap, usize, PathBuf)>,
    /// `starts[k]`: the first image of shard `k`; one more entry, the total.
    starts: Vec<usize>,
}

impl Shards {
    pub(crate) fn len(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    fn locate(&self, i: usize) -> (usize, usize) {
        let shard = self.starts.partition_point(|&s| s <= i) - 1;
        (shard, i - self.starts[shard])
    }

    /// Image `i`'s `n` bytes.
    pub(crate) fn image(&self, i: usize, n: usize) -> &[u8] {
        let (shard, row) = self.locate(i);
        let (map, offset, _) = &self.maps[shard];
        &map[offset + row * n..offset + (row + 1) * n]
    }

    /// `images-00003.npy#17`.
    pub(crate) fn source(&self, i: usize) -> String {
        let (shard, row) = self.locate(i);
        format!("{}#{row}", self.maps[shard].2.display())
    }
}

/// Maps a file of the pack after checking its size against the manifest.
fn map_checked(path: &Path, record: &FileRecord) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    if len != record.bytes {
        return Err(DataError::format(
            path,
            format!(
                "{len} bytes, the manifest says {} (truncated or rewritten? `data verify` checks \
                 every file)",
                record.bytes
            ),
        ));
    }
    if len == 0 {
        return Err(DataError::format(path, "is empty"));
    }
    // SAFETY: opened read-only; a packed data set is not written while it is read (packing
    // writes new files and renames them into place).
    unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))
}

/// Maps an image shard and checks its size and `.npy` header: uint8, `[images, size, size, 3]`,
/// C order.
fn map_shard(
    path: &Path,
    record: &FileRecord,
    images: usize,
    size: usize,
) -> Result<(Mmap, usize)> {
    let map = map_checked(path, record)?;
    let view = ArrayView4::<u8>::view_npy(&map)
        .map_err(|e| DataError::format(path, format!("not a uint8 4-D .npy array: {e}")))?;
    let want = [images, size, size, CHANNELS];
    if view.shape() != want || !view.is_standard_layout() {
        return Err(DataError::format(
            path,
            format!(
                "holds an array of shape {:?}, the manifest says {want:?} in C order",
                view.shape()
            ),
        ));
    }
    let offset = view.as_ptr() as usize - map.as_ptr() as usize;
    Ok((map, offset))
}

fn file_named<'a>(record: &'a ShardRecord, prefix: &str) -> Option<&'a FileRecord> {
    record.files.iter().find(|f| {
        Path::new(&f.name)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
    })
}

/// One split of the pack: its mapped images and, when labeled, its labels (each in
/// `0..classes`).
fn open_split(
    root: &Path,
    name: &str,
    split: &SplitManifest,
    size: usize,
    classes: usize,
) -> Result<Split> {
    if split.shards.is_empty() && split.images == 0 {
        // As the readers give a split the source lacks.
        return Ok(Split::empty(size));
    }
    let mut maps = Vec::with_capacity(split.shards.len());
    let mut starts = vec![0];
    let mut labels = Vec::new();
    let missing = |what: &str| {
        DataError::format(
            root.join(MANIFEST),
            format!("a {name} shard lists no {what} file"),
        )
    };
    for record in &split.shards {
        let images = file_named(record, "images-").ok_or_else(|| missing("images"))?;
        let path = root.join(&images.name);
        let (map, offset) = map_shard(&path, images, record.images, size)?;
        maps.push((map, offset, PathBuf::from(&images.name)));
        starts.push(starts.last().copied().unwrap_or(0) + record.images);
        if split.labeled {
            let file = file_named(record, "labels-").ok_or_else(|| missing("labels"))?;
            let path = root.join(&file.name);
            let map = map_checked(&path, file)?;
            let got = ArrayView1::<i64>::view_npy(&map)
                .map_err(|e| DataError::format(&path, format!("not an int64 .npy vector: {e}")))?;
            if got.len() != record.images {
                return Err(DataError::format(
                    &path,
                    format!("{} labels for {} images", got.len(), record.images),
                ));
            }
            if let Some(bad) = got.iter().find(|&&l| l < 0 || l as usize >= classes) {
                return Err(DataError::format(
                    &path,
                    format!("label {bad} is outside 0..{classes}"),
                ));
            }
            labels.extend(got.iter().copied());
        }
    }
    let shards = Shards { maps, starts };
    if shards.len() != split.images {
        return Err(DataError::format(
            root.join(MANIFEST),
            format!(
                "{name}: {} images in its shards, {} in its count",
                shards.len(),
                split.images
            ),
        ));
    }
    let store = Arc::new(ImageStore::sharded(shards, size));
    Ok(Split::new(store, split.labeled.then_some(labels)))
}

/// Opens the packed data set at `cfg.root`: every shard mapped and its header checked, labels
/// read; STL-10's `data.fold` applied when the pack has the folds.
pub fn load(cfg: &DataConfig) -> Result<Dataset> {
    let root = &cfg.root;
    let m = Manifest::read(root)?;
    if m.image_size != cfg.image_size {
        return Err(DataError::config(
            "image_size",
            format!(
                "the data set packed at {} holds {s}x{s} images, got {}",
                root.display(),
                cfg.image_size,
                s = m.image_size
            ),
        ));
    }
    if let Some(names) = cfg.class_names.as_ref().filter(|n| **n != m.class_names) {
        return Err(DataError::config(
            "class_names",
            format!(
                "{names:?} differ from the classes packed at {}: {:?}",
                root.display(),
                m.class_names
            ),
        ));
    }
    let classes = m.class_names.len();
    let mut train = open_split(root, "train", &m.train, m.image_size, classes)?;
    if let Some(fold) = cfg.fold {
        let Some(folds) = &m.folds else {
            return Err(DataError::config(
                "fold",
                format!(
                    "the data set packed at {} has no folds (only STL-10's are packed)",
                    root.display()
                ),
            ));
        };
        let path = root.join(&folds.name);
        let map = map_checked(&path, folds)?;
        let text =
            std::str::from_utf8(&map).map_err(|_| DataError::format(&path, "is not text"))?;
        let indices = crate::stl10::parse_fold(text, fold, train.len(), &path)?;
        train = train.select(&indices);
    }
    let unlabeled = open_split(root, "unlabeled", &m.unlabeled, m.image_size, classes)?;
    let test = open_split(root, "test", &m.test, m.image_size, classes)?;
    Ok(Dataset {
        train,
        unlabeled,
        test,
        class_names: m.class_names.clone(),
        image_size: m.image_size,
        skipped: m.skipped().count(),
    })
}

/// What `data verify` found: files and bytes checked, and every file that differs from the
/// manifest (named, with what differs).
#[derive(Debug, Clone, Default)]
pub struct Verified {
    pub files: usize,
    pub bytes: u64,
    pub problems: Vec<String>,
}

/// Hashes every file the manifest at `root` lists and compares size and SHA-256, then opens
/// the data set as training does (headers, shapes, labels). An unreadable manifest is an error;
/// files that differ are listed in [`Verified::problems`].
pub fn verify(root: &Path) -> Result<Verified> {
    let m = Manifest::read(root)?;
    let mut out = Verified::default();
    for file in m.files() {
        let path = root.join(&file.name);
        out.files += 1;
        match hash_file(&path) {
            Err(e) => out.problems.push(e.to_string()),
            Ok((bytes, sha)) => {
                out.bytes += bytes;
                if bytes != file.bytes {
                    out.problems.push(format!(
                        "{}: {bytes} bytes, the manifest says {}",
                        path.display(),
                        file.bytes
                    ));
                } else if sha != file.sha256 {
                    out.problems.push(format!(
                        "{}: SHA-256 mismatch: the file hashes to {sha}, the manifest \
                         says {}",
                        path.display(),
                        file.sha256
                    ));
                }
            }
        }
    }
    if out.problems.is_empty() {
        let cfg = DataConfig {
            kind: crate::DataKind::Packed,
            root: root.to_path_buf(),
            image_size: m.image_size,
            ..DataConfig::default()
        };
        if let Err(e) = load(&cfg) {
            out.problems.push(e.to_string());
        }
    }
    Ok(out)
}

//! `data pack`: any data set the readers read, written once as the packed data set
//! [`crate::packed`] describes, so training maps it instead of decoding it.
//!
//! Shards are decoded on all cores, one at a time (memory holds one shard), and each is written
//! atomically with a record of its files' SHA-256; the manifest comes last. An interrupted pack
//! run again with the same source and options keeps every finished shard whose files still hash
//! to their record (never rewriting one) and packs the rest; the result is the same bytes as an
//! uninterrupted pack.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use ndarray::{ArrayView1, ArrayView4};
use ndarray_npy::WriteNpyExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{DataConfig, DataKind};
use crate::error::{DataError, Result};
use crate::images::{CHANNELS, Dataset, Split};
use crate::packed::{
    FOLDS, FORMAT, FileRecord, MANIFEST, Manifest, ShardRecord, Skipped, SplitManifest, hash_file,
    hex,
};

/// What an unfinished pack writes first: the source and options its shards are cut from.
pub const PLAN: &str = "pack-plan.json";

/// How to pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackOptions {
    /// Target size of an image shard in bytes (a shard holds at least one image).
    pub shard_bytes: usize,
    /// Skip and list images that cannot be read, instead of stopping at the first.
    pub skip_unreadable: bool,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            shard_bytes: 256 << 20,
            skip_unreadable: false,
        }
    }
}

/// Told how packing goes; may ask it to stop after the current shard.
pub trait PackObserver {
    /// Packing `total` images, of which `done` are in shards kept from an earlier run.
    fn start(&mut self, _total: usize, _done: usize) {}
    /// Another `images` source images are packed.
    fn packed(&mut self, _images: usize) {}
    /// Asked between shards: stop now (the finished shards stay for the next run).
    fn should_stop(&self) -> bool {
        false
    }
}

/// An observer that sees nothing and never stops.
impl PackObserver for () {}

/// How a pack ended.
#[derive(Debug, Clone)]
pub struct PackOutcome {
    /// The manifest written, or `None` when stopped before the end.
    pub manifest: Option<Manifest>,
    pub shards_written: usize,
    /// Shards from an earlier run, verified and kept.
    pub shards_kept: usize,
    /// The pack was already finished: nothing was read or written.
    pub already_packed: bool,
    /// The configuration's training-time selections (`data.fold`, `data.labeled_per_class`)
    /// that packing set aside: a pack keeps every image, and they apply when training on it.
    pub set_aside: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plan {
    format: String,
    image_size: usize,
    source_kind: String,
    source_root: PathBuf,
    class_names: Vec<String>,
    shard_images: usize,
    source_images: [usize; 3],
    folds: bool,
    skip_unreadable: bool,
}

const SPLITS: [&str; 3] = ["train", "unlabeled", "test"];

fn kind_name(kind: DataKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `root/name` atomically (a temporary file in the same folder, synced, renamed) with
/// `write`, and returns its record.
fn write_file(
    root: &Path,
    name: &str,
    write: impl FnOnce(&mut dyn Write) -> std::result::Result<(), String>,
) -> Result<FileRecord> {
    let path = root.join(name);
    let dir = path.parent().unwrap_or(root);
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| DataError::io(dir, e))?;
    let (bytes, sha256) = {
        let mut out = Hashing {
            inner: BufWriter::new(tmp.as_file()),
            hasher: Sha256::new(),
            bytes: 0,
        };
        write(&mut out).map_err(|e| DataError::format(&path, format!("cannot write: {e}")))?;
        out.flush().map_err(|e| DataError::io(&path, e))?;
        (out.bytes, hex(&out.hasher.finalize()))
    };
    tmp.as_file()
        .sync_all()
        .map_err(|e| DataError::io(&path, e))?;
    tmp.persist(&path)
        .map_err(|e| DataError::io(&path, e.error))?;
    Ok(FileRecord {
        name: name.to_string(),
        bytes,
        sha256,
    })
}

fn write_json<T: Serialize>(root: &Path, name: &str, value: &T) -> Result<()> {
    write_file(root, name, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(|e| e.to_string())?;
        w.write_all(b"\n").map_err(|e| e.to_string())
    })
    .map(|_| ())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| DataError::format(path, format!("unreadable: {e}")))
}

/// Makes the renames in `dir` durable (a folder that does not exist has none).
fn sync_dir(dir: &Path) -> Result<()> {
    match std::fs::File::open(dir) {
        Ok(f) => f.sync_all().map_err(|e| DataError::io(dir, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DataError::io(dir, e)),
    }
}

/// Deletes what an interrupted run left half-written: the temporary files (`.tmp*`) of `out`
/// and its split folders.
fn remove_temporary_files(out: &Path, splits: &[&str]) {
    for dir in splits
        .iter()
        .map(|s| out.join(s))
        .chain([out.to_path_buf()])
    {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            let temporary = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"));
            if temporary && path.is_file() {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Whether every file of `record` still hashes to what it says.
fn intact(root: &Path, record: &ShardRecord) -> bool {
    record.files.iter().all(|f| {
        hash_file(&root.join(&f.name)).is_ok_and(|(bytes, sha)| bytes == f.bytes && sha == f.sha256)
    })
}

/// Source images `first..first + covers` of `split`, decoded on all cores and written as shard
/// `index`.
fn write_shard(
    root: &Path,
    name: &str,
    split: &Split,
    (index, first, covers): (usize, usize, usize),
    skip: bool,
) -> Result<ShardRecord> {
    let store = split.store();
    let size = split.image_size();
    let n = CHANNELS * size * size;
    // Decoded on all cores straight into the shard's buffer: memory holds one shard.
    let mut pixels = vec![0u8; covers * n];
    let decoded: Vec<Result<()>> = pixels
        .par_chunks_mut(n)
        .zip(first..first + covers)
        .map(|(out, p)| {
            let rgb = store.rgb(split.store_index(p))?;
            out.copy_from_slice(&rgb);
            Ok(())
        })
        .collect();
    let (mut labels, mut sources, mut skipped) = (Vec::new(), String::new(), Vec::new());
    let mut kept = 0;
    for (p, image) in (first..).zip(decoded) {
        let source = store.source(split.store_index(p));
        match image {
            Ok(()) => {
                // Skipped images leave gaps: the kept ones move down over them.
                let at = (p - first) * n;
                pixels.copy_within(at..at + n, kept * n);
                kept += 1;
                if let Some(l) = split.labels() {
                    labels.push(l[p]);
                }
                sources.push_str(&source.replace('\n', " "));
                sources.push('\n');
            }
            Err(e @ (DataError::Image { .. } | DataError::Io { .. })) => {
                if !skip {
                    return Err(e);
                }
                tracing::warn!("skipped: {e}");
                skipped.push(Skipped {
                    source,
                    problem: e.to_string(),
                });
            }
            Err(e) => return Err(e),
        }
    }
    pixels.truncate(kept * n);
    let images = kept;
    let stem = |what: &str, ext: &str| format!("{name}/{what}-{index:05}.{ext}");
    let array = ArrayView4::from_shape((images, size, size, CHANNELS), &pixels)
        .map_err(|e| DataError::format(root, e.to_string()))?;
    let mut files = vec![write_file(root, &stem("images", "npy"), |w| {
        array.write_npy(w).map_err(|e| e.to_string())
    })?];
    if split.labels().is_some() {
        let labels = ArrayView1::from(&labels);
        files.push(write_file(root, &stem("labels", "npy"), |w| {
            labels.write_npy(w).map_err(|e| e.to_string())
        })?);
    }
    files.push(write_file(root, &stem("sources", "txt"), |w| {
        w.write_all(sources.as_bytes()).map_err(|e| e.to_string())
    })?);
    Ok(ShardRecord {
        first,
        covers,
        images,
        files,
        skipped,
    })
}

fn plan_of(
    cfg: &DataConfig,
    ds: &Dataset,
    shard_images: usize,
    folds: bool,
    skip_unreadable: bool,
) -> Plan {
    Plan {
        format: FORMAT.into(),
        image_size: ds.image_size,
        source_kind: kind_name(cfg.kind),
        source_root: std::path::absolute(&cfg.root).unwrap_or_else(|_| cfg.root.clone()),
        class_names: ds.class_names.clone(),
        shard_images,
        source_images: [ds.train.len(), ds.unlabeled.len(), ds.test.len()],
        folds,
        skip_unreadable,
    }
}

/// Packs the data set `cfg` describes into `out`, telling `observer` how it goes. Every image
/// of every split is packed: `data.fold` and `data.labeled_per_class` apply when training on
/// the pack, and are set aside here ([`PackOutcome::set_aside`]).
pub fn pack(
    cfg: &DataConfig,
    out: &Path,
    options: &PackOptions,
    observer: &mut dyn PackObserver,
) -> Result<PackOutcome> {
    cfg.validate()?;
    if cfg.kind == DataKind::Packed {
        return Err(DataError::config(
            "kind",
            "the source is packed already (`data verify` checks it)",
        ));
    }
    // Selections made when training: the pack keeps every image, label and fold.
    let set_aside: Vec<&'static str> = [
        cfg.fold.map(|_| "data.fold"),
        cfg.labeled_per_class.map(|_| "data.labeled_per_class"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let cfg = &DataConfig {
        fold: None,
        labeled_per_class: None,
        ..cfg.clone()
    };
    if options.shard_bytes == 0 {
        return Err(DataError::Batching(
            "the shard size must be at least 1 byte (--shard-mib)".into(),
        ));
    }
    if out.join(MANIFEST).is_file() {
        let manifest = Manifest::read(out)?;
        let root = std::path::absolute(&cfg.root).unwrap_or_else(|_| cfg.root.clone());
        let same = (
            &manifest.source_kind,
            &manifest.source_root,
            manifest.image_size,
        ) == (&kind_name(cfg.kind), &root, cfg.image_size);
        if !same {
            return Err(DataError::format(
                out.join(MANIFEST),
                format!(
                    "{} holds a pack of another source ({} at {}, {s}x{s}); pack into another \
                     folder",
                    out.display(),
                    manifest.source_kind,
                    manifest.source_root.display(),
                    s = manifest.image_size
                ),
            ));
        }
        return Ok(PackOutcome {
            manifest: Some(manifest),
            shards_written: 0,
            shards_kept: 0,
            already_packed: true,
            set_aside,
        });
    }
    let ds = crate::read(cfg, true)?;
    let image_bytes = CHANNELS * ds.image_size * ds.image_size;
    let shard_images = (options.shard_bytes / image_bytes).max(1);
    let folds_file = (cfg.kind == DataKind::Stl10)
        .then(|| crate::stl10::binary_dir(&cfg.root).join(FOLDS))
        .filter(|p| p.is_file());
    let plan = plan_of(
        cfg,
        &ds,
        shard_images,
        folds_file.is_some(),
        options.skip_unreadable,
    );
    let plan_path = out.join(PLAN);
    if plan_path.is_file() {
        let earlier: Plan = read_json(&plan_path)?;
        if earlier != plan {
            return Err(DataError::format(
                &plan_path,
                format!(
                    "an unfinished pack of another source or options is here ({} at {}, {} \
                     images a shard, {}); run it as it was, pack into another folder, or delete \
                     this one",
                    earlier.source_kind,
                    earlier.source_root.display(),
                    earlier.shard_images,
                    if earlier.skip_unreadable {
                        "--skip-unreadable"
                    } else {
                        "stopping at unreadable images"
                    }
                ),
            ));
        }
    } else {
        std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
        write_json(out, PLAN, &plan)?;
    }
    remove_temporary_files(out, &SPLITS);
    let folds = match &folds_file {
        Some(folds) => {
            let text = std::fs::read(folds).map_err(|e| DataError::io(folds, e))?;
            Some(write_file(out, FOLDS, |w| {
                w.write_all(&text).map_err(|e| e.to_string())
            })?)
        }
        None => None,
    };

    let splits = [&ds.train, &ds.unlabeled, &ds.test];
    let cuts = |n: usize| {
        (0..n.div_ceil(shard_images)).map(move |k| {
            let first = k * shard_images;
            (k, first, shard_images.min(n - first))
        })
    };
    // Shards kept from an earlier run: their record is there and their files hash to it.
    let mut records: [Vec<Option<ShardRecord>>; 3] = Default::default();
    let mut done = 0;
    for ((name, split), records) in SPLITS.iter().zip(splits).zip(&mut records) {
        for (k, first, covers) in cuts(split.len()) {
            let path = out.join(format!("{name}/shard-{k:05}.json"));
            let kept = path
                .is_file()
                .then(|| read_json::<ShardRecord>(&path).ok())
                .flatten()
                .filter(|r| r.first == first && r.covers == covers && intact(out, r));
            if kept.is_some() {
                done += covers;
            }
            records.push(kept);
        }
    }
    let total: usize = splits.iter().map(|s| s.len()).sum();
    observer.start(total, done);
    let (mut written, kept) = (0, records.iter().flatten().flatten().count());
    for ((name, split), records) in SPLITS.iter().zip(splits).zip(&mut records) {
        for (k, first, covers) in cuts(split.len()) {
            if records[k].is_some() {
                continue;
            }
            if observer.should_stop() {
                return Ok(PackOutcome {
                    manifest: None,
                    shards_written: written,
                    shards_kept: kept,
                    already_packed: false,
                    set_aside,
                });
            }
            let record = write_shard(
                out,
                name,
                split,
                (k, first, covers),
                options.skip_unreadable,
            )?;
            write_json(out, &format!("{name}/shard-{k:05}.json"), &record)?;
            records[k] = Some(record);
            written += 1;
            observer.packed(covers);
        }
    }
    let [train, unlabeled, test] = records.map(|r| r.into_iter().flatten().collect::<Vec<_>>());
    let split_manifest = |shards: Vec<ShardRecord>, labeled: bool| SplitManifest {
        images: shards.iter().map(|s| s.images).sum(),
        labeled,
        shards,
    };
    let manifest = Manifest {
        format: FORMAT.into(),
        image_size: ds.image_size,
        source_kind: plan.source_kind,
        source_root: plan.source_root,
        class_names: ds.class_names.clone(),
        folds,
        train: split_manifest(train, true),
        unlabeled: split_manifest(unlabeled, false),
        test: split_manifest(test, true),
    };
    // Every shard's rename is on disk before the manifest that vouches for it.
    for dir in SPLITS
        .iter()
        .map(|s| out.join(s))
        .chain([out.to_path_buf()])
    {
        sync_dir(&dir)?;
    }
    write_json(out, MANIFEST, &manifest)?;
    sync_dir(out)?;
    // The manifest now vouches for every shard; the plan and the records served the resume.
    for (name, split) in SPLITS.iter().zip(splits) {
        for (k, _, _) in cuts(split.len()) {
            let _ = std::fs::remove_file(out.join(format!("{name}/shard-{k:05}.json")));
        }
    }
    let _ = std::fs::remove_file(&plan_path);
    Ok(PackOutcome {
        manifest: Some(manifest),
        shards_written: written,
        shards_kept: kept,
        already_packed: false,
        set_aside,
    })
}

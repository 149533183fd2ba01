//! WebDataset tar shards: `ROOT/train/*.tar`, optional `ROOT/unlabeled/*.tar` and
//! `ROOT/test/*.tar`, each sample the members of a shard sharing a key (`KEY.jpg` or `KEY.png`,
//! and in labeled shards `KEY.cls`, the class number as text; keys with neither, and hidden
//! files, are ignored). Class names come from
//! `ROOT/classes.txt` (one a line) when present, else they are the numbers themselves.
//!
//! Shards are indexed, not unpacked: each image is read at its offset when a batch needs it (or
//! all of them before training, as `data.streaming` decides), and decoded as the folder reader
//! decodes files.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::DataConfig;
use crate::encoded::Encoded;
use crate::error::{DataError, Result};
use crate::folder::{Decode, store_of};
use crate::images::{Dataset, Split};

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];
/// Largest `.cls` member read (a class number and a newline).
const MAX_CLS_BYTES: u64 = 64;

/// The shards of one split, sorted by name.
fn shards(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "tar") {
            found.push(path);
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(DataError::format(dir, "holds no .tar shards"));
    }
    Ok(found)
}

/// A sample's key and member extension: WebDataset's split at the first dot of the file name,
/// which must have a character before it (hidden files such as macOS's `._x.jpg` have none and
/// are not samples).
fn key_and_extension(name: &str) -> Option<(&str, String)> {
    let base = name.rfind('/').map_or(0, |i| i + 1);
    let dot = name[base..].find('.')? + base;
    (dot > base).then(|| (&name[..dot], name[dot + 1..].to_ascii_lowercase()))
}

/// A sample's image member (name, offset, length) and class, as far as read.
type Sample = (Option<(String, u64, u64)>, Option<i64>);

/// One split's images (in shard order, then member order) and, when `labeled`, their classes.
fn index_split(dir: &Path, labeled: bool) -> Result<(Encoded, Vec<i64>)> {
    let mut enc = Encoded::new();
    let mut labels = Vec::new();
    for shard in shards(dir)? {
        let file = File::open(&shard).map_err(|e| DataError::io(&shard, e))?;
        let shard_len = file.metadata().map_err(|e| DataError::io(&shard, e))?.len();
        let number = enc.push_file(shard.clone());
        let mut archive = tar::Archive::new(file);
        let entries = archive
            .entries_with_seek()
            .map_err(|e| DataError::io(&shard, e))?;
        // Per key, in the order keys first appear: its image member and class.
        let mut order: Vec<String> = Vec::new();
        let mut samples: HashMap<String, Sample> = HashMap::new();
        for entry in entries {
            let mut entry = entry.map_err(|e| DataError::io(&shard, e))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some((key, ext)) = key_and_extension(&name) else {
                continue;
            };
            let key = key.to_string();
            let sample = samples.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                (None, None)
            });
            if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                if sample.0.is_some() {
                    return Err(DataError::format(
                        &shard,
                        format!("sample '{key}' has more than one image"),
                    ));
                }
                let (offset, len) = (entry.raw_file_position(), entry.size());
                if offset.checked_add(len).is_none_or(|end| end > shard_len) {
                    return Err(DataError::format(
                        &shard,
                        format!("{name}: {len} bytes at {offset} run past the shard's end"),
                    ));
                }
                sample.0 = Some((name, offset, len));
            } else if ext == "cls" && labeled {
                let mut text = String::new();
                entry
                    .by_ref()
                    .take(MAX_CLS_BYTES)
                    .read_to_string(&mut text)
                    .map_err(|e| DataError::io(&shard, e))?;
                let class = text.trim().parse::<i64>().ok().filter(|c| *c >= 0);
                sample.1 = Some(class.ok_or_else(|| {
                    DataError::format(
                        &shard,
                        format!("{name}: '{}' is not a class number", text.trim()),
                    )
                })?);
            }
        }
        for key in order {
            let (image, class) = samples.remove(&key).unwrap_or_default();
            let Some((name, offset, len)) = image else {
                if class.is_none() {
                    // Only members of other kinds (`.json`, `.txt`): not an image sample.
                    continue;
                }
                return Err(DataError::format(
                    &shard,
                    format!("sample '{key}' has no .jpg, .jpeg or .png member"),
                ));
            };
            if labeled {
                let class = class.ok_or_else(|| {
                    DataError::format(&shard, format!("sample '{key}' has no .cls member"))
                })?;
                labels.push(class);
            }
            enc.push_member(number, &name, offset, len);
        }
    }
    Ok((enc, labels))
}

/// The class names: `ROOT/classes.txt`, or "0".."n-1" for the `n` classes the labels use.
fn class_names(root: &Path, labels: &[i64]) -> Result<Vec<String>> {
    let path = root.join("classes.txt");
    if path.is_file() {
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        let names = crate::stl10::name_lines(&text);
        if names.is_empty() {
            return Err(DataError::format(&path, "holds no class names"));
        }
        return Ok(names);
    }
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    Ok((0..classes).map(|c| c.to_string()).collect())
}

/// The store of an indexed labeled split, its kept labels and how many images it skipped.
fn labeled_split(
    (enc, labels): (Encoded, Vec<i64>),
    dir: &Path,
    cfg: &DataConfig,
    how: Decode,
    classes: Option<usize>,
) -> Result<(Split, Vec<i64>, usize)> {
    let total = enc.len();
    let (store, kept) = store_of(enc, cfg.image_size, cfg.skip_unreadable, how)?;
    let labels: Vec<i64> = kept.iter().map(|&i| labels[i]).collect();
    if let Some(classes) = classes
        && let Some(bad) = labels.iter().find(|&&l| l as usize >= classes)
    {
        return Err(DataError::format(
            dir,
            format!("class {bad} is outside the {classes} classes of classes.txt or train/"),
        ));
    }
    Ok((
        Split::new(Arc::new(store), Some(labels.clone())),
        labels,
        total - kept.len(),
    ))
}

/// Indexes `ROOT/train`, `ROOT/unlabeled` (if present) and `ROOT/test` (if present), and
/// decodes them first or streams them as `cfg.streaming` decides; `index`: indexes only.
pub(crate) fn load(cfg: &DataConfig, index: bool) -> Result<Dataset> {
    let size = cfg.image_size;
    let train_dir = cfg.root.join("train");
    if !train_dir.is_dir() {
        return Err(DataError::format(
            &train_dir,
            "missing: a WebDataset root needs ROOT/train/*.tar shards",
        ));
    }
    let unlabeled_dir = cfg.root.join("unlabeled");
    let unlabeled = if unlabeled_dir.is_dir() {
        Some(index_split(&unlabeled_dir, false)?.0)
    } else {
        None
    };
    let indexed = index_split(&train_dir, true)?;
    let images = indexed.0.len() + unlabeled.as_ref().map_or(0, Encoded::len);
    let how = Decode::choose(cfg, images, index);
    let (train, train_labels, mut skipped) = labeled_split(indexed, &train_dir, cfg, how, None)?;
    let class_names = class_names(&cfg.root, &train_labels)?;
    if let Some(bad) = train_labels
        .iter()
        .find(|&&l| l as usize >= class_names.len())
    {
        return Err(DataError::format(
            cfg.root.join("classes.txt"),
            format!(
                "names {} classes, but train/ uses class {bad}",
                class_names.len()
            ),
        ));
    }
    let unlabeled = match unlabeled {
        Some(enc) => {
            let total = enc.len();
            let (store, kept) = store_of(enc, size, cfg.skip_unreadable, how)?;
            skipped += total - kept.len();
            Split::new(Arc::new(store), None)
        }
        None => Split::empty(size),
    };
    let test_dir = cfg.root.join("test");
    let test = if test_dir.is_dir() {
        let indexed = index_split(&test_dir, true)?;
        let (test, _, test_skipped) =
            labeled_split(indexed, &test_dir, cfg, how, Some(class_names.len()))?;
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

#[cfg(test)]
mod tests {
    use super::key_and_extension;

    #[test]
    fn keys_split_at_the_first_dot_of_the_file_name() {
        assert_eq!(
            key_and_extension("a/b.c/x01.seg.PNG"),
            Some(("a/b.c/x01", "seg.png".into()))
        );
        assert_eq!(key_and_extension("x.cls"), Some(("x", "cls".into())));
        assert_eq!(key_and_extension("dir.d/noext"), None);
        assert_eq!(key_and_extension("dir/._x01.jpg"), None);
    }
}

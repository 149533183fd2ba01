//! Atomic files and safetensors checkpoints of variable groups.
//!
//! Every file is written to a temporary name beside its destination and renamed into place, so
//! an interrupted run never leaves a truncated checkpoint or report behind.

use std::path::{Path, PathBuf};

use tch::Tensor;
use tch::nn::VarStore;

use crate::error::{Result, TrainError};

/// A sibling of `path` to write first: `.NAME.partial.EXT` (the extension is kept, since
/// libtorch picks the checkpoint format from it).
fn partial(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = match name.rsplit_once('.') {
        Some((stem, ext)) => format!(".{stem}.partial.{ext}"),
        None => format!(".{name}.partial"),
    };
    path.with_file_name(tmp)
}

/// Writes `path` through `write(tmp)` and renames the finished file into place.
pub fn atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let tmp = partial(path);
    let written = write(&tmp).and_then(|()| {
        // On disk before the rename, so not even a power cut leaves a renamed, empty file.
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| TrainError::io(&tmp, e))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// Writes `contents` to `path` atomically.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    atomic(path, |tmp| {
        std::fs::write(tmp, contents.as_ref()).map_err(|e| TrainError::io(tmp, e))
    })
}

/// Saves the variables of `vs` whose names start with one of `prefixes` to `path`
/// (safetensors), atomically. Channels-last variables are saved contiguous.
pub fn save(vs: &VarStore, prefixes: &[&str], path: &Path) -> Result<()> {
    let named = variables(vs, |name| {
        prefixes.iter().any(|p| name.starts_with(&format!("{p}.")))
    });
    if named.is_empty() {
        return Err(TrainError::file(
            path,
            format!("no variables under {prefixes:?} to save"),
        ));
    }
    atomic(path, |tmp| {
        Tensor::write_safetensors(&named, tmp).map_err(|e| TrainError::file(tmp, e.to_string()))
    })
}

/// The variables of `vs` whose names `keep`, contiguous (channels-last kernels in NCHW order),
/// sorted by name: what checkpoints store.
pub(crate) fn variables(vs: &VarStore, keep: impl Fn(&str) -> bool) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(name, _)| keep(name))
        .map(|(name, t)| (name, t.contiguous()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// Copies every variable of `vs` under `prefix` from the safetensors file `path`, checking that
/// each is present with the same shape. Returns how many were loaded.
pub fn load(vs: &VarStore, prefix: &str, path: &Path) -> Result<usize> {
    let stored = Tensor::read_safetensors(path)
        .map_err(|e| TrainError::file(path, format!("cannot read checkpoint: {e}")))?;
    let stored: std::collections::HashMap<String, Tensor> = stored.into_iter().collect();
    let mut loaded = 0;
    for (name, var) in vs.variables() {
        if !name.starts_with(&format!("{prefix}.")) {
            continue;
        }
        let src = stored.get(&name).ok_or_else(|| {
            TrainError::file(
                path,
                format!("has no '{name}' (not a {prefix} checkpoint?)"),
            )
        })?;
        if src.size() != var.size() {
            return Err(TrainError::file(
                path,
                format!(
                    "'{name}' has shape {:?}, the model expects {:?} (other width or image size?)",
                    src.size(),
                    var.size()
                ),
            ));
        }
        tch::no_grad(|| {
            var.shallow_clone()
                .copy_(&src.to_kind(var.kind()).to_device(var.device()))
        });
        loaded += 1;
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, nn};

    #[test]
    fn saves_and_loads_one_prefix_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc.safetensors");
        let a = nn::VarStore::new(Device::Cpu);
        let _x = a.root().sub("encoder").randn("w", &[3, 2], 0.0, 1.0);
        let _y = a.root().sub("head").randn("w", &[2], 0.0, 1.0);
        save(&a, &["encoder"], &path).unwrap();
        assert!(!dir.path().join(".enc.partial.safetensors").exists());
        let names: Vec<String> = Tensor::read_safetensors(&path)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["encoder.w"]);

        let b = nn::VarStore::new(Device::Cpu);
        let w = b.root().sub("encoder").zeros("w", &[3, 2]);
        assert_eq!(load(&b, "encoder", &path).unwrap(), 1);
        assert!(w.equal(&a.variables()["encoder.w"]));

        let c = nn::VarStore::new(Device::Cpu);
        let _w = c.root().sub("encoder").zeros("w", &[4, 2]);
        let e = load(&c, "encoder", &path).unwrap_err().to_string();
        assert!(
            e.contains("enc.safetensors") && e.contains("[3, 2]") && e.contains("[4, 2]"),
            "{e}"
        );
        let d = nn::VarStore::new(Device::Cpu);
        let _w = d.root().sub("classifier").zeros("w", &[1]);
        let e = load(&d, "classifier", &path).unwrap_err().to_string();
        assert!(e.contains("has no 'classifier.w'"), "{e}");
        std::fs::write(&path, b"garbage").unwrap();
        let e = load(&b, "encoder", &path).unwrap_err().to_string();
        assert!(e.contains("cannot read checkpoint"), "{e}");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.md");
        write_file(&path, "first").unwrap();
        let err = atomic(&path, |_| Err(TrainError::file("x", "boom")));
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no partial file left"
        );
    }
}

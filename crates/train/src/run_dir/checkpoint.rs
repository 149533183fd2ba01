//! Safetensors checkpoints of variable groups (`encoder.*`, `classifier.*`, ...), written
//! atomically.

use std::path::Path;

use tch::Tensor;
use tch::nn::VarStore;

use crate::error::{Result, TrainError};
use crate::run_dir::atomic::atomic;

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
    load_renamed(vs, prefix, path, prefix)
}

/// [`load`], reading each variable `prefix.x` of `vs` from `file_prefix.x` in the file (the
/// linear probe's `linear_probe.dense.*` into a classifier's `classifier.dense.*`, say).
pub fn load_renamed(vs: &VarStore, prefix: &str, path: &Path, file_prefix: &str) -> Result<usize> {
    let stored = Tensor::read_safetensors(path)
        .map_err(|e| TrainError::file(path, format!("cannot read checkpoint: {e}")))?;
    let stored: std::collections::HashMap<String, Tensor> = stored.into_iter().collect();
    let mut loaded = 0;
    for (name, var) in vs.variables() {
        let Some(rest) = name.strip_prefix(&format!("{prefix}.")) else {
            continue;
        };
        let key = format!("{file_prefix}.{rest}");
        let src = stored.get(&key).ok_or_else(|| {
            TrainError::file(
                path,
                format!("has no '{key}' (not a {file_prefix} checkpoint?)"),
            )
        })?;
        if src.size() != var.size() {
            return Err(TrainError::file(
                path,
                format!(
                    "'{key}' has shape {:?}, the model expects {:?} (other width or image size?)",
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
        // Read under another name: `head.w` from the file's `encoder.w`.
        let r = nn::VarStore::new(Device::Cpu);
        let h = r.root().sub("head").zeros("w", &[3, 2]);
        assert_eq!(load_renamed(&r, "head", &path, "encoder").unwrap(), 1);
        assert!(h.equal(&a.variables()["encoder.w"]));
        let e = load_renamed(&r, "head", &path, "probe")
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no 'probe.w'"), "{e}");
        std::fs::write(&path, b"garbage").unwrap();
        let e = load(&b, "encoder", &path).unwrap_err().to_string();
        assert!(e.contains("cannot read checkpoint"), "{e}");
    }
}

//! The typed TOML configuration. Every table has `deny_unknown_fields` and defaults that
//! reproduce the Keras SimCLR example; `--set key=value` overrides any key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stl10_data::DataConfig;

/// Where tensors live: `auto` picks CUDA when libtorch sees a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            other => Err(format!("'{other}' is not one of auto, cpu, cuda")),
        }
    }
}

/// The `[runtime]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    pub device: DeviceChoice,
    /// libtorch intra-op threads; none: libtorch's default (one per core).
    pub threads: Option<usize>,
    /// Seeds data order, augmentation and initialisation.
    pub seed: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            device: DeviceChoice::Auto,
            threads: None,
            seed: 42,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data: DataConfig,
    pub runtime: RuntimeConfig,
}

/// A configuration that cannot be read or is invalid; always names the file or key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("--set {0}: expected key=value")]
    SetSyntax(String),
    #[error("--set {key}: {message}")]
    SetPath { key: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn origin(path: Option<&Path>) -> PathBuf {
    path.map_or_else(|| PathBuf::from("<defaults>"), Path::to_path_buf)
}

impl Config {
    /// Reads `path` (or starts from the defaults), applies `sets` (`a.b=value`, the value in
    /// TOML syntax or a bare string) in order, and checks every value.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Config, ConfigError> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse {
                        path: p.to_path_buf(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        for set in sets {
            apply_set(&mut table, set)?;
        }
        let cfg: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let message = e.into_inner().to_string();
                ConfigError::Parse {
                    path: origin(path),
                    message: if key == "." {
                        message
                    } else {
                        format!("{key}: {message}")
                    },
                }
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that no type can rule out.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.data.validate().map_err(|e| match e {
            stl10_data::DataError::Config { key, problem } => ConfigError::Invalid {
                key: format!("data.{key}"),
                message: problem,
            },
            other => ConfigError::Invalid {
                key: "data".into(),
                message: other.to_string(),
            },
        })?;
        if self.runtime.threads == Some(0) {
            return Err(ConfigError::Invalid {
                key: "runtime.threads".into(),
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The configuration as TOML, every key spelled out (what a run folder records).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a Config always serializes")
    }
}

/// Applies one `key.path=value` override to `table`.
fn apply_set(table: &mut toml::Table, set: &str) -> Result<(), ConfigError> {
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| ConfigError::SetSyntax(set.into()))?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::SetSyntax(set.into()));
    }
    let value = parse_value(raw.trim());
    let mut node = table;
    for part in &parts[..parts.len() - 1] {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry.as_table_mut().ok_or_else(|| ConfigError::SetPath {
            key: key.into(),
            message: format!("'{part}' is a value, not a table"),
        })?;
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// A TOML value (`5`, `0.1`, `true`, `"x"`, `[1, 2]`), or else the text as a string.
fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_reproduce_the_keras_example() {
        let cfg = Config::default();
        assert_eq!(cfg.data.batch_size, 525);
        assert_eq!(cfg.data.image_size, 96);
        assert_eq!(cfg.runtime.device, DeviceChoice::Auto);
    }

    #[test]
    fn set_overrides_typed_values_and_strings() {
        let cfg = Config::load(
            None,
            &[
                "data.root=/x/y".into(),
                "data.batch_size=100".into(),
                "runtime.device=\"cpu\"".into(),
                "data.labeled_per_class=3".into(),
                "data.kind=idx".into(),
            ],
        )
        .unwrap();
        assert_eq!(cfg.data.root, PathBuf::from("/x/y"));
        assert_eq!(cfg.data.batch_size, 100);
        assert_eq!(cfg.data.labeled_per_class, Some(3));
        assert_eq!(cfg.runtime.device, DeviceChoice::Cpu);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = Config::load(None, &["data.colour=1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("data") && err.contains("colour"), "{err}");
        let err = Config::load(None, &["data.batch_size=\"many\"".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("data.batch_size"), "{err}");
        let err = Config::load(None, &["data.batch_size=0".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data.batch_size") && err.contains("at least 1"),
            "{err}"
        );
        let err = Config::load(None, &["runtime.threads=0".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("runtime.threads"), "{err}");
        let err = Config::load(None, &["bogus".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected key=value"), "{err}");
        let err = Config::load(None, &["data.root.x=1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("'root' is a value"), "{err}");
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[data]\nimage_size = -3\n").unwrap();
        let err = Config::load(Some(&p), &[]).unwrap_err().to_string();
        assert!(
            err.contains("c.toml") && err.contains("data.image_size"),
            "{err}"
        );
        let err = Config::load(Some(&dir.path().join("none.toml")), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("none.toml"), "{err}");
    }

    #[test]
    fn written_config_reads_back_identically() {
        let cfg = Config::load(None, &["data.fold=3".into(), "runtime.threads=2".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("resolved.toml");
        std::fs::write(&p, cfg.to_toml()).unwrap();
        assert_eq!(Config::load(Some(&p), &[]).unwrap(), cfg);
    }
}

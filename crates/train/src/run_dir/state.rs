//! Checkpoints of phases in progress, written after every epoch (and when a run is asked to
//! stop) and read by `--resume`.
//!
//! A phase `run` keeps two files in the run folder's `state/`:
//! - `run.eEEEE.sSSSSSS.safetensors`: the model's weights (`encoder.*`, ...) and optimizer
//!   states (`optimizer.step`, `optimizer.m.<variable>`, `optimizer.v.<variable>`; the
//!   pretraining phase has `contrastive_optimizer.*` and `probe_optimizer.*`), after `E` epochs
//!   and `S` steps of the next;
//! - `run.json` ([`PhaseState`]): the position, the history so far, the augmenters' stream
//!   positions, what the phase started from, and the name of its tensors file.
//!
//! Each is written to a temporary name and renamed into place; the tensors first under a new
//! name, then the JSON, which is the commit: a run killed at any moment leaves a JSON naming a
//! complete tensors file. Older tensors files are deleted after the commit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::Tensor;

use crate::error::{Result, TrainError};
use crate::fit::Position;
use crate::fit::metrics::History;
use crate::run_dir::atomic::{atomic, write_file};
use crate::steps::{Streams, TrainStep};

/// Version of the [`PhaseState`] layout.
pub const FORMAT: u32 = 1;

/// Set to a file path, makes [`save`] create that file and wait, after writing the tensors and
/// before the commit, so a test can kill the process mid-checkpoint. Only in builds with the
/// `test-hooks` feature, which the shipped binary does not have.
#[cfg(feature = "test-hooks")]
pub const PAUSE_BEFORE_COMMIT_ENV: &str = "SIMCLR_TEST_PAUSE_BEFORE_COMMIT";

/// A file a phase started from, by content: a fine-tuning run resumes only from the same
/// encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub path: PathBuf,
    pub sha256: String,
}

impl Source {
    /// `path` and the SHA-256 of its bytes.
    pub fn of(path: &Path) -> Result<Source> {
        let mut file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).map_err(|e| TrainError::io(path, e))?;
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Source {
            path: path.to_path_buf(),
            sha256,
        })
    }
}

/// The JSON half of a phase checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseState {
    pub format: u32,
    pub run: String,
    pub position: Position,
    pub history: History,
    /// Augmenter stream positions, as decimal strings (JSON numbers stop being exact at 2^53).
    #[serde(with = "decimal_streams")]
    pub streams: Streams,
    /// What the phase started from (fine-tuning: the pretrained encoder).
    pub source: Option<Source>,
    /// The tensors file, beside this JSON.
    pub tensors: String,
}

mod decimal_streams {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(m: &super::Streams, s: S) -> Result<S::Ok, S::Error> {
        let text: BTreeMap<&String, String> = m.iter().map(|(k, v)| (k, v.to_string())).collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<super::Streams, D::Error> {
        let text = BTreeMap::<String, String>::deserialize(d)?;
        text.into_iter()
            .map(|(k, v)| match v.parse::<u128>() {
                Ok(p) => Ok((k, p)),
                Err(_) => Err(serde::de::Error::custom(format!(
                    "stream '{k}': '{v}' is not a position"
                ))),
            })
            .collect()
    }
}

fn json_path(dir: &Path, run: &str) -> PathBuf {
    dir.join(format!("{run}.json"))
}

/// Writes `model`'s checkpoint for `run` at `position` into `dir` (created if missing).
pub fn save<S: TrainStep>(
    dir: &Path,
    run: &str,
    model: &S,
    history: &History,
    position: &Position,
    source: Option<&Source>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let snapshot = model.snapshot();
    let name = format!(
        "{run}.e{:04}.s{:06}.safetensors",
        position.epoch, position.step
    );
    let tensors: Vec<(String, Tensor)> = snapshot
        .tensors
        .into_iter()
        .map(|(k, t)| (k, t.to_device(tch::Device::Cpu).contiguous()))
        .collect();
    let path = dir.join(&name);
    atomic(&path, |tmp| {
        Tensor::write_safetensors(&tensors, tmp).map_err(|e| TrainError::file(tmp, e.to_string()))
    })?;
    #[cfg(feature = "test-hooks")]
    if let Some(marker) = std::env::var_os(PAUSE_BEFORE_COMMIT_ENV) {
        let _ = std::fs::write(&marker, &name);
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
    let state = PhaseState {
        format: FORMAT,
        run: run.to_string(),
        position: position.clone(),
        history: history.clone(),
        streams: snapshot.streams,
        source: source.cloned(),
        tensors: name.clone(),
    };
    let json = serde_json::to_string_pretty(&state).expect("plain values serialize");
    write_file(&json_path(dir, run), json)?;
    remove_stale(dir, run, &name);
    Ok(())
}

/// Deletes `run`'s tensors files other than `keep` (and partial files a killed run left).
fn remove_stale(dir: &Path, run: &str, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with(&format!("{run}.e")) || name.starts_with(&format!(".{run}.e"));
        if ours && name.ends_with(".safetensors") && name != keep {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A phase checkpoint read back: the state and its tensors by name.
pub struct Loaded {
    pub state: PhaseState,
    pub tensors: HashMap<String, Tensor>,
    /// The tensors file (for messages).
    pub path: PathBuf,
}

/// Reads `run`'s checkpoint from `dir`: `None` when there is none; an error naming the file
/// when it is unreadable, of another format, or for another run.
pub fn load(dir: &Path, run: &str) -> Result<Option<Loaded>> {
    let json = json_path(dir, run);
    let text = match std::fs::read_to_string(&json) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TrainError::io(&json, e)),
    };
    let bad = |problem: String| TrainError::Resume {
        path: json.clone(),
        problem,
    };
    let state: PhaseState =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a phase checkpoint: {e}")))?;
    if state.format != FORMAT {
        return Err(bad(format!(
            "format {} (this build reads {FORMAT})",
            state.format
        )));
    }
    if state.run != run {
        return Err(bad(format!("is for '{}', not '{run}'", state.run)));
    }
    if state.tensors.contains(['/', '\\']) || state.tensors.starts_with('.') {
        return Err(bad(format!(
            "tensors file '{}' is not a plain name",
            state.tensors
        )));
    }
    let path = dir.join(&state.tensors);
    let tensors = Tensor::read_safetensors(&path)
        .map_err(|e| TrainError::Resume {
            path: path.clone(),
            problem: format!("cannot read checkpoint tensors: {e}"),
        })?
        .into_iter()
        .collect();
    Ok(Some(Loaded {
        state,
        tensors,
        path,
    }))
}

impl Loaded {
    /// Puts the saved weights, optimizer states and streams into `model`.
    pub fn restore_into<S: TrainStep>(&self, model: &mut S) -> Result<()> {
        model
            .restore(&self.tensors, &self.state.streams)
            .map_err(|problem| TrainError::Resume {
                path: self.path.clone(),
                problem,
            })
    }
}

//! A run folder on disk: what it holds, and reading and writing each piece through its serde
//! type (`config.toml`: [`Config`]; `<run>.json`: [`History`]; `state/`: the phase checkpoints
//! of [`crate::run_dir::state`]), every file written atomically.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Result, TrainError};
use crate::experiment::run::{KNN_METRIC, Run};
use crate::fit::metrics::History;
use crate::run_dir::atomic::write_file;

pub mod atomic;
pub mod checkpoint;
pub mod state;

/// The run folder's class names, one per line in label order (what `predict` prints).
pub const CLASSES_FILE: &str = "classes.txt";

/// The configuration a run folder recorded (its `config.toml`), read once for `--resume`: the
/// base of the resumed configuration and what that may not contradict.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: PathBuf,
    pub config: Config,
}

impl Recorded {
    /// Reads `path/config.toml`; an error names `path` when it is not a run folder.
    pub fn read(path: &Path) -> Result<Self> {
        let file = path.join("config.toml");
        if !file.is_file() {
            return Err(TrainError::Resume {
                path: path.to_path_buf(),
                problem: "not a run folder (no config.toml)".into(),
            });
        }
        Ok(Recorded {
            path: path.to_path_buf(),
            config: Config::load(Some(&file), &[])?,
        })
    }
}

/// A run folder being filled.
pub struct RunDir {
    pub path: PathBuf,
    /// Phases continue from their checkpoints in `state/` (`--resume`).
    pub resume: bool,
}

impl RunDir {
    /// A fresh run in `path`: created if missing, earlier phase checkpoints removed, and the
    /// resolved configuration recorded first.
    pub fn create(path: &Path, cfg: &Config) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| TrainError::io(path, e))?;
        let dir = RunDir {
            path: path.to_path_buf(),
            resume: false,
        };
        let states = dir.state_dir();
        if states.exists() {
            std::fs::remove_dir_all(&states).map_err(|e| TrainError::io(&states, e))?;
        }
        write_file(&dir.file("config.toml"), cfg.to_toml())?;
        Ok(dir)
    }

    /// The folder `path` as a rank other than 0 of a data-parallel run sees it: rank 0 writes
    /// it; this process only reads it when it resumes.
    pub fn read_only(path: &Path) -> Self {
        RunDir {
            path: path.to_path_buf(),
            resume: false,
        }
    }

    /// Continues the run `recorded` was read from, with `cfg`, which may differ from the
    /// recorded configuration only in what [`Config::resume_conflicts`] allows (epochs, learning
    /// rates, runtime); records `cfg` when this process `writes` the folder (every rank of a
    /// data-parallel run checks, rank 0 alone writes).
    pub fn resume(recorded: Recorded, cfg: &Config, writes: bool) -> Result<Self> {
        let conflicts = cfg.resume_conflicts(&recorded.config);
        let saved_path = recorded.path.join("config.toml");
        if !conflicts.is_empty() {
            return Err(TrainError::Resume {
                path: saved_path,
                problem: format!(
                    "the configuration differs in {} (a resumed run may change only epochs, \
                     learning rates, [eval] and [log] keys and [runtime] keys other than seed)",
                    conflicts.join(", ")
                ),
            });
        }
        if writes {
            write_file(&saved_path, cfg.to_toml())?;
        }
        Ok(RunDir {
            path: recorded.path,
            resume: true,
        })
    }

    /// Where the phases keep their checkpoints.
    pub fn state_dir(&self) -> PathBuf {
        self.path.join("state")
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `classes.txt`: the class names in label order, one per line (what `predict` prints).
    pub fn write_classes(&self, names: &[String]) -> Result<()> {
        write_file(&self.file(CLASSES_FILE), names.join("\n") + "\n")
    }

    /// `<run>.csv` and `<run>.json`.
    pub(crate) fn save_history(&self, h: &History) -> Result<()> {
        write_file(&self.file(&format!("{}.csv", h.run)), h.to_csv())?;
        write_file(&self.file(&format!("{}.json", h.run)), h.to_json())
    }

    /// Reads a run's history back from its JSON: `None` if the run has none yet, an error
    /// naming the file if it is not a history.
    pub fn load_history(&self, run: Run) -> Result<Option<History>> {
        let path = self.file(&format!("{}.json", run.name()));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TrainError::io(&path, e)),
        };
        History::from_json(&text)
            .map(Some)
            .map_err(|e| TrainError::file(&path, format!("not a run history: {e}")))
    }

    /// The histories of every run the folder holds.
    pub fn histories(&self) -> Result<Histories> {
        let mut out = Histories::default();
        for run in Run::ALL {
            if let Some(h) = self.load_history(run)? {
                out.runs.push((run, h));
            }
        }
        Ok(out)
    }
}

/// The histories a run folder holds, in the seed's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histories {
    pub runs: Vec<(Run, History)>,
}

impl Histories {
    pub fn get(&self, run: Run) -> Option<&History> {
        self.runs.iter().find(|(r, _)| *r == run).map(|(_, h)| h)
    }

    /// Best validation accuracy of each run present (the metric it is judged by).
    pub fn best_accuracies(&self) -> Vec<(Run, f64)> {
        self.runs
            .iter()
            .filter_map(|(run, h)| Some((*run, h.best(run.accuracy_metric())?)))
            .collect()
    }

    /// Best `val_knn_acc` of the pretraining history, when the monitor ran.
    pub fn best_knn(&self) -> Option<f64> {
        self.get(Run::Pretraining)?.best(KNN_METRIC)
    }
}

//! The experiment's phases, each training one [`Run`] into a run folder and leaving its model
//! files there: `baseline.safetensors`; `encoder`, `projection_head` and `linear_probe`
//! `.safetensors`; `finetuned.safetensors`. Each phase writes its
//! checkpoint in `state/` and its history after every epoch, and continues from the checkpoint
//! when the folder is resumed.
//!
//! In a data-parallel run ([`Prepared::replica`]) every rank trains its model on its shards and
//! only rank 0 writes: checkpoints, histories and model files. Every rank resumes from the same
//! checkpoint, read from the run folder.

use std::path::{Path, PathBuf};

use tch::nn::VarStore;

use crate::config::HeadStart;
use crate::config::{PretrainSettings, SupervisedSettings};
use crate::error::{Result, TrainError};
use crate::fit::metrics::History;
use crate::fit::{self, Observer, Phase, Position};
use crate::prepared::Prepared;
use crate::run_dir::RunDir;
use crate::run_dir::checkpoint;
use crate::run_dir::state::{self, Loaded, Source};
use crate::steps::{ContrastiveModel, SupervisedModel, TrainStep};

pub mod run;
pub use run::{KNN_LABEL, KNN_METRIC, Run};

/// The supervised baseline from a fresh encoder; saves `baseline.safetensors`.
pub fn baseline(
    s: &SupervisedSettings,
    prep: &Prepared,
    dir: &RunDir,
    obs: &mut dyn Observer,
) -> Result<History> {
    let mut model = supervised(s, prep)?;
    let h = train_phase(&mut model, s.into(), None, prep, dir, obs)?;
    if prep.writes() {
        let file = dir.file("baseline.safetensors");
        checkpoint::save(&model.vs, &["encoder", "classifier"], &file)?;
    }
    Ok(h)
}

/// Contrastive pretraining with the probe; saves `encoder`, `projection_head` and
/// `linear_probe` `.safetensors`.
pub fn pretrain(
    s: &PretrainSettings,
    prep: &Prepared,
    dir: &RunDir,
    obs: &mut dyn Observer,
) -> Result<History> {
    prep.require_unlabeled()?;
    let mut model = ContrastiveModel::new(s, prep.classes(), prep.compute)?;
    if let Some(replica) = &prep.replica {
        model = model.data_parallel(replica.clone())?;
    }
    let length = Length {
        run: Run::Pretraining,
        epochs: s.epochs,
        batch_size: None,
    };
    let h = train_phase(&mut model, length, None, prep, dir, obs)?;
    if !prep.writes() {
        return Ok(h);
    }
    for (vs, group) in [
        (&model.vs, "encoder"),
        (&model.vs, "projection_head"),
        (&model.probe_vs, "linear_probe"),
    ] {
        checkpoint::save(vs, &[group], &dir.file(&format!("{group}.safetensors")))?;
    }
    Ok(h)
}

/// Fine-tunes the encoder in `encoder` (a safetensors file with `encoder.*`) plus a Dense(classes),
/// new or, with `finetune.head = "probe"`, the linear probe in `linear_probe.safetensors` beside
/// `encoder`; saves `finetuned.safetensors`. A resumed fine-tuning continues only from the same
/// encoder file contents; after a changed encoder it starts over.
pub fn finetune(
    s: &SupervisedSettings,
    prep: &Prepared,
    encoder: &Path,
    dir: &RunDir,
    obs: &mut dyn Observer,
) -> Result<History> {
    let mut model = SupervisedModel::new(s, prep.classes(), prep.compute)?;
    // Data-parallel, rank 0 reads the starting point and hands it to the others, which need
    // not see the file (nor hash it, unless they resume).
    let source = if prep.writes() {
        load_start(&model.vs, s.head, encoder)?;
        Some(Source::of(encoder)?)
    } else {
        dir.resume.then(|| Source::of(encoder)).transpose()?
    };
    if let Some(replica) = &prep.replica {
        model = model.data_parallel(replica.clone())?;
    }
    let h = train_phase(&mut model, s.into(), source, prep, dir, obs)?;
    if prep.writes() {
        let file = dir.file("finetuned.safetensors");
        checkpoint::save(&model.vs, &["encoder", "classifier"], &file)?;
    }
    Ok(h)
}

/// A fresh supervised model for `s`, data-parallel when `prep` is.
fn supervised(s: &SupervisedSettings, prep: &Prepared) -> Result<SupervisedModel> {
    let model = SupervisedModel::new(s, prep.classes(), prep.compute)?;
    match &prep.replica {
        Some(replica) => model.data_parallel(replica.clone()),
        None => Ok(model),
    }
}

/// Loads a fine-tuning's starting point into `vs`: `encoder.*` from `encoder` and, with
/// [`HeadStart::Probe`], `classifier.*` from the `linear_probe.*` of the
/// `linear_probe.safetensors` beside it.
fn load_start(vs: &VarStore, head: HeadStart, encoder: &Path) -> Result<()> {
    checkpoint::load(vs, "encoder", encoder)?;
    if head == HeadStart::Probe {
        let probe = encoder.with_file_name("linear_probe.safetensors");
        checkpoint::load_renamed(vs, "classifier", &probe, "linear_probe").map_err(|e| match e {
            TrainError::File { path, problem } => TrainError::File {
                path,
                problem: format!(
                    "{problem} (finetune.head = \"probe\" starts the classifier from the linear \
                     probe saved beside the encoder)"
                ),
            },
            other => other,
        })?;
    }
    Ok(())
}

/// The encoder file a resumed fine-tuning in `dir` started from.
pub fn resumed_encoder(dir: &RunDir) -> Result<PathBuf> {
    let saved = state::load(&dir.state_dir(), Run::Finetuning.name())?;
    saved
        .and_then(|s| s.state.source)
        .map(|s| s.path)
        .ok_or_else(|| TrainError::Resume {
            path: dir.path.clone(),
            problem: "no fine-tuning checkpoint to take the encoder from; pass --encoder".into(),
        })
}

/// Test loss and accuracy of a classifier checkpoint (`baseline` or `finetuned`).
/// `s` gives the encoder's shape and the inference preprocessing.
pub fn evaluate(
    s: &SupervisedSettings,
    prep: &Prepared,
    checkpoint_path: &Path,
) -> Result<(f64, f64)> {
    let model = SupervisedModel::new(s, prep.classes(), prep.compute)?;
    checkpoint::load(&model.vs, "encoder", checkpoint_path)?;
    checkpoint::load(&model.vs, "classifier", checkpoint_path)?;
    fit::evaluate(&model, &prep.loader())
}

/// What a phase trains for: its run, epochs and labeled images a step.
#[derive(Debug, Clone, Copy)]
struct Length {
    run: Run,
    epochs: usize,
    /// None: the zipped plan's labeled share.
    batch_size: Option<usize>,
}

impl From<&SupervisedSettings> for Length {
    fn from(s: &SupervisedSettings) -> Self {
        Length {
            run: s.run,
            epochs: s.epochs,
            batch_size: s.batch_size,
        }
    }
}

/// Trains `model` for `length` (started from `source`, when not from scratch), from its
/// checkpoint when the folder is resumed, writing a checkpoint and the history after every
/// epoch.
fn train_phase<S: TrainStep>(
    model: &mut S,
    length: Length,
    source: Option<Source>,
    prep: &Prepared,
    dir: &RunDir,
    obs: &mut dyn Observer,
) -> Result<History> {
    let (run, states) = (length.run, dir.state_dir());
    let (history, start) = match resume_point(length, source.as_ref(), dir)? {
        Some(saved) => {
            saved.restore_into(model)?;
            let pos = &saved.state.position;
            tracing::info!(
                "{}: resuming after {} epochs and {} steps",
                run.name(),
                pos.epoch,
                pos.step
            );
            (saved.state.history, saved.state.position)
        }
        None => (History::new(run.name()), Position::default()),
    };
    let loader = prep.loader().with_labeled_batch(length.batch_size);
    let phase = Phase {
        run: run.name(),
        loader: &loader,
        feed: run.feed(),
        epochs: length.epochs,
        metrics_every: prep.settings.metrics_every,
    };
    let writes = prep.writes();
    let mut checkpoint = |m: &S, h: &History, p: &Position| {
        if !writes {
            return Ok(());
        }
        state::save(&states, run.name(), m, h, p, source.as_ref())?;
        if p.step == 0 {
            dir.save_history(h)?;
        }
        Ok(())
    };
    fit::fit(model, &phase, history, start, &mut checkpoint, obs)
}

/// The checkpoint a resumed run continues from: none when the folder is not resumed, has
/// none, or the run's starting point (`source`) changed since; an error when it holds more
/// epochs than `length` says.
fn resume_point(length: Length, source: Option<&Source>, dir: &RunDir) -> Result<Option<Loaded>> {
    let run = length.run;
    if !dir.resume {
        return Ok(None);
    }
    let Some(saved) = state::load(&dir.state_dir(), run.name())? else {
        return Ok(None);
    };
    let sha = |s: Option<&Source>| s.map(|s| s.sha256.clone());
    if sha(saved.state.source.as_ref()) != sha(source) {
        tracing::info!(
            "{}: its starting point changed since its checkpoint; starting over",
            run.name()
        );
        return Ok(None);
    }
    let (epochs, done) = (length.epochs, saved.state.position.epoch);
    if done > epochs || saved.state.history.epochs.len() != done {
        return Err(TrainError::Resume {
            path: saved.path.clone(),
            problem: format!(
                "{} has {done} epochs done, more than {} = {epochs}",
                run.name(),
                run.epochs_key()
            ),
        });
    }
    Ok(Some(saved))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Tensor, nn};

    #[test]
    fn a_finetuning_starts_its_classifier_new_or_from_the_probe_beside_the_encoder() {
        let dir = tempfile::tempdir().unwrap();
        let (enc, probe) = (
            dir.path().join("encoder.safetensors"),
            dir.path().join("linear_probe.safetensors"),
        );
        let pretrained = nn::VarStore::new(Device::Cpu);
        let root = pretrained.root();
        let _w = root.sub("encoder").randn("w", &[3, 2], 0.0, 1.0);
        let _p = root
            .sub("linear_probe")
            .sub("dense")
            .randn("weight", &[4, 2], 0.0, 1.0);
        checkpoint::save(&pretrained, &["encoder"], &enc).unwrap();
        checkpoint::save(&pretrained, &["linear_probe"], &probe).unwrap();
        let vars = pretrained.variables();

        let fresh = || {
            let vs = nn::VarStore::new(Device::Cpu);
            let w = vs.root().sub("encoder").zeros("w", &[3, 2]);
            let c = vs
                .root()
                .sub("classifier")
                .sub("dense")
                .zeros("weight", &[4, 2]);
            (vs, w, c)
        };
        let (vs, w, c) = fresh();
        load_start(&vs, HeadStart::New, &enc).unwrap();
        assert!(w.equal(&vars["encoder.w"]));
        assert!(
            c.equal(&Tensor::zeros([4, 2], tch::kind::FLOAT_CPU)),
            "a new head stays"
        );
        let (vs, w, c) = fresh();
        load_start(&vs, HeadStart::Probe, &enc).unwrap();
        assert!(w.equal(&vars["encoder.w"]));
        assert!(c.equal(&vars["linear_probe.dense.weight"]));

        std::fs::remove_file(&probe).unwrap();
        let e = load_start(&vs, HeadStart::Probe, &enc)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linear_probe.safetensors") && e.contains("finetune.head = \"probe\""),
            "{e}"
        );
    }
}

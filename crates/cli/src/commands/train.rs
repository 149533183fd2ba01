//! The training commands (`experiment`, `baseline`, `pretrain`, `finetune`), `evaluate`
//! and `augment-preview`.

use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result};
use train::config::{Config, DataSettings, PretrainSettings, SupervisedSettings};
use train::runtime::{Compute, Replica};
use train::{experiment, experiment::run, prepared::Prepared, run_dir::Recorded, run_dir::RunDir};

use crate::args::RunArgs;
use crate::progress::Progress;
use report::tensorboard::{TensorBoard, pretrained_features};

/// Which phases a command runs.
pub enum Phases<'a> {
    All,
    Baseline,
    Pretrain,
    /// `None`: the encoder the resumed fine-tuning started from.
    Finetune {
        encoder: Option<&'a Path>,
    },
}

/// The training commands: the run folder is made (or resumed) from the whole `cfg`, which it
/// records; each phase gets its own settings. As `replica`'s rank of a data-parallel run, the
/// phases train on its shards, and only rank 0 writes the folder and prints.
pub fn run(
    cfg: &Config,
    compute: Compute,
    phases: Phases,
    args: &RunArgs,
    recorded: Option<Recorded>,
    replica: Option<Rc<Replica>>,
    progress: &mut Progress,
) -> Result<()> {
    let writes = replica.as_ref().is_none_or(|r| r.rank() == 0);
    // A resumed folder is checked before the data loads (by every rank, so all fail alike); a
    // new one is made after.
    let resumed = recorded
        .map(|r| RunDir::resume(r, cfg, writes))
        .transpose()?;
    let mut prep = Prepared::new(&cfg.data_settings(), compute)?;
    if let Some(replica) = replica {
        prep = prep.data_parallel(replica)?;
    }
    if matches!(phases, Phases::All | Phases::Pretrain) {
        prep.require_unlabeled()?;
    }
    let dir = match resumed {
        Some(dir) => dir,
        None if writes => RunDir::create(&args.out, cfg)?,
        None => RunDir::read_only(&args.out),
    };
    if writes {
        report::overview::write_overview(&cfg.pretraining(), &prep, &dir, 8)?;
    }
    // Rank 0 alone logs, as it alone writes the folder.
    let tensorboard = TensorBoard::for_run(&dir, cfg).filter(|_| writes);
    let obs = &mut (progress, tensorboard);
    match phases {
        Phases::All => {
            experiment::baseline(&cfg.supervised_baseline(), &prep, &dir, obs)?;
            experiment::pretrain(&cfg.pretraining(), &prep, &dir, obs)?;
            if writes {
                pretrained_features(cfg, &prep, &dir, obs.1.as_mut())?;
            }
            experiment::finetune(
                &cfg.finetuning(),
                &prep,
                &dir.file("encoder.safetensors"),
                &dir,
                obs,
            )?;
        }
        Phases::Baseline => {
            experiment::baseline(&cfg.supervised_baseline(), &prep, &dir, obs)?;
        }
        Phases::Pretrain => {
            experiment::pretrain(&cfg.pretraining(), &prep, &dir, obs)?;
            if writes {
                pretrained_features(cfg, &prep, &dir, obs.1.as_mut())?;
            }
        }
        Phases::Finetune { encoder } => {
            let encoder = match encoder {
                Some(e) => e.to_path_buf(),
                None => experiment::resumed_encoder(&dir)?,
            };
            let encoder = encoder.as_path();
            experiment::finetune(&cfg.finetuning(), &prep, encoder, &dir, obs)
                .with_context(|| format!("fine-tuning from {}", encoder.display()))?;
        }
    }
    if !writes {
        return Ok(());
    }
    let histories = report::write_report(&cfg.eval.knn(), &prep, &dir)?;
    println!("run folder: {}", dir.path.display());
    print_maxima(cfg.eval.knn_k, &histories);
    Ok(())
}

/// The seed's closing lines: the best validation accuracy of each run, and of the kNN monitor.
fn print_maxima(knn_k: usize, histories: &train::run_dir::Histories) {
    for (run, best) in histories.best_accuracies() {
        println!(
            "Maximal validation accuracy: {:.2}% ({})",
            best * 100.0,
            run.label()
        );
    }
    if let Some(best) = histories.best_knn() {
        println!(
            "Maximal kNN accuracy: {:.2}% ({}, k = {})",
            best * 100.0,
            run::KNN_LABEL,
            knn_k
        );
    }
}

pub fn evaluate(prep: &Prepared, baseline: &SupervisedSettings, checkpoint: &Path) -> Result<()> {
    let (loss, acc) = experiment::evaluate(baseline, prep, checkpoint)?;
    println!("val_loss: {loss:.4} - val_acc: {acc:.4}");
    println!("Validation accuracy: {:.2}%", acc * 100.0);
    Ok(())
}

pub fn augment_preview(
    data: &DataSettings,
    pretrain: &PretrainSettings,
    count: usize,
    out: &Path,
) -> Result<()> {
    let ds = stl10_data::load(&data.data, data.seed)?;
    report::overview::augmentation_grid(pretrain, &ds, &data.data.root, count, out)?;
    println!("wrote {}", out.display());
    Ok(())
}

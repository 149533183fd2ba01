//! The commands that use a trained representation: kNN, the label-efficiency sweep,
//! embeddings, prediction, and the comparison of run folders.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use evaluate::predict::{self, Predictor};
use evaluate::sweep::{self, Budget, SweepPlan};
use tch::Device;
use train::config::{Config, DataSettings, ModelSettings};
use train::features::{FrozenEncoder, knn::Knn};
use train::prepared::Prepared;
use train::runtime::Compute;

use crate::progress::Progress;

pub fn knn(prep: &Prepared, model: &ModelSettings, knn: &Knn, encoder: &Path) -> Result<()> {
    let frozen = FrozenEncoder::load(model, prep.compute, encoder, None)?;
    let acc =
        train::features::knn_accuracy(&prep.compute, &prep.ds, knn, |x| frozen.forward(x), None)?;
    println!(
        "val_knn_acc: {acc:.4} (k = {}, t = {}, {} bank images, {} queries)",
        knn.k,
        knn.temperature,
        prep.ds.train.len(),
        prep.ds.test.len()
    );
    println!("kNN accuracy: {:.2}%", acc * 100.0);
    Ok(())
}

pub fn sweep(
    cfg: &Config,
    device: Device,
    budgets: &str,
    encoder: Option<&Path>,
    out: &Path,
    progress: &mut Progress,
) -> Result<()> {
    let budgets = Budget::parse_list(budgets)?;
    let plan = SweepPlan {
        budgets: &budgets,
        encoder,
        out,
    };
    let rows = sweep::run(cfg, device, &plan, progress)?;
    println!("sweep folder: {}", out.display());
    println!(
        "{:>16} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "labels/class", "labels", "baseline", "finetuned", "linear", "knn"
    );
    for r in rows {
        println!(
            "{:>16} {:>8} {:>9.2}% {:>9.2}% {:>9.2}% {:>9.2}%",
            r.labels_per_class,
            r.labels,
            r.baseline * 100.0,
            r.finetuned * 100.0,
            r.linear * 100.0,
            r.knn * 100.0
        );
    }
    Ok(())
}

pub fn folds(
    cfg: &Config,
    device: Device,
    encoder: &Path,
    out: &Path,
    progress: &mut crate::progress::Progress,
) -> Result<()> {
    let rows = evaluate::folds::run(cfg, device, encoder, out, progress)?;
    println!("folds: {}", out.display());
    println!("fold  finetuned  linear    knn");
    for r in &rows {
        println!(
            "{:>4}  {:>8.2}%  {:>6.2}%  {:>6.2}%",
            r.fold,
            r.finetuned * 100.0,
            r.linear * 100.0,
            r.knn * 100.0
        );
    }
    let summary = evaluate::folds::summary(&rows);
    for ((_, label), (mean, std)) in evaluate::folds::METHODS.iter().zip(summary) {
        println!("{label}: {:.2} ± {:.2}%", mean * 100.0, std * 100.0);
    }
    Ok(())
}

pub fn embed(
    data: &DataSettings,
    model: &ModelSettings,
    compute: Compute,
    encoder: &Path,
    projection: bool,
    export: &evaluate::embed::Export,
) -> Result<()> {
    evaluate::embed::check_split(export.split)?;
    let head = projection.then(|| encoder.with_file_name("projection_head.safetensors"));
    let ds = stl10_data::load(&data.data, data.seed)?;
    let frozen = FrozenEncoder::load(model, compute, encoder, head.as_deref())?;
    let ([n, d], labeled) = evaluate::embed::export(&frozen, &ds, export)?;
    println!("wrote {} ([{n}, {d}] float32)", export.features.display());
    if labeled {
        println!("wrote {} ([{n}] int64)", export.labels.display());
    }
    if let Some(p) = export.plot {
        println!("wrote {}", p.display());
    }
    Ok(())
}

pub fn predict(predictor: &Predictor, inputs: &[PathBuf], top: usize, format: &str) -> Result<()> {
    let files = predict::image_files(inputs)?;
    let (mut good, mut failed) = (Vec::new(), 0usize);
    for result in predictor.predict(&files, top) {
        match result {
            Ok(p) => good.push(p),
            Err(e) => {
                failed += 1;
                eprintln!("error: {e} (skipped)");
            }
        }
    }
    let text = match format {
        "csv" => predict::to_csv(&good),
        "json" => predict::to_json(&good) + "\n",
        _ => predict::to_table(&good),
    };
    print!("{text}");
    if failed > 0 {
        bail!(train::error::TrainError::File {
            path: PathBuf::from("predict"),
            problem: format!(
                "{failed} of {} images could not be read (reported above)",
                files.len()
            ),
        });
    }
    Ok(())
}

/// Compares the run folders `runs`: the picture `out`, the table as CSV in `csv` (by default
/// `out` with `.csv`) and as markdown on stdout.
pub fn compare(runs: &[PathBuf], out: &Path, csv: Option<&Path>) -> Result<()> {
    let csv = csv.map_or_else(|| out.with_extension("csv"), Path::to_path_buf);
    if csv == out {
        return Err(train::config::ConfigError::Invalid {
            key: "--csv".into(),
            message: format!("{} is the same file as --out", csv.display()),
        }
        .into());
    }
    let table = evaluate::compare::compare(runs, out, &csv)?;
    print!("{}", table.markdown());
    tracing::info!("wrote {} and {}", out.display(), csv.display());
    Ok(())
}

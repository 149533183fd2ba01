//! STL-10's evaluation protocol (`simclr-cli folds`): each of the ten predefined folds of 1,000
//! labeled training images is used alone to fine-tune the encoder and to fit the linear probe
//! (and kNN) on its frozen features, all judged on the 8,000 test images; reported per fold and
//! as mean and standard deviation over the folds, as the data set's authors specify.
//!
//! A fold trains on the experiment's schedule (see [`crate::sweep`]: its supervised epoch,
//! the fold's images repeated to fill it); the fine-tuned score is the best test accuracy over
//! the epochs, as the example reports its runs; the frozen scores are final.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use stl10_data::DataKind;
use tch::Device;

use crate::subsets::{Subsets, test_features};
use report::tensorboard::TensorBoard;
use train::config::{Config, ConfigError};
use train::error::Result;
use train::experiment;
use train::experiment::run::Run;
use train::features::FrozenEncoder;
use train::fit::Observer;
use train::prepared::Prepared;
use train::run_dir::RunDir;
use train::run_dir::atomic::write_file;

/// STL-10's folds.
pub const FOLDS: usize = 10;

/// A fold's run folder in the folds': `fold-<k>`.
pub(crate) const FOLDER_PREFIX: &str = "fold-";

/// One fold's test accuracies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoldRow {
    pub fold: usize,
    pub labels: usize,
    pub finetuned: f64,
    pub linear: f64,
    pub knn: f64,
}

impl FoldRow {
    /// `[finetuned, linear, knn]`, in [`METHODS`] order.
    pub fn scores(&self) -> [f64; 3] {
        [self.finetuned, self.linear, self.knn]
    }
}

/// The score columns, as `(column, label)`.
pub const METHODS: [(&str, &str); 3] = [
    ("finetuned", "fine-tuned"),
    ("linear", "linear probe (frozen)"),
    ("knn", "kNN (frozen)"),
];

/// Mean and standard deviation (over the values, divided by `n`, as numpy's `std`).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Mean and standard deviation over `rows` of each method, in [`METHODS`] order.
pub fn summary(rows: &[FoldRow]) -> [(f64, f64); 3] {
    [0, 1, 2].map(|i| mean_std(&rows.iter().map(|r| r.scores()[i]).collect::<Vec<_>>()))
}

/// Runs the protocol for the encoder in `encoder` into `out`: `fold-<k>/` run folders of the
/// fine-tunings (each with its `tensorboard/`), `folds.csv`, `folds.json`, `report.md` and
/// `report.html`.
pub fn run(
    cfg: &Config,
    device: Device,
    encoder: &Path,
    out: &Path,
    obs: &mut dyn Observer,
) -> Result<Vec<FoldRow>> {
    if cfg.data.kind != DataKind::Stl10 {
        return Err(ConfigError::Invalid {
            key: "data.kind".into(),
            message: format!(
                "the folds are STL-10's (its fold_indices.txt), not {:?}'s",
                cfg.data.kind
            ),
        }
        .into());
    }
    let mut base = cfg.data_settings();
    (base.data.fold, base.data.labeled_per_class) = (None, None);
    // Only the plan and the compute are needed of the whole data set.
    base.resident_data = false;
    let full = stl10_data::load(&base.data, base.seed)?;
    let prep = Prepared::with_dataset(&base, cfg.compute(device), full.clone())?;
    let dir = RunDir::create(out, cfg)?;
    let frozen = FrozenEncoder::load(&cfg.model_shapes(), prep.compute, encoder, None)?;
    let test = test_features(&cfg.data.root, &frozen, &full, device)?;
    let on = Subsets {
        cfg,
        device,
        prep: &prep,
        full: &full,
        encoder,
        frozen: &frozen,
        test: &test,
        out,
    };
    let folds_file = stl10_data::stl10::binary_dir(&cfg.data.root).join("fold_indices.txt");
    let mut rows = Vec::new();
    for fold in 0..FOLDS {
        let positions = stl10_data::stl10::read_fold(&folds_file, fold, full.train.len())?;
        tracing::info!("fold {fold}: {} labeled images", positions.len());
        rows.push(run_fold(&on, fold, &positions, obs)?);
        write_tables(&dir, &rows)?;
    }
    let (set_up, table) = (report::markdown::setup(&prep), markdown(&rows, encoder));
    write_file(
        &dir.file("report.md"),
        format!("# STL-10 folds\n\n{set_up}{table}"),
    )?;
    let page = report::html::Page {
        title: "STL-10 folds",
        setup: &set_up,
        results: "",
        sections: &format!("## Folds\n\n{table}"),
    };
    report::html::write_html(&dir, &page)?;
    Ok(rows)
}

/// Fine-tuning on one fold (in `fold-<k>/`) and the frozen scores of its images.
fn run_fold(
    on: &Subsets,
    fold: usize,
    positions: &[usize],
    obs: &mut dyn Observer,
) -> Result<FoldRow> {
    let (fold_cfg, fold_prep, dir) = on.run_folder(&format!("{FOLDER_PREFIX}{fold}"), positions)?;
    let obs = &mut (obs, TensorBoard::for_run(&dir, &fold_cfg));
    let h = experiment::finetune(&fold_cfg.finetuning(), &fold_prep, on.encoder, &dir, obs)?;
    report::markdown::write_report(&fold_cfg.eval.knn(), &fold_prep, &dir)?;
    let (linear, knn) = on.frozen_scores(positions)?;
    Ok(FoldRow {
        fold,
        labels: positions.len(),
        finetuned: h
            .best(Run::Finetuning.accuracy_metric())
            .unwrap_or(f64::NAN),
        linear,
        knn,
    })
}

/// `folds.csv` and `folds.json` for the folds so far.
fn write_tables(dir: &RunDir, rows: &[FoldRow]) -> Result<()> {
    let mut csv = String::from("fold,labels,finetuned,linear,knn\n");
    for r in rows {
        let [f, l, k] = r.scores();
        let _ = writeln!(csv, "{},{},{f:.4},{l:.4},{k:.4}", r.fold, r.labels);
    }
    write_file(&dir.file("folds.csv"), csv)?;
    let json = serde_json::to_string_pretty(rows).expect("plain values serialize");
    write_file(&dir.file("folds.json"), json)
}

/// The report's table: each fold, then mean ± std of each method.
pub fn markdown(rows: &[FoldRow], encoder: &Path) -> String {
    let mut md = format!(
        "Encoder: {}. Test accuracy after training on each fold alone; fine-tuned: best over \
         the epochs; linear probe and kNN: on frozen features. Mean ± standard deviation over \
         the folds.\n\n| fold | labels | {} |\n|---|---|{}\n",
        encoder.display(),
        METHODS.map(|m| m.1).join(" | "),
        "---|".repeat(METHODS.len())
    );
    let percent = |v: f64| format!("{:.2}%", v * 100.0);
    for r in rows {
        let cells = r.scores().map(percent);
        let _ = writeln!(md, "| {} | {} | {} |", r.fold, r.labels, cells.join(" | "));
    }
    let summary =
        summary(rows).map(|(mean, std)| format!("{:.2} ± {:.2}%", mean * 100.0, std * 100.0));
    let _ = writeln!(md, "| mean ± std | | {} |", summary.join(" | "));
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_std_are_numpys() {
        // numpy: np.mean([.5, .7, .9]) = 0.7, np.std(...) = sqrt(0.08 / 3) = 0.163299...
        let (mean, std) = mean_std(&[0.5, 0.7, 0.9]);
        assert!((mean - 0.7).abs() < 1e-12);
        assert!((std - (0.08f64 / 3.0).sqrt()).abs() < 1e-12, "{std}");
        assert_eq!(mean_std(&[0.25]), (0.25, 0.0));
    }

    #[test]
    fn the_table_ends_with_mean_and_std() {
        let row = |fold, f| FoldRow {
            fold,
            labels: 1000,
            finetuned: f,
            linear: 0.5,
            knn: 0.4,
        };
        let md = markdown(&[row(0, 0.6), row(1, 0.7)], Path::new("enc.safetensors"));
        let last = md.lines().last().unwrap();
        assert_eq!(
            last,
            "| mean ± std | | 65.00 ± 5.00% | 50.00 ± 0.00% | 40.00 ± 0.00% |"
        );
        assert!(
            md.contains("| 1 | 1000 | 70.00% | 50.00% | 40.00% |"),
            "{md}"
        );
    }
}

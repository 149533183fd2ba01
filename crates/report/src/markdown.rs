//! What a finished (or partly finished) run folder tells a person: `val_acc.png` and
//! `val_loss.png` over the runs it holds, and `report.md` with the set-up, the best accuracies
//! and the figures; `report.html` ([`crate::html`]) shows the same on one self-contained page.

use std::fmt::Write as _;

use crate::html::FIGURE_SECTIONS;
use crate::plots::{Legend, line_plot};
use train::error::Result;
use train::experiment::run::{KNN_LABEL, KNN_METRIC, Run};
use train::features::knn::Knn;
use train::fit::metrics::History;
use train::prepared::Prepared;
use train::run_dir::atomic::write_file;
use train::run_dir::{Histories, RunDir};

/// The libtorch release torch-sys 0.24 builds against (its build script enforces it).
pub const LIBTORCH_VERSION: &str = "2.11.0";

/// The tch release the workspace is built on.
pub const TCH_VERSION: &str = "0.24";

/// Published for the Keras example (STL-10, 20 epochs).
const PUBLISHED: &str = "Published for the Keras example (STL-10, 20 epochs): baseline 59.9%, \
                         linear probe 56.7%, fine-tuned 65.3%.";

/// Writes `val_acc.png`, `val_loss.png`, `report.md` and `report.html` for whichever runs `dir`
/// holds, on the data and compute of `prep`; `knn` names the monitor's settings.
pub fn write_report(knn: &Knn, prep: &Prepared, dir: &RunDir) -> Result<Histories> {
    write_report_with(knn, prep, dir, "")
}

/// [`write_report`] with `sections` (markdown) appended to `report.md` and `report.html`.
pub fn write_report_with(
    knn: &Knn,
    prep: &Prepared,
    dir: &RunDir,
    sections: &str,
) -> Result<Histories> {
    let histories = dir.histories()?;
    validation_plots(dir, &histories)?;
    let title = "simclr-rs run";
    let set_up = setup(prep);
    let mut table = results(knn, &histories);
    let _ = writeln!(table, "\n{PUBLISHED}\n");
    let md = format!("# {title}\n\n{set_up}{table}{}{sections}", figures(dir));
    write_file(&dir.file("report.md"), md)?;
    let page = crate::html::Page {
        title,
        setup: &set_up,
        results: &table,
        sections,
    };
    crate::html::write_html(dir, &page)?;
    Ok(histories)
}

/// `val_acc.png` (with the kNN monitor's curve when it ran) and `val_loss.png`.
fn validation_plots(dir: &RunDir, histories: &Histories) -> Result<()> {
    let series = |metric: fn(Run) -> &'static str| -> Vec<(&str, Vec<f64>)> {
        histories
            .runs
            .iter()
            .map(|(run, h)| (run.label(), per_epoch(h, metric(*run))))
            .collect()
    };
    let mut accuracy = series(Run::accuracy_metric);
    if let Some(h) = histories.get(Run::Pretraining)
        && h.epochs.iter().any(|e| e.get(KNN_METRIC).is_some())
    {
        accuracy.push((KNN_LABEL, per_epoch(h, KNN_METRIC)));
    }
    line_plot(
        &dir.file("val_acc.png"),
        "Classification accuracy during training",
        "validation accuracy",
        Legend::LowerRight,
        &accuracy,
    )?;
    line_plot(
        &dir.file("val_loss.png"),
        "Classification loss during training",
        "validation loss",
        Legend::UpperRight,
        &series(Run::loss_metric),
    )
}

/// `metric` at each of `h`'s epochs, NaN (no point) where an epoch lacks it: a run resumed with
/// the kNN monitor switched on draws it from the epoch it started at.
fn per_epoch(h: &History, metric: &str) -> Vec<f64> {
    h.epochs
        .iter()
        .map(|e| e.get(metric).unwrap_or(f64::NAN))
        .collect()
}

/// The bullet list of how and on what the run ran.
pub fn setup(prep: &Prepared) -> String {
    let (d, settings) = (&prep.ds, &prep.settings);
    let data_at = if prep.resident.is_some() {
        "resident on the device, batches gathered there"
    } else {
        "host memory, one upload per batch"
    };
    let kind = format!("{:?}", settings.data.kind).to_lowercase();
    [
        format!("- compute: {}", prep.compute.describe()),
        format!("- data: {data_at}"),
        format!("- data parallel: {}", prep.parallelism()),
        format!(
            "- versions: simclr-rs {}, tch {TCH_VERSION}, libtorch {LIBTORCH_VERSION}",
            env!("CARGO_PKG_VERSION")
        ),
        format!(
            "- data: {kind:?} at {} ({} labeled train, {} unlabeled, {} test, {}x{} images, {} classes)",
            settings.data.root.display(),
            d.train.len(),
            d.unlabeled.len(),
            d.test.len(),
            d.image_size,
            d.image_size,
            d.num_classes()
        ),
        format!(
            "- steps per epoch: {} ({})",
            prep.plan.steps,
            prep.plan.describe()
        ),
        format!("- seed: {}\n\n", settings.seed),
    ]
    .join("\n")
}

/// The table of best validation accuracies, epochs and speed per run, and the kNN monitor's
/// best when it ran.
fn results(knn: &Knn, histories: &Histories) -> String {
    let mut md = String::from(
        "| run | best validation accuracy | epochs | mean epoch time (s) | images/s |\n|---|---|---|---|---|\n",
    );
    for (run, h) in &histories.runs {
        let n = h.epochs.len().max(1) as f64;
        let secs = h.epochs.iter().map(|e| e.train_seconds).sum::<f64>() / n;
        let ips = h.epochs.iter().map(|e| e.images_per_second).sum::<f64>() / n;
        let best = h
            .best(run.accuracy_metric())
            .map_or("n/a".into(), |b| format!("{:.2}%", b * 100.0));
        let _ = writeln!(
            md,
            "| {} | {best} | {} | {secs:.1} | {ips:.0} |",
            run.label(),
            h.epochs.len()
        );
    }
    if let Some(best) = histories.best_knn() {
        let _ = writeln!(
            md,
            "| {KNN_LABEL}, k = {}, t = {} | {:.2}% | | | |",
            knn.k,
            knn.temperature,
            best * 100.0
        );
    }
    md
}

/// The figures the folder holds, as markdown images: those of report.html's figure sections,
/// the optional ones only where present.
fn figures(dir: &RunDir) -> String {
    FIGURE_SECTIONS
        .iter()
        .flat_map(|(_, figures)| figures.iter())
        .filter(|f| !f.optional || dir.file(f.file).is_file())
        .map(|f| format!("![{}]({})\n", f.alt, f.file))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use train::fit::metrics::EpochRecord;

    #[test]
    fn a_metric_missing_from_early_epochs_keeps_its_later_epochs_places() {
        let mut h = History::new("pretraining");
        for (epoch, knn) in [(1, None), (2, Some(0.5)), (3, Some(0.625))] {
            let mut metrics = vec![("val_p_acc".to_string(), 0.25 * epoch as f64)];
            metrics.extend(knn.map(|v| (KNN_METRIC.to_string(), v)));
            h.epochs.push(EpochRecord {
                epoch,
                metrics,
                train_seconds: 1.0,
                images_per_second: 1.0,
            });
        }
        let knn = per_epoch(&h, KNN_METRIC);
        assert!(knn[0].is_nan(), "{knn:?}");
        assert_eq!(knn[1..], [0.5, 0.625]);
        assert_eq!(per_epoch(&h, "val_p_acc"), [0.25, 0.5, 0.75]);
    }
}

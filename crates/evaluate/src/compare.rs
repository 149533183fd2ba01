//! Run folders side by side, as benchmark tables and sweeps show them: every history's
//! validation accuracy in one picture, and a table of each history's best figures.
//!
//! A folder given is any of:
//! - a run folder (`experiment`, `baseline`, `pretrain`, `finetune`): `config.toml` and some of
//!   `baseline.json`, `pretraining.json`, `finetuning.json`;
//! - a `sweep` folder: a run folder (with `pretraining.json` unless the sweep was given an
//!   encoder) holding `labels-<N>/` run folders;
//! - a `folds` folder: a run folder without histories holding `fold-<k>/` run folders.
//!
//! Each history with a finished epoch is one [`Series`], named after the folder as given (and
//! its sub-folder) and the run: `runs/a baseline`, `runs/sweep/labels-10 finetuning`. A
//! `labels-<N>/` or `fold-<k>/` folder without a finished epoch (a sweep still running) is left
//! out with a warning; a folder given that yields no series is an error.
//!
//! The table's figures are the best over the epochs: the largest value of an accuracy (a
//! metric whose name holds `acc`), the smallest of a loss (`loss`), the last finite value of
//! anything else; beside them the epochs done and the mean images per second. Its columns are
//! the union of every series' metrics, matched by name, in the order they first appear; a
//! series without a metric leaves its cell empty.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::create_parents;
use crate::predict::csv_field;
use report::plots::{Legend, line_plot};
use train::error::{Result, TrainError};
use train::experiment::run::{KNN_METRIC, Run};
use train::fit::metrics::History;
use train::run_dir::RunDir;
use train::run_dir::atomic::write_file;

/// The sub-folders of a sweep (`labels-<N>`) and of the folds (`fold-<k>`) that hold runs.
const SUB_RUNS: [&str; 2] = [crate::sweep::FOLDER_PREFIX, crate::folds::FOLDER_PREFIX];

/// One history of one run folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `<folder> <run>`: the folder as given (a sweep's or the folds' sub-folder joined to it)
    /// and the run's name.
    pub name: String,
    /// The run folder holding the history, as named in [`Series::name`].
    pub folder: PathBuf,
    pub run: Run,
    /// At least one finished epoch.
    pub history: History,
}

impl Series {
    /// `metric` at epochs 1, 2, ... (by each record's epoch number), NaN where an epoch lacks
    /// it; empty if no epoch has it.
    pub fn by_epoch(&self, metric: &str) -> Vec<f64> {
        let records = &self.history.epochs;
        if records.iter().all(|e| e.get(metric).is_none()) {
            return Vec::new();
        }
        let last = records.iter().map(|e| e.epoch).max().unwrap_or(0);
        let mut values = vec![f64::NAN; last];
        for e in records {
            if let (Some(v), Some(slot)) = (e.get(metric), e.epoch.checked_sub(1)) {
                values[slot] = v;
            }
        }
        values
    }
}

/// Which value over the epochs is a metric's best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// An accuracy (`acc` in its name): the largest.
    Max,
    /// A loss (`loss` in its name): the smallest.
    Min,
    /// Anything else: the last finite value.
    Last,
}

impl Goal {
    pub fn of(metric: &str) -> Goal {
        if metric.contains("loss") {
            Goal::Min
        } else if metric.contains("acc") {
            Goal::Max
        } else {
            Goal::Last
        }
    }
}

/// The best value of `metric` in `history` (see [`Goal`]), over the epochs where it is
/// finite: `None` if no epoch has the metric, NaN if none of its values is finite.
pub fn best(history: &History, metric: &str) -> Option<f64> {
    let values = history.series(metric);
    if values.is_empty() {
        return None;
    }
    let mut finite = values.iter().copied().filter(|v| v.is_finite());
    let best = match Goal::of(metric) {
        Goal::Max => finite.reduce(f64::max),
        Goal::Min => finite.reduce(f64::min),
        Goal::Last => finite.next_back(),
    };
    Some(best.unwrap_or(f64::NAN))
}

/// One row of the [`Table`]: a series' best figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub series: String,
    pub folder: PathBuf,
    pub run: Run,
    /// Finished epochs.
    pub epochs: usize,
    /// Mean over the epochs of the images per second of training.
    pub images_per_second: f64,
    /// The best value of each of [`Table::metrics`], `None` where the series lacks it.
    pub best: Vec<Option<f64>>,
}

/// Every series' best figures, their metrics aligned by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Every metric of any series, in the order they first appear.
    pub metrics: Vec<String>,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn of(series: &[Series]) -> Table {
        let mut metrics: Vec<String> = Vec::new();
        for name in series.iter().flat_map(|s| s.history.metric_names()) {
            if !metrics.iter().any(|m| m == name) {
                metrics.push(name.to_string());
            }
        }
        let rows = series
            .iter()
            .map(|s| {
                let speeds: Vec<f64> = s
                    .history
                    .epochs
                    .iter()
                    .map(|e| e.images_per_second)
                    .filter(|v| v.is_finite())
                    .collect();
                Row {
                    series: s.name.clone(),
                    folder: s.folder.clone(),
                    run: s.run,
                    epochs: s.history.epochs.len(),
                    images_per_second: speeds.iter().sum::<f64>() / speeds.len().max(1) as f64,
                    best: metrics.iter().map(|m| best(&s.history, m)).collect(),
                }
            })
            .collect();
        Table { metrics, rows }
    }

    /// The table in markdown: `| series | epochs | images/s | <metrics> |`, figures to four
    /// decimals, an empty cell where a series lacks the metric.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "| series | epochs | images/s |{}",
            self.metrics
                .iter()
                .map(|m| format!(" {} |", markdown_cell(m)))
                .collect::<String>()
        );
        let _ = writeln!(md, "|---|---:|---:|{}", "---:|".repeat(self.metrics.len()));
        for r in &self.rows {
            let cells: String = r
                .best
                .iter()
                .map(|b| match b {
                    Some(v) => format!(" {v:.4} |"),
                    None => " |".into(),
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} |{cells}",
                markdown_cell(&r.series),
                r.epochs,
                r.images_per_second
            );
        }
        md
    }

    /// The table as CSV: `series,folder,run,epochs,images_per_second,<metrics>`, figures in
    /// full precision, an empty cell where a series lacks the metric.
    pub fn csv(&self) -> String {
        let mut csv = String::from("series,folder,run,epochs,images_per_second");
        for m in &self.metrics {
            csv.push(',');
            csv.push_str(&csv_field(m));
        }
        csv.push('\n');
        for r in &self.rows {
            let _ = write!(
                csv,
                "{},{},{},{},{}",
                csv_field(&r.series),
                csv_field(&r.folder.display().to_string()),
                r.run.name(),
                r.epochs,
                r.images_per_second
            );
            for b in &r.best {
                csv.push(',');
                if let Some(v) = b {
                    let _ = write!(csv, "{v}");
                }
            }
            csv.push('\n');
        }
        csv
    }
}

/// `text` in a markdown table's cell (`|` escaped).
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The series of every folder in `folders`, in the order given (a sweep's own histories, then
/// its `labels-<N>/` folders by budget; the folds by number). A folder reached twice (given
/// twice, or given inside a sweep also given) counts once.
///
/// Errors name the folder: one that does not exist, is not a folder, is not a run folder (no
/// `config.toml`, no history and no `labels-<N>/` or `fold-<k>/` folder) or has no finished
/// epoch; or the history file that is not a history.
pub fn load(folders: &[PathBuf]) -> Result<Vec<Series>> {
    if folders.is_empty() {
        return Err(TrainError::file("compare", "no run folders to compare"));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for given in folders {
        for s in load_folder(given)? {
            // The same folder by another name counts once.
            let key = (
                std::fs::canonicalize(&s.folder).unwrap_or_else(|_| s.folder.clone()),
                s.run,
            );
            if seen.insert(key) {
                out.push(s);
            } else {
                tracing::info!("{}: already compared, counted once", s.name);
            }
        }
    }
    Ok(out)
}

/// The series of one folder given: its own histories and its sub-folders' runs.
fn load_folder(given: &Path) -> Result<Vec<Series>> {
    match std::fs::metadata(given) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(TrainError::file(
                given,
                "not a folder (compare takes run folders)",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TrainError::file(given, "no such folder"));
        }
        Err(e) => return Err(TrainError::io(given, e)),
    }
    // `runs/a/` and `runs/a` name the same series.
    let folder: PathBuf = given.components().collect();
    let (mut series, mut histories) = run_series(&folder)?;
    let subs = sub_runs(&folder)?;
    if histories.is_empty() && subs.is_empty() && !is_run(&folder) {
        return Err(TrainError::file(
            given,
            "not a run folder (no config.toml, no history and no labels-<N>/ or fold-<k>/ \
             run folders)",
        ));
    }
    for (name, sub) in &subs {
        let (found, files) = run_series(sub)?;
        if found.is_empty() {
            tracing::warn!(
                "{}: left out, no finished epoch (a run not yet started?)",
                sub.display()
            );
        }
        series.extend(found);
        histories.extend(files.into_iter().map(|f| format!("{name}/{f}")));
    }
    if series.is_empty() {
        let problem = if histories.is_empty() {
            format!(
                "empty run: no history ({})",
                Run::ALL.map(|r| format!("{}.json", r.name())).join(", ")
            )
        } else {
            format!("empty run: no finished epoch in {}", histories.join(", "))
        };
        return Err(TrainError::file(given, problem));
    }
    Ok(series)
}

/// The series of the run folder `folder` (those with a finished epoch) and the names of every
/// history file it holds.
fn run_series(folder: &Path) -> Result<(Vec<Series>, Vec<String>)> {
    let dir = RunDir::read_only(folder);
    let histories = dir.histories()?;
    for (run, h) in &histories.runs {
        if let Some(e) = h
            .epochs
            .iter()
            .find(|e| e.epoch == 0 || e.epoch > MAX_EPOCH)
        {
            let file = folder.join(format!("{}.json", run.name()));
            let problem = format!("epoch {} is outside 1..={MAX_EPOCH}", e.epoch);
            return Err(TrainError::file(file, problem));
        }
    }
    let files = histories
        .runs
        .iter()
        .map(|(run, _)| format!("{}.json", run.name()))
        .collect();
    let series = histories
        .runs
        .into_iter()
        .filter(|(_, h)| !h.epochs.is_empty())
        .map(|(run, history)| Series {
            name: format!("{} {}", folder.display(), run.name()),
            folder: folder.to_path_buf(),
            run,
            history,
        })
        .collect();
    Ok((series, files))
}

/// The largest epoch number a history may hold (the curves have a slot per epoch).
const MAX_EPOCH: usize = 1_000_000;

/// Whether `folder` holds a run: its `config.toml` or a history.
fn is_run(folder: &Path) -> bool {
    folder.join("config.toml").is_file()
        || Run::ALL
            .iter()
            .any(|r| folder.join(format!("{}.json", r.name())).is_file())
}

/// `folder`'s `labels-<N>/` run folders by budget (`all` last), then its `fold-<k>/` run
/// folders by number, each with its name.
fn sub_runs(folder: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(folder).map_err(|e| TrainError::io(folder, e))?;
    let mut subs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::io(folder, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(kind) = SUB_RUNS.iter().position(|p| name.starts_with(p)) else {
            continue;
        };
        if !entry.path().is_dir() || !is_run(&entry.path()) {
            continue;
        }
        let rest = &name[SUB_RUNS[kind].len()..];
        let number = match rest {
            "all" => Some(u64::MAX),
            n => n.parse::<u64>().ok(),
        };
        // Names that are not numbers go last, in alphabetical order.
        let path = folder.join(&name);
        subs.push(((kind, number.is_none(), number, name.clone()), name, path));
    }
    subs.sort();
    Ok(subs
        .into_iter()
        .map(|(_, name, path)| (name, path))
        .collect())
}

/// The picture's curves: each series' validation accuracy ([`Run::accuracy_metric`]: the
/// linear probe's for pretraining) and the kNN monitor's where it ran, against the epoch.
pub fn curves(series: &[Series]) -> Vec<(String, Vec<f64>)> {
    let mut curves = Vec::new();
    for s in series {
        let acc = s.by_epoch(s.run.accuracy_metric());
        if !acc.is_empty() {
            curves.push((s.name.clone(), acc));
        }
        let knn = s.by_epoch(KNN_METRIC);
        if !knn.is_empty() {
            curves.push((format!("{} (kNN)", s.name), knn));
        }
    }
    curves
}

/// Draws [`curves`] of `series` into the PNG `path`, the legend under the chart.
pub fn plot(path: &Path, series: &[Series]) -> Result<()> {
    let (names, values): (Vec<String>, Vec<Vec<f64>>) = curves(series).into_iter().unzip();
    let lines: Vec<(&str, Vec<f64>)> = names.iter().map(String::as_str).zip(values).collect();
    line_plot(
        path,
        "Validation accuracy",
        "validation accuracy",
        Legend::Below,
        &lines,
    )
}

/// Compares the run folders `folders`: [`load`]s their series, draws them into the PNG
/// `picture` ([`plot`]) and writes the [`Table`] of their best figures as CSV to `csv` (each
/// file written atomically, its folder created if missing); returns the table.
pub fn compare(folders: &[PathBuf], picture: &Path, csv: &Path) -> Result<Table> {
    let series = load(folders)?;
    create_parents([picture, csv])?;
    plot(picture, &series)?;
    let table = Table::of(&series);
    write_file(csv, table.csv())?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use train::fit::metrics::EpochRecord;

    /// A history of `run` whose epoch `i` (from 1) has `metrics[k].1[i - 1]` for each metric.
    fn history(run: Run, metrics: &[(&str, &[f64])], speed: &[f64]) -> History {
        let mut h = History::new(run.name());
        for (i, ips) in speed.iter().enumerate() {
            h.epochs.push(EpochRecord {
                epoch: i + 1,
                metrics: metrics
                    .iter()
                    .filter_map(|(name, values)| Some((name.to_string(), *values.get(i)?)))
                    .collect(),
                train_seconds: 2.0,
                images_per_second: *ips,
            });
        }
        h
    }

    /// A run folder `dir` with `config.toml` and `histories`, written as the runs write them.
    fn run_folder(dir: &Path, histories: &[History]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("config.toml"), "").unwrap();
        for h in histories {
            std::fs::write(dir.join(format!("{}.json", h.run)), h.to_json()).unwrap();
        }
    }

    fn baseline() -> History {
        history(
            Run::Baseline,
            &[
                ("loss", &[2.0, 1.5, 1.25]),
                ("acc", &[0.25, 0.5, 0.625]),
                ("val_loss", &[1.75, 1.0, 1.5]),
                ("val_acc", &[0.3, 0.55, 0.45]),
            ],
            &[100.0, 200.0, 300.0],
        )
    }

    fn pretraining() -> History {
        history(
            Run::Pretraining,
            &[
                ("c_loss", &[5.0, 4.0]),
                ("val_p_loss", &[2.5, 2.25]),
                ("val_p_acc", &[0.2, 0.35]),
                ("val_knn_acc", &[0.4, 0.3]),
            ],
            &[50.0, 70.0],
        )
    }

    fn csv_rows(csv: &str) -> Vec<Vec<String>> {
        csv.lines()
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect()
    }

    fn column(rows: &[Vec<String>], name: &str) -> usize {
        rows[0].iter().position(|c| c == name).unwrap()
    }

    #[test]
    fn metrics_align_by_name_and_missing_cells_stay_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        run_folder(&a, &[baseline()]);
        run_folder(&b, &[pretraining()]);
        let series = load(&[a.clone(), b.clone()]).unwrap();
        let table = Table::of(&series);
        assert_eq!(
            table.metrics,
            [
                "loss",
                "acc",
                "val_loss",
                "val_acc",
                "c_loss",
                "val_p_loss",
                "val_p_acc",
                "val_knn_acc"
            ]
        );
        let rows = csv_rows(&table.csv());
        assert_eq!(
            rows[0][..5],
            ["series", "folder", "run", "epochs", "images_per_second"]
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1][0], format!("{} baseline", a.display()));
        assert_eq!(rows[2][0], format!("{} pretraining", b.display()));
        assert_eq!(rows[2][2], "pretraining");
        // The baseline has no pretraining metric and the pretraining no baseline one.
        for name in ["c_loss", "val_p_loss", "val_p_acc", "val_knn_acc"] {
            assert_eq!(rows[1][column(&rows, name)], "", "{name}");
            assert_ne!(rows[2][column(&rows, name)], "", "{name}");
        }
        for name in ["loss", "acc", "val_loss", "val_acc"] {
            assert_eq!(rows[2][column(&rows, name)], "", "{name}");
            assert_ne!(rows[1][column(&rows, name)], "", "{name}");
        }
        assert!(rows.iter().all(|r| r.len() == rows[0].len()));
        let md = table.markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| series | epochs | images/s | loss | acc | val_loss | val_acc | c_loss | \
             val_p_loss | val_p_acc | val_knn_acc |"
        );
        assert_eq!(
            lines[1],
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        assert_eq!(
            lines[2],
            format!(
                "| {} baseline | 3 | 200 | 1.2500 | 0.6250 | 1.0000 | 0.5500 | | | | |",
                a.display()
            )
        );
        assert_eq!(
            lines[3],
            format!(
                "| {} pretraining | 2 | 60 | | | | | 4.0000 | 2.2500 | 0.3500 | 0.4000 |",
                b.display()
            )
        );
    }

    #[test]
    fn best_is_the_largest_accuracy_and_the_smallest_loss() {
        let tmp = tempfile::tempdir().unwrap();
        // Values chosen so that first, last, largest and smallest all differ.
        let val_acc = [0.31, 0.72, 0.64, 0.12];
        let val_loss = [1.9, 0.7, 0.4, 2.2];
        let speed = [120.0, 80.0, 100.0, 140.0];
        let mut h = history(
            Run::Finetuning,
            &[("val_loss", &val_loss), ("val_acc", &val_acc)],
            &speed,
        );
        // A diverged epoch's NaN is never the best, and a metric that is not an accuracy or
        // a loss shows its last value.
        h.epochs[3].metrics[0].1 = f64::NAN;
        for (e, lr) in h.epochs.iter_mut().zip([0.1, 0.2, 0.3, 0.05]) {
            e.metrics.push(("lr".into(), lr));
        }
        let dir = tmp.path().join("run");
        run_folder(&dir, &[h]);
        let table = Table::of(&load(std::slice::from_ref(&dir)).unwrap());
        let rows = csv_rows(&table.csv());
        let cell = |name: &str| rows[1][column(&rows, name)].parse::<f64>().unwrap();
        assert_eq!(cell("val_acc"), 0.72);
        // The smallest finite loss: the last epoch's is NaN.
        assert_eq!(cell("val_loss"), 0.4);
        assert_eq!(cell("lr"), 0.05);
        assert_eq!(cell("images_per_second"), speed.iter().sum::<f64>() / 4.0);
        assert_eq!(cell("epochs"), 4.0);
        assert_eq!(Goal::of("val_p_acc"), Goal::Max);
        assert_eq!(Goal::of("c_loss"), Goal::Min);
        // Every value NaN: the metric is there, its best is not a number.
        let all_nan = history(Run::Baseline, &[("val_loss", &[f64::NAN])], &[1.0]);
        assert!(best(&all_nan, "val_loss").unwrap().is_nan());
        assert_eq!(best(&all_nan, "val_acc"), None);
    }

    #[test]
    fn a_sweep_expands_into_its_budgets_and_folds_into_their_folds() {
        let tmp = tempfile::tempdir().unwrap();
        let sweep = tmp.path().join("sweep");
        run_folder(&sweep, &[pretraining()]);
        std::fs::write(sweep.join("sweep.json"), "[]").unwrap();
        let finetuning = || {
            let mut h = baseline();
            h.run = Run::Finetuning.name().into();
            h
        };
        for budget in ["100", "all", "10", "25"] {
            run_folder(
                &sweep.join(format!("labels-{budget}")),
                &[baseline(), finetuning()],
            );
        }
        // A budget not yet started is left out; a file named like a budget is no run.
        run_folder(&sweep.join("labels-50"), &[]);
        std::fs::write(sweep.join("labels-7"), "").unwrap();
        let folds = tmp.path().join("folds");
        run_folder(&folds, &[]);
        for k in [10, 2, 0] {
            run_folder(&folds.join(format!("fold-{k}")), &[finetuning()]);
        }
        // Given with a trailing separator, and one budget given again on its own.
        let names: Vec<String> = load(&[
            PathBuf::from(format!("{}/", sweep.display())),
            sweep.join("labels-10"),
            folds.clone(),
        ])
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
        let (s, f) = (sweep.display(), folds.display());
        let mut expected = vec![format!("{s} pretraining")];
        for budget in ["10", "25", "100", "all"] {
            expected.push(format!("{s}/labels-{budget} baseline"));
            expected.push(format!("{s}/labels-{budget} finetuning"));
        }
        for k in [0, 2, 10] {
            expected.push(format!("{f}/fold-{k} finetuning"));
        }
        assert_eq!(names, expected);
        // A sweep given an encoder has no pretraining of its own.
        std::fs::remove_file(sweep.join("pretraining.json")).unwrap();
        let series = load(std::slice::from_ref(&sweep)).unwrap();
        assert_eq!(series.len(), 8);
        assert_eq!(series[0].folder, sweep.join("labels-10"));
    }

    #[test]
    fn every_error_names_the_folder_or_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let message = |path: &Path| {
            load(&[path.to_path_buf()])
                .expect_err(&path.display().to_string())
                .to_string()
        };
        let missing = tmp.path().join("missing");
        assert_eq!(
            message(&missing),
            format!("{}: no such folder", missing.display())
        );
        let file = tmp.path().join("baseline.json");
        std::fs::write(&file, baseline().to_json()).unwrap();
        assert_eq!(
            message(&file),
            format!(
                "{}: not a folder (compare takes run folders)",
                file.display()
            )
        );
        let other = tmp.path().join("photos");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("cat.png"), "").unwrap();
        // Named like a sweep's budgets, but no runs.
        std::fs::create_dir(other.join("labels-old")).unwrap();
        std::fs::write(other.join("labels-9"), "").unwrap();
        let e = message(&other);
        assert!(
            e.starts_with(&format!("{}: not a run folder", other.display())),
            "{e}"
        );
        let empty = tmp.path().join("empty");
        run_folder(&empty, &[]);
        assert_eq!(
            message(&empty),
            format!(
                "{}: empty run: no history (baseline.json, pretraining.json, finetuning.json)",
                empty.display()
            )
        );
        let unfinished = tmp.path().join("unfinished");
        run_folder(
            &unfinished,
            &[History::new("baseline"), History::new("pretraining")],
        );
        assert_eq!(
            message(&unfinished),
            format!(
                "{}: empty run: no finished epoch in baseline.json, pretraining.json",
                unfinished.display()
            )
        );
        let not_a_history = |given: &Path, history: PathBuf| {
            let e = message(given);
            let start = format!("{}: not a run history", history.display());
            assert!(e.starts_with(&start), "{e}");
        };
        let broken = tmp.path().join("broken");
        run_folder(&broken, &[baseline()]);
        std::fs::write(broken.join("finetuning.json"), "{\"run\": \"finetuning\"").unwrap();
        not_a_history(&broken, broken.join("finetuning.json"));
        // Epochs count from 1: an epoch 0 has no place on the curves.
        let zero = tmp.path().join("zero");
        let mut h = baseline();
        h.epochs[0].epoch = 0;
        run_folder(&zero, &[h]);
        assert_eq!(
            message(&zero),
            format!(
                "{}: epoch 0 is outside 1..={MAX_EPOCH}",
                zero.join("baseline.json").display()
            )
        );
        // Inside a sweep, too: a broken budget's history is an error, not left out.
        let sweep = tmp.path().join("sweep");
        run_folder(&sweep, &[pretraining()]);
        run_folder(&sweep.join("labels-10"), &[]);
        std::fs::write(sweep.join("labels-10/baseline.json"), "[1, 2]").unwrap();
        not_a_history(&sweep, sweep.join("labels-10/baseline.json"));
        // A sweep none of whose runs finished an epoch is empty.
        let idle = tmp.path().join("idle");
        run_folder(&idle, &[]);
        run_folder(&idle.join("labels-10"), &[History::new("baseline")]);
        assert_eq!(
            message(&idle),
            format!(
                "{}: empty run: no finished epoch in labels-10/baseline.json",
                idle.display()
            )
        );
        assert_eq!(
            load(&[]).unwrap_err().to_string(),
            "compare: no run folders to compare"
        );
    }

    #[test]
    fn curves_follow_the_epoch_numbers_and_the_picture_is_drawn() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let mut pre = pretraining();
        // The kNN monitor switched on for the second epoch only (a resumed run).
        pre.epochs[0].metrics.retain(|(k, _)| k != KNN_METRIC);
        run_folder(&dir, &[baseline(), pre]);
        let series = load(std::slice::from_ref(&dir)).unwrap();
        let curves = curves(&series);
        let names: Vec<&str> = curves.iter().map(|(n, _)| n.as_str()).collect();
        let d = dir.display();
        assert_eq!(
            names,
            [
                format!("{d} baseline"),
                format!("{d} pretraining"),
                format!("{d} pretraining (kNN)")
            ]
        );
        assert_eq!(curves[0].1, [0.3, 0.55, 0.45]);
        assert_eq!(curves[1].1, [0.2, 0.35]);
        assert!(curves[2].1[0].is_nan());
        assert_eq!(curves[2].1[1], 0.3);
        let picture = tmp.path().join("out/compare.png");
        let csv = tmp.path().join("out/compare.csv");
        let table = compare(std::slice::from_ref(&dir), &picture, &csv).unwrap();
        assert_eq!(table.rows.len(), 2);
        assert_eq!(std::fs::read_to_string(&csv).unwrap(), table.csv());
        let bytes = std::fs::read(&picture).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }

    #[test]
    fn names_with_commas_and_bars_are_quoted_and_escaped() {
        assert_eq!(csv_field("runs/a,b baseline"), "\"runs/a,b baseline\"");
        assert_eq!(csv_field("say \"hi\","), "\"say \"\"hi\"\",\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(markdown_cell("a|b"), "a\\|b");
    }
}

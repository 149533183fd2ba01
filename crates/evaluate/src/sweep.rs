//! The label-efficiency sweep: how much each method gets out of a given number of labels.
//!
//! One pretraining (or a given encoder), then for each budget of labels per class a
//! supervised baseline and a fine-tuning run on the same labeled subset, and the linear
//! evaluation and kNN on frozen features of that subset, all scored on the test split.
//!
//! - **Subsets** come from the full labeled training split (IDX: all 60,000 Fashion-MNIST
//!   labels, whatever `data.labeled_per_class` holds back for pretraining), chosen per class
//!   by the seed exactly as `data.labeled_per_class` chooses them, so they are nested: the 10
//!   images of a class are among its 25, and a budget equal to `data.labeled_per_class` is the
//!   experiment's own labeled set.
//! - **Supervised runs** keep the experiment's schedule: its supervised epoch is one pass over
//!   its `L` labeled images in batches of `b = L / steps` (STL-10: 200 steps of 25), so
//!   `S = ceil(L / b)` steps. A budget of `m` labels trains with batches of `max(b, m / S)`
//!   images, and a subset smaller than an epoch is repeated (whole copies, reshuffled every
//!   epoch) until it fills at least `S` steps: every budget gets (about) the same number of
//!   optimizer steps, small ones seeing each label several times per epoch.
//! - **Scores** are the best test accuracy over the epochs for the trained runs (as the example
//!   reports its runs), and the final accuracy of the linear evaluation and of kNN.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use stl10_data::Dataset;
use tch::Device;

use crate::subsets::Subsets;
use report::plots::efficiency_plot;
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

/// The command-line name of the budgets, for messages.
const BUDGETS_ARG: &str = "--labels-per-class";

/// A budget's run folder in the sweep's: `labels-<N>` (`labels-all`).
pub(crate) const FOLDER_PREFIX: &str = "labels-";

/// Labels per class for one point of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Budget {
    PerClass(usize),
    /// Every labeled training image.
    All,
}

impl Budget {
    /// `10,25,50,100,all` (sorted, duplicates removed); errors name `--labels-per-class`.
    pub fn parse_list(text: &str) -> Result<Vec<Budget>, ConfigError> {
        let bad = |message: String| ConfigError::Invalid {
            key: BUDGETS_ARG.into(),
            message,
        };
        let mut budgets = text
            .split(',')
            .map(str::trim)
            .map(|part| match part {
                "all" => Ok(Budget::All),
                n => match n.parse::<usize>() {
                    Ok(0) => Err(bad("a budget must be at least 1 label per class".into())),
                    Ok(n) => Ok(Budget::PerClass(n)),
                    Err(_) => Err(bad(format!(
                        "'{n}' is neither a number of labels per class nor 'all'"
                    ))),
                },
            })
            .collect::<Result<Vec<_>, _>>()?;
        budgets.sort();
        budgets.dedup();
        Ok(budgets)
    }

    /// `10` or `all`.
    pub fn name(self) -> String {
        match self {
            Budget::PerClass(n) => n.to_string(),
            Budget::All => "all".into(),
        }
    }
}

/// One row of the sweep's table (accuracies on the test split, in [0, 1]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRow {
    /// `10`, ..., or `all`.
    pub labels_per_class: String,
    /// Labeled images used.
    pub labels: usize,
    /// Labeled images per supervised step and steps per epoch.
    pub batch_size: usize,
    pub steps_per_epoch: usize,
    pub baseline: f64,
    pub finetuned: f64,
    pub linear: f64,
    pub knn: f64,
}

/// The methods in the table, as `(column, label)`.
pub const METHODS: [(&str, &str); 4] = [
    ("baseline", "supervised baseline"),
    ("finetuned", "fine-tuned"),
    ("linear", "linear probe (frozen)"),
    ("knn", "kNN (frozen)"),
];

impl SweepRow {
    fn scores(&self) -> [f64; 4] {
        [self.baseline, self.finetuned, self.linear, self.knn]
    }
}

/// Where the sweep writes and what it starts from.
pub struct SweepPlan<'a> {
    pub budgets: &'a [Budget],
    /// A trained `encoder.safetensors` to evaluate instead of pretraining one.
    pub encoder: Option<&'a Path>,
    pub out: &'a Path,
}

/// Runs the sweep into `plan.out`: the pretraining run folder itself (unless an encoder is
/// given), `labels-<budget>/` run folders of the supervised runs, `sweep.csv`, `sweep.json`,
/// `label_efficiency.png` and a section in `report.md` and `report.html`; every run folder
/// with its `tensorboard/`.
pub fn run(
    cfg: &Config,
    device: Device,
    plan: &SweepPlan,
    obs: &mut dyn Observer,
) -> Result<Vec<SweepRow>> {
    let seed = cfg.runtime.seed;
    let mut all_labels = cfg.data.clone();
    all_labels.labeled_per_class = None;
    let full = stl10_data::load(&all_labels, seed)?;
    let selections = plan
        .budgets
        .iter()
        .map(|&b| Ok((b, selection(&full, b, seed)?)))
        .collect::<Result<Vec<_>>>()?;
    let pretraining_data = match cfg.data.labeled_per_class {
        Some(n) => stl10_data::keep_labeled_per_class(full.clone(), n, seed)?,
        None => full.clone(),
    };
    let prep = Prepared::with_dataset(&cfg.data_settings(), cfg.compute(device), pretraining_data)?;
    let dir = RunDir::create(plan.out, cfg)?;
    report::overview::write_overview(&cfg.pretraining(), &prep, &dir, 8)?;
    let encoder: PathBuf = match plan.encoder {
        Some(e) => e.to_path_buf(),
        None => {
            let mut tb = TensorBoard::for_run(&dir, cfg);
            experiment::pretrain(&cfg.pretraining(), &prep, &dir, &mut (&mut *obs, &mut tb))?;
            report::tensorboard::pretrained_features(cfg, &prep, &dir, tb.as_mut())?;
            dir.file("encoder.safetensors")
        }
    };
    let frozen = FrozenEncoder::load(&cfg.model_shapes(), prep.compute, &encoder, None)?;
    let test = crate::subsets::test_features(&cfg.data.root, &frozen, &full, device)?;
    let shared = Subsets {
        cfg,
        device,
        prep: &prep,
        full: &full,
        encoder: &encoder,
        frozen: &frozen,
        test: &test,
        out: plan.out,
    };
    let mut rows = Vec::new();
    for (budget, positions) in selections {
        tracing::info!(
            "label budget {} per class: {} labeled images",
            budget.name(),
            positions.len()
        );
        rows.push(run_budget(&shared, budget, &positions, obs)?);
        write_tables(&dir, &rows, full.num_classes())?;
    }
    let section = markdown(&rows, plan.encoder);
    report::markdown::write_report_with(&cfg.eval.knn(), &prep, &dir, &section)?;
    Ok(rows)
}

/// Positions in the training split of `budget` labels per class (nested across budgets).
fn selection(full: &Dataset, budget: Budget, seed: u64) -> Result<Vec<usize>> {
    let labels = full.train.labels().unwrap_or(&[]);
    match budget {
        Budget::All => Ok((0..full.train.len()).collect()),
        Budget::PerClass(n) => stl10_data::per_class_selection(labels, &full.class_names, n, seed)
            .map(|(keep, _)| keep)
            .map_err(|e| {
                let problem = match e {
                    stl10_data::DataError::Config { problem, .. } => problem,
                    other => other.to_string(),
                };
                ConfigError::Invalid {
                    key: BUDGETS_ARG.into(),
                    message: format!("{n} is more than the data has: {problem}"),
                }
                .into()
            }),
    }
}

/// The supervised runs, the linear evaluation and kNN of one budget.
fn run_budget(
    on: &Subsets,
    budget: Budget,
    positions: &[usize],
    obs: &mut dyn Observer,
) -> Result<SweepRow> {
    let (budget_cfg, budget_prep, dir) =
        on.run_folder(&format!("{FOLDER_PREFIX}{}", budget.name()), positions)?;
    let obs = &mut (obs, TensorBoard::for_run(&dir, &budget_cfg));
    let baseline =
        experiment::baseline(&budget_cfg.supervised_baseline(), &budget_prep, &dir, obs)?;
    let finetuned = experiment::finetune(
        &budget_cfg.finetuning(),
        &budget_prep,
        on.encoder,
        &dir,
        obs,
    )?;
    report::markdown::write_report(&budget_cfg.eval.knn(), &budget_prep, &dir)?;
    let (linear, knn) = on.frozen_scores(positions)?;
    let best = |h: &train::fit::metrics::History, run: Run| {
        h.best(run.accuracy_metric()).unwrap_or(f64::NAN)
    };
    Ok(SweepRow {
        labels_per_class: budget.name(),
        labels: positions.len(),
        batch_size: budget_cfg.data.batch_size,
        steps_per_epoch: budget_prep.plan.steps,
        baseline: best(&baseline, Run::Baseline),
        finetuned: best(&finetuned, Run::Finetuning),
        linear,
        knn,
    })
}

/// `sweep.csv`, `sweep.json` and `label_efficiency.png` for the rows so far.
fn write_tables(dir: &RunDir, rows: &[SweepRow], classes: usize) -> Result<()> {
    let mut csv = String::from(
        "labels_per_class,labels,batch_size,steps_per_epoch,baseline,finetuned,linear,knn\n",
    );
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.4},{:.4},{:.4},{:.4}",
            r.labels_per_class,
            r.labels,
            r.batch_size,
            r.steps_per_epoch,
            r.baseline,
            r.finetuned,
            r.linear,
            r.knn
        );
    }
    write_file(&dir.file("sweep.csv"), csv)?;
    let json = serde_json::to_string_pretty(rows).expect("plain values serialize");
    write_file(&dir.file("sweep.json"), json)?;
    let per_class = |r: &SweepRow| r.labels as f64 / classes.max(1) as f64;
    let series: Vec<(&str, Vec<(f64, f64)>)> = METHODS
        .iter()
        .enumerate()
        .map(|(i, (_, label))| {
            let points = rows.iter().map(|r| (per_class(r), r.scores()[i])).collect();
            (*label, points)
        })
        .collect();
    efficiency_plot(
        &dir.file("label_efficiency.png"),
        "Test accuracy against labels per class",
        &series,
    )
}

/// The report's section: the table and the picture.
pub(crate) fn markdown(rows: &[SweepRow], encoder: Option<&Path>) -> String {
    let mut md = String::from("\n## Label efficiency\n\n");
    let _ = writeln!(
        md,
        "Encoder: {}. Test accuracy for each budget of labels per class (nested subsets \
         chosen by the seed); baseline and fine-tuned: best over the epochs; linear probe and \
         kNN: on frozen features.\n",
        encoder.map_or("pretrained in this run".into(), |e| e.display().to_string())
    );
    let _ = writeln!(
        md,
        "| labels per class | labels | {} |",
        METHODS.map(|m| m.1).join(" | ")
    );
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(METHODS.len()));
    for r in rows {
        let cells: Vec<String> = r
            .scores()
            .iter()
            .map(|s| format!("{:.2}%", s * 100.0))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            r.labels_per_class,
            r.labels,
            cells.join(" | ")
        );
    }
    let _ = writeln!(md, "\n![label efficiency](label_efficiency.png)");
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_sorted_and_errors_name_the_argument() {
        assert_eq!(
            Budget::parse_list("100, 10,all,25,10").unwrap(),
            [
                Budget::PerClass(10),
                Budget::PerClass(25),
                Budget::PerClass(100),
                Budget::All
            ]
        );
        for bad in ["0", "ten", "10,,25", "-3"] {
            let e = Budget::parse_list(bad).unwrap_err().to_string();
            assert!(e.starts_with("--labels-per-class"), "{bad}: {e}");
        }
    }
}

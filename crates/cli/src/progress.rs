//! Keras-`fit`-like progress: a bar per epoch (hidden when stderr is not a terminal) and one
//! summary line per epoch on stdout.

use indicatif::{ProgressBar, ProgressStyle};
use train::fit::Observer;
use train::metrics::EpochRecord;

pub struct Progress {
    bar: Option<ProgressBar>,
    show_bar: bool,
    quiet: bool,
}

impl Progress {
    pub fn new(show_bar: bool, quiet: bool) -> Self {
        Progress {
            bar: None,
            show_bar: show_bar && !quiet,
            quiet,
        }
    }
}

impl Observer for Progress {
    fn epoch_start(&mut self, run: &str, epoch: usize, epochs: usize, steps: usize) {
        if !self.quiet {
            println!("{run}: epoch {epoch}/{epochs}");
        }
        if self.show_bar {
            let bar = ProgressBar::new(steps as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{pos:>4}/{len} [{bar:30}] {elapsed} ({per_sec}) {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, step: usize, means: &[(&'static str, f64)]) {
        if let Some(bar) = &self.bar {
            let msg: Vec<String> = means.iter().map(|(k, v)| format!("{k}: {v:.4}")).collect();
            bar.set_position(step as u64);
            bar.set_message(msg.join(" - "));
        }
    }

    fn epoch_end(&mut self, _run: &str, record: &EpochRecord) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            println!("{}", record.line());
        }
    }
}

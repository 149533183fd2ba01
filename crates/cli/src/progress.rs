//! Keras-`fit`-like progress: while an epoch runs, a line with steps done of all, a bar, the time
//! elapsed and left, the time a step and the running metrics to 4 digits (on stderr, only when it
//! is a terminal: no escape codes reach a file or a pipe); after it, one summary line on stdout.

use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use train::fit::metrics::EpochRecord;
use train::fit::{Observer, StepReport};

/// Set by the first Ctrl-C or SIGTERM: the run saves a checkpoint after its current step.
static STOP: AtomicBool = AtomicBool::new(false);

/// Makes Ctrl-C and SIGTERM ask the running phase to stop after its current step (a second
/// signal quits at once, exit status 130). Installed once; later calls do nothing.
pub fn stop_on_signals() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let handler = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond interrupt: quitting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!(
                "\ninterrupt: stopping after this step to save a checkpoint (again to quit now)"
            );
        });
        if let Err(e) = handler {
            tracing::warn!("Ctrl-C will not save a checkpoint: {e}");
        }
    });
}

pub struct Progress {
    bar: Option<ProgressBar>,
    /// Whether the bar has had its first step (a resumed epoch starts mid-way).
    placed: bool,
    show_bar: bool,
    quiet: bool,
}

/// Keras's time a step, `373ms/step` or `2.7s/step`, from steps a second; empty before the
/// first step.
fn step_time(per_sec: f64) -> String {
    if !(per_sec.is_finite() && per_sec > 0.0) {
        return String::new();
    }
    let seconds = 1.0 / per_sec;
    if seconds >= 1.0 {
        format!("{seconds:.1}s/step")
    } else {
        format!("{:.0}ms/step", seconds * 1000.0)
    }
}

/// The epoch line: `  40/200 [=====>    ] - 15s elapsed - ETA 00:01:02 - 373ms/step - c_loss:
/// 4.9912 - ...` (the metrics once the first are read).
fn epoch_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{pos:>4}/{len} [{bar:30}] - {elapsed} elapsed - ETA {eta_precise} - {step_time}{msg}",
    )
    .expect("valid template")
    .with_key(
        "step_time",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&step_time(state.per_sec()));
        },
    )
    .progress_chars("=> ")
}

impl Progress {
    pub fn new(show_bar: bool, quiet: bool) -> Self {
        Progress {
            bar: None,
            placed: false,
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
            bar.set_style(epoch_style());
            self.bar = Some(bar);
            self.placed = false;
        }
    }

    fn step(&mut self, s: &StepReport) {
        if let Some(bar) = &self.bar {
            bar.set_position(s.step as u64);
            // The means change only on the steps that read them.
            if (s.read || !self.placed) && !s.means.is_empty() {
                let msg: Vec<String> = s
                    .means
                    .iter()
                    .map(|(k, v)| format!("{k}: {v:.4}"))
                    .collect();
                bar.set_message(format!(" - {}", msg.join(" - ")));
            }
            if !self.placed {
                // The rate and time left count from here, not from a resumed epoch's start.
                bar.reset_eta();
                self.placed = true;
            }
        }
    }

    fn should_stop(&self) -> bool {
        STOP.load(Ordering::SeqCst)
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

/// A download's bar: bytes, rate and time left (hidden when asked or not on a terminal).
pub struct Transfer {
    bar: Option<ProgressBar>,
}

impl Transfer {
    pub fn new(show: bool) -> Self {
        Transfer {
            bar: show.then(ProgressBar::hidden),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl stl10_data::download::Progress for Transfer {
    fn start(&mut self, done: u64, total: Option<u64>) {
        let Some(bar) = &self.bar else { return };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_length(total.unwrap_or(0));
        bar.set_position(done);
        let template = "{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} {eta} {msg}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
    }

    fn advance(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn phase(&mut self, name: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(name.to_string()),
            None => tracing::info!("{name} the archive"),
        }
    }
}

/// `data pack`'s bar: images packed, rate and time left (hidden when asked or not on a
/// terminal); Ctrl-C asks the pack to stop after its current shard.
pub struct Packing {
    bar: Option<ProgressBar>,
}

impl Packing {
    pub fn new(show: bool) -> Self {
        Packing {
            bar: show.then(ProgressBar::hidden),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl stl10_data::pack::PackObserver for Packing {
    fn start(&mut self, total: usize, done: usize) {
        if done > 0 {
            tracing::info!("{done} of {total} images already packed: kept");
        }
        let Some(bar) = &self.bar else { return };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.reset_eta();
        let template = "{pos}/{len} images [{bar:30}] {per_sec} ETA {eta}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
    }

    fn packed(&mut self, images: usize) {
        if let Some(bar) = &self.bar {
            bar.inc(images as u64);
        }
    }

    fn should_stop(&self) -> bool {
        STOP.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::step_time;

    #[test]
    fn the_time_a_step_reads_as_keras_writes_it() {
        assert_eq!(step_time(2.68), "373ms/step");
        assert_eq!(step_time(0.37), "2.7s/step");
        assert_eq!(step_time(1.0), "1.0s/step");
        assert_eq!(step_time(0.0), "");
        assert_eq!(step_time(f64::INFINITY), "");
    }
}

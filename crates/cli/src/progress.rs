//! Keras-`fit`-like progress: a bar per epoch (hidden when stderr is not a terminal) and one
//! summary line per epoch on stdout.

use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use train::fit::Observer;
use train::fit::metrics::EpochRecord;

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

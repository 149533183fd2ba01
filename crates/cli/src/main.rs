//! `simclr-cli`: parses arguments, resolves the configuration and delegates to the libraries.

mod args;
mod commands;
mod progress;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use std::io::IsTerminal;

use args::{Cli, Command, DataCommand, RunArgs};
use commands::train::Phases;
use progress::Progress;

fn main() -> ExitCode {
    accel::tune_allocator();
    let cli = Cli::parse();
    init_tracing(cli.global.verbose, cli.global.quiet);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = train::Config::load(cli.global.config.as_deref(), &cli.global.overrides())?;
    let device = train::runtime::init(&cfg.runtime)?;
    tracing::debug!(device = %train::runtime::describe(device), "runtime ready");
    let quiet = cli.global.quiet;
    let progress =
        |run: &RunArgs| Progress::new(!run.no_progress && std::io::stderr().is_terminal(), quiet);
    match cli.command {
        Command::Experiment(run) => {
            commands::train::run(&cfg, device, Phases::All, &run.out, &mut progress(&run))
        }
        Command::Baseline(run) => commands::train::run(
            &cfg,
            device,
            Phases::Baseline,
            &run.out,
            &mut progress(&run),
        ),
        Command::Pretrain(run) => commands::train::run(
            &cfg,
            device,
            Phases::Pretrain,
            &run.out,
            &mut progress(&run),
        ),
        Command::Finetune { run, encoder } => commands::train::run(
            &cfg,
            device,
            Phases::Finetune { encoder: &encoder },
            &run.out,
            &mut progress(&run),
        ),
        Command::Evaluate { checkpoint } => commands::train::evaluate(&cfg, device, &checkpoint),
        Command::AugmentPreview { count, out } => {
            commands::train::augment_preview(&cfg, count, &out)
        }
        Command::Bench { steps, warmup } => commands::train::bench(&cfg, device, steps, warmup),
        Command::Info => {
            print!(
                "simclr-cli {}\n{}",
                env!("CARGO_PKG_VERSION"),
                train::runtime::report(&cfg, device)
            );
            Ok(())
        }
        Command::Data { command } => match command {
            DataCommand::Inspect => commands::data::inspect(&cfg),
            DataCommand::Export { split, count, out } => {
                commands::data::export(&cfg, &split, count, &out)
            }
        },
    }
}

/// 1 for problems the user can fix (configuration, data), 2 for anything unexpected.
fn exit_code(err: &anyhow::Error) -> u8 {
    let user = err.chain().any(|e| {
        e.is::<train::ConfigError>() || e.is::<stl10_data::DataError>() || is_user_train_error(e)
    });
    if user { 1 } else { 2 }
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("SIMCLR_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Training errors the user can fix: bad configuration, data or checkpoint files.
fn is_user_train_error(e: &(dyn std::error::Error + 'static)) -> bool {
    use train::TrainError as T;
    matches!(
        e.downcast_ref::<T>(),
        Some(
            T::Config(_) | T::Data(_) | T::Model(_) | T::Augment(_) | T::File { .. } | T::Io { .. }
        )
    )
}

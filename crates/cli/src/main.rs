//! `simclr-cli`: parses arguments, resolves the configuration and delegates to the libraries.

mod args;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, Command, DataCommand};

fn main() -> ExitCode {
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
    match cli.command {
        Command::Info => {
            print!(
                "simclr-cli {}\n{}",
                env!("CARGO_PKG_VERSION"),
                train::runtime::report(device)
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
    let user = err
        .chain()
        .any(|e| e.is::<train::ConfigError>() || e.is::<stl10_data::DataError>());
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

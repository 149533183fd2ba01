//! `simclr-cli`: parses arguments, resolves the configuration and delegates to the libraries.

mod args;
mod commands;
mod progress;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::rc::Rc;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, Command, DataCommand, RunArgs};
use commands::train::Phases;
use evaluate::predict::Predictor;
use progress::Progress;
use train::{config::Config, prepared::Prepared, run_dir::Recorded};

/// Set, makes the binary panic at start, so a test can check the panic hook. Only in builds with
/// the `test-hooks` feature.
#[cfg(feature = "test-hooks")]
const PANIC_ENV: &str = "SIMCLR_TEST_PANIC";

/// Exit status of a run stopped by Ctrl-C or SIGTERM after saving its checkpoint.
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        let msg = msg.lines().next().unwrap_or("").trim();
        eprintln!("internal error, a bug in simclr-cli (please report it): {msg}{at}");
        std::process::exit(2);
    }));
    #[cfg(feature = "test-hooks")]
    if std::env::var_os(PANIC_ENV).is_some() {
        panic!("{PANIC_ENV} is set\nsecond line");
    }
    accel::tune_allocator();
    let cli = Cli::parse();
    // torchrun's variables, when it launched this process; only rank 0 logs below warnings.
    let launch = dist::Launch::from_env();
    let follower = matches!(&launch, Ok(Some(l)) if l.rank != 0);
    init_tracing(cli.global.verbose, cli.global.quiet, follower);
    let command = cli.command.name();
    let folder = cli.command.run_args().map(|r| r.folder().to_path_buf());
    let sweep_out = match &cli.command {
        Command::Sweep { out, .. } => Some(out.clone()),
        _ => None,
    };
    match launch
        .map_err(anyhow::Error::from)
        .and_then(|launch| run(cli, launch))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", message(&err));
            if let Some(hint) = folder.and_then(|f| resume_hint(&err, command, &f)) {
                eprintln!("{hint}");
            }
            if let Some(hint) = sweep_out.and_then(|out| sweep_hint(&err, &out)) {
                eprintln!("{hint}");
            }
            ExitCode::from(exit_code(&err))
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose first line the message
/// already holds (many errors print their source themselves).
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        let first = part.lines().next().unwrap_or_default().trim();
        if !text.contains(first) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// The configuration: `--config` (or, with `--resume` and no `--config`, the run folder's
/// `config.toml`), then `--set` and the typed flags; and the resumed run folder's recorded
/// configuration, read once.
fn load_config(cli: &Cli) -> anyhow::Result<(Config, Option<Recorded>)> {
    let (sets, flags) = (&cli.global.sets, cli.global.runtime_flags());
    let resumed = cli.command.run_args().and_then(|r| r.resume.as_deref());
    let recorded = resumed.map(Recorded::read).transpose()?;
    let cfg = match (&cli.global.config, &recorded) {
        (Some(file), _) => Config::load_with(Some(file), sets, &flags)?,
        (None, Some(recorded)) => recorded.config.overridden(sets, &flags)?,
        (None, None) => {
            let beside_model = cli
                .command
                .model_file()
                .and_then(|f| f.parent())
                .map(|d| d.join("config.toml"))
                .filter(|c| c.is_file());
            Config::load_with(beside_model.as_deref(), sets, &flags)?
        }
    };
    Ok((cfg, recorded))
}

/// Loads the configuration and the runtime (and, under torchrun, joins the other ranks),
/// resolves what the commands are built from, then hands each subcommand to its function: one
/// flat match, one arm per subcommand, so that what every command does is read in one place.
fn run(cli: Cli, launch: Option<dist::Launch>) -> anyhow::Result<()> {
    if launch.is_some() && !cli.command.data_parallel() {
        return Err(OneProcessOnly(cli.command.name()).into());
    }
    // `compare` reads run folders only: no configuration, no device.
    if let Command::Compare { runs, out, csv } = &cli.command {
        return commands::eval::compare(runs, out, csv.as_deref());
    }
    let (cfg, mut recorded) = load_config(&cli)?;
    let device = train::runtime::init(&cfg.runtime, launch.as_ref())?;
    tracing::debug!(device = %train::runtime::describe(device), "runtime ready");
    let replica = launch
        .as_ref()
        .map(|l| train::runtime::join(&cfg.runtime, l, device).map(Rc::new))
        .transpose()?;
    let (data, compute) = (cfg.data_settings(), cfg.compute(device));
    let prepared = || Prepared::new(&data, compute);
    let quiet = cli.global.quiet;
    // Only rank 0 of a launch shows progress.
    let first = replica.as_ref().is_none_or(|r| r.rank() == 0);
    // Training commands stop on Ctrl-C/SIGTERM after a checkpoint, and show bars on a terminal.
    let progress = |no_progress: bool| {
        progress::stop_on_signals();
        Progress::new(
            first && !no_progress && std::io::stderr().is_terminal(),
            quiet || !first,
        )
    };
    let mut train = |phases: Phases, run: &RunArgs| {
        let resumed = recorded.take();
        commands::train::run(
            &cfg,
            compute,
            phases,
            run,
            resumed,
            replica.clone(),
            &mut progress(run.no_progress),
        )
    };
    match cli.command {
        Command::Experiment(run) => train(Phases::All, &run),
        Command::Baseline(run) => train(Phases::Baseline, &run),
        Command::Pretrain(run) => train(Phases::Pretrain, &run),
        Command::Finetune { run, encoder } => train(
            Phases::Finetune {
                encoder: encoder.as_deref(),
            },
            &run,
        ),
        Command::Evaluate { checkpoint } => {
            commands::train::evaluate(&prepared()?, &cfg.supervised_baseline(), &checkpoint)
        }
        Command::AugmentPreview { count, out } => {
            commands::train::augment_preview(&data, &cfg.pretraining(), count, &out)
        }
        Command::Knn { encoder } => {
            commands::eval::knn(&prepared()?, &cfg.model_shapes(), &cfg.eval.knn(), &encoder)
        }
        Command::Sweep {
            labels_per_class,
            encoder,
            out,
            no_progress,
        } => commands::eval::sweep(
            &cfg,
            device,
            &labels_per_class,
            encoder.as_deref(),
            &out,
            &mut progress(no_progress),
        ),
        Command::Folds {
            encoder,
            out,
            no_progress,
        } => commands::eval::folds(&cfg, device, &encoder, &out, &mut progress(no_progress)),
        Command::Compare { .. } => unreachable!("compare is dispatched before the configuration"),
        Command::Embed {
            encoder,
            split,
            projection,
            out,
            labels_out,
            plot,
        } => {
            let labels = labels_out.unwrap_or_else(|| out.with_file_name("labels.npy"));
            let picture = out.with_file_name("embedding.png");
            let export = evaluate::embed::Export {
                split: &split,
                features: &out,
                labels: &labels,
                plot: plot.then_some(picture.as_path()),
            };
            let model = cfg.model_shapes();
            commands::eval::embed(&data, &model, compute, &encoder, projection, &export)
        }
        Command::Predict {
            checkpoint,
            inputs,
            top,
            format,
        } => {
            let predictor =
                Predictor::load(&cfg.encoder_config(), &cfg.data, compute, &checkpoint)?;
            commands::eval::predict(&predictor, &inputs, top, &format)
        }
        Command::Bench {
            data: true,
            images,
            workers,
            ..
        } => {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let workers = workers.unwrap_or(cores).max(1);
            rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .build_global()
                .map_err(|e| anyhow::anyhow!("starting {workers} worker threads: {e}"))?;
            let report = train::bench::input::run(&data, workers, images)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Bench { steps, warmup, .. } => {
            let (pretrain, baseline) = (cfg.pretraining(), cfg.supervised_baseline());
            let steps = steps.max(1);
            let report = train::bench::run(
                &data,
                &pretrain,
                &baseline,
                compute,
                replica.as_ref(),
                steps,
                warmup,
            )?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Info => {
            print!(
                "simclr-cli {}\n{}",
                env!("CARGO_PKG_VERSION"),
                train::runtime::report(&compute, replica.as_deref(), cfg.data.batch_size)
            );
            Ok(())
        }
        Command::Data { command } => match command {
            DataCommand::Download {
                dataset: _,
                to,
                url,
                md5,
                no_progress,
            } => {
                let show = !no_progress && std::io::stderr().is_terminal() && !quiet;
                commands::data::download(to.as_deref(), url.zip(md5), show)
            }
            DataCommand::Inspect { sheet, per_class } => {
                commands::data::inspect(&data, sheet.as_deref().map(|s| (s, per_class)))
            }
            DataCommand::Export { split, count, out } => {
                commands::data::export(&data, &split, count, &out)
            }
            DataCommand::Pack {
                out,
                shard_mib,
                skip_unreadable,
                no_progress,
            } => {
                progress::stop_on_signals();
                let show = !no_progress && std::io::stderr().is_terminal() && !quiet;
                let options = stl10_data::pack::PackOptions {
                    shard_bytes: shard_mib.saturating_mul(1 << 20),
                    skip_unreadable,
                };
                commands::data::pack(&data, &out, &options, show)
            }
            DataCommand::Verify { dir } => commands::data::verify(&dir),
        },
    }
}

/// A command that runs on one process, started as a rank of a launch.
#[derive(Debug)]
struct OneProcessOnly(&'static str);

impl std::fmt::Display for OneProcessOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "simclr-cli {} runs on one process: launch it without torchrun (the training \
             commands, bench and info run data-parallel under torchrun)",
            self.0
        )
    }
}

impl std::error::Error for OneProcessOnly {}

/// 130 for a run stopped by a signal, 1 for problems the user can fix (configuration, data,
/// checkpoints, a diverged run, a launch's variables, a command that runs on one process), 2
/// for anything unexpected (a rank that died among them).
fn exit_code(err: &anyhow::Error) -> u8 {
    let interrupted = err.chain().any(|e| {
        matches!(
            e.downcast_ref(),
            Some(train::error::TrainError::Interrupted { .. })
        ) || matches!(
            e.downcast_ref(),
            Some(commands::data::Unfinished {
                interrupted: true,
                ..
            })
        )
    });
    if interrupted {
        return INTERRUPTED;
    }
    let user = err.chain().any(|e| {
        e.is::<train::config::ConfigError>()
            || e.is::<stl10_data::DataError>()
            || e.is::<OneProcessOnly>()
            || e.is::<commands::data::Unfinished>()
            || matches!(e.downcast_ref(), Some(dist::DistError::Launch { .. }))
            || is_user_train_error(e)
    });
    if user { 1 } else { 2 }
}

/// How to continue after an interruption or a divergence.
fn resume_hint(err: &anyhow::Error, command: &str, dir: &std::path::Path) -> Option<String> {
    let resume = format!("simclr-cli {command} --resume {}", dir.display());
    err.chain().find_map(|e| match e.downcast_ref()? {
        train::error::TrainError::Interrupted { .. } => Some(format!("resume with: {resume}")),
        train::error::TrainError::NonFinite { run, .. } => {
            let table = train::experiment::Run::from_name(run).map_or(run.as_str(), |r| r.table());
            Some(format!(
                "continue from the last good checkpoint with a lower rate: {resume} --set \
                 {table}.optimizer.learning_rate=..."
            ))
        }
        _ => None,
    })
}

/// How to continue a sweep stopped during its pretraining: the sweep itself starts over, but
/// the pretraining resumes from its checkpoint and the sweep can take its encoder.
fn sweep_hint(err: &anyhow::Error, out: &std::path::Path) -> Option<String> {
    err.chain().find_map(|e| match e.downcast_ref()? {
        train::error::TrainError::Interrupted { run, .. } if run == train::experiment::Run::Pretraining.name() => Some(format!(
            "continue with: simclr-cli pretrain --resume {dir}, then simclr-cli sweep --encoder \
             {dir}/encoder.safetensors ...",
            dir = out.display()
        )),
        _ => None,
    })
}

/// Logging to stderr at the level `-q`/`-v` ask for (`SIMCLR_LOG` overrides); a `follower`
/// (a rank other than 0) logs only warnings and errors unless `-v` is given.
fn init_tracing(verbose: u8, quiet: bool, follower: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) if follower => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("SIMCLR_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        // Each span's busy and idle time when it closes: with SIMCLR_LOG=debug, where a step's
        // time goes (data, augmentation, forward, backward, optimizer, metric reads).
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .init();
}

/// Training errors the user can fix: bad configuration, data or checkpoint files.
fn is_user_train_error(e: &(dyn std::error::Error + 'static)) -> bool {
    use train::error::TrainError as T;
    matches!(
        e.downcast_ref::<T>(),
        Some(
            T::Config(_)
                | T::Data(_)
                | T::Model(_)
                | T::Augment(_)
                | T::File { .. }
                | T::Io { .. }
                | T::Resume { .. }
                | T::NonFinite { .. }
        )
    )
}

//! Runs that survive: Ctrl-C, SIGKILL in the middle of a checkpoint, and a diverged run, each
//! resumed with `--resume`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use test_support::fixtures::write_stl10;

use crate::util::{ok, root_set, run, signal, stderr, wait_for};

/// A fixture with 25 steps per epoch (250 unlabeled + 50 labeled images, batches of 12), so a
/// signal lands in the middle of an epoch.
fn fixture(dir: &Path) -> Vec<String> {
    write_stl10(dir, 50, 6, 250).unwrap();
    [
        root_set(dir),
        "data.batch_size=12".into(),
        "model.width=8".into(),
    ]
    .to_vec()
}

fn args<'a>(head: &[&'a str], sets: &'a [String]) -> Vec<&'a str> {
    let mut v = head.to_vec();
    for s in sets {
        v.push("--set");
        v.push(s);
    }
    v
}

fn spawn(args: &[&str], env: Option<(&str, &Path)>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_simclr-cli"));
    cmd.args(args)
        .args(["--device", "cpu", "--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("simclr-cli starts")
}

/// Sends SIGINT to `child` once the pretraining in `run` has written its first checkpoint, and
/// returns its stderr after checking it stopped with 130 and without a panic.
fn ctrl_c_after_first_checkpoint(run: &Path, mut child: Child) -> String {
    wait_for(&run.join("state/pretraining.json"), &mut child);
    signal(child.id(), libc::SIGINT);
    let done = child.wait_with_output().unwrap();
    let err = stderr(&done);
    assert_eq!(done.status.code(), Some(130), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn history_epochs(run: &Path, name: &str) -> usize {
    let text = std::fs::read_to_string(run.join(format!("{name}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["epochs"].as_array().unwrap().len()
}

fn state(run: &Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("state").join(format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn ctrl_c_saves_a_checkpoint_mid_epoch_and_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let sets = fixture(dir.path());
    let out: PathBuf = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    let child = spawn(
        &args(
            &["pretrain", "--out", out_s, "--set", "pretrain.epochs=3"],
            &sets,
        ),
        None,
    );
    // After the first epoch's checkpoint, interrupt the second epoch.
    let err = ctrl_c_after_first_checkpoint(&out, child);
    let hint = format!("resume with: simclr-cli pretrain --resume {out_s}");
    assert!(err.contains(&hint), "{err}");
    let saved = state(&out, "pretraining");
    let epoch = saved["position"]["epoch"].as_u64().unwrap();
    assert!((1..3).contains(&epoch), "{saved}");

    // The printed command finishes the run: three epochs in the history and the encoder.
    let stdout = ok(&["pretrain", "--resume", out_s]);
    assert!(stdout.contains("Maximal validation accuracy"), "{stdout}");
    assert_eq!(history_epochs(&out, "pretraining"), 3);
    assert!(out.join("encoder.safetensors").exists());
    let last = state(&out, "pretraining");
    assert_eq!(last["position"]["epoch"], 3, "{last}");
    // SIGTERM is handled the same way (the handler is in place once config.toml exists).
    let other = dir.path().join("other");
    let mut child = spawn(
        &args(
            &[
                "baseline",
                "--out",
                other.to_str().unwrap(),
                "--set",
                "baseline.epochs=50",
            ],
            &sets,
        ),
        None,
    );
    wait_for(&other.join("config.toml"), &mut child);
    std::thread::sleep(Duration::from_millis(300));
    signal(child.id(), libc::SIGTERM);
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(130), "{}", stderr(&done));
    assert!(other.join("state/baseline.json").exists());
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs --features cli/test-hooks"
)]
fn a_run_killed_while_writing_a_checkpoint_resumes_from_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let sets = fixture(dir.path());
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    ok(&args(
        &["baseline", "--out", out_s, "--set", "baseline.epochs=1"],
        &sets,
    ));
    let first = state(&out, "baseline");
    assert_eq!(first["position"]["epoch"], 1);

    // Resume to 3 epochs; the process stops after writing epoch 2's tensors, before the commit.
    let marker = dir.path().join("paused");
    let mut child = spawn(
        &["baseline", "--resume", out_s, "--set", "baseline.epochs=3"],
        Some(("SIMCLR_TEST_PAUSE_BEFORE_COMMIT", &marker)),
    );
    wait_for(&marker, &mut child);
    signal(child.id(), libc::SIGKILL);
    let _ = child.wait();
    let written = std::fs::read_to_string(&marker).unwrap();
    assert!(
        out.join("state").join(&written).exists(),
        "epoch 2 tensors were written"
    );
    assert_eq!(state(&out, "baseline"), first, "the commit never happened");

    let stdout = ok(&["baseline", "--resume", out_s, "--set", "baseline.epochs=3"]);
    assert!(stdout.contains("Maximal validation accuracy"), "{stdout}");
    assert_eq!(history_epochs(&out, "baseline"), 3);
    let files: Vec<String> = std::fs::read_dir(out.join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    assert_eq!(
        files,
        ["baseline.e0003.s000000.safetensors"],
        "stale files removed"
    );
}

#[test]
fn a_diverged_run_stops_with_exit_1_and_resumes_with_a_lower_rate() {
    let dir = tempfile::tempdir().unwrap();
    let sets = fixture(dir.path());
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    ok(&args(
        &["baseline", "--out", out_s, "--set", "baseline.epochs=1"],
        &sets,
    ));
    let good = state(&out, "baseline");

    let bad = run(&[
        "baseline",
        "--resume",
        out_s,
        "--set",
        "baseline.epochs=2",
        "--set",
        "baseline.optimizer.learning_rate=1e30",
    ]);
    let err = stderr(&bad);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(
        err.contains("baseline diverged") && err.contains("at epoch 2, step"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "simclr-cli baseline --resume {out_s} --set baseline.optimizer.learning_rate="
        )),
        "{err}"
    );
    assert_eq!(
        state(&out, "baseline"),
        good,
        "the last good checkpoint stays"
    );

    // The folder's config.toml now records the diverging rate: set a sane one.
    ok(&[
        "baseline",
        "--resume",
        out_s,
        "--set",
        "baseline.epochs=2",
        "--set",
        "baseline.optimizer.learning_rate=1e-3",
    ]);
    assert_eq!(history_epochs(&out, "baseline"), 2);
}

#[test]
fn a_sweep_stopped_in_its_pretraining_says_how_to_go_on_and_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let sets = fixture(dir.path());
    let out = dir.path().join("sweep");
    let out_s = out.to_str().unwrap();
    let quick = ["--set", "baseline.epochs=1", "--set", "finetune.epochs=1"];
    let child = spawn(
        &args(
            &[
                &["sweep", "--labels-per-class", "1", "--out", out_s],
                &["--set", "pretrain.epochs=3"][..],
                &quick[..],
            ]
            .concat(),
            &sets,
        ),
        None,
    );
    let err = ctrl_c_after_first_checkpoint(&out, child);
    let hint = format!(
        "continue with: simclr-cli pretrain --resume {out_s}, then simclr-cli sweep --encoder \
         {out_s}/encoder.safetensors"
    );
    assert!(err.contains(&hint), "{err}");
    ok(&["pretrain", "--resume", out_s]);
    assert_eq!(history_epochs(&out, "pretraining"), 3);
    let encoder = out.join("encoder.safetensors");
    let again = dir.path().join("again");
    ok(&args(
        &[
            &[
                "sweep",
                "--labels-per-class",
                "1",
                "--encoder",
                encoder.to_str().unwrap(),
                "--out",
                again.to_str().unwrap(),
            ][..],
            &quick[..],
        ]
        .concat(),
        &sets,
    ));
    assert!(again.join("sweep.csv").is_file());
}

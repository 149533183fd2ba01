//! `simclr-cli` launched by torchrun, as a user launches it: two ranks on c10d's gloo over
//! loopback train as one process does on the whole batch, write one run folder (rank 0), stop
//! together on Ctrl-C and resume bit for bit, fail within the timeout when a rank dies, and
//! train across two "machines" (two torchrun agents, `--nnodes 2`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use test_support::fixtures::write_stl10;

use crate::util::{root_set, signal, stderr, stdout, wait_for};

/// A fixture of 25 steps an epoch (250 unlabeled + 50 labeled images, steps of 10 + 2), small
/// test batches whose last one does not split evenly (6 test images of 12 a batch: 3 and 3;
/// with 7: 4 and 3), and short timeouts.
fn fixture(dir: &Path) -> Vec<String> {
    write_stl10(dir, 50, 7, 250).unwrap();
    [
        root_set(dir),
        "data.batch_size=12".into(),
        "model.width=8".into(),
        "runtime.dist_timeout_seconds=60".into(),
        "eval.knn_monitor=true".into(),
        // The equivalence is that of fp32 (bf16 autocast rounds each rank's part differently).
        "runtime.precision=\"fp32\"".into(),
    ]
    .to_vec()
}

fn with_sets<'a>(head: &[&'a str], sets: &'a [String]) -> Vec<&'a str> {
    let mut v = head.to_vec();
    for s in sets {
        v.push("--set");
        v.push(s);
    }
    v.extend(["--device", "cpu", "--threads", "1", "--no-progress"]);
    v
}

/// `simclr-cli args` on one process; its stdout.
fn one_process(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_simclr-cli"))
        .args(args)
        .output()
        .unwrap();
    succeeded(&out, "one process")
}

/// `torchrun <launch> --no-python simclr-cli <args>`, output piped.
fn launch(launch: &[&str], args: &[&str]) -> Command {
    let mut cmd = Command::new(test_support::torchrun());
    cmd.args(launch)
        .arg("--no-python")
        .arg(env!("CARGO_BIN_EXE_simclr-cli"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Two ranks on this machine.
const TWO: [&str; 3] = ["--standalone", "--nproc-per-node", "2"];

fn succeeded(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Every metric of every epoch of `run`'s history (timings left out).
fn metrics(dir: &Path, run: &str) -> Vec<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(dir.join(format!("{run}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            // The metrics sit between `epoch` and the timings.
            e.as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| {
                    !["epoch", "train_seconds", "images_per_second"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(f64::NAN)))
                .collect()
        })
        .collect()
}

/// `got`'s metrics equal `want`'s within `tolerance`, relative to the larger of 1 and the value.
fn assert_close(run: &str, got: &Path, want: &Path, tolerance: f64) {
    let (g, w) = (metrics(got, run), metrics(want, run));
    assert_eq!(g.len(), w.len(), "{run}: epochs");
    assert!(!w.is_empty(), "{run}: no epochs");
    let mut off = Vec::new();
    for (epoch, (g, w)) in g.iter().zip(&w).enumerate() {
        assert_eq!(
            g.keys().collect::<Vec<_>>(),
            w.keys().collect::<Vec<_>>(),
            "{run}"
        );
        for (k, want) in w {
            let got = g[k];
            if (got - want).abs() > tolerance * want.abs().max(1.0) {
                off.push(format!(
                    "epoch {}: {k} = {got}, one process {want}",
                    epoch + 1
                ));
            }
        }
    }
    assert!(off.is_empty(), "{run} on two ranks:\n{}", off.join("\n"));
}

/// The files of a run folder, by name (the state folder's tensors files renamed by position).
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every tensor of the safetensors file `name` in `got` within `tolerance` of `want`'s,
/// relative to the largest magnitude of the tensor.
fn assert_weights_close(name: &str, got: &Path, want: &Path, tolerance: f64) {
    let read = |dir: &Path| -> BTreeMap<String, tch::Tensor> {
        tch::Tensor::read_safetensors(dir.join(name))
            .unwrap()
            .into_iter()
            .collect()
    };
    let (g, w) = (read(got), read(want));
    assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>());
    for (k, w) in &w {
        let scale = w.abs().max().double_value(&[]).max(1e-12);
        let diff = (&g[k] - w).abs().max().double_value(&[]) / scale;
        assert!(
            diff <= tolerance,
            "{name}: {k} differs by {diff:.2e} (relative)"
        );
    }
}

/// Relative tolerance of a two-rank run against one process, in fp32: the ranks add their
/// gradients in another order than one backward does, so the two differ by rounding, which
/// Adam's steps carry on (the metrics of these runs differed by about 1e-8; see
/// tests/data_parallel.rs in the train crate for the steps themselves).
const TOLERANCE: f64 = 1e-5;

#[test]
fn two_ranks_under_torchrun_train_as_one_process_and_rank_0_writes_the_folder() {
    let data = tempfile::tempdir().unwrap();
    let sets = fixture(data.path());
    let out = tempfile::tempdir().unwrap();
    let (one, two) = (out.path().join("one"), out.path().join("two"));
    let epochs = [
        "--set",
        "baseline.epochs=1",
        "--set",
        "pretrain.epochs=2",
        "--set",
        "finetune.epochs=1",
    ];
    let head = |dir: &Path| -> Vec<String> {
        ["experiment", "--out", dir.to_str().unwrap()]
            .iter()
            .chain(&epochs)
            .map(|s| s.to_string())
            .collect()
    };
    let (head_one, head_two) = (head(&one), head(&two));
    let args_one: Vec<&str> = head_one.iter().map(String::as_str).collect();
    let single = one_process(&with_sets(&args_one, &sets));
    let args_two: Vec<&str> = head_two.iter().map(String::as_str).collect();
    let result = launch(&TWO, &with_sets(&args_two, &sets)).output().unwrap();
    let printed = succeeded(&result, "two ranks");
    for run in ["baseline", "pretraining", "finetuning"] {
        assert_close(run, &two, &one, TOLERANCE);
    }
    for file in [
        "baseline.safetensors",
        "encoder.safetensors",
        "projection_head.safetensors",
        "linear_probe.safetensors",
        "finetuned.safetensors",
    ] {
        assert_weights_close(file, &two, &one, TOLERANCE);
    }
    // One folder, as one process writes it; one report printed.
    assert_eq!(files(&two), files(&one));
    assert_eq!(printed.matches("run folder:").count(), 1, "{printed}");
    assert_eq!(
        printed.matches("Maximal validation accuracy").count(),
        single.matches("Maximal validation accuracy").count()
    );
    let report = std::fs::read_to_string(two.join("report.md")).unwrap();
    assert!(
        report.contains("data parallel: c10d gloo, 2 ranks; each step's 10 unlabeled + 2 labeled images shared, 6 a rank"),
        "{report}"
    );
}

/// The history of `run` in `dir` without its timings, and the bytes of `file`.
fn outcome(dir: &Path, run: &str, file: &str) -> (Vec<BTreeMap<String, f64>>, Vec<u8>) {
    (metrics(dir, run), std::fs::read(dir.join(file)).unwrap())
}

#[test]
fn a_two_rank_run_stopped_by_ctrl_c_at_torchrun_resumes_bit_for_bit() {
    let data = tempfile::tempdir().unwrap();
    let mut sets = fixture(data.path());
    sets.push("pretrain.epochs=2".into());
    let out = tempfile::tempdir().unwrap();
    let (whole, stopped) = (out.path().join("whole"), out.path().join("stopped"));
    let (whole_at, stopped_at) = (whole.to_str().unwrap(), stopped.to_str().unwrap());
    let result = launch(&TWO, &with_sets(&["pretrain", "--out", whole_at], &sets))
        .output()
        .unwrap();
    succeeded(&result, "uninterrupted");

    // Ctrl-C reaches torchrun, which passes it on to both ranks.
    let mut child = launch(&TWO, &with_sets(&["pretrain", "--out", stopped_at], &sets))
        .spawn()
        .unwrap();
    wait_for(&stopped.join("state/pretraining.json"), &mut child);
    signal(child.id(), libc::SIGINT);
    let done = child.wait_with_output().unwrap();
    let err = stderr(&done);
    assert!(!done.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(stopped.join("state/pretraining.json")).unwrap(),
    )
    .unwrap();
    let at = &saved["position"];
    assert!(
        at["epoch"].as_u64().unwrap() < 2,
        "stopped before the end: {at}"
    );

    let resume = with_sets(&["pretrain", "--resume", stopped.to_str().unwrap()], &[]);
    let result = launch(&TWO, &resume).output().unwrap();
    succeeded(&result, "resumed");
    let (a, b) = (
        outcome(&whole, "pretraining", "encoder.safetensors"),
        outcome(&stopped, "pretraining", "encoder.safetensors"),
    );
    assert_eq!(a.0, b.0, "histories");
    assert!(a.1 == b.1, "encoder.safetensors differs");
}

/// The processes torchrun `parent` started, with their `RANK`.
fn ranks(parent: u32) -> Vec<(u32, String)> {
    let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|pid| {
            let pid: u32 = pid.parse().ok()?;
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let rank = env
                .split(|&b| b == 0)
                .find_map(|v| v.strip_prefix(b"RANK="))
                .map(|r| String::from_utf8_lossy(r).into_owned())?;
            Some((pid, rank))
        })
        .collect()
}

#[test]
fn a_killed_rank_ends_the_run_within_the_timeout_and_keeps_the_last_checkpoint() {
    let data = tempfile::tempdir().unwrap();
    let mut sets = fixture(data.path());
    sets.push("pretrain.epochs=100".into());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("run");
    let args = with_sets(&["pretrain", "--out", dir.to_str().unwrap()], &sets);
    let mut child = launch(&TWO, &args).spawn().unwrap();
    wait_for(&dir.join("state/pretraining.json"), &mut child);
    let workers = ranks(child.id());
    let (victim, _) = workers
        .iter()
        .find(|(_, rank)| rank == "1")
        .unwrap_or_else(|| panic!("no rank 1 among torchrun's children: {workers:?}"));
    let killed = Instant::now();
    signal(*victim, libc::SIGKILL);
    let done = child.wait_with_output().unwrap();
    // Within the 60 s timeout, and far less: gloo sees the closed connection at once.
    assert!(
        killed.elapsed() < Duration::from_secs(60),
        "{:?}",
        killed.elapsed()
    );
    let err = stderr(&done);
    assert!(!done.status.success());
    assert!(!err.contains("panicked"), "{err}");
    // torchrun's summary names the rank that died, with its signal.
    assert!(
        err.contains("rank      : 1") && err.contains("Signal 9 (SIGKILL)"),
        "{err}"
    );
    // The last checkpoint is whole: its JSON names a tensors file that is there.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state/pretraining.json")).unwrap())
            .unwrap();
    let tensors = saved["tensors"].as_str().unwrap();
    assert!(dir.join("state").join(tensors).is_file(), "{tensors}");
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn two_machines_on_loopback_train_as_one_process() {
    let data = tempfile::tempdir().unwrap();
    let mut sets = fixture(data.path());
    sets.push("pretrain.epochs=1".into());
    let out = tempfile::tempdir().unwrap();
    let (one, two) = (out.path().join("one"), out.path().join("two"));
    one_process(&with_sets(
        &["pretrain", "--out", one.to_str().unwrap()],
        &sets,
    ));
    let port = free_port().to_string();
    let node = |rank: &str| {
        let launch_args = [
            "--nnodes",
            "2",
            "--node-rank",
            rank,
            "--nproc-per-node",
            "1",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            &port,
        ];
        let args = with_sets(&["pretrain", "--out", two.to_str().unwrap()], &sets);
        launch(&launch_args, &args).spawn().unwrap()
    };
    let (first, second) = (node("0"), node("1"));
    let (first, second) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    succeeded(&second, "node 1");
    let printed = succeeded(&first, "node 0");
    assert!(printed.contains("run folder:"), "{printed}");
    assert!(!stdout(&second).contains("run folder:"));
    assert_close("pretraining", &two, &one, TOLERANCE);
    assert_weights_close("encoder.safetensors", &two, &one, TOLERANCE);
}

/// `simclr-cli` with `args`, as a process of a launch that set `vars`.
fn launched_by_hand(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_simclr-cli"));
    cmd.args(args).args(["--device", "cpu"]);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_launch_is_named_in_info_refused_by_one_process_commands_and_checked_whole() {
    let port = free_port().to_string();
    let whole = [
        ("RANK", "0"),
        ("WORLD_SIZE", "1"),
        ("LOCAL_RANK", "0"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", port.as_str()),
    ];
    let info = launched_by_hand(&["info", "--set", "data.batch_size=12"], &whole);
    let printed = succeeded(&info, "info in a launch of one");
    assert!(
        printed.contains(
            "data parallel: c10d gloo, 1 rank, this is rank 0; each step's 12 images shared, 12 a rank"
        ),
        "{printed}"
    );
    let alone = ok_stdout(&["info"]);
    assert!(alone.contains("data parallel: none"), "{alone}");

    let knn = launched_by_hand(&["knn", "--encoder", "encoder.safetensors"], &whole);
    assert_eq!(knn.status.code(), Some(1), "{}", stderr(&knn));
    assert!(
        stderr(&knn).contains("simclr-cli knn runs on one process: launch it without torchrun"),
        "{}",
        stderr(&knn)
    );

    let partial = launched_by_hand(&["info"], &whole[..2]);
    assert_eq!(partial.status.code(), Some(1));
    assert!(
        stderr(&partial).contains("LOCAL_RANK: not set, but a launch sets all of RANK, WORLD_SIZE"),
        "{}",
        stderr(&partial)
    );
}

fn ok_stdout(args: &[&str]) -> String {
    succeeded(&launched_by_hand(args, &[]), "one process")
}

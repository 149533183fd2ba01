use std::path::Path;
use std::process::{Command, Output};

/// Runs `simclr-cli` with `args` on the CPU and returns its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simclr-cli"))
        .args(args)
        .args(["--device", "cpu", "--threads", "1"])
        .output()
        .expect("simclr-cli runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs and asserts success, returning stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "simclr-cli {args:?} failed:\n{}",
        stderr(&out)
    );
    stdout(&out)
}

pub fn root_set(root: &Path) -> String {
    format!("data.root={}", root.display())
}

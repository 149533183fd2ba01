use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

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

/// Waits up to two minutes for `path` to exist while `child` runs; a child that exits first
/// fails the test with its stderr.
pub fn wait_for(path: &Path, child: &mut Child) {
    let start = Instant::now();
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("exited {status} before {}: {err}", path.display());
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `sig` to the process `pid` (one the test started, or its child).
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a process id the test owns.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill {pid}");
}

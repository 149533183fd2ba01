//! Writes one of the tests' fixture data sets, for scripts that need a large one:
//!
//! `cargo run --release -p test-support --example write_fixture -- idx DIR TRAIN TEST`
//! (MNIST-style 28x28 IDX files) or `... -- stl10 DIR TRAIN TEST UNLABELED`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| usage())
    };
    match args.first().map(String::as_str) {
        Some("idx") => {
            let dir = Path::new(args.get(1).unwrap_or_else(|| usage()));
            test_support::fixtures::write_idx_set(dir, n(2), n(3), 28, 28)
        }
        Some("stl10") => {
            let dir = Path::new(args.get(1).unwrap_or_else(|| usage()));
            test_support::fixtures::write_stl10(dir, n(2), n(3), n(4))
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: write_fixture idx DIR TRAIN TEST | stl10 DIR TRAIN TEST UNLABELED");
    std::process::exit(2)
}

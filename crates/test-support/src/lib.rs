//! Test support for simclr-rs, a dev-dependency only: nothing here reaches the shipped binary.
//!
//! - [`fixtures`]: small data sets in the official formats (STL-10, IDX, CIFAR), the STL-10
//!   archive, and a loopback HTTP server that serves it;
//! - [`cuda_for_tests`]: the project's rule for tests that need a GPU;
//! - [`torchrun`]: the launcher the data-parallel tests start their ranks with;
//! - `fuzzing` (feature `fuzzing`): the checkpoint readers, for the fuzz targets in `fuzz/`.

pub mod fixtures;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

/// `torchrun`: `$TORCHRUN`, or the project venv's (which `scripts/setup.sh` makes).
///
/// # Panics
/// When neither is there.
pub fn torchrun() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/torchrun");
    std::env::var_os("TORCHRUN")
        .map(std::path::PathBuf::from)
        .or_else(|| venv.is_file().then_some(venv))
        .expect("torchrun not found: run scripts/setup.sh (it makes .venv) or set TORCHRUN")
}

/// Whether a test that needs CUDA should run: true with a CUDA device; without one, false (the
/// test skips, saying so on stderr), unless `SIMCLR_REQUIRE_CUDA` is set, as
/// `scripts/gpu-check.sh` sets it on a GPU machine, where a missing device is a failure.
///
/// # Panics
/// When `SIMCLR_REQUIRE_CUDA` is set and libtorch sees no CUDA device.
pub fn cuda_for_tests() -> bool {
    if tch::Cuda::is_available() {
        return true;
    }
    assert!(
        std::env::var_os("SIMCLR_REQUIRE_CUDA").is_none(),
        "CUDA required (SIMCLR_REQUIRE_CUDA) but libtorch sees no CUDA device"
    );
    eprintln!("skipped: no CUDA device");
    false
}

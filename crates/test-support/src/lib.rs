//! Test support for simclr-rs, a dev-dependency only: nothing here reaches the shipped binary.
//!
//! - [`fixtures`]: small data sets in the official formats (STL-10, IDX, CIFAR), the STL-10
//!   archive, and a loopback HTTP server that serves it;
//! - [`cuda_for_tests`]: the project's rule for tests that need a GPU;
//! - `fuzzing` (feature `fuzzing`): the checkpoint readers, for the fuzz targets in `fuzz/`.

pub mod fixtures;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

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

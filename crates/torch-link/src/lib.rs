//! Build-script helper for any package that runs libtorch code through `tch`: call [`link`]
//! from its `build.rs`, with `torch-sys` among its dependencies.
//!
//! torch-sys links only `libtorch_cpu`, and with the default `--as-needed` the linker drops
//! `libtorch.so` (and with it `libtorch_cuda.so`) from binaries, so CUDA is silently missing on
//! a GPU machine (tch-rs issues 907 and 980). [`link`] links `-ltorch` with `--no-as-needed`,
//! and sets an rpath to libtorch's lib folder, so binaries, tests and benches run without
//! `LD_LIBRARY_PATH`.
//!
//! ```toml
//! [dependencies]
//! torch-sys = "0.24"
//! [build-dependencies]
//! torch-link = { path = "../simclr-rs/crates/torch-link" }
//! ```
//! ```text
//! // build.rs
//! fn main() {
//!     torch_link::link();
//! }
//! ```

/// The variable torch-sys's build script exports (as `links = "tch"` metadata) to the build
/// scripts of packages that depend on it directly.
const LIB_VAR: &str = "DEP_TCH_LIBTORCH_LIB";

/// libtorch's lib folder as torch-sys found it, links resolved (a `.libtorch` link to a venv,
/// say), so that libtorch's own `$ORIGIN`-relative rpaths to the CUDA wheels resolve from the
/// real location.
///
/// # Panics
/// Outside a build script of a package with `torch-sys` as a direct dependency, where
/// `DEP_TCH_LIBTORCH_LIB` is not set: a build script's way to fail with a message.
pub fn libtorch_lib() -> String {
    let lib = std::env::var(LIB_VAR).unwrap_or_else(|_| {
        panic!("{LIB_VAR} is not set: add torch-sys to this package's [dependencies]")
    });
    std::fs::canonicalize(&lib)
        .map(|p| p.display().to_string())
        .unwrap_or(lib)
}

/// Prints the cargo instructions that keep `libtorch.so` (and `libtorch_cuda.so`) linked and
/// set the rpath. Call once from `build.rs`.
pub fn link() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={LIB_VAR}");
    for arg in link_args(&libtorch_lib()) {
        println!("cargo:rustc-link-arg={arg}");
    }
}

/// The linker arguments for libtorch in `lib`.
fn link_args(lib: &str) -> [String; 4] {
    [
        format!("-Wl,-rpath,{lib}"),
        "-Wl,--no-as-needed".into(),
        "-ltorch".into(),
        "-Wl,--as-needed".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_stays_linked_between_no_as_needed_and_as_needed() {
        let args = link_args("/opt/torch/lib");
        assert_eq!(args[0], "-Wl,-rpath,/opt/torch/lib");
        let keep = args.iter().position(|a| a == "-Wl,--no-as-needed").unwrap();
        let torch = args.iter().position(|a| a == "-ltorch").unwrap();
        let back = args.iter().position(|a| a == "-Wl,--as-needed").unwrap();
        assert!(keep < torch && torch < back, "{args:?}");
    }
}

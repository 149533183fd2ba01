// Shared by every package's build.rs through `include!`; each calls `link_torch()`.
//
// torch-sys links only `libtorch_cpu`, and with the default `--as-needed` the linker drops
// `libtorch.so` (and with it `libtorch_cuda.so`) from our binaries, so CUDA is silently missing
// on a GPU machine (tch-rs issues 907 and 980). Linking `-ltorch` with `--no-as-needed` keeps it,
// and an rpath to the libtorch lib dir lets binaries, tests and benches run with no
// LD_LIBRARY_PATH. `DEP_TCH_LIBTORCH_LIB` is only set for packages that list `torch-sys` directly.
#[allow(dead_code)]
fn libtorch_lib() -> String {
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys must be a direct dependency so that DEP_TCH_LIBTORCH_LIB is set");
    // Resolve links (setup.sh points `.libtorch` at the venv) so that libtorch's own
    // `$ORIGIN`-relative rpaths to the CUDA wheels resolve from the real location.
    std::fs::canonicalize(&lib)
        .map(|p| p.display().to_string())
        .unwrap_or(lib)
}

fn link_torch() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = libtorch_lib();
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
}

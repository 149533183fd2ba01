//! Compiles `shim/dist.cpp` against the libtorch headers tch builds with. c10d's gloo backend
//! needs gloo's headers, which the torch wheel does not ship (Debian's `libgloo-dev` has them;
//! `scripts/setup.sh` installs it); its NCCL backend needs `libtorch_cuda` and NCCL's and CUDA's
//! headers from the wheel's `nvidia` packages. A backend whose pieces are missing is left out, and
//! asking for it at run time is an error that says what to install.
use std::path::{Path, PathBuf};

fn main() {
    torch_link::link();
    println!("cargo:rerun-if-changed=shim/dist.cpp");
    println!("cargo:rerun-if-env-changed=SIMCLR_GLOO_INCLUDE");
    let lib = PathBuf::from(torch_link::libtorch_lib());
    let include = lib.join("../include");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("shim/dist.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false);
    match gloo_include() {
        Some(dir) => {
            build
                .include(dir)
                .define("USE_C10D_GLOO", None)
                .define("SIMCLR_GLOO", None);
        }
        None => println!(
            "cargo:warning=gloo's headers are missing (install libgloo-dev, or set \
             SIMCLR_GLOO_INCLUDE): built without the gloo backend"
        ),
    }
    if let Some(dirs) = nccl_includes(&lib) {
        for dir in dirs {
            build.include(dir);
        }
        build
            .define("USE_C10D_NCCL", None)
            .define("SIMCLR_NCCL", None);
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
    build.compile("dist_shim");
}

/// The folder holding `gloo/config.h`: `SIMCLR_GLOO_INCLUDE`, else the system's.
fn gloo_include() -> Option<PathBuf> {
    let dir = std::env::var_os("SIMCLR_GLOO_INCLUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let header = dir.join("gloo/config.h");
    // Installing the headers later makes the next build find them.
    println!("cargo:rerun-if-changed={}", header.display());
    header.is_file().then_some(dir)
}

/// The include folders NCCL's process group compiles with, when this libtorch has CUDA and the
/// wheel's `nvidia` packages hold the headers: NCCL's, CUDA 13's, and the two packages that
/// complete them (`nvidia-cuda-crt`, `nvidia-cuda-cccl`).
fn nccl_includes(lib: &Path) -> Option<Vec<PathBuf>> {
    let cuda = lib.join("libtorch_cuda.so");
    println!("cargo:rerun-if-changed={}", cuda.display());
    if !cuda.is_file() {
        return None;
    }
    let nvidia = lib.join("../../nvidia");
    let dirs = [
        nvidia.join("nccl/include"),
        nvidia.join("cu13/include"),
        nvidia.join("cu13/include/cccl"),
    ];
    let needed = [
        dirs[0].join("nccl.h"),
        dirs[1].join("cuda_runtime_api.h"),
        dirs[1].join("crt/host_config.h"),
        dirs[1].join("nv/target"),
    ];
    for f in &needed {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    if needed.iter().all(|f| f.is_file()) {
        Some(dirs.into_iter().filter(|d| d.is_dir()).collect())
    } else {
        let missing: Vec<String> = needed
            .iter()
            .filter(|f| !f.is_file())
            .map(|f| f.display().to_string())
            .collect();
        println!(
            "cargo:warning=built without the NCCL backend: missing {}",
            missing.join(", ")
        );
        None
    }
}

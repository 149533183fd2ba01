/// Compiles `shim/accel.cpp` (autocast and the CUDA hooks libtorch only exposes in C++) against
/// the same libtorch headers tch builds with.
fn main() {
    torch_link::link();
    println!("cargo:rerun-if-changed=shim/accel.cpp");
    let lib = std::path::PathBuf::from(torch_link::libtorch_lib());
    let include = lib.join("../include");
    cc::Build::new()
        .cpp(true)
        .file("shim/accel.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false)
        .compile("accel_shim");
}

//! Embeds an rpath to LibTorch so that `microvision` and the test binaries run without a
//! hand-set `LD_LIBRARY_PATH`. torch-sys links the libraries but does not record where they are.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(root) = std::env::var_os("LIBTORCH") else {
        // .cargo/config.toml sets it to the venv's LibTorch (`scripts/setup.sh` makes the link).
        panic!("LIBTORCH is not set: build inside the checkout (.cargo/config.toml sets it) after scripts/setup.sh");
    };
    let lib = PathBuf::from(root).join("lib");
    // Resolve `.venv/libtorch` links so the rpath survives a moved or re-linked checkout.
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // Keep CUDA support: the linker's default --as-needed would drop libtorch_cuda.so, since no
    // symbol of it is referenced directly, and LibTorch would then see no CUDA device.
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-L{},-ltorch_cuda,--as-needed", lib.display());
    }
    // The LibTorch version, for provenance (env.json): torch/version.py of the wheel.
    let version = std::fs::read_to_string(lib.join("../version.py")).unwrap_or_default();
    let version = version
        .lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim_matches(['\'', '"']).to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MICROVISION_LIBTORCH_VERSION={version}");
    compile_dist_shim(&lib.join(".."));
}

/// src/dist/shim.cpp: the c10d calls (TCPStore, ProcessGroupGloo) as a C API, compiled as
/// torch-sys compiles libtch (C++17, the same C++11-ABI setting) against the same headers.
/// LibTorch's wheel ships ProcessGroupGloo.hpp but not Gloo's headers: src/dist/gloo_decl/
/// declares the few Gloo names that header mentions.
fn compile_dist_shim(root: &std::path::Path) {
    println!("cargo:rerun-if-changed=src/dist/shim.cpp");
    println!("cargo:rerun-if-changed=src/dist/gloo_decl");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .file("src/dist/shim.cpp")
        .include("src/dist/gloo_decl")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .define("USE_C10D_GLOO", None)
        .define("GLOG_USE_GLOG_EXPORT", None)
        .warnings(false)
        .compile("microvision_dist");
}

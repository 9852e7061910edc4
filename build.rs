//! Embeds an rpath to LibTorch so that `microvision` and the test binaries run without a
//! hand-set `LD_LIBRARY_PATH`. torch-sys links the libraries but does not record where they are.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(root) = std::env::var_os("LIBTORCH") else {
        return;
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
}

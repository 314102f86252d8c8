//! Makes the binaries find libtorch at run time without LD_LIBRARY_PATH (an rpath to the libtorch that
//! torch-sys linked, e.g. `.venv/.../torch/lib`), and keeps `libtorch_cuda` linked when it exists so that
//! `--device cuda` works (the linker's `--as-needed` would otherwise drop it, as nothing names its symbols).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = PathBuf::from(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

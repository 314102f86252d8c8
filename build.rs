//! Makes the binaries find libtorch at run time without LD_LIBRARY_PATH (an rpath to the libtorch that
//! torch-sys linked, e.g. `.venv/.../torch/lib`), and keeps `libtorch_cuda` linked when it exists so that
//! `--device cuda` works (the linker's `--as-needed` would otherwise drop it, as nothing names its symbols).
use std::path::PathBuf;

fn main() {
    link_libpython();
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

/// ROS 2 from PyPI wheels (tools/ros/env.sh sets `DINOSEG_LINK_LIBPYTHON`): the wheels' librcl pulls the
/// `*_rosidl_generator_py` libraries, which need libpython's symbols, so `dinoseg_node` links libpython (with an
/// rpath to it) instead of needing `LD_PRELOAD` at every start. A ROS 2 from apt or source does not need it.
fn link_libpython() {
    println!("cargo:rerun-if-env-changed=DINOSEG_LINK_LIBPYTHON");
    let Ok(lib) = std::env::var("DINOSEG_LINK_LIBPYTHON") else {
        return;
    };
    let lib = PathBuf::from(lib);
    if std::env::var_os("CARGO_FEATURE_ROS").is_none() || !lib.is_file() {
        return;
    }
    if let Some(dir) = lib.parent() {
        println!("cargo:rustc-link-arg-bin=dinoseg_node=-Wl,-rpath,{}", dir.display());
    }
    println!("cargo:rustc-link-arg-bin=dinoseg_node=-Wl,--no-as-needed,{},--as-needed", lib.display());
}

//! The fuzz binaries find libtorch at run time without LD_LIBRARY_PATH: an rpath to the libtorch that torch-sys
//! linked, as the main crate's build.rs gives its own binaries (a dependency's link args do not reach us).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}

//! Shared test helpers: the fixture directory (tiny random-weight checkpoints and transformers reference
//! outputs made by `tools/make_fixtures.py`), generated once per test binary, and tensor comparisons.
#![allow(dead_code)]

pub mod node_fixtures;
pub mod params_fixtures;
pub mod postprocess_cases;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::Tensor;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repo's Python (`.venv`), which has torch and transformers.
pub fn python() -> PathBuf {
    root().join(".venv").join("bin").join("python")
}

/// Fixtures from `tools/make_fixtures.py`, generated on first use into `target/fixtures`.
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // DINOSEG_FIXTURES points at fixtures made elsewhere (e.g. carried to a GPU machine without transformers).
        let dir = std::env::var_os("DINOSEG_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target").join("fixtures"));
        if !dir.join("DONE").is_file() {
            let status = Command::new(python())
                .arg(root().join("tools").join("make_fixtures.py"))
                .arg(&dir)
                .status()
                .expect("run tools/make_fixtures.py with .venv/bin/python (run `make test` to set up)");
            assert!(status.success(), "tools/make_fixtures.py failed");
        }
        dir
    })
}

/// EoMT fixtures from `tools/make_eomt_fixtures.py`, generated on first use into `target/fixtures_eomt`
/// (or read from `DINOSEG_EOMT_FIXTURES`).
pub fn eomt_fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("DINOSEG_EOMT_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target").join("fixtures_eomt"));
        if !dir.join("EOMT_DONE").is_file() {
            let status = Command::new(python())
                .arg(root().join("tools").join("make_eomt_fixtures.py"))
                .arg(&dir)
                .status()
                .expect("run tools/make_eomt_fixtures.py with .venv/bin/python (run `make test` to set up)");
            assert!(status.success(), "tools/make_eomt_fixtures.py failed");
        }
        dir
    })
}

/// Mask2Former fixtures from `tools/make_mask2former_fixtures.py`, generated on first use into
/// `target/fixtures_m2f` (or read from `DINOSEG_M2F_FIXTURES`).
pub fn m2f_fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("DINOSEG_M2F_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target").join("fixtures_m2f"));
        if !dir.join("M2F_DONE").is_file() {
            let status = Command::new(python())
                .arg(root().join("tools").join("make_mask2former_fixtures.py"))
                .arg(&dir)
                .status()
                .expect("run tools/make_mask2former_fixtures.py with .venv/bin/python (run `make test` to set up)");
            assert!(status.success(), "tools/make_mask2former_fixtures.py failed");
        }
        dir
    })
}

/// Reads the named tensors of a safetensors file.
pub fn read(path: &Path) -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn get(tensors: &[(String, Tensor)], name: &str) -> Tensor {
    tensors
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t.shallow_clone())
        .unwrap_or_else(|| panic!("no tensor `{name}`"))
}

/// Max absolute difference, after checking the shapes agree.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a.to_kind(tch::Kind::Double) - b.to_kind(tch::Kind::Double)).abs().max().double_value(&[])
}

/// A fresh temporary directory under target/.
pub fn temp_dir(name: &str) -> PathBuf {
    // Unique per call: the tests of one binary run in parallel threads of one process.
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join("dinoseg-tests").join("test-tmp").join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

//! Params-file fixtures shared by tests/params.rs and tests/params_live.rs: tiny checkpoints whose metadata is
//! all that validation reads, and the parse helpers.

use dinoseg::params::{ErrorKind, ParamErrors, Params};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

// ---- fixtures: tiny checkpoints whose metadata is all validation reads ----

/// A transformers `eomt_dinov3` directory: config.json with `classes` names in id2label (architecture defaults:
/// hidden 384) and a placeholder weights file (validation only checks that it is there).
pub fn eomt_dir(dir: &Path, classes: usize) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let id2label: serde_json::Map<String, serde_json::Value> =
        (0..classes).map(|i| (i.to_string(), serde_json::json!(format!("c{i}")))).collect();
    let config = serde_json::json!({"model_type": "eomt_dinov3", "id2label": id2label});
    std::fs::write(dir.join("config.json"), config.to_string()).expect("write config.json");
    std::fs::write(dir.join("model.safetensors"), b"").expect("write weights");
    dir.to_path_buf()
}

/// A linear head `.safetensors`: conv.weight [k, c, 1, 1] and BatchNorm [c], with `dinoseg.*` metadata.
pub fn linear_head(path: &Path, k: usize, c: usize, layers: &str, names: Option<usize>) -> PathBuf {
    let zeros = |n: usize| vec![0u8; n * 4];
    let (w, b, bn) = (zeros(k * c), zeros(k), zeros(c));
    let mut views = vec![
        ("conv.weight".to_string(), TensorView::new(Dtype::F32, vec![k, c, 1, 1], &w).expect("view")),
        ("conv.bias".to_string(), TensorView::new(Dtype::F32, vec![k], &b).expect("view")),
    ];
    for n in ["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"] {
        views.push((n.to_string(), TensorView::new(Dtype::F32, vec![c], &bn).expect("view")));
    }
    let mut meta = HashMap::new();
    meta.insert("dinoseg.head".to_string(), "linear".to_string());
    meta.insert("dinoseg.layers".to_string(), layers.to_string());
    if let Some(n) = names {
        let list: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        meta.insert("dinoseg.classes".to_string(), serde_json::to_string(&list).expect("json"));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    safetensors::serialize_to_file(views, Some(meta), path).expect("write head");
    path.to_path_buf()
}

pub fn labels(path: &Path, n: usize) -> PathBuf {
    let text: String = (0..n).map(|i| format!("name{i}\n")).collect();
    std::fs::write(path, text).expect("write labels");
    path.to_path_buf()
}

pub fn node(body: &str) -> String {
    let indented: String = body.lines().map(|l| format!("    {l}\n")).collect();
    format!("dinoseg:\n  ros__parameters:\n{indented}")
}

pub fn parse_in(dir: &Path, body: &str) -> Result<Params, ParamErrors> {
    Params::from_yaml_str_in(&node(body), dir)
}

pub fn errors_in(dir: &Path, body: &str) -> ParamErrors {
    match parse_in(dir, body) {
        Ok(p) => panic!("expected errors, got {p:#?}"),
        Err(e) => e,
    }
}

/// The one error on `key` (relative), asserting its kind.
pub fn the_error(errors: &ParamErrors, key: &str, kind: ErrorKind) -> String {
    let full = format!("dinoseg.ros__parameters.{key}");
    let found: Vec<_> = errors.errors().iter().filter(|e| e.key == full || e.key == key).collect();
    assert_eq!(found.len(), 1, "one error on `{key}` expected in:\n{errors}");
    assert_eq!(found[0].kind, kind, "kind of `{key}` in:\n{errors}");
    found[0].to_string()
}

/// A valid EoMT + linear (source: eomt) setup in `dir`.
pub fn valid_dir(name: &str) -> PathBuf {
    let dir = super::temp_dir(name);
    eomt_dir(&dir.join("models/eomt"), 5);
    linear_head(&dir.join("heads/lin.safetensors"), 5, 4 * 384, "4", Some(5));
    labels(&dir.join("labels5.txt"), 5);
    dir
}

pub const VALID: &str = "\
device: cpu
precision: fp32
heads:
  scene: {type: eomt, checkpoint: models/eomt, outputs: panoptic, labels: labels5.txt}
  semantic: {type: linear, checkpoint: heads/lin.safetensors, source: eomt}
";

/// A parameter set with a Mask2Former head in the adapter layout (its `layers` and `num_heads` given).
pub fn mask2former_set() -> String {
    let dir = super::m2f_fixtures().join("m2f_adapter_plain");
    format!(
        "device: cpu\nheads:\n  objects: {{type: mask2former, checkpoint: {}, outputs: instances, layers: [0, 1, 2, 3], \
         num_heads: 4}}\n",
        dir.display()
    )
}

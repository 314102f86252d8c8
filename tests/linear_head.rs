//! The DINOv3 linear semantic head against a PyTorch reference module (the official `LinearHead.predict` on
//! transformers backbones, `tools/make_linear_head.py`): same random weights, same inputs, logits at the feature
//! stride and at input resolution within 1e-4; every accepted checkpoint layout; the loading errors.

mod common;

use dinoseg::checkpoint::load_backbone;
use dinoseg::model::heads::linear::{upsample_logits, LayerSelection, LinearHead};
use dinoseg::model::{ForwardOptions, LoadedBackbone};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

const TOL: f64 = 1e-4;
const CLASSES: [&str; 5] = ["road", "sidewalk", "person", "car", "vegetation"];

/// Fixtures from `tools/make_linear_head.py`, generated on first use into `target/fixtures_linear_head`.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("DINOSEG_LINEAR_HEAD_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| common::root().join("target").join("fixtures_linear_head"));
        if !dir.join("DONE").is_file() {
            let status = Command::new(common::python())
                .arg(common::root().join("tools").join("make_linear_head.py"))
                .arg(&dir)
                .status()
                .expect("run tools/make_linear_head.py with .venv/bin/python");
            assert!(status.success(), "tools/make_linear_head.py failed");
        }
        dir
    })
}

fn backbone(name: &str) -> LoadedBackbone {
    let dir = fixtures().join(name);
    let spec = dir.to_str().expect("utf-8 fixture path");
    load_backbone(spec, None, Device::Cpu, Kind::Float).unwrap_or_else(|e| panic!("{e}")).0
}

fn load(file: &str) -> LinearHead {
    LinearHead::load(&fixtures().join(file), Device::Cpu).unwrap_or_else(|e| panic!("{file}: {e}")).0
}

fn load_err(path: &Path) -> String {
    match LinearHead::load(path, Device::Cpu) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e.to_string(),
    }
}

/// Runs `head` on the backbone `bb` for every size and compares with the reference logits of `reference`.
fn check(bb: &str, head: &LinearHead, reference: &str, sizes: &[&str]) -> f64 {
    let model = backbone(bb);
    let opts = head.required_layers(&model.backbone).unwrap_or_else(|e| panic!("{e}"));
    let mut worst: f64 = 0.0;
    for size in sizes {
        let x = common::get(&common::read(&fixtures().join(format!("{bb}_input_{size}.safetensors"))), "pixel_values");
        let refs = common::read(&fixtures().join(format!("{reference}_logits_{size}.safetensors")));
        let (out, padding) = model.backbone.forward(&x, &opts).unwrap_or_else(|e| panic!("{e}"));
        let stride = head.forward(&out).unwrap_or_else(|e| panic!("{e}"));
        let full = head.forward_full(&out, &padding).unwrap_or_else(|e| panic!("{e}"));
        for (name, ours) in [("logits_stride", &stride), ("logits_full", &full)] {
            let want = common::get(&refs, name);
            // Random weights and BN statistics give logits of order one: a zero or constant output cannot pass.
            assert!(want.std(true).double_value(&[]) > 0.1, "{reference} {size}: degenerate reference `{name}`");
            let d = common::max_abs_diff(ours, &want);
            assert!(d < TOL, "{reference} {size}: `{name}` differs by {d:e}");
            worst = worst.max(d);
        }
    }
    println!("{reference}: max abs diff {worst:e}");
    worst
}

#[test]
fn vit_dense4_matches_reference() {
    let head = load("vit8_4.safetensors");
    assert_eq!(head.config.layers, LayerSelection::Dense4);
    assert_eq!(head.config.in_channels, 4 * 64);
    check("vit8", &head, "vit8_4", &["48x80", "40x70"]);
}

#[test]
fn vit_last_matches_reference() {
    let head = load("vit8_last.safetensors");
    assert_eq!(head.config.layers, LayerSelection::Last);
    check("vit8", &head, "vit8_last", &["48x80", "40x70"]);
}

/// Three blocks: the official rule gives no dense layers, so `Last` must ask the backbone for block 2.
#[test]
fn vit_last_without_official_dense_layers_matches_reference() {
    let head = load("vit3_last.safetensors");
    let model = backbone("vit3");
    let opts = head.required_layers(&model.backbone).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(opts.dense_layers, Some(vec![2]));
    check("vit3", &head, "vit3_last", &["40x70"]);
}

#[test]
fn convnext_dense4_matches_reference() {
    let head = load("convnext_4.safetensors");
    assert_eq!(head.config.in_channels, 16 + 32 + 48 + 64);
    check("convnext", &head, "convnext_4", &["64x96", "60x90"]);
}

#[test]
fn convnext_last_matches_reference() {
    check("convnext", &load("convnext_last.safetensors"), "convnext_last", &["64x96", "60x90"]);
}

#[test]
fn reference_state_dict_layouts_load_and_match() {
    for (bb, reference) in [("vit8", "vit8_4"), ("vit8", "vit8_last"), ("convnext", "convnext_4")] {
        let ours = load(&format!("{reference}.safetensors"));
        for layout in ["_ref.safetensors", "_seq.safetensors", "_official.pth"] {
            let head = load(&format!("{reference}{layout}"));
            assert_eq!(head.config, ours.config, "{reference}{layout}");
            let sizes: &[&str] = if bb == "vit8" { &["40x70"] } else { &["60x90"] };
            check(bb, &head, reference, sizes);
        }
    }
}

#[test]
fn checkpoint_config_and_parameter_names() {
    let (head, vs) = LinearHead::load(&fixtures().join("vit8_4.safetensors"), Device::Cpu).expect("load");
    let c = &head.config;
    assert_eq!(
        (c.num_classes, c.in_channels, c.layers, c.backbone.as_str()),
        (5, 256, LayerSelection::Dense4, "custom")
    );
    assert_eq!(c.class_names, CLASSES);
    assert_eq!(c.bn_eps, 1e-5);
    let mut names: Vec<String> = vs.variables().into_keys().collect();
    names.sort();
    let want = ["bn.bias", "bn.running_mean", "bn.running_var", "bn.weight", "conv.bias", "conv.weight"];
    assert_eq!(names, want);
    // Running statistics must come from the file, not stay at their 0 / 1 initial values.
    let var = vs.variables().remove("bn.running_var").expect("running_var");
    assert!((var - 1.0).abs().max().double_value(&[]) > 0.1);
}

#[test]
fn wrong_class_count_is_an_error() {
    let e = load_err(&fixtures().join("bad_classes.safetensors"));
    assert!(e.contains("bad_classes.safetensors") && e.contains("names 3 classes") && e.contains("has 5"), "{e}");
}

#[test]
fn missing_tensor_is_an_error() {
    let e = load_err(&fixtures().join("bad_missing.safetensors"));
    assert!(e.contains("bad_missing.safetensors") && e.contains("missing tensor `conv.bias`"), "{e}");
}

#[test]
fn bad_metadata_is_an_error() {
    let e = load_err(&fixtures().join("bad_json.safetensors"));
    assert!(e.contains("bad_json.safetensors") && e.contains("dinoseg.classes") && e.contains("JSON"), "{e}");
    let e = load_err(&fixtures().join("bad_layers.safetensors"));
    assert!(e.contains("dinoseg.layers") && e.contains("`7`"), "{e}");
    // Reference names without a sidecar: no metadata at all.
    let tmp = common::temp_dir("linear-head-meta");
    let bare = tmp.join("bare.safetensors");
    std::fs::copy(fixtures().join("vit8_4_ref.safetensors"), &bare).expect("copy");
    let e = load_err(&bare);
    assert!(e.contains("bare.safetensors") && e.contains("dinoseg.head"), "{e}");
    // A sidecar that contradicts the embedded metadata.
    let ours = tmp.join("ours.safetensors");
    std::fs::copy(fixtures().join("vit8_4.safetensors"), &ours).expect("copy");
    std::fs::write(tmp.join("ours.safetensors.json"), r#"{"layers": "last"}"#).expect("write");
    let e = load_err(&ours);
    assert!(e.contains("ours.safetensors.json") && e.contains("layers") && e.contains("disagrees"), "{e}");
    std::fs::write(tmp.join("ours.safetensors.json"), "{not json").expect("write");
    let e = load_err(&ours);
    assert!(e.contains("ours.safetensors.json") && e.contains("invalid JSON"), "{e}");
}

#[test]
fn channel_mismatch_names_both_numbers() {
    let head = load("vit8_4.safetensors");
    let model = backbone("convnext");
    let e = head.required_layers(&model.backbone).expect_err("256-channel head on a 160-channel backbone").to_string();
    assert!(e.contains("256") && e.contains("160"), "{e}");
    let x = Tensor::zeros([1, 3, 64, 64], (Kind::Float, Device::Cpu));
    let (out, _) = model.backbone.forward(&x, &ForwardOptions::default()).expect("forward");
    let e = head.forward(&out).expect_err("forward with the wrong backbone").to_string();
    assert!(e.contains("256") && e.contains("160"), "{e}");
}

#[test]
fn missing_feature_maps_are_errors() {
    // Four layers from a ViT whose depth gives no official dense layers.
    let head = load("vit8_4.safetensors");
    let e = head.required_layers(&backbone("vit3").backbone).expect_err("depth 3").to_string();
    assert!(e.contains("4 dense layers") && e.contains("depth 3"), "{e}");
    // The backbone run without the head's layers.
    let model = backbone("vit8");
    let x = Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let opts = ForwardOptions { dense_layers: Some(vec![7]), ..Default::default() };
    let (out, padding) = model.backbone.forward(&x, &opts).expect("forward");
    let e = head.forward(&out).expect_err("one map for a four-map head").to_string();
    assert!(e.contains("needs 4 dense feature maps") && e.contains("layer7"), "{e}");
    let bad = dinoseg::model::Padding { input_hw: (40, 40), padded_hw: padding.padded_hw };
    assert!(upsample_logits(&Tensor::zeros([1, 5, 2, 2], (Kind::Float, Device::Cpu)), &bad).is_err());
}

//! The DINOv3 linear semantic head against a PyTorch reference module (the official `LinearHead.predict` on
//! transformers backbones, `tools/make_linear_head.py`): same random weights, same inputs, logits at the feature
//! stride and at input resolution within 1e-4; every accepted checkpoint layout; the loading errors.

mod common;

use dinoseg::checkpoint::load_backbone;
use dinoseg::model::heads::linear::{upsample_logits, LayerSelection, LinearHead, LinearHeadFile};
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
    assert!(e.contains("needs 4 dense feature maps") && e.contains("levels [7]"), "{e}");
    let bad = dinoseg::model::Padding { input_hw: (40, 40), padded_hw: padding.padded_hw };
    assert!(upsample_logits(&Tensor::zeros([1, 5, 2, 2], (Kind::Float, Device::Cpu)), &bad).is_err());
}

/// `check-params` on a params file whose only head is the linear head `head` (read from `source`, with the
/// backbone `backbone` when given): the messages of its errors on `heads.s.checkpoint`.
fn check_params_errors(head: &Path, source: &str, backbone: Option<&Path>) -> Vec<String> {
    let dir = head.parent().expect("head dir");
    let mut body = format!(
        "dinoseg:\n  ros__parameters:\n    device: cpu\n    heads:\n      s: {{type: linear, checkpoint: {}, source: \
         {source}}}\n",
        head.display()
    );
    if let Some(b) = backbone {
        body.push_str(&format!("    backbone: {{checkpoint: {}}}\n", b.display()));
    }
    let params = dir.join("params.yaml");
    std::fs::write(&params, body).expect("write params");
    match dinoseg::params::check_file(&params) {
        Ok(_) => Vec::new(),
        Err(e) => e.for_key("heads.s.checkpoint").iter().map(|e| e.message.clone()).collect(),
    }
}

/// A copy of the fixture `file` (and no sidecar) in a fresh directory, with `sidecar` as its `<file>.json`.
fn head_copy(file: &str, sidecar: Option<&str>) -> PathBuf {
    let path = common::temp_dir("linear-format").join(file);
    std::fs::copy(fixtures().join(file), &path).expect("copy");
    if let Some(text) = sidecar {
        std::fs::write(format!("{}.json", path.display()), text).expect("write sidecar");
    }
    path
}

#[test]
fn check_params_and_the_loader_refuse_a_head_file_identically() {
    let conflicting = r#"{"head": "linear", "layers": "4", "classes": ["road", "sidewalk", "person"]}"#;
    let cases = [
        ("unknown sidecar key", head_copy("vit8_4.safetensors", Some(r#"{"colour": "red"}"#)), "unknown key `colour`"),
        (
            "sidecar classes against the embedded ones",
            head_copy("vit8_4.safetensors", Some(r#"{"classes": ["a", "b", "c", "d", "e"]}"#)),
            "disagrees",
        ),
        ("embedded classes against conv.weight", head_copy("bad_classes.safetensors", None), "names 3 classes"),
        ("sidecar classes of a .pth against conv.weight", head_copy("vit8_4_official.pth", Some(conflicting)), "has 5"),
        ("unknown sidecar key of a .pth", head_copy("vit8_4_official.pth", Some(r#"{"heads": 1}"#)), "`heads`"),
    ];
    let renamed = head_copy("vit8_4.safetensors", None).with_extension("st");
    std::fs::copy(fixtures().join("vit8_4.safetensors"), &renamed).expect("copy");
    let cases = cases.into_iter().chain([("an unknown extension", renamed, "unrecognised linear head file")]);
    for (what, head, needle) in cases {
        let loaded = load_err(&head);
        assert!(loaded.contains(needle), "{what}: {loaded}");
        let checked = check_params_errors(&head, "backbone", None);
        assert_eq!(checked, vec![loaded.clone()], "{what}: check-params and the loader differ");
    }
}

#[test]
fn check_params_reads_the_head_file_the_loader_reads() {
    // The reader check-params calls gives the loader's config, `.pth` included (its class names from the sidecar).
    for file in ["vit8_4.safetensors", "vit8_4_official.pth", "vit8_4_seq.safetensors", "convnext_last.safetensors"] {
        let read = LinearHeadFile::read(&fixtures().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(read.config, load(file).config, "{file}");
        assert_eq!(read.tensors.len(), 6, "{file}: {:?}", read.tensors);
    }
}

#[test]
fn check_params_applies_the_loaders_channel_rule() {
    // A four-layer head of 4 x 64 channels on a ViT of width 64 but depth 3: the official rule gives no four dense
    // layers, so the node would refuse it at start-up; check-params must say the same.
    let head = head_copy("vit8_4.safetensors", None);
    let loaded = start_up_refusal(&head, "vit3");
    let checked = check_params_errors(&head, "backbone", Some(&fixtures().join("vit3")));
    assert_eq!(checked.len(), 1, "{checked:?}");
    assert!(loaded.contains(&checked[0]) && checked[0].contains("4 dense layers"), "{loaded}\nvs\n{checked:?}");
    // And the channels: the same head on the ConvNeXt (16 + 32 + 48 + 64 = 160 channels).
    let loaded = start_up_refusal(&head, "convnext");
    let checked = check_params_errors(&head, "backbone", Some(&fixtures().join("convnext")));
    assert_eq!(checked.len(), 1, "{checked:?}");
    assert!(loaded.contains(&checked[0]) && checked[0].contains("gives 160"), "{loaded}\nvs\n{checked:?}");
}

/// Why the loader refuses the head `head` on the fixture backbone `bb`.
fn start_up_refusal(head: &Path, bb: &str) -> String {
    let (head, _vs) = LinearHead::load(head, Device::Cpu).expect("load");
    head.required_layers(&backbone(bb).backbone).expect_err("refused").to_string()
}

#[test]
fn feature_info_describes_the_feature_maps() {
    for bb in ["vit8", "vit3", "convnext"] {
        let model = backbone(bb);
        let info = model.backbone.feature_info();
        assert_eq!(info, model.backbone.config().feature_info(), "{bb}: from the config alone");
        let all = info.iter().map(|f| f.index as i64).collect();
        let x = Tensor::zeros([1, 3, 64, 64], (Kind::Float, Device::Cpu));
        let opts = ForwardOptions { dense_layers: Some(all), ..Default::default() };
        let (out, _) = model.backbone.forward(&x, &opts).expect("forward");
        assert_eq!(out.features.len(), info.len(), "{bb}");
        for f in &info {
            let map = out.feature(f.index).unwrap_or_else(|| panic!("{bb}: level {}", f.index));
            assert_eq!((map.stride, map.tensor.size()[1]), (f.stride, f.channels), "{bb}: level {}", f.index);
            assert_eq!(map.tensor.size()[2], 64 / f.stride, "{bb}: level {}", f.index);
        }
    }
}

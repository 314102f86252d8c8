//! The Mask2Former head against transformers' `Mask2FormerForUniversalSegmentation`: tiny random heads made by
//! `tools/mask2former_head_reference.py` (post-norm and pre-norm on ConvNeXt maps at strides 4..32, and four
//! stride-16 maps as a ViT gives), loaded strictly by name, run on the saved backbone maps; both outputs within
//! 1e-4. Bad configs are errors naming the key.

use dinoseg::model::heads::mask2former::head::{HeadConfig, Mask2FormerHead};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::{nn, Device, Tensor};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The reference cases, generated once into `target/fixtures_m2f_head` (the OnceLock serialises this binary's
/// tests; the script writes every file before `DONE`).
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("target").join("fixtures_m2f_head");
        if !dir.join("DONE").is_file() {
            let status = Command::new(root().join(".venv").join("bin").join("python"))
                .arg(root().join("tools").join("mask2former_head_reference.py"))
                .arg(&dir)
                .status()
                .expect("run tools/mask2former_head_reference.py with .venv/bin/python");
            assert!(status.success(), "tools/mask2former_head_reference.py failed");
        }
        dir
    })
}

/// The case's config and the channels of its feature maps.
fn case_config(name: &str) -> (HeadConfig, Vec<i64>) {
    let text = std::fs::read_to_string(fixtures().join(format!("{name}.json"))).expect("case config");
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    let channels = value["feature_channels"].as_array().expect("feature_channels");
    let channels = channels.iter().map(|c| c.as_i64().expect("int")).collect();
    (serde_json::from_value(value).expect("HeadConfig"), channels)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a - b).abs().max().double_value(&[])
}

fn check_case(name: &str) {
    let (config, channels) = case_config(name);
    let path = fixtures().join(format!("{name}.safetensors"));
    let all = Tensor::read_safetensors(&path).expect("read fixture");
    let take = |prefix: &str| -> Vec<(String, Tensor)> {
        let mut v: Vec<_> =
            all.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let get = |n: &str| all.iter().find(|(k, _)| k == n).map(|(_, t)| t.shallow_clone()).expect(n);
    let features: Vec<Tensor> = take("features.").into_iter().map(|(_, t)| t).collect();
    assert_eq!(features.len(), channels.len());
    let weights: Vec<_> = all
        .iter()
        .filter(|(n, _)| !n.starts_with("features.") && !n.ends_with("_queries_logits"))
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();

    let vs = nn::VarStore::new(Device::Cpu);
    let head = Mask2FormerHead::new(&vs.root(), &config, &channels).expect("head");
    // `criterion.empty_weight` is the loss's class weights (a buffer of the training criterion): not the head's.
    dinoseg::checkpoint::load_weights(&vs, weights, &path, &["criterion.empty_weight"]).expect("strict load");

    let (class_logits, mask_logits) = tch::no_grad(|| head.forward(&features));
    let (want_class, want_masks) = (get("class_queries_logits"), get("masks_queries_logits"));
    let b = features[0].size()[0];
    assert_eq!(class_logits.size(), [b, config.num_queries, config.num_labels() + 1]);
    assert_eq!(mask_logits.size(), want_masks.size());
    let dc = max_abs_diff(&class_logits, &want_class);
    let dm = max_abs_diff(&mask_logits, &want_masks);
    let scale = want_masks.abs().max().double_value(&[]);
    eprintln!("{name}: class diff {dc:.2e}, mask diff {dm:.2e} (mask logits up to {scale:.1})");
    assert!(dc < 1e-4, "{name}: class_queries_logits differ by {dc}");
    assert!(dm < 1e-4, "{name}: masks_queries_logits differ by {dm}");
}

#[test]
fn post_norm_head_on_convnext_maps_matches_transformers() {
    check_case("convnext");
}

#[test]
fn pre_norm_head_with_input_projections_matches_transformers() {
    check_case("prenorm");
}

#[test]
fn head_on_four_stride_16_maps_matches_transformers() {
    check_case("vit16");
}

fn tiny() -> HeadConfig {
    let mut c: HeadConfig = serde_json::from_str(r#"{"id2label": {"0": "a", "1": "b"}}"#).expect("config");
    c.feature_size = 64;
    c.mask_feature_size = 64;
    c.hidden_dim = 64;
    c.num_attention_heads = 4;
    c.encoder_layers = 1;
    c.decoder_layers = 2;
    c.num_queries = 5;
    c
}

/// A change to a valid config.
type Mutation = Box<dyn Fn(&mut HeadConfig)>;

fn build_err(c: &HeadConfig, channels: &[i64]) -> String {
    let vs = nn::VarStore::new(Device::Cpu);
    match Mask2FormerHead::new(&vs.root(), c, channels) {
        Ok(_) => panic!("config accepted: {c:?} with channels {channels:?}"),
        Err(e) => e,
    }
}

#[test]
fn bad_configs_are_errors_naming_the_key() {
    let ch = [32, 64, 128, 256];
    let vs = nn::VarStore::new(Device::Cpu);
    assert!(Mask2FormerHead::new(&vs.root(), &tiny(), &ch).is_ok());

    let cases: Vec<(&str, Mutation)> = vec![
        ("feature_size", Box::new(|c| c.feature_size = 48)),
        ("feature_size", Box::new(|c| c.feature_size = 0)),
        ("num_attention_heads", Box::new(|c| c.num_attention_heads = 3)),
        ("num_attention_heads", Box::new(|c| c.num_attention_heads = 0)),
        ("hidden_dim", Box::new(|c| c.hidden_dim = 66)),
        ("decoder_layers", Box::new(|c| c.decoder_layers = 0)),
        ("encoder_layers", Box::new(|c| c.encoder_layers = -1)),
        ("num_queries", Box::new(|c| c.num_queries = 0)),
        ("mask_feature_size", Box::new(|c| c.mask_feature_size = -3)),
        ("dim_feedforward", Box::new(|c| c.dim_feedforward = 0)),
        ("activation_function", Box::new(|c| c.activation_function = "mish".into())),
        ("feature_strides", Box::new(|c| c.feature_strides = vec![])),
        ("feature_strides", Box::new(|c| c.feature_strides = vec![4, 8, 0, 32])),
        ("common_stride", Box::new(|c| c.common_stride = 0)),
        // Stride 256 over common stride 4: 6 FPN levels from 4 maps.
        ("feature_strides", Box::new(|c| c.feature_strides = vec![256, 256, 256, 256])),
        // Common stride above the maps' strides: a negative FPN level count.
        ("feature_strides", Box::new(|c| c.common_stride = 64)),
        ("id2label", Box::new(|c| c.id2label.clear())),
        (
            "id2label",
            Box::new(|c| {
                c.id2label.insert("7".into(), "x".into());
            }),
        ),
    ];
    for (key, mutate) in cases {
        let mut c = tiny();
        mutate(&mut c);
        let e = build_err(&c, &ch);
        assert!(e.contains(key), "error for a bad `{key}` does not name it: {e}");
    }
    let e = build_err(&tiny(), &[64, 128]);
    assert!(e.contains("3 backbone feature maps"), "{e}");
    let e = build_err(&tiny(), &[64, 0, 128, 256]);
    assert!(e.contains("feature channels"), "{e}");
}

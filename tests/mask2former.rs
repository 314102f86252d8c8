//! Mask2Former on DINOv3 backbones against transformers (tiny random checkpoints of the three forms from
//! `tools/make_mask2former_fixtures.py`, batch 2 at 96x160): the backbone feature maps the head reads, both
//! outputs, dense features for linear heads from the same pass, strict loading and the adapter layout's options.

mod common;

use dinoseg::checkpoint::{self, Mask2FormerOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Device, Kind, Tensor};

const TOL: f64 = 1e-4;
const CASES: [&str; 5] = ["convnext", "vit", "vit_raw", "adapter_plain", "adapter_pyramid"];

/// Fixtures generated once into the worktree's `target/fixtures_m2f` (or `DINOSEG_M2F_FIXTURES`).
fn fixtures() -> &'static Path {
    common::m2f_fixtures()
}

/// The options each case needs: the tiny ViTs are outside the catalog (heads), and adapter_plain names an
/// unknown variant file (layers).
fn opts(case: &str) -> Mask2FormerOptions {
    match case {
        "adapter_plain" => Mask2FormerOptions { layers: Some(vec![0, 1, 2, 3]), num_heads: Some(4) },
        "adapter_pyramid" => Mask2FormerOptions { layers: None, num_heads: Some(4) },
        _ => Mask2FormerOptions::default(),
    }
}

fn load(case: &str) -> checkpoint::LoadedMask2Former {
    let dir = fixtures().join(format!("m2f_{case}"));
    checkpoint::load_mask2former(dir.to_str().expect("utf-8"), &opts(case), Device::Cpu, Kind::Float)
        .unwrap_or_else(|e| panic!("{case}: {e}"))
        .0
}

fn input() -> Tensor {
    common::get(&common::read(&fixtures().join("m2f_input.safetensors")), "pixel_values")
}

fn reference(case: &str) -> Vec<(String, Tensor)> {
    common::read(&fixtures().join(format!("m2f_{case}_ref.safetensors")))
}

#[test]
fn encoder_feature_maps_match_transformers() {
    let x = input();
    for case in CASES {
        let m = load(case);
        let (maps, _) = m.model.encoder_features(&x).expect("encoder");
        let r = reference(case);
        let n = r.iter().filter(|(k, _)| k.starts_with("encoder_hidden_states.")).count();
        assert_eq!(maps.len(), n, "{case}: map count");
        for (i, ours) in maps.iter().enumerate() {
            let d = common::max_abs_diff(&common::get(&r, &format!("encoder_hidden_states.{i}")), ours);
            println!("{case}: encoder_hidden_states.{i} {:?} max abs diff {d:e}", ours.size());
            assert!(d < TOL, "{case}: encoder_hidden_states.{i} differs by {d:e}");
        }
    }
}

#[test]
fn outputs_match_transformers() {
    let x = input();
    for case in CASES {
        let m = load(case);
        let (out, _) = m.model.forward(&x).expect("forward");
        let r = reference(case);
        for (name, ours) in
            [("class_queries_logits", &out.class_queries_logits), ("masks_queries_logits", &out.masks_queries_logits)]
        {
            let d = common::max_abs_diff(&common::get(&r, name), ours);
            println!("{case}: {name} {:?} max abs diff {d:e}", ours.size());
            assert!(d < TOL, "{case}: {name} differs by {d:e}");
        }
    }
}

/// fp16 and bf16 on the CPU. The encoder maps are compared tightly: transformers' own half-precision maps of the
/// same checkpoints are as far from float (largest map error: ConvNeXt fp16 3.1e-3 and bf16 2.8e-2, pyramid fp16
/// 6.2e-3 and bf16 5.4e-2; ours 3.1e-3, 2.8e-2, 6.2e-3 and 4.7e-2). The final outputs cannot be: the decoder's attention masks threshold mask logits that
/// come within 1e-4 of 0 on these random weights, so any rounding flips some of them. transformers' own fp32 model
/// moves its class logits by up to 0.27 when the pixels get 1e-3 of noise, and its fp16 and bf16 runs are 2e-3 to
/// 0.13 away from its float ones; ours are 7e-3 to 0.16 away. The outputs are checked finite and within 0.5.
#[test]
fn half_precisions_run_close_to_float() {
    let x = input();
    for case in ["convnext", "adapter_pyramid"] {
        let r = reference(case);
        for (kind, tol) in [(Kind::Half, 1e-2), (Kind::BFloat16, 0.1)] {
            let dir = fixtures().join(format!("m2f_{case}"));
            let (m, _) = checkpoint::load_mask2former(dir.to_str().expect("utf-8"), &opts(case), Device::Cpu, kind)
                .expect("load");
            let (maps, _) = m.model.encoder_features(&x).expect("encoder");
            for (i, map) in maps.iter().enumerate() {
                assert_eq!(map.kind(), kind, "{case}: map {i} runs in {kind:?}");
                let want = common::get(&r, &format!("encoder_hidden_states.{i}"));
                let d = common::max_abs_diff(&want, &map.to_kind(Kind::Float));
                println!("{case} {kind:?}: encoder_hidden_states.{i} max abs diff {d:e}");
                assert!(d < tol, "{case} {kind:?}: encoder_hidden_states.{i} differs by {d:e}");
            }
            let (out, _) = m.model.forward(&x).expect("forward");
            for name in ["class_queries_logits", "masks_queries_logits"] {
                let ours = match name {
                    "class_queries_logits" => &out.class_queries_logits,
                    _ => &out.masks_queries_logits,
                };
                let d = common::max_abs_diff(&common::get(&r, name), &ours.to_kind(Kind::Float));
                println!("{case} {kind:?}: {name} max abs diff {d:e}");
                assert!(d.is_finite() && d < 0.5, "{case} {kind:?}: {name} differs by {d:e}");
            }
        }
    }
}

#[test]
fn pytorch_model_bin_loads_the_same_weights() {
    let x = input();
    let dir = fixtures().join("m2f_convnext_bin");
    let (m, _) =
        checkpoint::load_mask2former(dir.to_str().expect("utf-8"), &opts("convnext"), Device::Cpu, Kind::Float)
            .expect("load pytorch_model.bin");
    let (maps, _) = m.model.encoder_features(&x).expect("encoder");
    let d = common::max_abs_diff(&common::get(&reference("convnext"), "encoder_hidden_states.3"), &maps[3]);
    assert!(d < TOL, "{d:e}");
}

#[test]
fn dense_features_for_linear_heads_from_the_same_pass() {
    let x = input();
    // ViT form: out_indices [1, 2, 4, 6] with apply_layernorm are blocks 0, 1, 3, 5 after the final norm: the
    // linear-head features of those blocks.
    let m = load("vit");
    let info = m.model.feature_info();
    assert_eq!(info.iter().map(|f| f.index).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 5]);
    assert!(info.iter().all(|f| f.channels == 64 && f.stride == 16));
    let (_, feats, padding) = m.model.forward_with_features(&x, &[0, 1, 3, 5]).expect("forward");
    assert_eq!(padding.padded_hw, (96, 160));
    let r = reference("vit");
    assert_eq!(feats.iter().map(|f| f.index).collect::<Vec<_>>(), vec![0, 1, 3, 5]);
    for (i, f) in feats.iter().enumerate() {
        let d = common::max_abs_diff(&common::get(&r, &format!("encoder_hidden_states.{i}")), &f.tensor);
        assert!(d < TOL, "vit dense block {}: {d:e}", f.index);
    }
    // ConvNeXt form: stages 0-2 raw; stage 3 would need the final norm, which the checkpoint lacks.
    let m = load("convnext");
    let info = m.model.feature_info();
    assert_eq!(
        info.iter().map(|f| (f.index, f.channels, f.stride)).collect::<Vec<_>>(),
        [(0, 16, 4), (1, 32, 8), (2, 48, 16)]
    );
    let (_, feats, _) = m.model.forward_with_features(&x, &[0, 1, 2, 3]).expect("forward");
    assert_eq!(feats.iter().map(|f| f.index).collect::<Vec<_>>(), vec![0, 1, 2]);
    let r = reference("convnext");
    for f in &feats {
        let d = common::max_abs_diff(&common::get(&r, &format!("encoder_hidden_states.{}", f.index)), &f.tensor);
        assert!(d < TOL, "convnext dense stage {}: {d:e}", f.index);
    }
    // Adapter form: the DINOv3 blocks after the final norm.
    let m = load("adapter_pyramid");
    assert_eq!(m.model.feature_info().len(), 12);
    assert_eq!(m.model.size_multiple(), 32);
    let (_, feats, _) = m.model.forward_with_features(&x, &[11]).expect("forward");
    assert_eq!(feats.len(), 1);
    assert_eq!(feats[0].tensor.size(), [2, 64, 6, 10]);
}

#[test]
fn configs_of_every_form() {
    for case in CASES {
        let dir = fixtures().join(format!("m2f_{case}"));
        let c = checkpoint::inspect_mask2former(&dir, &opts(case)).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(c.num_labels(), 5);
        assert_eq!(c.class_names()[1], "car");
        assert_eq!(c.head.num_queries, 10);
    }
    // The pyramid case takes the small-plus variant file's default blocks.
    let c = checkpoint::inspect_mask2former(&fixtures().join("m2f_adapter_pyramid"), &opts("adapter_pyramid"))
        .expect("inspect");
    match &c.form {
        dinoseg::model::heads::mask2former::config::Form::Adapter(a) => {
            assert_eq!(a.layers, vec![2, 5, 8, 11]);
            assert!(a.pyramid);
            assert_eq!(a.out_channels, vec![16, 32, 64, 128]);
            assert_eq!(a.vit.num_hidden_layers, 12);
            assert_eq!(a.vit.num_register_tokens, 2);
        }
        other => panic!("not the adapter form: {other:?}"),
    }
    // The transformers forms load with default options through the generic entry points.
    for case in ["convnext", "vit"] {
        let dir = fixtures().join(format!("m2f_{case}"));
        let c = checkpoint::read_model_config(&dir).expect("read_model_config");
        assert_eq!(c.model_type(), "mask2former");
        let (m, _) =
            checkpoint::load_model(dir.to_str().expect("utf-8"), None, Device::Cpu, Kind::Float).expect("load");
        assert!(matches!(m, checkpoint::LoadedModel::Mask2Former(_)));
    }
}

#[test]
fn adapter_without_known_variant_or_layers_is_refused() {
    let dir = fixtures().join("m2f_adapter_plain");
    let o = Mask2FormerOptions { layers: None, num_heads: Some(4) };
    let e = checkpoint::inspect_mask2former(&dir, &o).expect_err("no layers").to_string();
    assert!(e.contains("set `layers`") && e.contains("my_own_variant"), "{e}");
    // Default options: the generic reader says the same (the head count is given; layers are not).
    let e = checkpoint::read_model_config(&dir).expect_err("no heads").to_string();
    assert!(e.contains("num_heads") || e.contains("set `layers`"), "{e}");
}

#[test]
fn layers_out_of_range_or_miscounted_are_refused() {
    let dir = fixtures().join("m2f_adapter_plain");
    let o = Mask2FormerOptions { layers: Some(vec![0, 1, 2, 4]), num_heads: Some(4) };
    let e = checkpoint::inspect_mask2former(&dir, &o).expect_err("out of range").to_string();
    assert!(e.contains("block 4") && e.contains("4 blocks"), "{e}");
    let o = Mask2FormerOptions { layers: Some(vec![0, 1, 2]), num_heads: Some(4) };
    let e = checkpoint::inspect_mask2former(&dir, &o).expect_err("count").to_string();
    assert!(e.contains("3 blocks") && e.contains("4 projections"), "{e}");
    let o = Mask2FormerOptions { layers: Some(vec![0, 1, 2, 3]), num_heads: Some(3) };
    let e = checkpoint::inspect_mask2former(&dir, &o).expect_err("heads").to_string();
    assert!(e.contains("num_heads"), "{e}");
}

/// A copy of the convnext case whose weights are `edit`ed.
fn edited(name: &str, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> PathBuf {
    let src = fixtures().join("m2f_convnext");
    let dir = common::temp_dir("m2f").join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for f in ["config.json", "preprocessor_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).expect("copy");
    }
    let mut t = common::read(&src.join("model.safetensors"));
    edit(&mut t);
    Tensor::write_safetensors(&t, dir.join("model.safetensors")).expect("write");
    dir
}

fn load_err(dir: &Path) -> String {
    match checkpoint::load_mask2former(
        dir.to_str().expect("utf-8"),
        &Mask2FormerOptions::default(),
        Device::Cpu,
        Kind::Float,
    ) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn strict_loading_names_missing_extra_and_misshapen_tensors() {
    let missing = "model.transformer_module.decoder.layers.1.fc1.bias";
    let dir = edited("missing", |t| t.retain(|(n, _)| n != missing));
    let e = load_err(&dir);
    assert!(e.contains(missing) && e.contains("missing"), "{e}");
    let dir = edited("extra", |t| {
        t.push(("model.pixel_level_module.decoder.surprise".into(), Tensor::zeros([3], (Kind::Float, Device::Cpu))))
    });
    let e = load_err(&dir);
    assert!(e.contains("model.pixel_level_module.decoder.surprise") && e.contains("unexpected"), "{e}");
    let bad = "model.pixel_level_module.encoder.stages.2.layers.1.pointwise_conv1.bias";
    let dir = edited("misshapen", |t| {
        for (n, v) in t.iter_mut() {
            if n == bad {
                *v = Tensor::zeros([7], (Kind::Float, Device::Cpu));
            }
        }
    });
    let e = load_err(&dir);
    assert!(e.contains(bad) && e.contains("shape"), "{e}");
    // A backbone tensor's shape that contradicts config.json is caught from the header, naming the key.
    let conv = "model.pixel_level_module.encoder.stages.1.downsample_layers.1.weight";
    let dir = edited("lying", |t| {
        for (n, v) in t.iter_mut() {
            if n == conv {
                *v = Tensor::zeros([33, 16, 2, 2], (Kind::Float, Device::Cpu));
            }
        }
    });
    let e = load_err(&dir);
    assert!(e.contains("hidden_sizes[1]") && e.contains(conv), "{e}");
}

#[test]
fn hostile_config_sizes_are_refused_before_allocating() {
    let src = fixtures().join("m2f_convnext");
    for (key, value) in [("num_queries", 1_000_000_000i64), ("hidden_dim", -4), ("decoder_layers", 0)] {
        let dir = common::temp_dir("m2f-hostile").join(key);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).expect("read")).expect("json");
        cfg[key] = serde_json::json!(value);
        std::fs::write(dir.join("config.json"), cfg.to_string()).expect("write");
        std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).expect("copy");
        let e = checkpoint::inspect_mask2former(&dir, &Mask2FormerOptions::default()).expect_err(key).to_string();
        assert!(e.contains(key) && e.contains("config.json"), "{key}: {e}");
    }
}

#[test]
fn dinoseg_forward_writes_both_outputs() {
    let fx = fixtures();
    let out = common::temp_dir("m2f-forward").join("out.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_dinoseg"))
        .args(["forward", "--model"])
        .arg(fx.join("m2f_adapter_plain"))
        .arg("--input")
        .arg(fx.join("m2f_input.safetensors"))
        .arg("--output")
        .arg(&out)
        .args(["--layers", "0,1,2,3", "--num-heads", "4"])
        .output()
        .expect("run dinoseg");
    assert!(o.status.success(), "dinoseg forward: {}", String::from_utf8_lossy(&o.stderr));
    let t = common::read(&out);
    assert_eq!(common::get(&t, "class_queries_logits").size(), [2, 10, 6]);
    assert_eq!(common::get(&t, "masks_queries_logits").size()[..2], [2, 10]);
    let r = reference("adapter_plain");
    let d =
        common::max_abs_diff(&common::get(&r, "encoder_hidden_states.3"), &common::get(&t, "encoder_hidden_states.3"));
    assert!(d < TOL, "{d:e}");
    // Without --layers the unknown variant is refused, naming the option.
    let o = Command::new(env!("CARGO_BIN_EXE_dinoseg"))
        .args(["forward", "--model"])
        .arg(fx.join("m2f_adapter_plain"))
        .arg("--input")
        .arg(fx.join("m2f_input.safetensors"))
        .arg("--output")
        .arg(&out)
        .args(["--num-heads", "4"])
        .output()
        .expect("run dinoseg");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("set `layers`"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The adapter layout's shapes of a published DINOv3 (no tensor data needed): `hidden`, `depth`, FFN,
/// registers 4, pyramid adapter to `out`.
fn published_shapes(hidden: i64, depth: i64, ffn: i64, gated: bool, out: [i64; 4]) -> BTreeMap<String, Vec<i64>> {
    let v = "model.pixel_level_module.encoder.model.";
    let a = "model.pixel_level_module.encoder.adapter.";
    let mut s = BTreeMap::new();
    s.insert(format!("{v}embeddings.patch_embeddings.weight"), vec![hidden, 3, 16, 16]);
    s.insert(format!("{v}embeddings.register_tokens"), vec![1, 4, hidden]);
    for i in 0..depth {
        for p in ["q_proj.bias", "v_proj.bias", "o_proj.bias"] {
            s.insert(format!("{v}layer.{i}.attention.{p}"), vec![hidden]);
        }
        s.insert(format!("{v}layer.{i}.mlp.up_proj.weight"), vec![ffn, hidden]);
        s.insert(format!("{v}layer.{i}.mlp.up_proj.bias"), vec![ffn]);
        if gated {
            s.insert(format!("{v}layer.{i}.mlp.gate_proj.weight"), vec![ffn, hidden]);
        }
    }
    let dims = [hidden / 4, hidden / 2, hidden, hidden];
    for (i, (c, d)) in out.iter().zip(dims).enumerate() {
        s.insert(format!("{a}projections.{i}.weight"), vec![*c, d, 1, 1]);
    }
    s.insert(format!("{a}resamplers.1.weight"), vec![hidden, hidden / 2, 2, 2]);
    s
}

#[test]
fn published_variants_get_their_blocks_and_head_counts_from_the_catalog() {
    use dinoseg::model::heads::mask2former::config::{AdapterInputs, Form, Mask2FormerConfig};
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("m2f_adapter_pyramid").join("config.json")).expect("read"),
    )
    .expect("json");
    let infer = |v: &dinoseg::model::config::VitConfig| {
        checkpoint::official::infer_heads(
            v.hidden_size,
            v.num_hidden_layers,
            v.intermediate_size,
            v.use_gated_mlp,
            v.query_bias,
            None,
            None,
        )
    };
    for (file, hidden, depth, ffn, gated, heads, layers) in [
        ("models/mask2former_dinov3_vitsmallplus_pyramid.py", 384, 12, 1536, true, 6, [2, 5, 8, 11]),
        ("models/mask2former_dinov3_vitlarge_pyramid.py", 1024, 24, 4096, false, 16, [5, 11, 17, 23]),
    ] {
        let shapes = published_shapes(hidden, depth, ffn, gated, [16, 32, 64, 128]);
        let inputs = AdapterInputs {
            shapes: &shapes,
            model_file: Some(file.into()),
            layers: None,
            num_heads: None,
            infer_heads: &infer,
        };
        let c = Mask2FormerConfig::from_json(&cfg, Some(&inputs)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let Form::Adapter(a) = &c.form else { panic!("{file}: not the adapter form") };
        assert_eq!(a.layers, layers, "{file}");
        assert_eq!(a.vit.num_attention_heads, heads, "{file}");
        assert_eq!(a.vit.num_register_tokens, 4);
        assert_eq!(a.vit.use_gated_mlp, gated);
        assert!(a.pyramid);
        assert_eq!(c.size_multiple(), 32);
    }
}

#[test]
fn not_a_mask2former_directory_is_refused_by_the_mask2former_loader() {
    let dir = common::temp_dir("m2f-not").join("vit");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("config.json"), r#"{"model_type": "dinov3_vit"}"#).expect("write");
    let e = checkpoint::inspect_mask2former(&dir, &Mask2FormerOptions::default()).expect_err("not m2f").to_string();
    assert!(e.contains("not mask2former"), "{e}");
}

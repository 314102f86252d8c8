//! Parity with transformers: `dinoseg forward` on tiny random-weight DINOv3 checkpoints (MLP ViT, SwiGLU ViT,
//! the 7B layout without q/v biases, ConvNeXt) at square and non-square sizes, against transformers'
//! `DINOv3ViTModel` / `DINOv3ConvNextModel` outputs on the same weights and input (max abs diff < 1e-4).

mod common;

use std::path::Path;
use std::process::Command;

const TOL: f64 = 1e-4;

fn forward(model: &Path, input: &Path, output: &Path, extra_env: &[(&str, &str)]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dinoseg"));
    cmd.arg("forward").arg("--model").arg(model).arg("--input").arg(input).arg("--output").arg(output);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run dinoseg forward");
    assert!(out.status.success(), "dinoseg forward failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Compares every reference output (last_hidden_state, hidden_states.{i}) with ours; returns the worst diff.
fn compare(reference: &Path, ours: &Path) -> f64 {
    let r = common::read(reference);
    let o = common::read(ours);
    assert_eq!(r.len(), o.len(), "output count differs: reference {} vs ours {}", r.len(), o.len());
    let mut worst: f64 = 0.0;
    for (name, t) in &r {
        let d = common::max_abs_diff(t, &common::get(&o, name));
        assert!(d < TOL, "{}: `{name}` differs by {d:e}", reference.display());
        worst = worst.max(d);
    }
    worst
}

fn check_model(name: &str, sizes: &[&str]) {
    let fx = common::fixtures();
    let tmp = common::temp_dir(&format!("parity-{name}"));
    for size in sizes {
        let out = tmp.join(format!("{size}.safetensors"));
        forward(&fx.join(name), &fx.join(format!("{name}_input_{size}.safetensors")), &out, &[]);
        let worst = compare(&fx.join(format!("{name}_ref_{size}.safetensors")), &out);
        println!("{name} {size}: max abs diff {worst:e}");
    }
}

#[test]
fn vit_mlp_matches_transformers() {
    check_model("vit_mlp", &["64x64", "48x80"]);
}

#[test]
fn vit_swiglu_matches_transformers() {
    check_model("vit_swiglu", &["64x64", "48x80"]);
}

#[test]
fn vit_without_qv_bias_matches_transformers() {
    check_model("vit_nobias", &["64x64", "48x80"]);
}

#[test]
fn convnext_matches_transformers() {
    check_model("convnext", &["64x64", "64x96"]);
}

#[test]
fn sharded_directory_matches_transformers() {
    let fx = common::fixtures();
    let out = common::temp_dir("parity-sharded").join("out.safetensors");
    forward(&fx.join("vit_mlp_sharded"), &fx.join("vit_mlp_input_48x80.safetensors"), &out, &[]);
    compare(&fx.join("vit_mlp_ref_48x80.safetensors"), &out);
}

#[test]
fn hub_id_resolves_through_the_cache() {
    let fx = common::fixtures();
    let out = common::temp_dir("parity-hub").join("out.safetensors");
    let cache = fx.join("hub_cache");
    let cache = cache.to_str().expect("utf-8 path");
    forward(
        Path::new("dinoseg-test/tiny-vit"),
        &fx.join("vit_mlp_input_64x64.safetensors"),
        &out,
        &[("HF_HUB_CACHE", cache), ("HF_HUB_OFFLINE", "1")],
    );
    compare(&fx.join("vit_mlp_ref_64x64.safetensors"), &out);
}

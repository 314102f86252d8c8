//! EoMT parity with transformers' `EomtDinov3ForUniversalSegmentation` on tiny random checkpoints: with
//! `attn_mask_probs` 0 and 1, at the configured size and at other sizes (square and non-square) against
//! transformers run at that size; the authors' published form (backbone as differences to a DINOv3 base) merged
//! by `dinoseg convert --base` equals the full checkpoint, and Python transformers loads the merged directory.

mod common;

use std::path::Path;
use std::process::Command;

const TOL: f64 = 1e-4;

fn dinoseg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dinoseg")).args(args).output().expect("run dinoseg")
}

fn forward_and_compare(model: &Path, size: &str, reference: &str) -> f64 {
    let fx = common::eomt_fixtures();
    let out = common::temp_dir("eomt").join(format!("{reference}.safetensors"));
    let input = fx.join(format!("eomt_input_{size}.safetensors"));
    let o = dinoseg(&[
        "forward",
        "--model",
        model.to_str().expect("utf-8"),
        "--input",
        input.to_str().expect("utf-8"),
        "--output",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "dinoseg forward: {}", String::from_utf8_lossy(&o.stderr));
    let r = common::read(&fx.join(format!("{reference}.safetensors")));
    let ours = common::read(&out);
    let mut worst: f64 = 0.0;
    for name in ["class_queries_logits", "masks_queries_logits"] {
        let d = common::max_abs_diff(&common::get(&r, name), &common::get(&ours, name));
        assert!(d < TOL, "{reference}: `{name}` differs by {d:e}");
        worst = worst.max(d);
    }
    worst
}

#[test]
fn without_masked_attention_matches_transformers_at_every_size() {
    let fx = common::eomt_fixtures();
    for size in ["64x64", "96x96", "48x80"] {
        let d = forward_and_compare(&fx.join("eomt_p0"), size, &format!("eomt_p0_ref_{size}"));
        println!("attn_mask_probs 0, {size}: max abs diff {d:e}");
    }
}

#[test]
fn with_masked_attention_matches_transformers_at_every_size() {
    let fx = common::eomt_fixtures();
    for size in ["64x64", "96x96", "48x80"] {
        let d = forward_and_compare(&fx.join("eomt_p1"), size, &format!("eomt_p1_ref_{size}"));
        println!("attn_mask_probs 1, {size}: max abs diff {d:e}");
    }
    // The masked run really differs from the unmasked one (so the check above can fail).
    let a = common::read(&fx.join("eomt_p0_ref_64x64.safetensors"));
    let b = common::read(&fx.join("eomt_p1_ref_64x64.safetensors"));
    let name = "masks_queries_logits";
    assert!(common::max_abs_diff(&common::get(&a, name), &common::get(&b, name)) > 0.1);
}

#[test]
fn published_delta_merged_with_its_base_equals_the_full_checkpoint() {
    let fx = common::eomt_fixtures();
    let out = common::temp_dir("eomt-merged").join("merged");
    let (delta, base, out_s) = (fx.join("eomt_delta.bin"), fx.join("eomt_base"), out.to_str().expect("utf-8"));
    let o = dinoseg(&[
        "convert",
        delta.to_str().expect("utf-8"),
        out_s,
        "--base",
        base.to_str().expect("utf-8"),
        "--image-size",
        "64",
    ]);
    assert!(o.status.success(), "convert: {}", String::from_utf8_lossy(&o.stderr));
    for size in ["64x64", "48x80"] {
        forward_and_compare(&out, size, &format!("eomt_p0_ref_{size}"));
    }
    // Python transformers loads the merged directory strictly and gives the same outputs.
    let check = Command::new(common::python())
        .arg("-c")
        .arg(
            "import sys, torch\n\
             from safetensors.torch import load_file\n\
             from transformers import EomtDinov3ForUniversalSegmentation as M\n\
             m, info = M.from_pretrained(sys.argv[1], output_loading_info=True)\n\
             bad = {k: v for k, v in info.items() if v and k != 'mismatched_keys' or (k == 'mismatched_keys' and v)}\n\
             assert not bad, bad\n\
             x = load_file(sys.argv[2])['pixel_values']\n\
             r = load_file(sys.argv[3])\n\
             with torch.no_grad(): o = m.eval()(pixel_values=x)\n\
             d = max(float((o.class_queries_logits - r['class_queries_logits']).abs().max()),\n\
                     float((o.masks_queries_logits - r['masks_queries_logits']).abs().max()))\n\
             assert d < 1e-4, d\n\
             print('transformers loads the merged checkpoint; max abs diff', d)\n",
        )
        .arg(&out)
        .arg(fx.join("eomt_input_64x64.safetensors"))
        .arg(fx.join("eomt_p0_ref_64x64.safetensors"))
        .output()
        .expect("run python");
    assert!(check.status.success(), "python check: {}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn delta_errors_are_clear() {
    let fx = common::eomt_fixtures();
    let out = common::temp_dir("eomt-errors");
    let delta = fx.join("eomt_delta.bin");
    let d = delta.to_str().expect("utf-8");
    // Without a base.
    let o = dinoseg(&["convert", d, out.join("a").to_str().expect("utf-8")]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("--base"), "{e}");
    // A base that is not a ViT.
    let convnext = common::fixtures().join("convnext");
    let o =
        dinoseg(&["convert", d, out.join("b").to_str().expect("utf-8"), "--base", convnext.to_str().expect("utf-8")]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("must be a DINOv3 ViT, got dinov3_convnext"), "{e}");
    // A base of another depth: the first difference without a base tensor is named.
    let vit = common::fixtures().join("vit_mlp");
    let o = dinoseg(&["convert", d, out.join("c").to_str().expect("utf-8"), "--base", vit.to_str().expect("utf-8")]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("has no base tensor `layers.3."), "{e}");
    // Class names that do not match the class head.
    let r = dinoseg::checkpoint::eomt_delta::merge_eomt_delta(
        &delta,
        fx.join("eomt_base").to_str().expect("utf-8"),
        64,
        Some(vec!["a".into(), "b".into()]),
    );
    let e = r.map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("the class head has 5 classes but 2 class names were given"), "{e}");
}

#[test]
fn eomt_runs_at_sizes_that_are_not_multiples_of_16() {
    use dinoseg::checkpoint::{load_model, LoadedModel};
    let fx = common::eomt_fixtures();
    let (model, _) = load_model(fx.join("eomt_p1").to_str().expect("utf-8"), None, tch::Device::Cpu, tch::Kind::Float)
        .expect("load");
    let LoadedModel::Eomt(model) = model else { panic!("not EoMT") };
    let x = tch::Tensor::randn([1, 3, 50, 70], (tch::Kind::Float, tch::Device::Cpu));
    let (out, padding) = model.model.forward(&x).expect("forward");
    assert_eq!(padding.padded_hw, (64, 80));
    assert_eq!(out.masks_queries_logits.size(), vec![1, 6, 16, 20]);
    assert_eq!(out.class_queries_logits.size(), vec![1, 6, 6]);
}

#[test]
fn class_names_for_a_converted_checkpoint_come_from_a_labels_file() {
    let fx = common::eomt_fixtures();
    let dir = common::temp_dir("eomt-labels");
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "# five classes\nperson [thing]\ncar\nroad [stuff]\nsky [stuff]\ntree [stuff]\n")
        .expect("write");
    let out = dir.join("merged");
    let (delta, base) = (fx.join("eomt_delta.bin"), fx.join("eomt_base"));
    let o = dinoseg(&[
        "convert",
        delta.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
        "--base",
        base.to_str().expect("utf-8"),
        "--labels",
        labels.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "convert: {}", String::from_utf8_lossy(&o.stderr));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).expect("read")).expect("json");
    assert_eq!(config["id2label"]["0"], "person");
    assert_eq!(config["id2label"]["4"], "tree");
    assert_eq!(config["label2id"]["road"], 2);
    assert_eq!(config["image_size"], 640);
    // A labels file with the wrong class count is refused.
    std::fs::write(&labels, "a\nb\n").expect("write");
    let o = dinoseg(&[
        "convert",
        delta.to_str().expect("utf-8"),
        dir.join("bad").to_str().expect("utf-8"),
        "--base",
        base.to_str().expect("utf-8"),
        "--labels",
        labels.to_str().expect("utf-8"),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("5 classes but 2 class names"), "{e}");
}

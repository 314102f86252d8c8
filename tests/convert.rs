//! Official DINOv3 checkpoints (`.pth`) to transformers directories: tiny random models written by
//! `tools/make_official_checkpoints.py` under both naming schemes are converted by `dinoseg`, then checked twice:
//! our forward against transformers' reference outputs, and transformers' own `AutoModel.from_pretrained` on the
//! converted directory (`tests/convert_check.py`, strict loading, same outputs). Broken checkpoints must fail
//! with errors that name the file and the culprit. Fixtures are generated once per test binary.

use dinoseg::checkpoint::official::convert_official_file;
use dinoseg::checkpoint::pickle::read_torch_state_dict;
use dinoseg::checkpoint::source::read_config;
use dinoseg::checkpoint::{load_weights, read_safetensors, read_transformers_weights};
use dinoseg::model::config::BackboneConfig;
use dinoseg::model::{ForwardOptions, LoadedBackbone};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::{Device, Tensor};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn python() -> PathBuf {
    Path::new(MANIFEST).join(".venv/bin/python")
}

/// Runs the generator once; the fixtures live in a per-process directory under cargo's test tmpdir.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Leftovers of earlier runs (older than an hour, so concurrent runs are left alone).
        if let Ok(entries) = std::fs::read_dir(root) {
            for e in entries.flatten() {
                let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
                if e.file_name().to_string_lossy().starts_with("convert-") && old.is_some_and(|a| a.as_secs() > 3600) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = root.join(format!("convert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(python())
            .arg(Path::new(MANIFEST).join("tools/make_official_checkpoints.py"))
            .arg(&dir)
            .output()
            .expect("run .venv/bin/python (create the venv with torch and transformers first)");
        assert!(
            out.status.success(),
            "fixture generator failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn named(path: &Path) -> HashMap<String, Tensor> {
    read_safetensors(path).expect("read safetensors").into_iter().collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Converts `src`, checks the inferred config against transformers' own, our forward against the reference,
/// then transformers on the converted directory.
fn convert_and_check(name: &str, src: &Path, num_heads: Option<i64>, tag: &str) {
    let fx = fixtures();
    let out = fx.join(format!("{name}_{tag}_converted"));
    let config = convert_official_file(src, &out, num_heads).unwrap_or_else(|e| panic!("convert {name}: {e}"));

    let mut expected = read_config(&fx.join(format!("{name}_hf"))).expect("transformers config");
    match (&mut expected, &config) {
        (BackboneConfig::Vit(e), BackboneConfig::Vit(c)) => {
            e.image_size = c.image_size;
            e.layerscale_value = c.layerscale_value;
        }
        (BackboneConfig::ConvNext(e), BackboneConfig::ConvNext(c)) => e.image_size = c.image_size,
        _ => panic!("{name}: inferred {} but transformers has {}", config.model_type(), expected.model_type()),
    }
    assert_eq!(config, expected, "{name}: inferred config differs from transformers'");

    let model = LoadedBackbone::build(&config, Device::Cpu).expect("build");
    let weights = read_transformers_weights(&out).expect("read converted weights");
    load_weights(&model.vs, weights, &out, &[]).expect("strict load of the converted directory");
    let input = fx.join(format!("{name}_input.safetensors"));
    let reference = fx.join(format!("{name}_ref.safetensors"));
    let pixels = named(&input).remove("pixel_values").expect("pixel_values");
    let opts = ForwardOptions { hidden_states: true, ..Default::default() };
    let (got, _) = model.backbone.forward(&pixels, &opts).expect("forward");
    let want = named(&reference);
    let mut compared = 0;
    for (key, ours) in std::iter::once(("last_hidden_state".to_string(), &got.last_hidden_state))
        .chain(got.hidden_states.iter().enumerate().map(|(i, h)| (format!("hidden_states.{i}"), h)))
    {
        let theirs = want.get(&key).unwrap_or_else(|| panic!("{name}: reference lacks `{key}`"));
        assert_eq!(ours.size(), theirs.size(), "{name}: `{key}` shape");
        let d = max_diff(ours, theirs);
        assert!(d < 1e-4, "{name}: `{key}` differs from transformers by {d:e}");
        compared += 1;
    }
    assert_eq!(compared, want.len(), "{name}: we return {compared} outputs, transformers {}", want.len());

    let check = Command::new(python())
        .arg(Path::new(MANIFEST).join("tests/convert_check.py"))
        .args([&out, &reference, &input])
        .output()
        .expect("run convert_check.py");
    assert!(
        check.status.success(),
        "{name}: transformers rejects the converted directory:\n{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn vit_mlp_heads_from_rope_periods() {
    convert_and_check("vit_mlp", &fixtures().join("vit_mlp.pth"), None, "pth");
}

#[test]
fn vit_mlp_from_official_safetensors() {
    convert_and_check("vit_mlp", &fixtures().join("vit_mlp.safetensors"), Some(4), "st");
}

#[test]
fn vit_swiglu_wrapped_in_teacher_with_training_heads() {
    convert_and_check("vit_swiglu", &fixtures().join("vit_swiglu.pth"), None, "pth");
}

#[test]
fn vit_7b_layout_no_qv_bias_no_registers_protocol4() {
    convert_and_check("vit_nobias", &fixtures().join("vit_nobias.pth"), Some(4), "pth");
}

#[test]
fn convnext_with_duplicated_final_norm() {
    convert_and_check("convnext", &fixtures().join("convnext.pth"), None, "pth");
}

#[test]
fn pickle_reads_every_dtype_view_and_parameter() {
    let fx = fixtures();
    let got = read_torch_state_dict(&fx.join("dtypes.pth")).expect("read dtypes.pth");
    let want = named(&fx.join("dtypes_ref.safetensors"));
    assert_eq!(got.len(), want.len());
    for (name, t) in &got {
        let w = want.get(name).unwrap_or_else(|| panic!("unexpected `{name}`"));
        assert_eq!((t.kind(), t.size()), (w.kind(), w.size()), "`{name}`");
        assert!(t.equal(w), "`{name}`: values differ: {t} vs {w}");
    }
}

fn assert_error(err: impl std::fmt::Display, file: &Path, needles: &[&str]) {
    let msg = err.to_string();
    eprintln!("expected error: {msg}");
    assert!(msg.contains(&file.display().to_string()), "error does not name the file: {msg}");
    for n in needles {
        assert!(msg.contains(n), "error lacks `{n}`: {msg}");
    }
}

fn read_error(file: &str) -> (PathBuf, String) {
    let path = fixtures().join(file);
    match read_torch_state_dict(&path) {
        Ok(t) => panic!("{file}: read {} tensors, expected an error", t.len()),
        Err(e) => (path, e.to_string()),
    }
}

fn convert_error(file: &str, num_heads: Option<i64>) -> (PathBuf, String) {
    let path = fixtures().join(file);
    let out = fixtures().join(format!("{file}_out"));
    match convert_official_file(&path, &out, num_heads) {
        Ok(_) => panic!("{file}: converted, expected an error"),
        Err(e) => {
            assert!(!out.exists(), "{file}: output written despite the error");
            (path, e.to_string())
        }
    }
}

#[test]
fn truncated_file_is_refused() {
    let (p, e) = read_error("truncated.pth");
    assert_error(e, &p, &["corrupt or truncated zip"]);
}

#[test]
fn random_bytes_are_refused() {
    let (p, e) = read_error("random.pth");
    assert_error(e, &p, &["not a PyTorch checkpoint"]);
}

#[test]
fn legacy_format_is_refused_with_a_hint() {
    let (p, e) = read_error("legacy.pth");
    assert_error(e, &p, &["legacy", "re-save"]);
}

#[test]
fn unknown_global_is_refused_by_name_and_not_run() {
    let (p, e) = read_error("evil.pth");
    assert_error(e, &p, &["refusing to load", "system", "nothing was executed"]);
    assert!(!fixtures().join("pwned").exists(), "the pickled command ran");
}

#[test]
fn missing_storage_is_refused() {
    let (p, e) = read_error("missing_storage.pth");
    assert_error(e, &p, &["storage `3` is missing"]);
}

#[test]
fn damaged_pickles_fail_cleanly() {
    let dir = fixtures().join("fuzz");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).expect("fuzz dir").flatten().map(|e| e.path()).collect();
    files.sort();
    assert!(files.len() >= 100);
    let mut refused = 0;
    for f in &files {
        // Some damage is harmless (e.g. a changed memo index); what matters is no panic and a named file.
        if let Err(e) = read_torch_state_dict(f) {
            assert!(e.to_string().contains(&f.display().to_string()), "{e}");
            refused += 1;
        }
    }
    assert!(refused > files.len() / 2, "only {refused} of {} damaged files refused", files.len());
}

#[test]
fn unknown_key_is_refused() {
    let (p, e) = convert_error("unknown_key.pth", None);
    assert_error(e, &p, &["unrecognised", "blocks.0.attn.extra.weight"]);
}

#[test]
fn missing_qkv_is_refused() {
    let (p, e) = convert_error("missing_qkv.pth", None);
    assert_error(e, &p, &["missing tensor `blocks.1.attn.qkv.weight`"]);
}

#[test]
fn unmasked_key_bias_is_refused() {
    let (p, e) = convert_error("kbias.pth", None);
    assert_error(e, &p, &["blocks.0.attn.qkv.bias", "non-zero key bias"]);
}

#[test]
fn head_count_contradicting_rope_periods_is_refused() {
    let (p, e) = convert_error("vit_mlp.pth", Some(2));
    assert_error(e, &p, &["--num-heads 2", "rope_embed.periods"]);
}

//! Hostile checkpoints: configs with absurd or wrong values, configs that disagree with their weights, lying
//! safetensors headers, index entries leading out of the model directory, special files and archive bombs are
//! refused before anything is allocated, fast, with errors that name the file and the key or tensor.

mod common;

use dinoseg::checkpoint::{self, header, index, ModelConfig};
use dinoseg::model::LoadedBackbone;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

/// A tiny ViT (2 layers, width 16, patch 4, one register).
const TINY: &str = r#"{"model_type": "dinov3_vit", "hidden_size": 16, "num_attention_heads": 2,
    "intermediate_size": 32, "num_hidden_layers": 2, "patch_size": 4, "image_size": 32, "num_register_tokens": 1}"#;

fn tiny_tensors() -> Vec<(String, Tensor)> {
    let Ok(ModelConfig::Backbone(c)) = checkpoint::parse_model_config(TINY, Path::new("tiny")) else {
        panic!("tiny config")
    };
    let mut m = LoadedBackbone::build(&c, Device::Cpu).expect("build");
    m.randomize(3);
    m.named_tensors()
}

fn f32_bytes(t: &Tensor) -> Vec<u8> {
    let v = Vec::<f32>::try_from(t.to_kind(Kind::Float).contiguous().flatten(0, -1)).expect("f32");
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A safetensors file from a header text and data bytes.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend(header.as_bytes());
    v.extend(data);
    v
}

/// The tiny weights as safetensors bytes; `dtype_of` may relabel a tensor's dtype (bytes unchanged).
fn tiny_file(dtype_of: impl Fn(&str) -> &'static str) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, t) in tiny_tensors() {
        let b = f32_bytes(&t);
        header.insert(
            name.clone(),
            json!({"dtype": dtype_of(&name), "shape": t.size(), "data_offsets": [data.len(), data.len() + b.len()]}),
        );
        data.extend(b);
    }
    raw(&Value::Object(header).to_string(), &data)
}

/// A model directory with the tiny weights and `config.json` = TINY with `set` applied.
fn model_dir(name: &str, set: &[(&str, Value)]) -> PathBuf {
    let dir = common::temp_dir(name);
    let mut cfg: Value = serde_json::from_str(TINY).expect("json");
    for (k, v) in set {
        cfg[*k] = v.clone();
    }
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("write config");
    std::fs::write(dir.join("model.safetensors"), tiny_file(|_| "F32")).expect("write weights");
    dir
}

fn load_err(dir: &Path) -> String {
    match checkpoint::load_model(dir.to_str().expect("utf-8"), None, Device::Cpu, Kind::Float) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn assert_names(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "`{p}` not in: {e}");
    }
}

#[test]
fn the_tiny_checkpoint_loads() {
    let dir = model_dir("ok", &[]);
    checkpoint::load_model(dir.to_str().expect("utf-8"), None, Device::Cpu, Kind::Float).expect("loads");
}

#[test]
fn absurd_sizes_are_refused_fast_without_allocating() {
    for (key, value) in [
        ("hidden_size", json!(1_000_000_000)),
        ("num_hidden_layers", json!(1_000_000)),
        ("num_channels", json!(0)),
        ("intermediate_size", json!(10_000_000_000i64)),
        ("patch_size", json!(0)),
        ("image_size", json!(0)),
        ("num_register_tokens", json!(-1)),
    ] {
        // Heads chosen so that the old divisibility checks pass and the size alone is at fault.
        let heads = if key == "hidden_size" { json!(1000) } else { json!(2) };
        let dir = model_dir(key, &[(key, value.clone()), ("num_attention_heads", heads)]);
        let t = Instant::now();
        let e = load_err(&dir);
        assert!(t.elapsed() < Duration::from_secs(2), "{key}: {:?}", t.elapsed());
        assert_names(&e, &["config.json", &format!("`{key}` is {value}")]);
    }
}

#[test]
fn bad_epsilon_and_rope_base_are_refused() {
    for (key, value, shown) in [
        ("layer_norm_eps", json!(-1.0), "-1"),
        ("rope_theta", json!(0.0), "is 0"),
        ("layer_norm_eps", json!(0), "is 0"),
    ] {
        let e = load_err(&model_dir(key, &[(key, value)]));
        assert_names(&e, &["config.json", &format!("`{key}`"), shown, "> 0"]);
    }
}

#[test]
fn a_config_that_disagrees_with_the_weights_names_both() {
    let e = load_err(&model_dir("wide", &[("hidden_size", json!(32))]));
    assert_names(&e, &["config.json", "`hidden_size` 32", "embeddings.patch_embeddings.weight", "[16, 3, 4, 4]"]);
    let e = load_err(&model_dir("deep", &[("num_hidden_layers", json!(40))]));
    assert_names(&e, &["config.json", "`num_hidden_layers` is 40", "has 2", "layer.N"]);
    let e = load_err(&model_dir("ffn", &[("intermediate_size", json!(64))]));
    assert_names(&e, &["`intermediate_size` 64", "layer.0.mlp.up_proj.weight", "[32, 16]"]);
    let e = load_err(&model_dir("regs", &[("num_register_tokens", json!(4))]));
    assert_names(&e, &["`num_register_tokens` 4", "embeddings.register_tokens", "[1, 1, 16]"]);
}

#[test]
fn integer_dtypes_are_refused_naming_the_tensor() {
    let dir = model_dir("i32", &[]);
    let bytes = tiny_file(|n| if n == "layer.0.norm1.weight" { "I32" } else { "F32" });
    std::fs::write(dir.join("model.safetensors"), bytes).expect("write");
    let e = load_err(&dir);
    assert_names(&e, &["model.safetensors", "layer.0.norm1.weight", "I32", "floating point"]);
}

#[test]
fn index_entries_must_stay_inside_the_model_directory() {
    for (name, entry) in [("dotdot", "../outside.safetensors"), ("absolute", "/tmp/outside.safetensors")] {
        let dir = model_dir(name, &[]);
        let weights = dir.join("model.safetensors");
        std::fs::copy(&weights, dir.parent().expect("parent").join("outside.safetensors")).expect("copy");
        std::fs::remove_file(&weights).expect("rm");
        let text = json!({"weight_map": {"embeddings.cls_token": entry}}).to_string();
        std::fs::write(dir.join("model.safetensors.index.json"), &text).expect("index");
        let e = load_err(&dir);
        assert_names(&e, &["model.safetensors.index.json", "embeddings.cls_token", entry]);
        let e = index::parse_index(&text, Path::new("x/index.json")).expect_err("refused").to_string();
        assert_names(&e, &["x/index.json", entry]);
    }
    // A link inside the directory that leads out of it.
    let dir = model_dir("link", &[]);
    let outside = common::temp_dir("link-target").join("w.safetensors");
    std::fs::rename(dir.join("model.safetensors"), &outside).expect("move");
    std::os::unix::fs::symlink(&outside, dir.join("shard.safetensors")).expect("link");
    let text = json!({"weight_map": {"embeddings.cls_token": "shard.safetensors"}}).to_string();
    std::fs::write(dir.join("model.safetensors.index.json"), text).expect("index");
    let e = load_err(&dir);
    assert_names(&e, &["model.safetensors.index.json", "shard.safetensors", "outside the model directory"]);
}

fn header_err(bytes: &[u8], file_len: u64) -> String {
    header::parse_header(bytes, file_len, Path::new("m/model.safetensors")).expect_err("refused").to_string()
}

#[test]
fn lying_safetensors_headers_name_the_file_and_tensor() {
    let good = tiny_file(|_| "F32");
    // Truncated: the file ends before its data does.
    let dir = model_dir("trunc", &[]);
    let cut = &good[..good.len() - 10];
    std::fs::write(dir.join("model.safetensors"), cut).expect("write");
    let e = load_err(&dir);
    assert_names(&e, &["model.safetensors", "truncated"]);
    assert!(!e.contains("MetadataIncompleteBuffer"), "{e}");
    // A header length larger than the file, and one over the cap.
    let e = header_err(&good[..100], 100);
    assert_names(&e, &["m/model.safetensors", "header length"]);
    let e = header_err(&u64::MAX.to_le_bytes(), u64::MAX);
    assert_names(&e, &["m/model.safetensors", "limit"]);
    // Overlapping byte ranges.
    let h = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#;
    let bytes = raw(h, &[0u8; 24]);
    assert_names(&header_err(&bytes, bytes.len() as u64), &["m/model.safetensors", "`b`", "overlaps", "`a`"]);
    // A shape that does not fill its byte range.
    let h = r#"{"w":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}"#;
    let bytes = raw(h, &[0u8; 16]);
    assert_names(&header_err(&bytes, bytes.len() as u64), &["tensor `w`", "[5]", "20 bytes"]);
    // Offsets past the data.
    let h = r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let bytes = raw(h, &[0u8; 8]);
    assert_names(&header_err(&bytes, bytes.len() as u64), &["tensor `w`", "outside"]);
    // Not UTF-8, not JSON.
    let bytes = raw("{\"\u{0}", &[]);
    let mut bad = bytes.clone();
    bad[9] = 0xff;
    assert_names(&header_err(&bad, bad.len() as u64), &["not UTF-8"]);
    assert_names(&header_err(&bytes, bytes.len() as u64), &["not valid JSON"]);
}

#[test]
fn a_fifo_named_model_safetensors_is_refused_by_type() {
    let dir = model_dir("fifo", &[]);
    let weights = dir.join("model.safetensors");
    std::fs::remove_file(&weights).expect("rm");
    assert!(std::process::Command::new("mkfifo").arg(&weights).status().expect("mkfifo").success());
    let (tx, rx) = std::sync::mpsc::channel();
    let d = dir.clone();
    std::thread::spawn(move || {
        let _ = tx.send(load_err(&d));
    });
    let e = rx.recv_timeout(Duration::from_secs(5)).expect("blocked on the FIFO");
    assert_names(&e, &["model.safetensors", "a FIFO"]);
    // A FIFO given as the checkpoint itself.
    let fifo = dir.join("w.safetensors");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let e = checkpoint::ModelSource::parse(fifo.to_str().expect("utf-8"), None).expect_err("refused").to_string();
    assert_names(&e, &["w.safetensors", "a FIFO"]);
}

#[test]
fn negative_running_var_in_a_linear_head_is_refused() {
    let (k, c) = (3i64, 8i64);
    let ones = |n| vec![1f32; n as usize].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    let mut var = vec![1f32; c as usize];
    var[5] = -1.0;
    let var: Vec<u8> = var.iter().flat_map(|v| v.to_le_bytes()).collect();
    let entries: Vec<(&str, Vec<i64>, Vec<u8>)> = vec![
        ("bn.weight", vec![c], ones(c)),
        ("bn.bias", vec![c], ones(c)),
        ("bn.running_mean", vec![c], ones(c)),
        ("bn.running_var", vec![c], var),
        ("conv.weight", vec![k, c, 1, 1], ones(k * c)),
        ("conv.bias", vec![k], ones(k)),
    ];
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"dinoseg.head": "linear", "dinoseg.layers": "last"}));
    let mut data = Vec::new();
    for (n, s, b) in entries {
        header
            .insert(n.into(), json!({"dtype": "F32", "shape": s, "data_offsets": [data.len(), data.len() + b.len()]}));
        data.extend(b);
    }
    let file = common::temp_dir("head").join("head.safetensors");
    std::fs::write(&file, raw(&Value::Object(header).to_string(), &data)).expect("write");
    let e = dinoseg::model::heads::linear::LinearHead::load(&file, Device::Cpu).expect_err("refused").to_string();
    assert_names(&e, &["head.safetensors", "bn.running_var", "element 5", "-1"]);
}

#[test]
fn a_huge_pickle_in_a_pth_is_refused_before_reading() {
    use std::io::Write;
    let file = common::temp_dir("pth").join("big.pth");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&file).expect("create"));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1));
    zip.start_file("archive/data.pkl", opts).expect("entry");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..80 {
        zip.write_all(&zeros).expect("write");
    }
    zip.finish().expect("finish");
    let t = Instant::now();
    let e = checkpoint::pickle::read_torch_state_dict(&file).expect_err("refused").to_string();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_names(&e, &["big.pth", "archive/data.pkl", "83886080 bytes", "limit"]);
}

#[test]
fn convert_refuses_to_overwrite_its_input() {
    let dir = model_dir("convert", &[]);
    let src = dir.join("model.safetensors");
    let before = std::fs::read(&src).expect("read");
    let e = checkpoint::official::convert_official_file(&src, &dir, None).expect_err("refused").to_string();
    assert_names(&e, &["model.safetensors", "refusing to overwrite an input"]);
    assert_eq!(std::fs::read(&src).expect("read"), before);
}

#[test]
fn convnext_depths_and_widths_are_checked_against_the_weights() {
    let text = r#"{"model_type": "dinov3_convnext", "hidden_sizes": [8, 16, 32, 64], "depths": [1, 1, 2, 1]}"#;
    let Ok(ModelConfig::Backbone(c)) = checkpoint::parse_model_config(text, Path::new("c")) else { panic!("config") };
    let mut m = LoadedBackbone::build(&c, Device::Cpu).expect("build");
    m.randomize(1);
    let dir = common::temp_dir("convnext");
    Tensor::write_safetensors(&m.named_tensors(), dir.join("model.safetensors")).expect("write");
    let mut cfg: Value = serde_json::from_str(text).expect("json");
    cfg["depths"] = json!([1, 1, 200, 1]);
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("write");
    assert_names(&load_err(&dir), &["config.json", "`depths[2]` is 200", "has 2 layers in stage 2"]);
    cfg["depths"] = json!([1, 1, 2, 1]);
    cfg["hidden_sizes"] = json!([8, 16, 48, 64]);
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("write");
    let e = load_err(&dir);
    assert_names(&e, &["`hidden_sizes[2]` 48", "stages.2.downsample_layers.1.weight", "[32, 16, 2, 2]"]);
    cfg["hidden_sizes"] = json!([8, 16, 0, 64]);
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("write");
    assert_names(&load_err(&dir), &["`hidden_sizes[2]` is 0"]);
}

#[test]
fn eomt_sizes_are_bounded() {
    let base = r#""model_type": "eomt_dinov3", "hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 2,
        "intermediate_size": 32, "num_blocks": 1, "id2label": {"0": "a"}"#;
    for (extra, key) in [
        (r#""num_queries": 1000000000"#, "`num_queries` is 1000000000"),
        (r#""num_upscale_blocks": 1000"#, "`num_upscale_blocks` is 1000"),
        (r#""layer_norm_eps": -1"#, "`layer_norm_eps` is -1"),
    ] {
        let text = format!("{{{base}, {extra}}}");
        let e = checkpoint::parse_model_config(&text, Path::new("e/config.json")).expect_err(key).to_string();
        assert_names(&e, &["e/config.json", key]);
    }
}

#[test]
fn a_non_positive_image_std_is_refused() {
    let dir = model_dir("std", &[]);
    let pre = json!({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.2, 0.0, 0.2]});
    std::fs::write(dir.join("preprocessor_config.json"), pre.to_string()).expect("write");
    assert_names(&load_err(&dir), &["preprocessor_config.json", "`image_std`", "> 0"]);
}

#[test]
fn integer_tensors_never_load_into_float_weights() {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let _w = vs.root().zeros("w", &[4]);
    let t = Tensor::from_slice(&[1i32, 2, 3, 4]);
    let e = checkpoint::load_weights(&vs, vec![("w".into(), t)], Path::new("x.pth"), &[]).expect_err("refused");
    assert_names(&e.to_string(), &["x.pth", "`w`", "Int", "floating point"]);
}

/// Seeded random mutations (bytes flipped, inserted, cut) of valid inputs: the parsers return errors, never
/// panic. Bounded: a few thousand cases, well under a second.
#[test]
fn mutated_headers_indexes_and_configs_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    };
    let file = tiny_file(|_| "F32");
    let header_end = 8 + u64::from_le_bytes(file[..8].try_into().expect("8 bytes")) as usize;
    let index = json!({"weight_map": {"a": "model-1.safetensors", "b": "sub/model-2.safetensors"}}).to_string();
    let path = Path::new("fuzz");
    for case in 0..3000 {
        let mut bytes = file[..header_end + 64].to_vec();
        for _ in 0..1 + next(4) {
            let at = next(header_end);
            match next(3) {
                0 => bytes[at] = next(256) as u8,
                1 => bytes.insert(at, b"{}[]\",:0-9e"[next(11)]),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        let _ = header::parse_header(&bytes, file.len() as u64 + next(3) as u64, path);
        let mut text = if case % 2 == 0 { index.clone().into_bytes() } else { TINY.as_bytes().to_vec() };
        let at = next(text.len());
        text[at] = b"{}[]\",:0-9e./\\"[next(14)];
        let text = String::from_utf8_lossy(&text);
        let _ = index::parse_index(&text, path);
        let _ = checkpoint::parse_model_config(&text, path);
    }
}

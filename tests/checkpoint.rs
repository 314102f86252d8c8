//! Checkpoint loading is never silently wrong: every missing, unexpected or mis-shaped tensor is named, corrupt
//! and unrecognised files are clear errors, hub ids resolve through the cache or say where they were looked for.

mod common;

use dinoseg::checkpoint::{self, ModelSource};
use dinoseg::model::LoadedBackbone;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

fn load(spec: &Path) -> dinoseg::Result<()> {
    checkpoint::load_backbone(spec.to_str().expect("utf-8"), None, Device::Cpu, Kind::Float).map(|_| ())
}

fn err(r: dinoseg::Result<()>) -> String {
    match r {
        Ok(()) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// A copy of the tiny MLP ViT directory whose weights went through `edit`.
fn edited_copy(name: &str, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> PathBuf {
    let src = common::fixtures().join("vit_mlp");
    let dir = common::temp_dir(name);
    std::fs::copy(src.join("config.json"), dir.join("config.json")).expect("copy config");
    let mut tensors = common::read(&src.join("model.safetensors"));
    edit(&mut tensors);
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).expect("write");
    dir
}

#[test]
fn missing_tensor_is_named_with_its_shape() {
    let dir = edited_copy("missing", |t| t.retain(|(n, _)| n != "layer.1.norm1.weight"));
    let e = err(load(&dir));
    assert!(e.contains("missing tensor `layer.1.norm1.weight` [64]"), "{e}");
    assert!(e.contains(dir.to_str().expect("utf-8")), "{e}");
}

#[test]
fn unexpected_tensor_is_named() {
    let dir = edited_copy("unexpected", |t| {
        t.push(("head.classifier.weight".into(), Tensor::zeros([3, 64], (Kind::Float, Device::Cpu))))
    });
    let e = err(load(&dir));
    assert!(e.contains("unexpected tensor `head.classifier.weight` [3, 64]"), "{e}");
}

#[test]
fn shape_mismatch_names_both_shapes() {
    let dir = edited_copy("shape", |t| {
        for (n, v) in t.iter_mut() {
            if n == "layer.0.mlp.up_proj.weight" {
                *v = Tensor::zeros([96, 64], (Kind::Float, Device::Cpu));
            }
        }
    });
    let e = err(load(&dir));
    // Caught before the model is built: the config key and the tensor are both named.
    assert!(
        e.contains("`intermediate_size` 128 and `hidden_size` 64 make tensor `layer.0.mlp.up_proj.weight` [128, 64]"),
        "{e}"
    );
    assert!(e.contains("checkpoint's `layer.0.mlp.up_proj.weight` is [96, 64]"), "{e}");
}

#[test]
fn bare_safetensors_needs_and_checks_the_variant() {
    let v = dinoseg::catalog::find("vits16").expect("listed");
    let mut model = LoadedBackbone::build(&v.config(), Device::Cpu).expect("build");
    model.randomize(1);
    let file = common::temp_dir("bare").join("vits16.safetensors");
    Tensor::write_safetensors(&model.named_tensors(), &file).expect("write");
    let spec = file.to_str().expect("utf-8");
    // Right variant: loads, and gives the same features as the model it came from.
    let (loaded, norm) = checkpoint::load_backbone(spec, Some("vits16"), Device::Cpu, Kind::Float).expect("load");
    assert_eq!(norm, dinoseg::catalog::IMAGENET);
    let x = Tensor::randn([1, 3, 32, 48], (Kind::Float, Device::Cpu));
    let opts = dinoseg::model::ForwardOptions::default();
    let a = loaded.backbone.forward(&x, &opts).expect("forward").0.last_hidden_state;
    let b = model.backbone.forward(&x, &opts).expect("forward").0.last_hidden_state;
    assert!(common::max_abs_diff(&a, &b) == 0.0);
    // No variant: told to pass one.
    let e = err(checkpoint::load_backbone(spec, None, Device::Cpu, Kind::Float).map(|_| ()));
    assert!(e.contains("--variant"), "{e}");
    // Wrong variant: every mismatch named.
    let e = err(checkpoint::load_backbone(spec, Some("vitb16"), Device::Cpu, Kind::Float).map(|_| ()));
    assert!(
        e.contains("`hidden_size` 768") && e.contains("`embeddings.patch_embeddings.weight` is [384, 3, 16, 16]"),
        "{e}"
    );
    let e = err(checkpoint::load_backbone(spec, Some("vitq99"), Device::Cpu, Kind::Float).map(|_| ()));
    assert!(e.contains("unknown backbone variant `vitq99`"), "{e}");
}

#[test]
fn corrupt_and_truncated_files_are_errors_not_panics() {
    let dir = edited_copy("corrupt", |_| {});
    let weights = dir.join("model.safetensors");
    let bytes = std::fs::read(&weights).expect("read");
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).expect("truncate");
    let e = err(load(&dir));
    assert!(e.contains("model.safetensors") && e.contains("not a readable safetensors file"), "{e}");
    std::fs::write(&weights, b"\x10\x00\x00\x00\x00\x00\x00\x00garbage!garbage!").expect("garbage");
    let e = err(load(&dir));
    assert!(e.contains("not a readable safetensors file"), "{e}");
    std::fs::write(&weights, b"").expect("empty");
    assert!(err(load(&dir)).contains("model.safetensors"));
}

#[test]
fn bad_configs_name_the_key() {
    let dir = edited_copy("config", |_| {});
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, "{ not json").expect("write");
    assert!(err(load(&dir)).contains("config.json: invalid config"));
    std::fs::write(&cfg, r#"{"model_type": "dinov2"}"#).expect("write");
    let e = err(load(&dir));
    assert!(e.contains("`model_type` is `dinov2`"), "{e}");
    std::fs::write(&cfg, r#"{"model_type": "dinov3_vit", "hidden_size": 64, "num_attention_heads": 5}"#)
        .expect("write");
    let e = err(load(&dir));
    assert!(e.contains("`hidden_size` 64 is not divisible by `num_attention_heads` 5"), "{e}");
    std::fs::write(&cfg, r#"{"model_type": "dinov3_vit", "hidden_size": "big"}"#).expect("write");
    assert!(err(load(&dir)).contains("invalid type"));
    std::fs::write(&cfg, r#"{"model_type": "dinov3_vit", "hidden_act": "mish"}"#).expect("write");
    assert!(err(load(&dir)).contains("unsupported `hidden_act` `mish`"));
}

#[test]
fn directory_without_weights_or_with_a_lost_shard() {
    let dir = common::temp_dir("noweights");
    std::fs::copy(common::fixtures().join("vit_mlp").join("config.json"), dir.join("config.json")).expect("copy");
    let e = err(load(&dir));
    assert!(e.contains("expected model.safetensors or model.safetensors.index.json"), "{e}");
    // A sharded directory missing one shard.
    let src = common::fixtures().join("vit_mlp_sharded");
    let dir = common::temp_dir("lostshard");
    for f in std::fs::read_dir(&src).expect("list").flatten() {
        std::fs::copy(f.path(), dir.join(f.file_name())).expect("copy");
    }
    std::fs::remove_file(dir.join("model-00002-of-00013.safetensors")).expect("remove");
    let e = err(load(&dir));
    assert!(e.contains("model-00002-of-00013.safetensors: no such file"), "{e}");
}

#[test]
fn hub_id_offline_says_what_is_missing_and_where() {
    let cache = common::temp_dir("emptycache");
    std::env::set_var("HF_HUB_CACHE", &cache);
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let r = checkpoint::load_backbone("facebook/dinov3-vits16-pretrain-lvd1689m", None, Device::Cpu, Kind::Float);
    let e = err(r.map(|_| ()));
    assert!(e.contains("hub model `facebook/dinov3-vits16-pretrain-lvd1689m`"), "{e}");
    assert!(e.contains("models--facebook--dinov3-vits16-pretrain-lvd1689m (no such directory)"), "{e}");
    assert!(e.contains("HF_TOKEN"), "{e}");
    // A snapshot without weights: the missing file is named.
    let repo = cache.join("models--org--partial");
    std::fs::create_dir_all(repo.join("refs")).expect("mkdir");
    std::fs::create_dir_all(repo.join("snapshots").join("abc")).expect("mkdir");
    std::fs::write(repo.join("refs").join("main"), "abc").expect("write");
    std::fs::write(repo.join("snapshots").join("abc").join("config.json"), "{}").expect("write");
    let e = err(checkpoint::load_backbone("org/partial", None, Device::Cpu, Kind::Float).map(|_| ()));
    assert!(e.contains("model.safetensors (missing"), "{e}");
}

#[test]
fn specs_are_classified() {
    let fx = common::fixtures();
    let dir = fx.join("vit_mlp");
    assert_eq!(ModelSource::parse(dir.to_str().expect("utf-8"), None).expect("dir"), ModelSource::Dir(dir.clone()));
    assert!(matches!(
        ModelSource::parse("facebook/dinov3-vitl16-pretrain-sat493m@main", None),
        Ok(ModelSource::Hub(_))
    ));
    let e = ModelSource::parse("no/such/path.pth", None).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("neither an existing file or directory nor a hub id"), "{e}");
    let odd = common::temp_dir("odd").join("weights.onnx");
    std::fs::write(&odd, b"x").expect("write");
    let e = ModelSource::parse(odd.to_str().expect("utf-8"), None).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("unrecognised checkpoint file"), "{e}");
}

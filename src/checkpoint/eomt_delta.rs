//! The EoMT authors' published checkpoints (`tue-mps/*_dinov3`, `pytorch_model.bin`): pickled state dicts in the
//! original EoMT key names whose backbone tensors are differences to be added to the gated DINOv3 base weights.
//! Merged with the base (a DINOv3 transformers directory or hub id), they become a transformers `eomt_dinov3`
//! checkpoint. The key mapping is the one of transformers' `convert_eomt_dinov3_to_hf.py`.

use crate::checkpoint::{load_weights, pickle, resolve, write_tensors, ModelConfig, IGNORED_TENSORS};
use crate::error::{Error, Result};
use crate::model::heads::eomt::EomtConfig;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use tch::Tensor;

const BACKBONE: &str = "network.encoder.backbone.";
/// Preprocessing constants the authors store in the checkpoint; our pipeline takes them from the base.
const SKIPPED: &[&str] = &["network.encoder.pixel_mean", "network.encoder.pixel_std"];

/// Whether a state dict is in the EoMT authors' names.
pub fn is_eomt_delta(state: &[(String, Tensor)]) -> bool {
    state.iter().any(|(k, _)| k.starts_with("network.q.") || k.starts_with(BACKBONE))
}

/// The transformers name of an authors' key, and whether it is a backbone difference. None: not used.
fn rename(key: &str) -> Option<(String, bool)> {
    if SKIPPED.contains(&key) {
        return None;
    }
    if key.starts_with("criterion.") {
        // Training-only buffers (the loss's class weights): kept so transformers loads the result unchanged.
        return Some((key.to_string(), false));
    }
    if let Some(rest) = key.strip_prefix(BACKBONE) {
        let name = if let Some(r) = rest.strip_prefix("patch_embed.patch_embeddings.") {
            format!("embeddings.patch_embeddings.{r}")
        } else if let Some(r) = rest.strip_prefix("patch_embed.") {
            format!("embeddings.{r}")
        } else if let Some(r) = rest.strip_prefix("blocks.") {
            format!("layers.{r}")
        } else if let Some(r) = rest.strip_prefix("norm.") {
            format!("layernorm.{r}")
        } else {
            return Some((format!("?{key}"), true));
        };
        return Some((name, true));
    }
    let rest = key.strip_prefix("network.")?;
    let name = if let Some(r) = rest.strip_prefix("q.") {
        format!("query.{r}")
    } else if let Some(r) = rest.strip_prefix("class_head.") {
        format!("class_predictor.{r}")
    } else if let Some(r) = rest.strip_prefix("mask_head.") {
        let (idx, tail) = r.split_once('.')?;
        let fc = match idx {
            "0" => "fc1",
            "2" => "fc2",
            "4" => "fc3",
            _ => return Some((format!("?{key}"), false)),
        };
        format!("mask_head.{fc}.{tail}")
    } else if let Some(r) = rest.strip_prefix("upscale.") {
        let (idx, tail) = r.split_once('.')?;
        let tail = tail.strip_prefix("norm.").map(|t| format!("layernorm2d.{t}")).unwrap_or_else(|| tail.to_string());
        format!("upscale_block.block.{idx}.{tail}")
    } else if rest == "attn_mask_probs" {
        "attn_mask_probs".to_string()
    } else {
        format!("?{key}")
    };
    Some((name, false))
}

/// Base DINOv3 names (`layer.N`, `norm`) to EoMT's (`layers.N`, `layernorm`); the mask token is dropped.
fn base_to_eomt(name: &str) -> Option<String> {
    if name == "embeddings.mask_token" {
        return None;
    }
    let name = name.strip_prefix("model.").filter(|r| r.starts_with("layer.")).unwrap_or(name);
    Some(if let Some(r) = name.strip_prefix("layer.") {
        format!("layers.{r}")
    } else if let Some(r) = name.strip_prefix("norm.") {
        format!("layernorm.{r}")
    } else {
        name.to_string()
    })
}

/// Merges an authors' delta checkpoint with its base into transformers `eomt_dinov3` tensors and config.
/// `image_size` is the training size recorded in config.json (our model runs at any size); `class_names`
/// default to `class_<i>`.
pub fn merge_eomt_delta(
    delta_path: &Path,
    base: &str,
    image_size: i64,
    class_names: Option<Vec<String>>,
) -> Result<(EomtConfig, Vec<(String, Tensor)>)> {
    let delta = pickle::read_torch_state_dict(delta_path)?;
    if !is_eomt_delta(&delta) {
        return Err(Error::checkpoint(
            delta_path,
            "not an EoMT checkpoint: no `network.q.*` or `network.encoder.backbone.*` keys",
        ));
    }
    let resolved = resolve(base, None)?;
    let vit = match resolved.config {
        ModelConfig::Backbone(crate::model::config::BackboneConfig::Vit(c)) => c,
        other => {
            return Err(Error::checkpoint(
                &resolved.origin,
                format!("the base of an EoMT checkpoint must be a DINOv3 ViT, got {}", other.model_type()),
            ))
        }
    };
    let mut merged: BTreeMap<String, Tensor> =
        resolved.tensors.into_iter().filter_map(|(k, t)| base_to_eomt(&k).map(|k| (k, t))).collect();
    let mut unknown = Vec::new();
    let mut shapes = HashMap::new();
    for (key, t) in delta {
        let Some((name, is_backbone)) = rename(&key) else { continue };
        if name.starts_with('?') {
            unknown.push(key);
            continue;
        }
        shapes.insert(name.clone(), t.size());
        if is_backbone {
            let Some(b) = merged.get(&name) else {
                return Err(Error::checkpoint(
                    delta_path,
                    format!("backbone difference `{key}` has no base tensor `{name}` in {base}"),
                ));
            };
            if b.size() != t.size() {
                return Err(Error::checkpoint(
                    delta_path,
                    format!(
                        "backbone difference `{key}` {:?} does not match the base tensor `{name}` {:?}",
                        t.size(),
                        b.size()
                    ),
                ));
            }
            let sum = b.to_kind(tch::Kind::Float) + t.to_kind(tch::Kind::Float);
            merged.insert(name, sum);
        } else {
            merged.insert(name, t);
        }
    }
    if !unknown.is_empty() {
        return Err(Error::checkpoint(delta_path, format!("keys not understood: {}", unknown.join(", "))));
    }
    let dim = |name: &str, i: usize| shapes.get(name).and_then(|s| s.get(i).copied());
    let missing = |n: &str| Error::checkpoint(delta_path, format!("no `{n}` tensor"));
    let num_queries = dim("query.weight", 0).ok_or_else(|| missing("network.q.weight"))?;
    let num_blocks = dim("attn_mask_probs", 0).ok_or_else(|| missing("network.attn_mask_probs"))?;
    let classes = dim("class_predictor.weight", 0).ok_or_else(|| missing("network.class_head.weight"))? - 1;
    let upscale: BTreeSet<&str> = shapes
        .keys()
        .filter_map(|k| k.strip_prefix("upscale_block.block.").and_then(|r| r.split('.').next()))
        .collect();
    let names = class_names.unwrap_or_else(|| (0..classes).map(|i| format!("class_{i}")).collect());
    if names.len() as i64 != classes {
        return Err(Error::checkpoint(
            delta_path,
            format!("the class head has {classes} classes but {} class names were given", names.len()),
        ));
    }
    let config = EomtConfig {
        vit: crate::model::config::VitConfig { image_size, ..vit },
        num_queries,
        num_blocks,
        num_upscale_blocks: upscale.len() as i64,
        id2label: names.into_iter().enumerate().map(|(i, n)| (i.to_string(), n)).collect(),
    };
    config.validate().map_err(|m| Error::checkpoint(delta_path, m))?;
    Ok((config, merged.into_iter().collect()))
}

/// `dinoseg convert DELTA.bin OUT_DIR --base BASE`: merges, proves the result loads strictly into our EoMT, and
/// writes a transformers `eomt_dinov3` directory.
pub fn convert_eomt_delta(
    delta_path: &Path,
    base: &str,
    out_dir: &Path,
    image_size: i64,
    class_names: Option<Vec<String>>,
) -> Result<EomtConfig> {
    let base_path = Path::new(base);
    let mut inputs = vec![delta_path, base_path];
    let (base_weights, base_config) = (base_path.join("model.safetensors"), base_path.join("config.json"));
    inputs.extend([base_weights.as_path(), base_config.as_path()]);
    crate::checkpoint::refuse_overwriting_inputs(out_dir, &inputs)?;
    let (config, tensors) = merge_eomt_delta(delta_path, base, image_size, class_names)?;
    let model = crate::checkpoint::LoadedEomt::build(&config, tch::Device::Cpu)?;
    let copies: Vec<(String, Tensor)> = tensors.iter().map(|(k, t)| (k.clone(), t.shallow_clone())).collect();
    load_weights(&model.vs, copies, delta_path, IGNORED_TENSORS)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    write_tensors(&out_dir.join("model.safetensors"), &tensors)?;
    crate::files::write_atomic(&out_dir.join("config.json"), config.to_json().as_bytes())?;
    Ok(config)
}

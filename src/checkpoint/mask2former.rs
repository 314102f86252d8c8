//! Mask2Former checkpoints (transformers `model_type: mask2former` directories, see
//! [`crate::model::heads::mask2former`]): the config read and checked against the weights' headers before
//! anything is allocated, the weights from `model.safetensors` (or shards) or `pytorch_model.bin`, strict
//! loading with the backbone names of either spelling transformers writes.

use crate::catalog::Normalization;
use crate::checkpoint::consistency::{self, TensorMeta};
use crate::checkpoint::{hub, load_weights, pickle, read_transformers_weights, source, IGNORED_TENSORS};
use crate::error::{Error, Result};
use crate::files;
use crate::model::config::VitConfig;
use crate::model::heads::mask2former::config::{canonical_name, AdapterInputs, Form, Mask2FormerConfig};
use crate::model::heads::mask2former::Mask2Former;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// What the weights of the DINOv3-Mask2former adapter layout cannot tell (params keys / `dinoseg forward`
/// flags); ignored by the transformers forms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mask2FormerOptions {
    /// The 0-based ViT blocks the adapter taps; default: the known variant file's.
    pub layers: Option<Vec<i64>>,
    /// Attention heads of the ViT; default: the catalog variant with the same shapes.
    pub num_heads: Option<i64>,
}

/// A Mask2Former model with its weights.
pub struct LoadedMask2Former {
    pub vs: nn::VarStore,
    pub model: Mask2Former,
    pub device: Device,
    pub kind: Kind,
}

impl LoadedMask2Former {
    /// Builds the architecture on `device` with placeholder weights (load them separately).
    pub fn build(config: &Mask2FormerConfig, device: Device) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let mut model = Mask2Former::new(&vs.root(), config)
            .map_err(|m| Error::Input(format!("invalid mask2former config: {m}")))?;
        model.fuse_qkv();
        Ok(LoadedMask2Former { vs, model, device, kind: Kind::Float })
    }

    /// Casts the weights to `kind` (Float, Half, BFloat16).
    pub fn set_kind(&mut self, kind: Kind) {
        self.vs.set_kind(kind);
        self.model.fuse_qkv();
        self.kind = kind;
    }
}

/// Whether a directory's config.json says `model_type: mask2former` (false when unreadable: the caller's own
/// reading reports that).
pub fn is_mask2former_dir(dir: &Path) -> bool {
    let text = files::read_text_capped(&dir.join("config.json"), files::caps::JSON, "config.json");
    text.ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("model_type").and_then(|m| m.as_str()) == Some("mask2former"))
}

/// The weights of a Mask2Former directory: safetensors (single or sharded) or `pytorch_model.bin`.
enum Weights {
    Safetensors,
    Bin(PathBuf),
}

fn weights_kind(dir: &Path) -> Weights {
    let has = |n: &str| std::fs::symlink_metadata(dir.join(n)).is_ok();
    if !has("model.safetensors") && !has("model.safetensors.index.json") && has("pytorch_model.bin") {
        Weights::Bin(dir.join("pytorch_model.bin"))
    } else {
        Weights::Safetensors
    }
}

/// Name, shape and dtype of every tensor (safetensors headers only; a `pytorch_model.bin` is read).
fn tensor_meta(dir: &Path) -> Result<Vec<TensorMeta>> {
    match weights_kind(dir) {
        Weights::Safetensors => crate::checkpoint::transformers_tensor_meta(dir),
        Weights::Bin(path) => Ok(pickle::read_torch_state_dict(&path)?
            .iter()
            .map(|(n, t)| TensorMeta {
                name: n.clone(),
                shape: t.size(),
                dtype: format!("{:?}", t.kind()),
                is_float: t.is_floating_point(),
                file: path.clone(),
            })
            .collect()),
    }
}

/// Reads a Mask2Former directory's config.json and checks it against the weights' headers (no tensor data for
/// safetensors): the config `check-params` and the loader use. The adapter layout's architecture is inferred
/// from the shapes, its tapped blocks from `opts.layers` or the variant file named by
/// `dinov3_backbone_config.json`.
pub fn inspect_mask2former(dir: &Path, opts: &Mask2FormerOptions) -> Result<Mask2FormerConfig> {
    let path = dir.join("config.json");
    let text = files::read_text_capped(&path, files::caps::JSON, "config.json")?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
    let model_type = value.get("model_type").and_then(|m| m.as_str()).unwrap_or("<missing>");
    if model_type != "mask2former" {
        let shown: String = model_type.chars().take(80).collect();
        return Err(Error::Config {
            path,
            message: format!("`model_type` is `{shown}`, not mask2former (layers / num_heads apply to Mask2Former)"),
        });
    }
    let mut metas = tensor_meta(dir)?;
    parse_with_weights(&value, &path, dir, &mut metas, opts)
}

/// Parses config.json `value` (`path` names it) against the weights' tensors `metas` (renamed in place to the
/// names the model declares).
fn parse_with_weights(
    value: &serde_json::Value,
    path: &Path,
    dir: &Path,
    metas: &mut [TensorMeta],
    opts: &Mask2FormerOptions,
) -> Result<Mask2FormerConfig> {
    let bad = |message: String| Error::Config { path: path.to_path_buf(), message };
    let adapter = !Mask2FormerConfig::is_transformers_form(value);
    for m in metas.iter_mut() {
        m.name = canonical_name(&m.name, adapter);
    }
    let config = if adapter {
        let shapes: BTreeMap<String, Vec<i64>> = metas.iter().map(|m| (m.name.clone(), m.shape.clone())).collect();
        let model_file = read_model_file(dir)?;
        let infer = |v: &VitConfig| {
            let gated = v.use_gated_mlp;
            crate::checkpoint::official::infer_heads(
                v.hidden_size,
                v.num_hidden_layers,
                v.intermediate_size,
                gated,
                v.query_bias,
                None,
                None,
            )
            .map_err(|e| e.replace("--num-heads", "`num_heads` (--num-heads)"))
        };
        let inputs = AdapterInputs {
            shapes: &shapes,
            model_file,
            layers: opts.layers.clone(),
            num_heads: opts.num_heads,
            infer_heads: &infer,
        };
        Mask2FormerConfig::from_json(value, Some(&inputs)).map_err(bad)?
    } else {
        Mask2FormerConfig::from_json(value, None).map_err(bad)?
    };
    consistency::check_config(&source::ModelConfig::Mask2Former(config.clone()), metas, path, dir)?;
    Ok(config)
}

/// `model_file` of `dinov3_backbone_config.json`, if the file exists (the DINOv3-Mask2former variant file the
/// model came from; at most 400 characters of it are kept).
pub fn read_model_file(dir: &Path) -> Result<Option<String>> {
    let path = dir.join("dinov3_backbone_config.json");
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    let text = files::read_text_capped(&path, files::caps::JSON, "dinov3_backbone_config.json")?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
    match v.get("model_file") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.chars().take(400).collect())),
        Some(other) => Err(Error::Config { path, message: format!("`model_file` is {other}, expected a string") }),
    }
}

/// Reads the weights of a Mask2Former directory under the names the model declares.
pub fn read_mask2former_weights(dir: &Path, config: &Mask2FormerConfig) -> Result<Vec<(String, Tensor)>> {
    let tensors = match weights_kind(dir) {
        Weights::Safetensors => read_transformers_weights(dir)?,
        Weights::Bin(path) => pickle::read_torch_state_dict(&path)?,
    };
    let adapter = matches!(config.form, Form::Adapter(_));
    Ok(tensors.into_iter().map(|(n, t)| (canonical_name(&n, adapter), t)).collect())
}

/// A spec's directory: the directory itself, or a hub id's snapshot.
fn spec_dir(spec: &str) -> Result<PathBuf> {
    match source::ModelSource::parse(spec, None)? {
        source::ModelSource::Dir(d) => Ok(d),
        source::ModelSource::Hub(id) => hub::resolve_hub(&id),
        _ => Err(Error::Input(format!("`{spec}`: a Mask2Former model is a transformers directory or hub id"))),
    }
}

/// Builds and strictly loads a Mask2Former model from a directory (or hub id), on `device` in `kind`, with its
/// normalisation (preprocessor_config.json).
pub fn load_mask2former(
    spec: &str,
    opts: &Mask2FormerOptions,
    device: Device,
    kind: Kind,
) -> Result<(LoadedMask2Former, Normalization)> {
    let dir = spec_dir(spec)?;
    let config = inspect_mask2former(&dir, opts)?;
    let norm = source::dir_norm(&dir)?;
    let tensors = read_mask2former_weights(&dir, &config)?;
    let model = load_built(&config, tensors, &dir, device, kind)?;
    Ok((model, norm))
}

/// Builds `config` and loads `tensors` (from `origin`) strictly.
pub fn load_built(
    config: &Mask2FormerConfig,
    tensors: Vec<(String, Tensor)>,
    origin: &Path,
    device: Device,
    kind: Kind,
) -> Result<LoadedMask2Former> {
    let mut model = LoadedMask2Former::build(config, device)?;
    load_weights(&model.vs, tensors, origin, IGNORED_TENSORS)?;
    model.model.fuse_qkv();
    if kind != Kind::Float {
        model.set_kind(kind);
    }
    Ok(model)
}

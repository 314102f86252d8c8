//! Where a backbone comes from: a model spec (directory, `.safetensors` file, `.pth` file or hub id) resolved
//! to an architecture, its weights and its pixel normalisation.

use crate::catalog::{self, Normalization};
use crate::checkpoint::{
    consistency, header, hub, load_weights, official, pickle, read_safetensors, read_transformers_weights,
};
use crate::error::{Error, Result};
use crate::files;
use crate::model::config::BackboneConfig;
use crate::model::heads::eomt::{Eomt, EomtConfig};
use crate::model::heads::mask2former::config::Mask2FormerConfig;
use crate::model::LoadedBackbone;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// A model spec as the user wrote it, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A transformers directory (`config.json` + safetensors).
    Dir(PathBuf),
    /// A bare `.safetensors` file (transformers or official names) of a catalog variant.
    Safetensors { path: PathBuf, variant: Option<String> },
    /// An official pickled state dict (`.pth`), converted on load.
    Pth { path: PathBuf, num_heads: Option<i64> },
    /// A hub id, `org/name[@revision]`.
    Hub(String),
}

/// A resolved backbone checkpoint.
pub struct ResolvedModel {
    pub config: ModelConfig,
    pub tensors: Vec<(String, Tensor)>,
    pub norm: Normalization,
    /// The file or directory the weights came from (for error messages).
    pub origin: PathBuf,
}

impl ModelSource {
    /// Classifies a spec: an existing directory or file by its kind, otherwise `org/name` as a hub id.
    pub fn parse(spec: &str, variant: Option<&str>) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(ModelSource::Dir(path.to_path_buf()));
        }
        if std::fs::metadata(path).is_ok() {
            files::check_regular(path, "checkpoint")?;
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            return match ext.as_str() {
                "safetensors" => {
                    Ok(ModelSource::Safetensors { path: path.to_path_buf(), variant: variant.map(String::from) })
                }
                "pth" | "pt" | "bin" => Ok(ModelSource::Pth { path: path.to_path_buf(), num_heads: None }),
                _ => Err(Error::checkpoint(path, "unrecognised checkpoint file: expected .safetensors or .pth")),
            };
        }
        if hub::is_hub_id(spec) {
            return Ok(ModelSource::Hub(spec.to_string()));
        }
        Err(Error::NotFound(format!(
            "`{spec}` is neither an existing file or directory nor a hub id of the form org/name"
        )))
    }
}

/// The architecture a checkpoint holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    Backbone(BackboneConfig),
    Eomt(EomtConfig),
    Mask2Former(Mask2FormerConfig),
}

impl ModelConfig {
    pub fn model_type(&self) -> &'static str {
        match self {
            ModelConfig::Backbone(c) => c.model_type(),
            ModelConfig::Eomt(_) => "eomt_dinov3",
            ModelConfig::Mask2Former(_) => "mask2former",
        }
    }
}

/// Reads a transformers `config.json` (a regular file, size-capped); `model_type` selects the architecture. A
/// Mask2Former directory is read with its weights' headers and default options (see
/// [`crate::checkpoint::mask2former::inspect_mask2former`]).
pub fn read_model_config(dir: &Path) -> Result<ModelConfig> {
    if crate::checkpoint::mask2former::is_mask2former_dir(dir) {
        let opts = crate::checkpoint::mask2former::Mask2FormerOptions::default();
        return crate::checkpoint::mask2former::inspect_mask2former(dir, &opts).map(ModelConfig::Mask2Former);
    }
    let path = dir.join("config.json");
    let text = files::read_text_capped(&path, files::caps::JSON, "config.json")?;
    parse_model_config(&text, &path)
}

/// Parses and validates the text of a `config.json` (`path` names it in errors): bounds of every size, positive
/// epsilons and RoPE base.
pub fn parse_model_config(text: &str, path: &Path) -> Result<ModelConfig> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string() })?;
    let bad = |message: String| Error::Config { path: path.to_path_buf(), message };
    let model_type = value.get("model_type").and_then(|v| v.as_str()).unwrap_or("<missing>");
    let model_type: String = model_type.chars().take(80).collect();
    match model_type.as_str() {
        "dinov3_vit" | "dinov3_convnext" => {
            let config: BackboneConfig = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
            config.validate().map_err(bad)?;
            Ok(ModelConfig::Backbone(config))
        }
        "eomt_dinov3" => Ok(ModelConfig::Eomt(EomtConfig::from_json(value).map_err(bad)?)),
        // The adapter layout's architecture is in its weights: only a directory (`read_model_config`) reads it.
        "mask2former" => Ok(ModelConfig::Mask2Former(Mask2FormerConfig::from_json(&value, None).map_err(bad)?)),
        other => Err(bad(format!(
            "`model_type` is `{other}`; expected dinov3_vit, dinov3_convnext, eomt_dinov3 or mask2former"
        ))),
    }
}

/// Reads a transformers directory's `config.json` and checks it against the safetensors headers of its weights
/// (no tensor data read): what `check-params` and the loader both call before anything is allocated.
pub fn inspect_dir(dir: &Path) -> Result<ModelConfig> {
    let config = read_model_config(dir)?;
    if let ModelConfig::Mask2Former(_) = config {
        return Ok(config); // checked against its weights by `read_model_config`
    }
    let tensors = crate::checkpoint::transformers_tensor_meta(dir)?;
    consistency::check_config(&config, &tensors, &dir.join("config.json"), dir)?;
    Ok(config)
}

/// Reads a transformers `config.json` that must hold a backbone.
pub fn read_config(dir: &Path) -> Result<BackboneConfig> {
    match read_model_config(dir)? {
        ModelConfig::Backbone(c) => Ok(c),
        other => Err(Error::Config {
            path: dir.join("config.json"),
            message: format!("`model_type` is `{}`, not a DINOv3 backbone", other.model_type()),
        }),
    }
}

/// Normalisation of a transformers directory: `preprocessor_config.json` if present (read capped; a special
/// file, invalid JSON or a non-positive `image_std` is an error), else by the catalog entry the path names (a hub
/// cache path contains the repo name), else ImageNet.
pub(crate) fn dir_norm(dir: &Path) -> Result<Normalization> {
    let pre = dir.join("preprocessor_config.json");
    if std::fs::symlink_metadata(&pre).is_ok() {
        let text = files::read_text_capped(&pre, files::caps::JSON, "preprocessor config")?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::Config { path: pre.clone(), message: e.to_string() })?;
        let triple = |k: &str| -> Option<[f32; 3]> {
            let a = json.get(k)?.as_array()?;
            let v: Vec<f32> = a.iter().filter_map(|x| x.as_f64().map(|f| f as f32)).collect();
            (v.len() == 3).then(|| [v[0], v[1], v[2]])
        };
        if let (Some(mean), Some(std)) = (triple("image_mean"), triple("image_std")) {
            if !mean.iter().all(|m| m.is_finite()) || !std.iter().all(|s| s.is_finite() && *s > 0.0) {
                return Err(Error::Config {
                    path: pre,
                    message: format!("`image_mean` {mean:?} must be finite and `image_std` {std:?} finite and > 0"),
                });
            }
            return Ok(Normalization { mean, std });
        }
    }
    Ok(if dir.to_string_lossy().contains("sat493m") { catalog::SAT493M } else { catalog::IMAGENET })
}

/// Whether a bare `.safetensors` backbone whose tensors are `names` is in the official (facebookresearch/dinov3)
/// names, converted on load with the architecture inferred from the shapes, rather than in transformers names
/// (which need a catalog variant). The loader and `check-params` both decide it here, from the header.
pub(crate) fn official_names<'a>(names: impl IntoIterator<Item = &'a str>) -> bool {
    names.into_iter().any(|n| {
        n == "cls_token" || n.starts_with("blocks.") || n.starts_with("stages.") || n.starts_with("downsample_layers.")
    })
}

/// Resolves a spec to config, weights and normalisation. `variant` names the catalog entry for bare
/// `.safetensors` files in transformers names.
pub fn resolve(spec: &str, variant: Option<&str>) -> Result<ResolvedModel> {
    match ModelSource::parse(spec, variant)? {
        ModelSource::Dir(dir) => resolve_dir(&dir),
        ModelSource::Hub(id) => {
            let dir = hub::resolve_hub(&id)?;
            let mut m = resolve_dir(&dir)?;
            if let Some((_, w)) = catalog::weights_for_hub_id(hub::split_revision(&id).0) {
                m.norm = w.norm;
            }
            Ok(m)
        }
        ModelSource::Pth { path, num_heads } => {
            let state = pickle::read_torch_state_dict(&path)?;
            let (config, tensors) = official::official_to_transformers(state, num_heads, &path)?;
            Ok(ResolvedModel { config: ModelConfig::Backbone(config), tensors, norm: catalog::IMAGENET, origin: path })
        }
        ModelSource::Safetensors { path, variant } => {
            let header = header::read_header(&path)?;
            let meta = crate::checkpoint::header_meta(&header, &path);
            let official = official_names(header.tensors.iter().map(|t| t.name.as_str()));
            if !official {
                if let Some(v) = variant.as_deref().and_then(catalog::find) {
                    let config = ModelConfig::Backbone(v.config());
                    consistency::check_config(&config, &meta, &path, &path)?;
                }
            }
            let tensors = read_safetensors(&path)?;
            if official {
                let (config, tensors) = official::official_to_transformers(tensors, None, &path)?;
                return Ok(ResolvedModel {
                    config: ModelConfig::Backbone(config),
                    tensors,
                    norm: catalog::IMAGENET,
                    origin: path,
                });
            }
            let name = variant.ok_or_else(|| {
                Error::checkpoint(
                    &path,
                    "a bare .safetensors file in transformers names needs --variant (see `dinoseg backbones`)",
                )
            })?;
            let v = catalog::find(&name).ok_or_else(|| Error::UnknownVariant(name.clone()))?;
            Ok(ResolvedModel {
                config: ModelConfig::Backbone(v.config()),
                tensors,
                norm: v.default_norm(),
                origin: path,
            })
        }
    }
}

fn resolve_dir(dir: &Path) -> Result<ResolvedModel> {
    let config = inspect_dir(dir)?;
    let norm = dir_norm(dir)?;
    let tensors = match &config {
        ModelConfig::Mask2Former(c) => crate::checkpoint::mask2former::read_mask2former_weights(dir, c)?,
        _ => read_transformers_weights(dir)?,
    };
    Ok(ResolvedModel { config, tensors, norm, origin: dir.to_path_buf() })
}

/// Builds and strictly loads a backbone from a spec, on `device` in `kind`.
pub fn load_backbone(
    spec: &str,
    variant: Option<&str>,
    device: Device,
    kind: Kind,
) -> Result<(LoadedBackbone, Normalization)> {
    match load_model(spec, variant, device, kind)? {
        (LoadedModel::Backbone(b), norm) => Ok((*b, norm)),
        (LoadedModel::Eomt(_), _) => {
            Err(Error::Input(format!("`{spec}` is an EoMT model (eomt_dinov3), not a backbone")))
        }
        (LoadedModel::Mask2Former(_), _) => {
            Err(Error::Input(format!("`{spec}` is a Mask2Former model (mask2former), not a backbone")))
        }
    }
}

/// An EoMT model with its weights.
pub struct LoadedEomt {
    pub vs: nn::VarStore,
    pub model: Eomt,
    pub device: Device,
    pub kind: Kind,
}

impl LoadedEomt {
    /// Builds the architecture on `device` with placeholder weights (load them separately).
    pub fn build(config: &EomtConfig, device: Device) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let mut model =
            Eomt::new(&vs.root(), config).map_err(|m| Error::Input(format!("invalid eomt_dinov3 config: {m}")))?;
        model.vit.fuse_qkv();
        Ok(LoadedEomt { vs, model, device, kind: Kind::Float })
    }
}

/// Any model a spec can hold.
pub enum LoadedModel {
    Backbone(Box<LoadedBackbone>),
    Eomt(Box<LoadedEomt>),
    Mask2Former(Box<crate::checkpoint::mask2former::LoadedMask2Former>),
}

/// Tensors of transformers checkpoints that inference does not use (training-only buffers).
pub const IGNORED_TENSORS: &[&str] = &["criterion.empty_weight"];

/// Builds and strictly loads whatever model a spec holds, on `device` in `kind`.
pub fn load_model(
    spec: &str,
    variant: Option<&str>,
    device: Device,
    kind: Kind,
) -> Result<(LoadedModel, Normalization)> {
    let m = resolve(spec, variant)?;
    let model = match &m.config {
        ModelConfig::Backbone(c) => {
            let mut model = LoadedBackbone::build(c, device)?;
            load_weights(&model.vs, m.tensors, &m.origin, IGNORED_TENSORS)?;
            if kind != Kind::Float {
                model.set_kind(kind);
            }
            LoadedModel::Backbone(Box::new(model))
        }
        ModelConfig::Eomt(c) => {
            let mut model = LoadedEomt::build(c, device)?;
            load_weights(&model.vs, m.tensors, &m.origin, IGNORED_TENSORS)?;
            if kind != Kind::Float {
                model.vs.set_kind(kind);
                model.model.vit.fuse_qkv();
                model.kind = kind;
            }
            LoadedModel::Eomt(Box::new(model))
        }
        ModelConfig::Mask2Former(c) => LoadedModel::Mask2Former(Box::new(crate::checkpoint::mask2former::load_built(
            c, m.tensors, &m.origin, device, kind,
        )?)),
    };
    Ok((model, m.norm))
}

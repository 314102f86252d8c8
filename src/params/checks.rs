//! Cheap checkpoint inspection for validation: where a spec points (file, directory, hub id), a transformers
//! `config.json`, and a safetensors header (the loader's own header reader: 8 + header bytes, never the
//! weights). Nothing here loads a tensor.

use crate::catalog;
use crate::checkpoint::header::{self, Header};
use crate::checkpoint::{hub, read_model_config, ModelConfig};
use crate::model::config::BackboneConfig;
use crate::model::heads::linear::LayerSelection;
use std::path::{Path, PathBuf};

/// Where a checkpoint spec points.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Located {
    /// An existing file or directory.
    Local(PathBuf),
    /// A hub id (`org/name[@revision]`) and its complete snapshot in the Hugging Face cache, if there is one.
    Hub { id: String, cached: Option<PathBuf> },
    /// Nothing at this path, and not a hub id.
    Missing(PathBuf),
}

/// `~/x` to `$HOME/x`; a relative path joined to `base`; `.` parts dropped.
pub(crate) fn resolve_path(written: &str, base: &Path) -> PathBuf {
    let expanded = match written.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(rest)),
        None => None,
    };
    let p = expanded.unwrap_or_else(|| PathBuf::from(written));
    let joined = if p.is_absolute() { p } else { base.join(p) };
    // `a/./b` to `a/b` (`..` is kept: with symbolic links it is not lexical).
    joined.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

/// Classifies a spec. A path that does not exist is taken for a hub id only when it has the `org/name` form,
/// does not look like a path (no leading `/`, `./`, `../`, `~`, no file extension of a checkpoint or text file)
/// and its first part is not an existing directory next to the parameters (`demo/eomt` with a `demo/`
/// directory is a missing local path, not a hub id).
pub(crate) fn locate(written: &str, base: &Path, allow_hub: bool) -> Located {
    let path = resolve_path(written, base);
    if path.exists() {
        return Located::Local(path);
    }
    let pathish = written.starts_with(['/', '.', '~'])
        || [".safetensors", ".pth", ".pt", ".bin", ".json", ".txt", ".yaml"].iter().any(|e| written.ends_with(e))
        || written.split('/').next().is_some_and(|first| base.join(first).is_dir());
    if allow_hub && !pathish && hub::is_hub_id(written) {
        let (id, revision) = hub::split_revision(written);
        let cached = hub::find_in_cache(&hub::cache_dir(), id, revision).ok();
        return Located::Hub { id: written.to_string(), cached };
    }
    Located::Missing(path)
}

/// The header of a safetensors file (tensor names, shapes, metadata), reading only its first `8 + n` bytes, with
/// the loader's own checks ([`crate::checkpoint::header`]); the message does not repeat the path.
pub(crate) fn read_header(path: &Path) -> Result<Header, String> {
    header::read_header(path).map_err(without_path)
}

fn without_path(e: crate::Error) -> String {
    match e {
        crate::Error::Checkpoint { message, .. } => message,
        other => other.to_string(),
    }
}

/// What a linear head checkpoint declares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LinearInfo {
    /// K, the output channels of `conv.weight` [K, C, 1, 1] (None for `.pth` files: not read).
    pub classes: Option<i64>,
    /// C, the input channels.
    pub in_channels: Option<i64>,
    pub layers: Option<LayerSelection>,
}

/// Reads a linear head's header and metadata (embedded `dinoseg.*` keys, then the sidecar `<file>.json`) with
/// the rules of `LinearHead::load`, without its weights.
pub(crate) fn linear_info(path: &Path) -> Result<LinearInfo, String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let mut shape = None;
    let header = match ext.as_str() {
        "safetensors" => {
            let header = read_header(path)?;
            for t in &header.tensors {
                let n = t.name.strip_prefix("module.").unwrap_or(&t.name);
                let n = n.strip_prefix("segmentation_model.1.").unwrap_or(n);
                if n == "conv.weight" || n == "1.weight" {
                    shape = Some(t.shape.clone());
                }
            }
            if shape.is_none() {
                return Err("no `conv.weight` tensor: not a linear head checkpoint".into());
            }
            Some(header)
        }
        "pth" | "pt" | "bin" => None,
        _ => return Err("unrecognised linear head file: expected .safetensors (or an official .pth)".into()),
    };
    // The loader's own metadata reader (embedded keys, then the sidecar, capped and checked the same way).
    let meta = crate::model::heads::linear::read_metadata(path, header.as_ref()).map_err(|e| e.to_string())?;
    match meta.get("head").map(String::as_str) {
        Some("linear") => {}
        Some(other) => return Err(format!("metadata `dinoseg.head` is `{other}`, expected `linear`")),
        None => return Err("no `dinoseg.head` metadata (nor a sidecar .json): not a dinoseg linear head".into()),
    }
    let layers = match meta.get("layers") {
        None => return Err("no `dinoseg.layers` metadata (`4` or `last`)".into()),
        Some(s) => Some(
            LayerSelection::parse(s)
                .ok_or_else(|| format!("metadata `dinoseg.layers` is `{s}`, expected 4 or last"))?,
        ),
    };
    let (classes, in_channels) = match shape.as_deref() {
        Some([k, c, 1, 1]) => (Some(*k), Some(*c)),
        Some(s) => return Err(format!("tensor `conv.weight` has shape {s:?}, expected [K, C, 1, 1]")),
        None => (None, None),
    };
    let named = match meta.get("classes") {
        Some(s) => Some(
            serde_json::from_str::<Vec<String>>(s)
                .map_err(|e| format!("metadata `dinoseg.classes` is not a JSON list of names: {e}"))?
                .len() as i64,
        ),
        None => None,
    };
    if let (Some(k), Some(n)) = (classes, named) {
        if k != n {
            return Err(format!("metadata `dinoseg.classes` names {n} classes but `conv.weight` has {k}"));
        }
    }
    Ok(LinearInfo { classes: classes.or(named), in_channels, layers })
}

/// Whether a transformers directory holds weights (`model.safetensors` or a shard index).
pub(crate) fn has_weights(dir: &Path) -> bool {
    dir.join("model.safetensors").is_file() || dir.join("model.safetensors.index.json").is_file()
}

/// `config.json` of a transformers directory (the crate's own reader, so validation and loading agree: the same
/// bounds; the config is checked against the weights' headers when the model is loaded).
pub(crate) fn model_config(dir: &Path) -> Result<ModelConfig, String> {
    if !dir.join("config.json").is_file() {
        return Err(format!("{} has no config.json: not a transformers checkpoint directory", dir.display()));
    }
    read_model_config(dir).map_err(|e| e.to_string())
}

/// The input channels a linear head reading `layers` of this backbone gets.
pub(crate) fn backbone_channels(cfg: &BackboneConfig, layers: LayerSelection) -> i64 {
    match cfg {
        BackboneConfig::Vit(v) => v.hidden_size * layers.count() as i64,
        BackboneConfig::ConvNext(c) => match layers {
            LayerSelection::Dense4 => c.hidden_sizes.iter().sum(),
            LayerSelection::Last => c.hidden_sizes.last().copied().unwrap_or(0),
        },
    }
}

/// Whether a bare `.safetensors` backbone is in the official names (architecture inferred on load) rather than
/// transformers names (which need a catalog variant).
pub(crate) fn official_names(header: &Header) -> bool {
    header.tensors.iter().map(|t| t.name.as_str()).any(|n| {
        n == "cls_token" || n.starts_with("blocks.") || n.starts_with("stages.") || n.starts_with("downsample_layers.")
    })
}

/// The catalog architecture of a hub id, if it is one of the catalog's published weights.
pub(crate) fn catalog_config(hub_id: &str) -> Option<BackboneConfig> {
    catalog::weights_for_hub_id(hub::split_revision(hub_id).0).map(|(v, _)| v.config())
}

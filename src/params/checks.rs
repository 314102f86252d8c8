//! Cheap checkpoint inspection for validation: where a spec points (file, directory, hub id), a transformers
//! `config.json`, and a safetensors header (the loader's own header reader: 8 + header bytes, never the
//! weights). Nothing here loads a tensor.

use crate::catalog;
use crate::checkpoint::header::{self, Header};
use crate::checkpoint::{hub, read_model_config, ModelConfig};
use crate::model::config::BackboneConfig;
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

/// The catalog architecture of a hub id, if it is one of the catalog's published weights.
pub(crate) fn catalog_config(hub_id: &str) -> Option<BackboneConfig> {
    catalog::weights_for_hub_id(hub::split_revision(hub_id).0).map(|(v, _)| v.config())
}

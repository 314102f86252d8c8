//! Hub ids (`facebook/dinov3-vits16-pretrain-lvd1689m`) through the Hugging Face cache layout
//! (`<cache>/models--ORG--NAME/{refs/REVISION, snapshots/HASH/...}`, as `huggingface_hub` writes it), and a
//! download into that cache when online (feature `hub-download`, `HF_TOKEN` for gated repos). Offline, the
//! error says what is missing and every place that was looked at.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The cache root: `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`, `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var("HF_HUB_CACHE").or_else(|| var("HUGGINGFACE_HUB_CACHE")) {
        return p;
    }
    if let Some(home) = var("HF_HOME") {
        return home.join("hub");
    }
    var("HOME").unwrap_or_else(|| PathBuf::from(".")).join(".cache").join("huggingface").join("hub")
}

/// Whether `spec` looks like a hub repo id (`org/name`, optionally `@revision`) rather than a local path.
pub fn is_hub_id(spec: &str) -> bool {
    let id = spec.split('@').next().unwrap_or(spec);
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        && !Path::new(spec).exists()
}

/// Splits `org/name@revision` (revision defaults to `main`).
pub fn split_revision(spec: &str) -> (&str, &str) {
    match spec.split_once('@') {
        Some((id, rev)) if !rev.is_empty() => (id, rev),
        _ => (spec.trim_end_matches('@'), "main"),
    }
}

/// Finds a complete snapshot (config.json and weights) of `repo_id` at `revision` in `cache`.
/// On failure returns every path that was looked at and what was missing there.
pub fn find_in_cache(cache: &Path, repo_id: &str, revision: &str) -> std::result::Result<PathBuf, Vec<String>> {
    let repo = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    let mut looked = Vec::new();
    if !repo.is_dir() {
        looked.push(format!("{} (no such directory)", repo.display()));
        return Err(looked);
    }
    let is_hash = revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit());
    let hash = if is_hash {
        revision.to_string()
    } else {
        let r = repo.join("refs").join(revision);
        match crate::files::read_text_capped(&r, 4096, "hub ref") {
            Ok(h) => h.trim().to_string(),
            Err(_) => {
                looked.push(format!("{} (no such ref)", r.display()));
                return Err(looked);
            }
        }
    };
    let snap = repo.join("snapshots").join(&hash);
    if !snap.join("config.json").is_file() {
        looked.push(format!("{} (missing)", snap.join("config.json").display()));
    }
    let has_weights = snap.join("model.safetensors").is_file() || shards_complete(&snap);
    if !has_weights {
        looked.push(format!("{} (missing, nor a complete sharded index)", snap.join("model.safetensors").display()));
    }
    if looked.is_empty() {
        Ok(snap)
    } else {
        Err(looked)
    }
}

fn shards_complete(snap: &Path) -> bool {
    let path = snap.join("model.safetensors.index.json");
    let Ok(text) = crate::files::read_text_capped(&path, crate::files::caps::JSON, "shard index") else {
        return false;
    };
    let Ok(index) = crate::checkpoint::index::parse_index(&text, &path) else {
        return false;
    };
    index.shards().iter().all(|f| crate::checkpoint::index::shard_path(snap, f, &path).is_ok_and(|p| p.is_file()))
}

/// Resolves a hub id to a local transformers directory: the cache first, then (unless `HF_HUB_OFFLINE` is
/// set or the `hub-download` feature is off) a download into the cache.
pub fn resolve_hub(spec: &str) -> Result<PathBuf> {
    let (repo_id, revision) = split_revision(spec);
    let cache = cache_dir();
    let looked = match find_in_cache(&cache, repo_id, revision) {
        Ok(dir) => return Ok(dir),
        Err(looked) => looked,
    };
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0");
    let download = if offline { Err("HF_HUB_OFFLINE is set".to_string()) } else { download(&cache, repo_id, revision) };
    match download {
        Ok(dir) => Ok(dir),
        Err(why) => Err(Error::NotFound(format!(
            "hub model `{repo_id}` (revision `{revision}`) is not in the Hugging Face cache {}.\n  looked at:\n    {}\n  \
             download: {why}\n  DINOv3 weights are gated: accept the licence on the hub, set HF_TOKEN, or copy a \
             snapshot into the cache (HF_HUB_CACHE) or pass a local transformers directory.",
            cache.display(),
            looked.join("\n    ")
        ))),
    }
}

#[cfg(feature = "hub-download")]
fn download(cache: &Path, repo_id: &str, revision: &str) -> std::result::Result<PathBuf, String> {
    use hf_hub::{api::sync::ApiBuilder, Repo, RepoType};
    let mut builder = ApiBuilder::new().with_cache_dir(cache.to_path_buf()).with_progress(false);
    if let Ok(token) = std::env::var("HF_TOKEN") {
        builder = builder.with_token(Some(token));
    }
    let api = builder.build().map_err(|e| e.to_string())?;
    let repo = api.repo(Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string()));
    let config = repo.get("config.json").map_err(|e| format!("config.json: {e}"))?;
    if repo.get("model.safetensors").is_err() {
        let index = repo.get("model.safetensors.index.json").map_err(|e| format!("weights: {e}"))?;
        let text = crate::files::read_text_capped(&index, crate::files::caps::JSON, "shard index")
            .map_err(|e| e.to_string())?;
        let parsed = crate::checkpoint::index::parse_index(&text, &index).map_err(|e| e.to_string())?;
        for s in parsed.shards() {
            repo.get(s).map_err(|e| format!("{s}: {e}"))?;
        }
    }
    let _ = repo.get("preprocessor_config.json");
    config.parent().map(Path::to_path_buf).ok_or_else(|| "bad cache path".to_string())
}

#[cfg(not(feature = "hub-download"))]
fn download(_cache: &Path, _repo_id: &str, _revision: &str) -> std::result::Result<PathBuf, String> {
    Err("built without the `hub-download` feature".into())
}

//! `model.safetensors.index.json` of sharded transformers checkpoints: `{"weight_map": {tensor: shard file}}`.
//! Shard names must be plain relative paths inside the model directory: no `..`, no absolute path, and (when
//! opened) no symbolic link leading out of the directory.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Most entries of a weight map.
pub const MAX_ENTRIES: usize = 1_000_000;

/// A checked shard index.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Index {
    /// Tensor name to shard file (relative to the model directory).
    pub weight_map: BTreeMap<String, String>,
}

impl Index {
    /// The distinct shard files, sorted.
    pub fn shards(&self) -> Vec<&str> {
        let mut s: Vec<&str> = self.weight_map.values().map(String::as_str).collect();
        s.sort_unstable();
        s.dedup();
        s
    }
}

fn shorten(s: &str) -> String {
    crate::error::shorten(s, 80)
}

/// Parses the text of an index file (`path` names it in errors).
pub fn parse_index(text: &str, path: &Path) -> Result<Index> {
    let err = |m: String| Error::checkpoint(path, m);
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| err(format!("invalid JSON: {e}")))?;
    let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| err("no `weight_map` object".into()))?;
    if map.len() > MAX_ENTRIES {
        return Err(err(format!("`weight_map` has {} entries, more than {MAX_ENTRIES}", map.len())));
    }
    let mut weight_map = BTreeMap::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| {
            err(format!("`weight_map` entry `{}` is not a file name: {}", shorten(tensor), shorten(&file.to_string())))
        })?;
        check_relative(file)
            .map_err(|m| err(format!("`weight_map` entry `{}` = `{}`: {m}", shorten(tensor), shorten(file))))?;
        weight_map.insert(tensor.clone(), file.to_string());
    }
    Ok(Index { weight_map })
}

/// A shard name must be a relative path of plain names.
fn check_relative(file: &str) -> std::result::Result<(), &'static str> {
    if file.is_empty() {
        return Err("empty file name");
    }
    if file.contains('\0') {
        return Err("NUL in the file name");
    }
    for c in Path::new(file).components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err("`..` leads out of the model directory"),
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute path: shards must be inside the model directory")
            }
        }
    }
    Ok(())
}

/// `dir/file` for a shard of the index `index_path`, after checking that it resolves (links followed) inside
/// `dir`.
pub fn shard_path(dir: &Path, file: &str, index_path: &Path) -> Result<PathBuf> {
    check_relative(file).map_err(|m| Error::checkpoint(index_path, format!("shard `{}`: {m}", shorten(file))))?;
    let path = dir.join(file);
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(Error::checkpoint(&path, format!("no such file (a shard listed in {})", index_path.display())));
    }
    let root = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    let real = path.canonicalize().map_err(|e| Error::io(&path, e))?;
    if !real.starts_with(&root) {
        return Err(Error::checkpoint(
            index_path,
            format!(
                "shard `{}` resolves to {}, outside the model directory {}",
                shorten(file),
                real.display(),
                root.display()
            ),
        ));
    }
    Ok(path)
}

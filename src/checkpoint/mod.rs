//! Checkpoints from every source, never silently wrong: transformers directories (single or sharded
//! safetensors), bare `.safetensors` files with a named variant, hub ids through the Hugging Face cache (and a
//! download when online), and official `.pth` state dicts through conversion. Loading is strict: missing or
//! unexpected tensors and shape mismatches are errors that name every tensor.

pub mod eomt_delta;
pub mod hub;
pub mod official;
pub mod pickle;
pub mod source;

use crate::error::{Error, Result};
use crate::model::config::BackboneConfig;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Tensor};

pub use source::{
    load_backbone, load_model, read_model_config, resolve, LoadedEomt, LoadedModel, ModelConfig, ModelSource,
    ResolvedModel, IGNORED_TENSORS,
};

/// Reads every tensor of a `.safetensors` file.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    if !path.is_file() {
        return Err(Error::checkpoint(path, "no such file"));
    }
    crate::model::guarded(|| Tensor::read_safetensors(path))?
        .map_err(|e| Error::checkpoint(path, format!("not a readable safetensors file: {e}")))
}

/// Reads the weights of a transformers directory: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`.
pub fn read_transformers_weights(dir: &Path) -> Result<Vec<(String, Tensor)>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return read_safetensors(&single);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(Error::checkpoint(
            dir,
            "no weights: expected model.safetensors or model.safetensors.index.json (a .pth or pytorch_model.bin \
             checkpoint must be converted first: `dinoseg convert`)",
        ));
    }
    let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::checkpoint(&index, format!("invalid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::checkpoint(&index, "no `weight_map` object"))?;
    let mut shards: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
    shards.sort_unstable();
    shards.dedup();
    let mut tensors = Vec::new();
    for shard in shards {
        let path = dir.join(shard);
        let part = read_safetensors(&path)?;
        for (name, t) in part {
            match map.get(&name).and_then(|v| v.as_str()) {
                Some(s) if s == shard => tensors.push((name, t)),
                _ => {
                    return Err(Error::checkpoint(
                        &path,
                        format!("tensor `{name}` is not listed for this shard in {}", index.display()),
                    ))
                }
            }
        }
    }
    let found: std::collections::HashSet<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    let lost: Vec<&str> = map.keys().map(String::as_str).filter(|k| !found.contains(k)).collect();
    if !lost.is_empty() {
        return Err(Error::checkpoint(
            &index,
            format!("tensors listed but absent from their shards: {}", lost.join(", ")),
        ));
    }
    Ok(tensors)
}

/// Copies `tensors` into the variables of `vs`, strictly: every variable must be present with the same
/// shape and no tensor may be left over. Tensors named in `ignored` may be absent or extra (buffers such as
/// RoPE periods that the model recomputes). Dtypes are converted to the VarStore's.
pub fn load_weights(vs: &nn::VarStore, tensors: Vec<(String, Tensor)>, source: &Path, ignored: &[&str]) -> Result<()> {
    let mut vars = vs.variables();
    let mut problems = Vec::new();
    let mut matched = Vec::new();
    let mut seen = BTreeMap::new();
    for (name, t) in tensors {
        let name = canonical_name(name);
        if seen.insert(name.clone(), ()).is_some() {
            problems.push(format!("  duplicate tensor `{name}`"));
            continue;
        }
        match vars.remove(&name) {
            Some(var) => {
                if var.size() != t.size() {
                    problems.push(format!(
                        "  shape mismatch `{name}`: checkpoint {:?}, model {:?}",
                        t.size(),
                        var.size()
                    ));
                } else {
                    matched.push((var, t));
                }
            }
            None if ignored.iter().any(|i| name.ends_with(i)) => {}
            None => problems.push(format!("  unexpected tensor `{name}` {:?}", t.size())),
        }
    }
    let mut missing: Vec<_> = vars.into_iter().collect();
    missing.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in missing {
        problems.push(format!("  missing tensor `{name}` {:?}", var.size()));
    }
    if !problems.is_empty() {
        return Err(Error::WeightMismatch { path: source.to_path_buf(), report: problems.join("\n") });
    }
    crate::model::guarded(|| {
        let _g = tch::no_grad_guard();
        for (mut var, t) in matched {
            var.copy_(&t.to_kind(var.kind()));
        }
    })
}

/// transformers keeps `model.layer.N` / `model.stages.N` in memory and writes `layer.N` / `stages.N` to disk
/// (its `conversion_mapping`); both spellings load.
fn canonical_name(name: String) -> String {
    match name.strip_prefix("model.") {
        Some(rest) if rest.starts_with("layer.") || rest.starts_with("stages.") => rest.to_string(),
        _ => name,
    }
}

/// Writes a transformers directory (`config.json` + `model.safetensors`) that `AutoModel.from_pretrained` loads.
pub fn write_transformers_dir(dir: &Path, config: &BackboneConfig, tensors: &[(String, Tensor)]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, config.to_json()).map_err(|e| Error::io(&cfg, e))?;
    write_tensors(&dir.join("model.safetensors"), tensors)
}

/// Writes named tensors to a `.safetensors` file.
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let contiguous: Vec<(String, Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t.contiguous())).collect();
    Tensor::write_safetensors(&contiguous, path).map_err(|e| Error::checkpoint(path, e.to_string()))
}

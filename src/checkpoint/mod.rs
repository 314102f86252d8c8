//! Checkpoints from every source, never silently wrong: transformers directories (single or sharded
//! safetensors), bare `.safetensors` files with a named variant, hub ids through the Hugging Face cache (and a
//! download when online), and official `.pth` state dicts through conversion. Loading is strict: missing or
//! unexpected tensors and shape mismatches are errors that name every tensor.

pub mod consistency;
pub mod eomt_delta;
pub mod header;
pub mod hub;
pub mod index;
pub mod mask2former;
pub mod official;
pub mod pickle;
pub mod source;
pub(crate) mod strided;

use crate::error::{Error, Result};
use crate::model::config::BackboneConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{nn, Tensor};

pub use mask2former::{inspect_mask2former, load_mask2former, LoadedMask2Former, Mask2FormerOptions};
pub use source::{
    inspect_dir, load_backbone, load_model, parse_model_config, read_model_config, resolve, LoadedEomt, LoadedModel,
    ModelConfig, ModelSource, ResolvedModel, IGNORED_TENSORS,
};

/// Reads every tensor of a `.safetensors` file (a regular file), after checking its header (see [`header`]).
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    header::read_tensors(path)
}

/// The weight files of a transformers directory: `model.safetensors` when there is one (of any type: a special
/// file is refused by type), else the shards of `model.safetensors.index.json` (checked to lie inside `dir`),
/// with the index.
pub fn weight_files(dir: &Path) -> Result<WeightFiles> {
    let single = dir.join("model.safetensors");
    if std::fs::symlink_metadata(&single).is_ok() {
        crate::files::check_regular(&single, "checkpoint")?;
        return Ok(WeightFiles { files: vec![single], index: None });
    }
    let index_path = dir.join("model.safetensors.index.json");
    if std::fs::symlink_metadata(&index_path).is_err() {
        return Err(Error::checkpoint(
            dir,
            "no weights: expected model.safetensors or model.safetensors.index.json (a .pth or pytorch_model.bin \
             checkpoint must be converted first: `dinoseg convert`)",
        ));
    }
    let text = crate::files::read_text_capped(&index_path, crate::files::caps::JSON, "shard index")?;
    let index = index::parse_index(&text, &index_path)?;
    let mut files = Vec::new();
    for shard in index.shards() {
        let path = index::shard_path(dir, shard, &index_path)?;
        crate::files::check_regular(&path, "checkpoint shard")?;
        files.push(path);
    }
    Ok(WeightFiles { files, index: Some((index_path, index)) })
}

/// The weight files of a transformers directory (see [`weight_files`]).
pub struct WeightFiles {
    /// Shards in the order of [`index::Index::shards`] (or the one `model.safetensors`).
    pub files: Vec<PathBuf>,
    /// The index file and its contents, for sharded checkpoints.
    pub index: Option<(PathBuf, index::Index)>,
}

/// Names, shapes and dtypes of every tensor of a transformers directory, from the safetensors headers only.
pub fn transformers_tensor_meta(dir: &Path) -> Result<Vec<consistency::TensorMeta>> {
    let files = weight_files(dir)?.files;
    let mut out = Vec::new();
    for f in files {
        out.extend(header_meta(&header::read_header(&f)?, &f));
    }
    Ok(out)
}

/// The tensors of a checked header as [`consistency::TensorMeta`].
pub fn header_meta(h: &header::Header, file: &Path) -> Vec<consistency::TensorMeta> {
    h.tensors
        .iter()
        .map(|t| consistency::TensorMeta {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype.name().to_string(),
            is_float: t.dtype.is_float(),
            file: file.to_path_buf(),
        })
        .collect()
}

/// Reads the weights of a transformers directory: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`.
pub fn read_transformers_weights(dir: &Path) -> Result<Vec<(String, Tensor)>> {
    let WeightFiles { files, index } = weight_files(dir)?;
    let Some((index_path, index)) = index else {
        return files.first().map_or_else(|| Ok(Vec::new()), |f| read_safetensors(f));
    };
    let map = &index.weight_map;
    let mut tensors = Vec::new();
    for (shard, path) in index.shards().into_iter().zip(&files) {
        let part = read_safetensors(path)?;
        for (name, t) in part {
            match map.get(&name) {
                Some(s) if s == shard => tensors.push((name, t)),
                _ => {
                    return Err(Error::checkpoint(
                        path,
                        format!("tensor `{name}` is not listed for this shard in {}", index_path.display()),
                    ))
                }
            }
        }
    }
    let found: std::collections::HashSet<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    let lost: Vec<&str> = map.keys().map(String::as_str).filter(|k| !found.contains(k)).collect();
    if !lost.is_empty() {
        return Err(Error::checkpoint(
            &index_path,
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
            Some(_) if !t.is_floating_point() => problems
                .push(format!("  tensor `{name}` has dtype {:?}; model weights must be floating point", t.kind())),
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
pub(crate) fn canonical_name(name: String) -> String {
    match name.strip_prefix("model.") {
        Some(rest) if rest.starts_with("layer.") || rest.starts_with("stages.") => rest.to_string(),
        _ => name,
    }
}

/// Writes a transformers directory (`config.json` + `model.safetensors`) that `AutoModel.from_pretrained` loads.
pub fn write_transformers_dir(dir: &Path, config: &BackboneConfig, tensors: &[(String, Tensor)]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_tensors(&dir.join("model.safetensors"), tensors)?;
    crate::files::write_atomic(&dir.join("config.json"), config.to_json().as_bytes())
}

/// Writes named tensors to a `.safetensors` file, atomically (a temporary name renamed when complete).
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let contiguous: Vec<(String, Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t.contiguous())).collect();
    let mut out = crate::files::AtomicFile::create(path)?;
    drop(out.take_file());
    Tensor::write_safetensors(&contiguous, out.temp_path()).map_err(|e| Error::checkpoint(path, e.to_string()))?;
    out.commit()?;
    Ok(())
}

/// Refuses outputs of a conversion into `out_dir` that would overwrite one of `inputs` (before anything is
/// written).
pub fn refuse_overwriting_inputs(out_dir: &Path, inputs: &[&Path]) -> Result<()> {
    for name in ["model.safetensors", "config.json"] {
        crate::files::refuse_overwrite(&out_dir.join(name), inputs, "output")?;
    }
    Ok(())
}

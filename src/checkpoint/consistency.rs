//! A config checked against the shapes and dtypes of the checkpoint's tensors (read from headers, no tensor
//! data) before the model is built: the weights say what the model is, and a config that disagrees with them is
//! an error naming the key, its value, the tensor and its shape. With the config's own bounds
//! ([`crate::model::config::VitConfig::validate`]) this keeps a lying config from allocating more than the
//! checkpoint holds.

use crate::checkpoint::source::ModelConfig;
use crate::error::{Error, Result};
use crate::model::config::{BackboneConfig, ConvNextConfig, VitConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Name, shape and dtype name (`F32`, `I32`, or a libtorch kind) of one checkpoint tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorMeta {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: String,
    pub is_float: bool,
    /// The file that holds it.
    pub file: std::path::PathBuf,
}

struct Check<'a> {
    shapes: BTreeMap<String, &'a TensorMeta>,
    config_path: &'a Path,
    origin: &'a Path,
}

impl Check<'_> {
    fn fail(&self, m: String) -> Error {
        Error::Config {
            path: self.config_path.to_path_buf(),
            message: format!("{m} (weights: {})", self.origin.display()),
        }
    }

    /// When the tensor is present, its shape must be `want`; `keys` names the config values that say so.
    fn shape(&self, name: &str, want: &[i64], keys: &str) -> Result<()> {
        match self.shapes.get(name) {
            Some(t) if t.shape != want => Err(self
                .fail(format!("{keys} make tensor `{name}` {want:?}, but the checkpoint's `{name}` is {:?}", t.shape))),
            _ => Ok(()),
        }
    }

    /// Indices N of the tensors `{prefix}N.*`: their count (highest + 1).
    fn count(&self, prefix: &str) -> i64 {
        let found: BTreeSet<i64> =
            self.shapes.keys().filter_map(|k| k.strip_prefix(prefix)?.split('.').next()?.parse().ok()).collect();
        found.last().map_or(0, |l| l + 1)
    }

    fn layers(&self, prefix: &str, key: &str, want: i64) -> Result<()> {
        let have = self.count(prefix);
        if have != want {
            return Err(
                self.fail(format!("`{key}` is {want}, but the checkpoint has {have} of them (tensors `{prefix}N.*`)"))
            );
        }
        Ok(())
    }
}

/// Checks `config` against the tensors of its checkpoint (names as on disk; `model.layer.N` is `layer.N`):
/// dtypes, key shapes, layer counts, and that the config's model is no larger than the checkpoint.
pub fn check_config(config: &ModelConfig, tensors: &[TensorMeta], config_path: &Path, origin: &Path) -> Result<()> {
    let shapes = tensors.iter().map(|t| (crate::checkpoint::canonical_name(t.name.clone()), t)).collect();
    let c = Check { shapes, config_path, origin };
    if let Some(t) = tensors.iter().find(|t| !t.is_float) {
        return Err(Error::checkpoint(
            &t.file,
            format!("tensor `{}` {:?} has dtype {}; model weights must be floating point", t.name, t.shape, t.dtype),
        ));
    }
    let at_least = match config {
        ModelConfig::Backbone(BackboneConfig::Vit(v)) => vit(&c, v, "layer")?,
        ModelConfig::Backbone(BackboneConfig::ConvNext(v)) => convnext(&c, v)?,
        ModelConfig::Eomt(e) => {
            let d = e.vit.hidden_size;
            let base = vit(&c, &e.vit, "layers")?;
            c.shape(
                "query.weight",
                &[e.num_queries, d],
                &format!("`num_queries` {} and `hidden_size` {d}", e.num_queries),
            )?;
            let k = e.num_labels() + 1;
            c.shape(
                "class_predictor.weight",
                &[k, d],
                &format!("{} labels (`id2label`) + 1 and `hidden_size` {d}", k - 1),
            )?;
            c.layers("upscale_block.block.", "num_upscale_blocks", e.num_upscale_blocks)?;
            let (d, q, up) = (d as f64, e.num_queries as f64, e.num_upscale_blocks as f64);
            base + q * d + k as f64 * d + 3.0 * d * d + up * 4.0 * d * d
        }
        ModelConfig::Mask2Former(m) => mask2former(&c, m)?,
    };
    let numel: f64 = tensors.iter().map(|t| t.shape.iter().map(|&d| d as f64).product::<f64>()).sum();
    if at_least > numel {
        return Err(c.fail(format!(
            "the config describes a model of at least {at_least:.0} parameters, the checkpoint holds {numel:.0}"
        )));
    }
    Ok(())
}

/// Checks a ViT config; returns a lower bound of its parameter count.
fn vit(c: &Check, v: &VitConfig, layers: &str) -> Result<f64> {
    let d = v.hidden_size;
    c.shape(
        "embeddings.patch_embeddings.weight",
        &[d, v.num_channels, v.patch_size, v.patch_size],
        &format!("`hidden_size` {d}, `num_channels` {} and `patch_size` {}", v.num_channels, v.patch_size),
    )?;
    c.shape("embeddings.cls_token", &[1, 1, d], &format!("`hidden_size` {d}"))?;
    c.shape(
        "embeddings.register_tokens",
        &[1, v.num_register_tokens, d],
        &format!("`num_register_tokens` {} and `hidden_size` {d}", v.num_register_tokens),
    )?;
    c.layers(&format!("{layers}."), "num_hidden_layers", v.num_hidden_layers)?;
    let up = format!("{layers}.0.mlp.up_proj.weight");
    c.shape(
        &up,
        &[v.intermediate_size, d],
        &format!("`intermediate_size` {} and `hidden_size` {d}", v.intermediate_size),
    )?;
    let gated = c.shapes.contains_key(&format!("{layers}.0.mlp.gate_proj.weight"));
    if c.shapes.contains_key(&up) && gated != v.use_gated_mlp {
        return Err(c.fail(format!(
            "`use_gated_mlp` is {}, but the checkpoint {} `{layers}.0.mlp.gate_proj.weight`",
            v.use_gated_mlp,
            if gated { "has" } else { "has no" }
        )));
    }
    let (d, i, l) = (d as f64, v.intermediate_size as f64, v.num_hidden_layers as f64);
    let ffn = if v.use_gated_mlp { 3.0 } else { 2.0 } * d * i;
    Ok(l * (4.0 * d * d + ffn) + d * (v.num_channels * v.patch_size * v.patch_size) as f64)
}

/// Checks a ConvNeXt config; returns a lower bound of its parameter count.
fn convnext(c: &Check, v: &ConvNextConfig) -> Result<f64> {
    let mut prev = v.num_channels;
    let mut total = 0.0;
    for (i, (&dim, &depth)) in v.hidden_sizes.iter().zip(&v.depths).enumerate() {
        let (name, want, keys) = if i == 0 {
            let keys = format!("`hidden_sizes[0]` {dim} and `num_channels` {prev}");
            ("stages.0.downsample_layers.0.weight".to_string(), vec![dim, prev, 4, 4], keys)
        } else {
            let keys = format!("`hidden_sizes[{i}]` {dim} and `hidden_sizes[{}]` {prev}", i - 1);
            (format!("stages.{i}.downsample_layers.1.weight"), vec![dim, prev, 2, 2], keys)
        };
        c.shape(&name, &want, &keys)?;
        let have = c.count(&format!("stages.{i}.layers."));
        if have != depth {
            return Err(c.fail(format!(
                "`depths[{i}]` is {depth}, but the checkpoint has {have} layers in stage {i} (tensors `stages.{i}.layers.N.*`)"
            )));
        }
        let (d, p) = (dim as f64, prev as f64);
        total += depth as f64 * (49.0 * d + 8.0 * d * d) + d * p * if i == 0 { 16.0 } else { 4.0 };
        prev = dim;
    }
    Ok(total)
}

/// Checks a Mask2Former config (names as the model declares them, see
/// [`crate::model::heads::mask2former::config::canonical_name`]): the backbone's shapes under its prefix, the
/// queries, classes and layer counts of the head; returns a lower bound of its parameter count.
fn mask2former(c: &Check, m: &crate::model::heads::mask2former::config::Mask2FormerConfig) -> Result<f64> {
    use crate::model::heads::mask2former::config::{Form, ADAPTER_VIT, ENCODER};
    let sub = |prefix: &str| Check {
        shapes: c.shapes.iter().filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), *v))).collect(),
        config_path: c.config_path,
        origin: c.origin,
    };
    let backbone = match &m.form {
        Form::ConvNext { backbone, .. } => convnext(&sub(ENCODER), backbone)?,
        Form::Vit { backbone, .. } => vit(&sub(ENCODER), backbone, "layer")?,
        Form::Adapter(a) => vit(&sub(ADAPTER_VIT), &a.vit, "layer")?,
    };
    let h = &m.head;
    let d = h.hidden_dim;
    c.shape(
        "model.transformer_module.queries_embedder.weight",
        &[h.num_queries, d],
        &format!("`num_queries` {} and `hidden_dim` {d}", h.num_queries),
    )?;
    let k = h.num_labels() + 1;
    c.shape("class_predictor.weight", &[k, d], &format!("{} labels (`id2label`) + 1 and `hidden_dim` {d}", k - 1))?;
    c.layers("model.transformer_module.decoder.layers.", "decoder_layers - 1", h.decoder_layers - 1)?;
    c.layers("model.pixel_level_module.decoder.encoder.layers.", "encoder_layers", h.encoder_layers)?;
    let (d, f, q) = (d as f64, h.feature_size as f64, h.num_queries as f64);
    let decoder = (h.decoder_layers - 1) as f64 * (8.0 * d * d + 2.0 * d * h.dim_feedforward as f64);
    let encoder = h.encoder_layers as f64 * (2.0 * f * f + 2.0 * f * h.encoder_feedforward_dim as f64);
    Ok(backbone + 2.0 * q * d + k as f64 * d + decoder + encoder)
}

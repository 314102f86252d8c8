//! The Mask2Former checkpoint forms (see the module doc of [`super`]): a transformers `model_type: mask2former`
//! config.json with a `dinov3_convnext` or `dinov3_vit` `backbone_config` (transformers' `DINOv3ConvNextBackbone`
//! / `DINOv3ViTBackbone`: `out_indices` over the stage names `stem, stage1..N`), or the DINOv3-Mask2former
//! adapter layout (github Carti-97/DINOv3-Mask2former, `models/dinov3_mask2former_base.py`), whose config.json
//! still names a Swin backbone while the weights hold a DINOv3 ViT plus an adapter: that architecture is inferred
//! from the tensor shapes, the tapped blocks come from an option or the variant file's known defaults.

use crate::model::config::{within, ConvNextConfig, VitConfig, MAX_HEADS, MAX_INTERMEDIATE, MAX_LAYERS, MAX_WIDTH};
use crate::model::heads::eomt::{MAX_LABELS, MAX_QUERIES};
use crate::model::heads::mask2former::head::HeadConfig;
use crate::model::FeatureInfo;
use std::collections::BTreeMap;

/// Where the backbone's tensors live.
pub const ENCODER: &str = "model.pixel_level_module.encoder.";
/// The adapter layout's DINOv3 ViT and adapter.
pub const ADAPTER_VIT: &str = "model.pixel_level_module.encoder.model.";
pub const ADAPTER: &str = "model.pixel_level_module.encoder.adapter.";

/// A parsed `model_type: mask2former` checkpoint: the head's config and the backbone form.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask2FormerConfig {
    pub head: HeadConfig,
    pub form: Form,
}

/// The backbone side of a Mask2Former checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Form {
    /// transformers `DINOv3ConvNextBackbone`: raw stage outputs; `out_indices` over `stem` (0, the input pixels)
    /// and `stage1..4` (1..=4). No final norm in the checkpoint.
    ConvNext { backbone: ConvNextConfig, out_indices: Vec<i64> },
    /// transformers `DINOv3ViTBackbone`: index 0 the embeddings, k the output of block k - 1; normed when
    /// `apply_layernorm` (the last index of the model, `num_hidden_layers`, always); prefix tokens dropped.
    Vit { backbone: VitConfig, out_indices: Vec<i64>, apply_layernorm: bool },
    /// The DINOv3-Mask2former adapter layout.
    Adapter(AdapterConfig),
}

/// The DINOv3-Mask2former backbone: a transformers `DINOv3ViTModel` (`encoder.model.*`) whose raw block outputs
/// (`hidden_states[layer + 1]`, prefix tokens dropped) go through `encoder.adapter`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterConfig {
    /// Inferred from the weights.
    pub vit: VitConfig,
    /// 0-based blocks tapped, one per output map.
    pub layers: Vec<i64>,
    /// The adapter's output channels (its `projections.N`), what the head reads.
    pub out_channels: Vec<i64>,
    /// ViTDet simple pyramid (`adapter.resamplers.*`: strides patch/4, /2, 1, x2) rather than 1x1 projections only.
    pub pyramid: bool,
    /// `model_file` of `dinov3_backbone_config.json`, when there is one.
    pub model_file: Option<String>,
}

/// Tapped blocks of the DINOv3-Mask2former repository's published variant files (by file stem).
pub const KNOWN_VARIANTS: &[(&str, [i64; 4])] = &[
    ("mask2former_dinov3_vitsmallplus", [2, 5, 8, 11]),
    ("mask2former_dinov3_vitsmallplus_pyramid", [2, 5, 8, 11]),
    ("mask2former_dinov3_vitlarge", [5, 11, 17, 23]),
    ("mask2former_dinov3_vitlarge_pyramid", [5, 11, 17, 23]),
];

/// The tapped blocks of a known variant file (`models/mask2former_dinov3_vitlarge_pyramid.py`), by its stem.
pub fn known_layers(model_file: &str) -> Option<Vec<i64>> {
    let stem = model_file.rsplit(['/', '\\']).next().unwrap_or(model_file);
    let stem = stem.strip_suffix(".py").unwrap_or(stem);
    KNOWN_VARIANTS.iter().find(|(n, _)| *n == stem).map(|(_, l)| l.to_vec())
}

/// What the adapter form needs besides config.json: tensor shapes by name and the user's options.
pub struct AdapterInputs<'a> {
    /// Every tensor of the checkpoint (canonical names, see [`canonical_name`]) with its shape.
    pub shapes: &'a BTreeMap<String, Vec<i64>>,
    /// `model_file` of `dinov3_backbone_config.json`.
    pub model_file: Option<String>,
    /// Tapped blocks given by the user (wins over the variant file's).
    pub layers: Option<Vec<i64>>,
    /// Attention heads given by the user (the weights cannot tell).
    pub num_heads: Option<i64>,
    /// Infers the head count from the other architecture values when `num_heads` is None.
    pub infer_heads: &'a dyn Fn(&VitConfig) -> Result<i64, String>,
}

impl Mask2FormerConfig {
    /// Whether config.json's `backbone_config` is a DINOv3 one (the transformers forms); otherwise the checkpoint
    /// is read as the adapter layout, which needs the weights' shapes ([`Self::from_json`]'s `adapter`).
    pub fn is_transformers_form(value: &serde_json::Value) -> bool {
        let t = value.get("backbone_config").and_then(|b| b.get("model_type")).and_then(|t| t.as_str());
        matches!(t, Some("dinov3_convnext" | "dinov3_vit"))
    }

    /// Reads config.json (`model_type: mask2former`). The adapter form needs `adapter`; the transformers forms
    /// ignore it. Errors name the key.
    pub fn from_json(value: &serde_json::Value, adapter: Option<&AdapterInputs>) -> Result<Self, String> {
        let head: HeadConfig = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
        let bb = value.get("backbone_config").cloned().unwrap_or(serde_json::Value::Null);
        let bb_type = bb.get("model_type").and_then(|t| t.as_str()).unwrap_or("<missing>");
        let form = match bb_type {
            "dinov3_convnext" => {
                let backbone: ConvNextConfig =
                    serde_json::from_value(bb.clone()).map_err(|e| format!("`backbone_config`: {e}"))?;
                backbone.validate().map_err(|e| format!("`backbone_config`: {e}"))?;
                let out_indices = out_indices(&bb, backbone.depths.len() as i64)?;
                Form::ConvNext { backbone, out_indices }
            }
            "dinov3_vit" => {
                let mut obj = bb.clone();
                if let Some(o) = obj.as_object_mut() {
                    if !o.contains_key("rope_theta") {
                        let theta = o.get("rope_parameters").and_then(|r| r.get("rope_theta")).cloned();
                        o.insert("rope_theta".into(), theta.unwrap_or(serde_json::json!(100.0)));
                    }
                }
                let backbone: VitConfig = serde_json::from_value(obj).map_err(|e| format!("`backbone_config`: {e}"))?;
                backbone.validate().map_err(|e| format!("`backbone_config`: {e}"))?;
                if bb.get("reshape_hidden_states").and_then(|v| v.as_bool()) == Some(false) {
                    return Err(
                        "`backbone_config.reshape_hidden_states` is false: Mask2Former needs feature maps".into()
                    );
                }
                let apply_layernorm = bb.get("apply_layernorm").and_then(|v| v.as_bool()).unwrap_or(true);
                let out_indices = out_indices(&bb, backbone.num_hidden_layers.min(MAX_LAYERS))?;
                Form::Vit { backbone, out_indices, apply_layernorm }
            }
            other => {
                let Some(inputs) = adapter else {
                    return Err(format!(
                        "`backbone_config.model_type` is `{other}`: read as the DINOv3-Mask2former adapter layout, \
                         whose architecture comes from the weights"
                    ));
                };
                Form::Adapter(adapter_config(inputs)?)
            }
        };
        let c = Mask2FormerConfig { head, form };
        c.validate()?;
        Ok(c)
    }

    /// Bounds of every size (before anything is allocated) and the invariants the model relies on.
    pub fn validate(&self) -> Result<(), String> {
        let h = &self.head;
        within("feature_size", h.feature_size, 1, MAX_WIDTH)?;
        within("mask_feature_size", h.mask_feature_size, 1, MAX_WIDTH)?;
        within("hidden_dim", h.hidden_dim, 1, MAX_WIDTH)?;
        within("encoder_feedforward_dim", h.encoder_feedforward_dim, 1, MAX_INTERMEDIATE)?;
        within("dim_feedforward", h.dim_feedforward, 1, MAX_INTERMEDIATE)?;
        within("encoder_layers", h.encoder_layers, 0, MAX_LAYERS)?;
        within("decoder_layers", h.decoder_layers, 1, MAX_LAYERS)?;
        within("num_attention_heads", h.num_attention_heads, 1, MAX_HEADS)?;
        within("num_queries", h.num_queries, 1, MAX_QUERIES)?;
        within("common_stride", h.common_stride, 1, 1024)?;
        if self.head.num_labels() < 1 {
            return Err("`id2label` is empty: the class count is unknown".into());
        }
        within("id2label (class count)", h.num_labels(), 1, MAX_LABELS)?;
        for k in h.id2label.keys() {
            match k.parse::<i64>() {
                Ok(i) if (0..h.num_labels()).contains(&i) => {}
                _ => return Err(format!("`id2label` key `{k}` is not a class id in 0..{}", h.num_labels())),
            }
        }
        let maps = self.feature_channels().len();
        if maps < 3 {
            return Err(format!("the backbone gives {maps} feature map(s); Mask2Former reads at least 3"));
        }
        match &self.form {
            Form::ConvNext { backbone, .. } => backbone.validate(),
            Form::Vit { backbone, .. } => backbone.validate(),
            Form::Adapter(a) => {
                a.vit.validate()?;
                for &l in &a.layers {
                    if !(0..a.vit.num_hidden_layers).contains(&l) {
                        return Err(format!(
                            "`layers` has block {l}, but the DINOv3 ViT has {} blocks (0..{})",
                            a.vit.num_hidden_layers, a.vit.num_hidden_layers
                        ));
                    }
                }
                if a.layers.len() != a.out_channels.len() {
                    return Err(format!(
                        "`layers` names {} blocks ({:?}), but the adapter has {} projections \
                         (`{ADAPTER}projections.N`)",
                        a.layers.len(),
                        a.layers,
                        a.out_channels.len()
                    ));
                }
                for (i, &c) in a.out_channels.iter().enumerate() {
                    within(&format!("{ADAPTER}projections.{i} (out channels)"), c, 1, MAX_WIDTH)?;
                }
                if a.pyramid && (a.out_channels.len() != 4 || (a.vit.hidden_size / 2) % 32 != 0) {
                    return Err(format!(
                        "the pyramid adapter needs 4 maps and hidden_size / 2 divisible by 32 (GroupNorm 32), got {} \
                         maps and hidden_size {}",
                        a.out_channels.len(),
                        a.vit.hidden_size
                    ));
                }
                Ok(())
            }
        }
    }

    /// Channels of the maps the head reads, shallow to deep.
    pub fn feature_channels(&self) -> Vec<i64> {
        match &self.form {
            Form::ConvNext { backbone, out_indices } => out_indices
                .iter()
                .map(|&i| if i == 0 { backbone.num_channels } else { backbone.hidden_sizes[(i - 1) as usize] })
                .collect(),
            Form::Vit { backbone, out_indices, .. } => vec![backbone.hidden_size; out_indices.len()],
            Form::Adapter(a) => a.out_channels.clone(),
        }
    }

    /// Input sides are padded to a multiple of this: 32 for ConvNeXt, twice the patch for the pyramid (its
    /// max-pool halves the patch grid), the patch otherwise.
    pub fn size_multiple(&self) -> i64 {
        match &self.form {
            Form::ConvNext { .. } => 32,
            Form::Vit { backbone, .. } => backbone.patch_size,
            Form::Adapter(a) if a.pyramid => 2 * a.vit.patch_size,
            Form::Adapter(a) => a.vit.patch_size,
        }
    }

    /// Input channels.
    pub fn num_channels(&self) -> i64 {
        match &self.form {
            Form::ConvNext { backbone, .. } => backbone.num_channels,
            Form::Vit { backbone, .. } => backbone.num_channels,
            Form::Adapter(a) => a.vit.num_channels,
        }
    }

    /// The dense levels a linear head trained on the plain DINOv3 backbone can read from this model's backbone
    /// pass: every ViT block (patch tokens after the final norm); ConvNeXt stages 0-2 (raw) only, since the
    /// Mask2Former checkpoint has no final norm for stage 3.
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        match &self.form {
            Form::ConvNext { backbone, .. } => backbone.feature_info().into_iter().take(3).collect(),
            Form::Vit { backbone, .. } => backbone.feature_info(),
            Form::Adapter(a) => a.vit.feature_info(),
        }
    }

    pub fn num_labels(&self) -> i64 {
        self.head.num_labels()
    }

    /// Class names in id order.
    pub fn class_names(&self) -> Vec<String> {
        (0..self.num_labels()).map(|i| self.head.id2label.get(&i.to_string()).cloned().unwrap_or_default()).collect()
    }

    /// A short description of the form (`dinov3_convnext`, `dinov3_vit`, `adapter` / `adapter pyramid`).
    pub fn form_name(&self) -> &'static str {
        match &self.form {
            Form::ConvNext { .. } => "dinov3_convnext",
            Form::Vit { .. } => "dinov3_vit",
            Form::Adapter(a) if a.pyramid => "DINOv3-Mask2former pyramid adapter",
            Form::Adapter(_) => "DINOv3-Mask2former adapter",
        }
    }
}

/// `out_indices` (or `out_features` over `stem, stage1..N`) of a transformers backbone config; transformers'
/// default is the last stage. Strictly increasing, each in 0..=`last`.
fn out_indices(bb: &serde_json::Value, last: i64) -> Result<Vec<i64>, String> {
    let from_indices: Option<Vec<i64>> = match bb.get("out_indices") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| format!("`backbone_config.out_indices`: {e} (expected a list of integers)"))?,
        ),
    };
    let from_features: Option<Vec<i64>> = match bb.get("out_features") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => {
            let names: Vec<String> = serde_json::from_value(v.clone())
                .map_err(|e| format!("`backbone_config.out_features`: {e} (expected a list of stage names)"))?;
            let parse = |n: &String| -> Result<i64, String> {
                if n == "stem" {
                    return Ok(0);
                }
                n.strip_prefix("stage").and_then(|k| k.parse::<i64>().ok()).ok_or_else(|| {
                    format!("`backbone_config.out_features` has `{n}`; expected stem or stage1..stage{last}")
                })
            };
            Some(names.iter().map(parse).collect::<Result<_, _>>()?)
        }
    };
    let idx = match (from_indices, from_features) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!("`backbone_config.out_indices` {a:?} and `out_features` (stages {b:?}) disagree"))
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => vec![last],
    };
    for (i, &v) in idx.iter().enumerate() {
        if !(0..=last).contains(&v) {
            return Err(format!("`backbone_config.out_indices[{i}]` is {v}, expected 0..={last}"));
        }
        if i > 0 && v <= idx[i - 1] {
            return Err(format!("`backbone_config.out_indices` {idx:?} must be strictly increasing"));
        }
    }
    Ok(idx)
}

/// The adapter layout's architecture from the tensor shapes.
fn adapter_config(inputs: &AdapterInputs) -> Result<AdapterConfig, String> {
    let s = inputs.shapes;
    let get = |suffix: &str| s.get(&format!("{ADAPTER_VIT}{suffix}"));
    let need = |suffix: &str, dims: usize| -> Result<&Vec<i64>, String> {
        let name = format!("{ADAPTER_VIT}{suffix}");
        match s.get(&name) {
            Some(v) if v.len() == dims => Ok(v),
            Some(v) => Err(format!("tensor `{name}` has shape {v:?}, expected {dims} dimensions")),
            None => Err(format!(
                "missing tensor `{name}`: the config names no DINOv3 backbone (`backbone_config.model_type`), so the \
                 weights must be the DINOv3-Mask2former adapter layout (`{ADAPTER_VIT}*`, `{ADAPTER}*`)"
            )),
        }
    };
    let pw = need("embeddings.patch_embeddings.weight", 4)?;
    let (d, channels, patch) = (pw[0], pw[1], pw[2]);
    if pw[2] != pw[3] {
        return Err(format!("non-square patches {}x{} are not supported", pw[2], pw[3]));
    }
    let registers = get("embeddings.register_tokens").and_then(|r| r.get(1).copied()).unwrap_or(0);
    let depth = count(s, &format!("{ADAPTER_VIT}layer."));
    if depth == 0 {
        return Err(format!("no transformer blocks (`{ADAPTER_VIT}layer.N.*`)"));
    }
    let gated = get("layer.0.mlp.gate_proj.weight").is_some();
    let intermediate = need("layer.0.mlp.up_proj.weight", 2)?[0];
    let has = |suffix: &str| get(suffix).is_some();
    let mut vit = VitConfig {
        patch_size: patch,
        hidden_size: d,
        intermediate_size: intermediate,
        num_hidden_layers: depth,
        num_attention_heads: 1,
        hidden_act: if gated { "silu" } else { "gelu" }.into(),
        layer_norm_eps: 1e-5,
        rope_theta: 100.0,
        image_size: 224,
        num_channels: channels,
        query_bias: has("layer.0.attention.q_proj.bias"),
        key_bias: has("layer.0.attention.k_proj.bias"),
        value_bias: has("layer.0.attention.v_proj.bias"),
        proj_bias: has("layer.0.attention.o_proj.bias"),
        mlp_bias: has("layer.0.mlp.up_proj.bias"),
        layerscale_value: 1.0,
        use_gated_mlp: gated,
        num_register_tokens: registers,
    };
    within(&format!("{ADAPTER_VIT}embeddings.patch_embeddings.weight (hidden size)"), d, 1, MAX_WIDTH)?;
    vit.num_attention_heads = match inputs.num_heads {
        Some(h) => {
            if h <= 0 || d % h != 0 {
                return Err(format!("`num_heads` {h} does not divide the hidden size {d}"));
            }
            h
        }
        None => (inputs.infer_heads)(&vit)?,
    };
    let n = count(s, &format!("{ADAPTER}projections."));
    let mut out_channels = Vec::new();
    for i in 0..n {
        let name = format!("{ADAPTER}projections.{i}.weight");
        match s.get(&name) {
            Some(v) if v.len() == 4 => out_channels.push(v[0]),
            Some(v) => return Err(format!("tensor `{name}` has shape {v:?}, expected a 1x1 conv [out, in, 1, 1]")),
            None => return Err(format!("missing tensor `{name}`")),
        }
    }
    if n == 0 {
        return Err(format!("no adapter projections (`{ADAPTER}projections.N.*`)"));
    }
    let pyramid = s.keys().any(|k| k.starts_with(&format!("{ADAPTER}resamplers.")));
    let model_file = inputs.model_file.clone();
    let layers = match (&inputs.layers, model_file.as_deref().and_then(known_layers)) {
        (Some(l), _) => l.clone(),
        (None, Some(l)) => l,
        (None, None) => {
            return Err(format!(
                "the DINOv3-Mask2former checkpoint does not say which blocks its adapter taps ({}): set `layers` \
                 (the blocks the adapter taps, e.g. [2, 5, 8, 11])",
                match &model_file {
                    Some(f) => format!("dinov3_backbone_config.json names `{f}`, not a known variant file"),
                    None => "no dinov3_backbone_config.json `model_file`".into(),
                }
            ))
        }
    };
    Ok(AdapterConfig { vit, layers, out_channels, pyramid, model_file })
}

/// Indices N of the names `{prefix}N.*`: their count (highest + 1), capped.
fn count(s: &BTreeMap<String, Vec<i64>>, prefix: &str) -> i64 {
    s.keys()
        .filter_map(|k| k.strip_prefix(prefix)?.split('.').next()?.parse::<i64>().ok())
        .filter(|&i| i < MAX_LAYERS)
        .max()
        .map_or(0, |m| m + 1)
}

/// The spelling of a backbone tensor name our model declares, for a checkpoint of `form`: transformers writes
/// the nested backbones' `model.stages` / `model.layer` as `stages` / `layer` (its `conversion_mapping`), while a
/// model saved without it keeps them; both load.
pub fn canonical_name(name: &str, adapter: bool) -> String {
    let rewrite = |from: &str, to: &str| name.strip_prefix(from).map(|rest| format!("{to}{rest}"));
    let r = if adapter {
        rewrite("model.pixel_level_module.encoder.model.model.layer.", "model.pixel_level_module.encoder.model.layer.")
    } else {
        rewrite("model.pixel_level_module.encoder.model.stages.", "model.pixel_level_module.encoder.stages.").or_else(
            || rewrite("model.pixel_level_module.encoder.model.layer.", "model.pixel_level_module.encoder.layer."),
        )
    };
    r.unwrap_or_else(|| name.to_string())
}

//! Architecture configs in transformers' `config.json` vocabulary (`dinov3_vit`, `dinov3_convnext`), so a
//! transformers directory is read and written without translation. Defaults are transformers' defaults.

use crate::model::FeatureInfo;
use serde::{Deserialize, Deserializer, Serialize};

/// `model_type: dinov3_vit` (transformers `DINOv3ViTConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    #[serde(default = "d::patch", deserialize_with = "square")]
    pub patch_size: i64,
    #[serde(default = "d::hidden")]
    pub hidden_size: i64,
    #[serde(default = "d::intermediate")]
    pub intermediate_size: i64,
    #[serde(default = "d::layers")]
    pub num_hidden_layers: i64,
    #[serde(default = "d::heads")]
    pub num_attention_heads: i64,
    #[serde(default = "d::gelu")]
    pub hidden_act: String,
    #[serde(default = "d::eps5")]
    pub layer_norm_eps: f64,
    #[serde(default = "d::rope")]
    pub rope_theta: f64,
    #[serde(default = "d::image", deserialize_with = "square")]
    pub image_size: i64,
    #[serde(default = "d::channels")]
    pub num_channels: i64,
    #[serde(default = "d::yes")]
    pub query_bias: bool,
    #[serde(default)]
    pub key_bias: bool,
    #[serde(default = "d::yes")]
    pub value_bias: bool,
    #[serde(default = "d::yes")]
    pub proj_bias: bool,
    #[serde(default = "d::yes")]
    pub mlp_bias: bool,
    #[serde(default = "d::one")]
    pub layerscale_value: f64,
    #[serde(default)]
    pub use_gated_mlp: bool,
    #[serde(default)]
    pub num_register_tokens: i64,
}

/// `model_type: dinov3_convnext` (transformers `DINOv3ConvNextConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvNextConfig {
    #[serde(default = "d::channels")]
    pub num_channels: i64,
    #[serde(default = "d::convnext_sizes")]
    pub hidden_sizes: Vec<i64>,
    #[serde(default = "d::convnext_depths")]
    pub depths: Vec<i64>,
    #[serde(default = "d::gelu")]
    pub hidden_act: String,
    #[serde(default = "d::eps6")]
    pub layer_norm_eps: f64,
    #[serde(default = "d::eps6")]
    pub layer_scale_init_value: f64,
    #[serde(default = "d::image", deserialize_with = "square")]
    pub image_size: i64,
}

/// A backbone architecture, tagged by transformers' `model_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model_type")]
pub enum BackboneConfig {
    #[serde(rename = "dinov3_vit")]
    Vit(VitConfig),
    #[serde(rename = "dinov3_convnext")]
    ConvNext(ConvNextConfig),
}

impl VitConfig {
    pub fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }
    /// Every block's output, after the final norm: `hidden_size` channels at stride `patch_size` (at most
    /// [`MAX_LAYERS`] blocks, so that an unchecked config cannot make it allocate).
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        let depth = usize::try_from(self.num_hidden_layers.clamp(0, MAX_LAYERS)).unwrap_or(0);
        (0..depth).map(|index| FeatureInfo { index, channels: self.hidden_size, stride: self.patch_size }).collect()
    }
    /// Checks the invariants the model relies on and sane bounds (a config is checked before anything is
    /// allocated for it); the message names the offending key and echoes its value.
    pub fn validate(&self) -> Result<(), String> {
        within("hidden_size", self.hidden_size, 1, MAX_WIDTH)?;
        within("num_attention_heads", self.num_attention_heads, 1, MAX_HEADS)?;
        within("num_hidden_layers", self.num_hidden_layers, 1, MAX_LAYERS)?;
        within("intermediate_size", self.intermediate_size, 1, MAX_INTERMEDIATE)?;
        within("patch_size", self.patch_size, 1, MAX_PATCH)?;
        within("num_channels", self.num_channels, 1, MAX_CHANNELS)?;
        within("image_size", self.image_size, 1, MAX_IMAGE)?;
        within("num_register_tokens", self.num_register_tokens, 0, MAX_REGISTERS)?;
        positive("layer_norm_eps", self.layer_norm_eps)?;
        positive("rope_theta", self.rope_theta)?;
        finite("layerscale_value", self.layerscale_value)?;
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(format!(
                "`hidden_size` {} is not divisible by `num_attention_heads` {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.head_dim() % 4 != 0 {
            return Err(format!("head dim {} must be a multiple of 4 for axial RoPE", self.head_dim()));
        }
        crate::model::layers::Activation::parse(&self.hidden_act).map(|_| ())
    }
}

/// Bounds of config values: far above any published model, far below what exhausts memory by itself.
pub const MAX_WIDTH: i64 = 16_384;
pub const MAX_HEADS: i64 = 1_024;
pub const MAX_LAYERS: i64 = 1_024;
pub const MAX_INTERMEDIATE: i64 = 131_072;
pub const MAX_PATCH: i64 = 1_024;
pub const MAX_CHANNELS: i64 = 64;
pub const MAX_IMAGE: i64 = 16_384;
pub const MAX_REGISTERS: i64 = 1_024;

/// `key` must be in `lo..=hi`.
pub fn within(key: &str, v: i64, lo: i64, hi: i64) -> Result<(), String> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(format!("`{key}` is {v}, expected {lo}..={hi}"))
    }
}

/// `key` must be a finite number > 0.
pub fn positive(key: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("`{key}` is {v}, expected a finite number > 0"))
    }
}

fn finite(key: &str, v: f64) -> Result<(), String> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(format!("`{key}` is {v}, expected a finite number"))
    }
}

impl ConvNextConfig {
    /// Every stage's output (the last one after the final norm): `hidden_sizes[i]` channels at stride `4 << i`.
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        let stride = |i: usize| u32::try_from(i).ok().and_then(|i| 4i64.checked_shl(i)).unwrap_or(i64::MAX);
        self.hidden_sizes
            .iter()
            .enumerate()
            .map(|(index, &channels)| FeatureInfo { index, channels, stride: stride(index) })
            .collect()
    }
    pub fn validate(&self) -> Result<(), String> {
        if self.hidden_sizes.len() != 4 || self.depths.len() != 4 {
            return Err(format!(
                "`hidden_sizes` and `depths` must have 4 entries, got {} and {}",
                self.hidden_sizes.len(),
                self.depths.len()
            ));
        }
        within("num_channels", self.num_channels, 1, MAX_CHANNELS)?;
        within("image_size", self.image_size, 1, MAX_IMAGE)?;
        for (i, (&w, &d)) in self.hidden_sizes.iter().zip(&self.depths).enumerate() {
            within(&format!("hidden_sizes[{i}]"), w, 1, MAX_WIDTH)?;
            within(&format!("depths[{i}]"), d, 0, MAX_LAYERS)?;
        }
        positive("layer_norm_eps", self.layer_norm_eps)?;
        finite("layer_scale_init_value", self.layer_scale_init_value)?;
        crate::model::layers::Activation::parse(&self.hidden_act).map(|_| ())
    }
}

impl BackboneConfig {
    pub fn model_type(&self) -> &'static str {
        match self {
            BackboneConfig::Vit(_) => "dinov3_vit",
            BackboneConfig::ConvNext(_) => "dinov3_convnext",
        }
    }
    /// The transformers class that loads this config (`architectures` in config.json).
    pub fn architecture(&self) -> &'static str {
        match self {
            BackboneConfig::Vit(_) => "DINOv3ViTModel",
            BackboneConfig::ConvNext(_) => "DINOv3ConvNextModel",
        }
    }
    /// The feature levels a head can read, shallow to deep (ViT blocks, ConvNeXt stages), from the config alone,
    /// like timm's `feature_info` and transformers' `Backbone` stages. The official dense layers are
    /// [`crate::catalog::dense_layers`] over them; which a head reads is
    /// [`crate::model::heads::linear::LinearHeadConfig::select`].
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        match self {
            BackboneConfig::Vit(c) => c.feature_info(),
            BackboneConfig::ConvNext(c) => c.feature_info(),
        }
    }
    pub fn validate(&self) -> Result<(), String> {
        match self {
            BackboneConfig::Vit(c) => c.validate(),
            BackboneConfig::ConvNext(c) => c.validate(),
        }
    }
    /// config.json text as transformers writes it (with `architectures`).
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("architectures".into(), serde_json::json!([self.architecture()]));
        }
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

/// transformers accepts `patch_size`/`image_size` as an int or a pair; we need square values.
fn square<'de, D: Deserializer<'de>>(de: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrPair {
        Int(i64),
        Pair(Vec<i64>),
    }
    match IntOrPair::deserialize(de)? {
        IntOrPair::Int(v) => Ok(v),
        IntOrPair::Pair(p) if p.len() == 2 && p[0] == p[1] => Ok(p[0]),
        IntOrPair::Pair(p) => Err(serde::de::Error::custom(format!("expected a square size, got {p:?}"))),
    }
}

mod d {
    pub fn patch() -> i64 {
        16
    }
    pub fn hidden() -> i64 {
        384
    }
    pub fn intermediate() -> i64 {
        1536
    }
    pub fn layers() -> i64 {
        12
    }
    pub fn heads() -> i64 {
        6
    }
    pub fn gelu() -> String {
        "gelu".into()
    }
    pub fn eps5() -> f64 {
        1e-5
    }
    pub fn eps6() -> f64 {
        1e-6
    }
    pub fn rope() -> f64 {
        100.0
    }
    pub fn image() -> i64 {
        224
    }
    pub fn channels() -> i64 {
        3
    }
    pub fn yes() -> bool {
        true
    }
    pub fn one() -> f64 {
        1.0
    }
    pub fn convnext_sizes() -> Vec<i64> {
        vec![96, 192, 384, 768]
    }
    pub fn convnext_depths() -> Vec<i64> {
        vec![3, 3, 9, 3]
    }
}

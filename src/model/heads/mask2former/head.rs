//! The Mask2Former head: a pixel decoder (a multi-scale deformable-attention encoder over the last three feature
//! maps, then an FPN lateral path to the mask features), the masked-attention transformer decoder, and the class
//! and mask predictors. It follows transformers' `Mask2FormerForUniversalSegmentation`
//! (`models/mask2former/modeling_mask2former.py`) name for name, inference path only: [`pixel_decoder`] is
//! `Mask2FormerPixelDecoder` (with the pure-PyTorch multi-scale deformable attention), [`decoder`] is
//! `Mask2FormerTransformerModule`.

mod decoder;
mod pixel_decoder;

use crate::model::layers::{linear, Activation};
use decoder::TransformerModule;
use pixel_decoder::PixelDecoder;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

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

/// Bounds of the head's config values (besides the backbone's, in `model::config`).
pub const MAX_QUERIES: i64 = 10_000;
pub const MAX_LABELS: i64 = 100_000;
pub const MAX_STRIDE: i64 = 1_024;

impl HeadConfig {
    /// The class count (without "no object").
    pub fn num_labels(&self) -> i64 {
        self.id2label.len() as i64
    }

    /// Checks every value the head's shapes depend on; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        use crate::model::config::{within, MAX_HEADS, MAX_INTERMEDIATE, MAX_LAYERS, MAX_WIDTH};
        within("feature_size", self.feature_size, 32, MAX_WIDTH)?;
        if self.feature_size % 32 != 0 {
            return Err(format!("`feature_size` is {}, expected a multiple of 32 (GroupNorm(32))", self.feature_size));
        }
        within("mask_feature_size", self.mask_feature_size, 1, MAX_WIDTH)?;
        within("hidden_dim", self.hidden_dim, 4, MAX_WIDTH)?;
        if self.hidden_dim % 4 != 0 {
            return Err(format!(
                "`hidden_dim` is {}, expected a multiple of 4 (sine position embedding of hidden_dim / 2 features)",
                self.hidden_dim
            ));
        }
        within("num_attention_heads", self.num_attention_heads, 1, MAX_HEADS)?;
        for (key, v) in [("feature_size", self.feature_size), ("hidden_dim", self.hidden_dim)] {
            if v % self.num_attention_heads != 0 {
                return Err(format!(
                    "`num_attention_heads` ({}) does not divide `{key}` ({v})",
                    self.num_attention_heads
                ));
            }
        }
        within("encoder_feedforward_dim", self.encoder_feedforward_dim, 1, MAX_INTERMEDIATE)?;
        within("dim_feedforward", self.dim_feedforward, 1, MAX_INTERMEDIATE)?;
        within("encoder_layers", self.encoder_layers, 0, MAX_LAYERS)?;
        within("decoder_layers", self.decoder_layers, 1, MAX_LAYERS)?;
        within("num_queries", self.num_queries, 1, MAX_QUERIES)?;
        within("common_stride", self.common_stride, 1, MAX_STRIDE)?;
        if self.feature_strides.is_empty() {
            return Err("`feature_strides` is empty".into());
        }
        for &s in &self.feature_strides {
            within("feature_strides", s, 1, MAX_STRIDE)?;
        }
        Activation::parse(&self.activation_function).map_err(|_| {
            format!(
                "unsupported `activation_function` `{}` (expected relu, gelu, gelu_new, gelu_pytorch_tanh or silu)",
                self.activation_function
            )
        })?;
        if self.num_labels() < 1 {
            return Err("`id2label` is empty: the class count is unknown".into());
        }
        within("id2label (class count)", self.num_labels(), 1, MAX_LABELS)?;
        for k in self.id2label.keys() {
            match k.parse::<i64>() {
                Ok(i) if (0..self.num_labels()).contains(&i) => {}
                _ => return Err(format!("`id2label` key `{k}` is not a class id in 0..{}", self.num_labels())),
            }
        }
        Ok(())
    }

    /// transformers' `num_fpn_levels`: `int(log2(min of the last three feature_strides) - log2(common_stride))`,
    /// the number of shallow maps the FPN path adds below the deformable encoder's three.
    pub fn num_fpn_levels(&self) -> i64 {
        let last3 = &self.feature_strides[self.feature_strides.len().saturating_sub(3)..];
        let min = last3.iter().copied().min().unwrap_or(1).max(1);
        ((min as f64).log2() - (self.common_stride.max(1) as f64).log2()).trunc() as i64
    }
}

/// A `Conv2d` (`.0`) then `GroupNorm(32)` (`.1`), as transformers' `nn.Sequential` of the two.
pub(crate) struct ConvNorm {
    conv: nn::Conv2D,
    norm: nn::GroupNorm,
}

impl ConvNorm {
    pub(crate) fn new(p: &nn::Path, cin: i64, cout: i64, k: i64, bias: bool) -> Self {
        let cfg = nn::ConvConfig { bias, padding: k / 2, ..Default::default() };
        ConvNorm {
            conv: nn::conv2d(p / "0", cin, cout, k, cfg),
            norm: nn::group_norm(p / "1", 32, cout, Default::default()),
        }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        self.norm.forward(&self.conv.forward(x))
    }
}

/// transformers' `Mask2FormerSinePositionEmbedding` with `normalize=True`, no mask (the arange form, eps 1e-6,
/// scale 2 pi, temperature 10000), for an `h` x `w` map: `[h * w, 2 * num_feats]` (y features first), computed in
/// f32 and returned in `kind`.
pub(crate) fn sine_position_embedding(h: i64, w: i64, num_feats: i64, kind: Kind, device: Device) -> Tensor {
    let opts = (Kind::Float, device);
    let scale = 2.0 * std::f64::consts::PI;
    let y = Tensor::arange_start(1, h + 1, opts) / (h as f64 + 1e-6) * scale;
    let x = Tensor::arange_start(1, w + 1, opts) / (w as f64 + 1e-6) * scale;
    let exponent = Tensor::arange(num_feats, opts).floor_divide_scalar(2) * 2.0 / num_feats as f64;
    let dim_t = Tensor::pow_scalar(10000.0, &exponent);
    // [n, num_feats] with sin on even and cos on odd features (their dim_t pairs are equal).
    let embed = |v: &Tensor| {
        let pos = v.unsqueeze(1) / dim_t.unsqueeze(0);
        let n = pos.size()[0];
        let sin = pos.slice(1, 0, num_feats, 2).sin();
        let cos = pos.slice(1, 1, num_feats, 2).cos();
        Tensor::stack(&[sin, cos], 2).reshape([n, num_feats])
    };
    let (ey, ex) = (embed(&y), embed(&x));
    let ey = ey.unsqueeze(1).expand([h, w, num_feats], false);
    let ex = ex.unsqueeze(0).expand([h, w, num_feats], false);
    Tensor::cat(&[ey, ex], 2).reshape([h * w, 2 * num_feats]).to_kind(kind)
}

/// The Mask2Former head on a list of backbone feature maps.
pub struct Mask2FormerHead {
    pub config: HeadConfig,
    pixel_decoder: PixelDecoder,
    transformer: TransformerModule,
    class_predictor: nn::Linear,
}

impl Mask2FormerHead {
    /// Declares every parameter under transformers' names, `p` being the model's root:
    /// `model.pixel_level_module.decoder.*`, `model.transformer_module.*`, `class_predictor.*`.
    /// `feature_channels`: the channels of the backbone's feature maps, shallow to deep (at least 3).
    pub fn new(p: &nn::Path, config: &HeadConfig, feature_channels: &[i64]) -> Result<Self, String> {
        config.validate()?;
        if feature_channels.len() < 3 {
            return Err(format!(
                "the Mask2Former head needs at least 3 backbone feature maps, the backbone gives {}",
                feature_channels.len()
            ));
        }
        for &c in feature_channels {
            crate::model::config::within("feature channels", c, 1, crate::model::config::MAX_WIDTH)?;
        }
        let fpn = config.num_fpn_levels();
        if !(0..=feature_channels.len() as i64).contains(&fpn) {
            return Err(format!(
                "`feature_strides` {:?} with `common_stride` {} give {fpn} FPN levels, expected 0..={} (the \
                 backbone's map count)",
                config.feature_strides,
                config.common_stride,
                feature_channels.len()
            ));
        }
        let model = p / "model";
        let pixel_decoder = PixelDecoder::new(&(&model / "pixel_level_module" / "decoder"), config, feature_channels);
        let transformer = TransformerModule::new(&(&model / "transformer_module"), config)?;
        let class_predictor = linear(p / "class_predictor", config.hidden_dim, config.num_labels() + 1, true);
        Ok(Mask2FormerHead { config: config.clone(), pixel_decoder, transformer, class_predictor })
    }

    /// `features`: the backbone's maps, shallow to deep, NCHW, as many as `feature_channels` in [`Self::new`].
    /// Returns the last decoder layer's `(class_queries_logits [B, Q, K + 1], masks_queries_logits [B, Q, h, w])`,
    /// as transformers gives them (`h`, `w`: the size of the shallowest map the FPN path reaches).
    pub fn forward(&self, features: &[Tensor]) -> (Tensor, Tensor) {
        let (multi_scale, mask_features) = self.pixel_decoder.forward(features);
        let (queries, masks) = self.transformer.forward(&multi_scale, &mask_features);
        (self.class_predictor.forward(&queries), masks)
    }
}

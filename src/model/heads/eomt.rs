//! EoMT, the encoder-only mask transformer (Kerssies et al., "Your ViT is Secretly an Image Segmentation Model",
//! CVPR 2025), on our DINOv3 ViT, following transformers' `EomtDinov3ForUniversalSegmentation` name for name:
//! learned queries are prepended to the tokens before the last `num_blocks` layers; in those layers, when
//! `attn_mask_probs[i] > 0`, query-to-patch attention is restricted to the query's current mask prediction;
//! after the last layer a class head on the queries, a mask MLP on the queries and up-scaling blocks on the patch
//! grid give `masks = query embeddings x pixel embeddings` at stride 4.
//!
//! Unlike transformers (whose grid is fixed by `image_size`), any input whose sides are multiples of 16 runs at
//! its own size; other sizes are padded. For `0 < attn_mask_probs[i] < 1`, transformers drops the mask of random
//! queries (a training device); we apply it to every query, deterministically.

use crate::model::config::VitConfig;
use crate::model::layers::{layer_norm, layer_norm_channels_first, linear, Activation};
use crate::model::rope::Rope;
use crate::model::vit::{Vit, VitNames};
use crate::model::Padding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// `model_type: eomt_dinov3` (transformers `EomtDinov3Config`), the parts inference needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EomtConfig {
    #[serde(flatten)]
    pub vit: VitConfig,
    #[serde(default = "d_queries")]
    pub num_queries: i64,
    /// Layers (at the end) that see the queries.
    #[serde(default = "d_blocks")]
    pub num_blocks: i64,
    #[serde(default = "d_upscale")]
    pub num_upscale_blocks: i64,
    /// Class names by id (`"0": "person"`); its size is the class count (without "no object").
    #[serde(default)]
    pub id2label: BTreeMap<String, String>,
}

/// Bounds of the EoMT-specific config values (see `model::config` for the ViT's).
pub const MAX_QUERIES: i64 = 10_000;
pub const MAX_UPSCALE: i64 = 8;
pub const MAX_LABELS: i64 = 100_000;

fn d_queries() -> i64 {
    200
}
fn d_blocks() -> i64 {
    4
}
fn d_upscale() -> i64 {
    2
}

impl EomtConfig {
    /// Reads config.json text: `rope_parameters.rope_theta` and EoMT's default LayerNorm eps (1e-6) are honoured.
    pub fn from_json(value: serde_json::Value) -> Result<Self, String> {
        let mut value = value;
        if let Some(obj) = value.as_object_mut() {
            if !obj.contains_key("rope_theta") {
                let theta = obj.get("rope_parameters").and_then(|r| r.get("rope_theta")).cloned();
                obj.insert("rope_theta".into(), theta.unwrap_or(serde_json::json!(100.0)));
            }
            obj.entry("layer_norm_eps").or_insert(serde_json::json!(1e-6));
            obj.entry("image_size").or_insert(serde_json::json!(640));
        }
        let c: EomtConfig = serde_json::from_value(value).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.vit.validate()?;
        if self.num_blocks < 1 || self.num_blocks > self.vit.num_hidden_layers {
            return Err(format!(
                "`num_blocks` {} must be in 1..={} (`num_hidden_layers`)",
                self.num_blocks, self.vit.num_hidden_layers
            ));
        }
        crate::model::config::within("num_queries", self.num_queries, 1, MAX_QUERIES)?;
        crate::model::config::within("num_upscale_blocks", self.num_upscale_blocks, 0, MAX_UPSCALE)?;
        if self.num_labels() < 1 {
            return Err("`id2label` is empty: the class count is unknown".into());
        }
        crate::model::config::within("id2label (class count)", self.num_labels(), 1, MAX_LABELS)?;
        for k in self.id2label.keys() {
            match k.parse::<i64>() {
                Ok(i) if (0..self.num_labels()).contains(&i) => {}
                _ => return Err(format!("`id2label` key `{k}` is not a class id in 0..{}", self.num_labels())),
            }
        }
        Ok(())
    }

    pub fn num_labels(&self) -> i64 {
        self.id2label.len() as i64
    }

    /// The feature levels its encoder gives other heads (every block, as a plain ViT's: see
    /// [`VitConfig::feature_info`]); [`Eomt::forward_with_features`] computes them.
    pub fn feature_info(&self) -> Vec<crate::model::FeatureInfo> {
        self.vit.feature_info()
    }

    /// Class names in id order.
    pub fn class_names(&self) -> Vec<String> {
        (0..self.num_labels()).map(|i| self.id2label.get(&i.to_string()).cloned().unwrap_or_default()).collect()
    }

    /// config.json text as transformers writes it.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("model_type".into(), serde_json::json!("eomt_dinov3"));
            o.insert("architectures".into(), serde_json::json!(["EomtDinov3ForUniversalSegmentation"]));
            let theta = o.remove("rope_theta").unwrap_or(serde_json::json!(100.0));
            o.insert("rope_parameters".into(), serde_json::json!({"rope_theta": theta, "rope_type": "default"}));
            let label2id: serde_json::Map<String, serde_json::Value> = self
                .id2label
                .iter()
                .map(|(k, v)| (v.clone(), serde_json::json!(k.parse::<i64>().unwrap_or(0))))
                .collect();
            o.insert("label2id".into(), serde_json::Value::Object(label2id));
        }
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

struct ScaleLayer {
    conv1: nn::ConvTranspose2D,
    conv2: nn::Conv2D,
    norm: nn::LayerNorm,
}

/// Raw EoMT outputs, as transformers names them.
#[derive(Debug)]
pub struct EomtOutput {
    /// [B, Q, K + 1]; the last class is "no object".
    pub class_queries_logits: Tensor,
    /// [B, Q, H / 4, W / 4] over the padded input.
    pub masks_queries_logits: Tensor,
}

/// The EoMT model: a DINOv3 ViT in EoMT's parameter layout plus the query, class, mask and up-scaling heads.
pub struct Eomt {
    pub config: EomtConfig,
    pub vit: Vit,
    act: Activation,
    query: Tensor,
    class_predictor: nn::Linear,
    mask_head: [nn::Linear; 3],
    upscale: Vec<ScaleLayer>,
    attn_mask_probs: Tensor,
}

impl Eomt {
    /// Declares every parameter under transformers' names (`embeddings.*`, `layers.N.*`, `layernorm.*`,
    /// `query.weight`, `class_predictor.*`, `mask_head.fc{1,2,3}.*`, `upscale_block.block.N.*`, `attn_mask_probs`).
    pub fn new(p: &nn::Path, config: &EomtConfig) -> Result<Self, String> {
        config.validate()?;
        let d = config.vit.hidden_size;
        let vit = Vit::with_names(p, &config.vit, VitNames::EOMT)?;
        let query = (p / "query").zeros("weight", &[config.num_queries, d]);
        let class_predictor = linear(p / "class_predictor", d, config.num_labels() + 1, true);
        let mh = p / "mask_head";
        let mask_head =
            [linear(&mh / "fc1", d, d, true), linear(&mh / "fc2", d, d, true), linear(&mh / "fc3", d, d, true)];
        let up = p / "upscale_block" / "block";
        let upscale = (0..config.num_upscale_blocks)
            .map(|i| {
                let b = &up / i;
                ScaleLayer {
                    conv1: nn::conv_transpose2d(
                        &b / "conv1",
                        d,
                        d,
                        2,
                        nn::ConvTransposeConfig { stride: 2, ..Default::default() },
                    ),
                    conv2: nn::conv2d(
                        &b / "conv2",
                        d,
                        d,
                        3,
                        nn::ConvConfig { padding: 1, groups: d, bias: false, ..Default::default() },
                    ),
                    // EomtLayerNorm2d's eps is fixed at 1e-6 whatever the config says.
                    norm: layer_norm(&b / "layernorm2d", d, 1e-6),
                }
            })
            .collect();
        let attn_mask_probs = p.zeros_no_train("attn_mask_probs", &[config.num_blocks]);
        Ok(Eomt {
            config: config.clone(),
            act: Activation::parse(&config.vit.hidden_act)?,
            vit,
            query,
            class_predictor,
            mask_head,
            upscale,
            attn_mask_probs,
        })
    }

    /// Class and mask logits from normed tokens [B, Q + prefix + hp*wp, D].
    fn predict(&self, x: &Tensor, hp: i64, wp: i64) -> (Tensor, Tensor) {
        let q = self.config.num_queries;
        let prefix = q + self.vit.num_prefix_tokens();
        let (b, _, d) = x.size3().unwrap_or((0, 0, 0));
        let queries = x.narrow(1, 0, q);
        let class_logits = self.class_predictor.forward(&queries);
        let mut pixels = x.narrow(1, prefix, hp * wp).transpose(1, 2).reshape([b, d, hp, wp]);
        for l in &self.upscale {
            let y = self.act.apply(&l.conv1.forward(&pixels));
            pixels = layer_norm_channels_first(&l.norm, &l.conv2.forward(&y));
        }
        let mut e = queries;
        for (i, fc) in self.mask_head.iter().enumerate() {
            e = fc.forward(&e);
            if i < 2 {
                e = self.act.apply(&e);
            }
        }
        let masks = Tensor::einsum("bqc,bchw->bqhw", &[e, pixels], None::<i64>);
        (masks, class_logits)
    }

    /// Runs EoMT on normalised pixels [B, 3, H, W] of any size (padded right and bottom to a multiple of 16).
    pub fn forward(&self, pixels: &Tensor) -> crate::Result<(EomtOutput, Padding)> {
        self.forward_with_features(pixels, &[]).map(|(out, _, padding)| (out, padding))
    }

    /// Like [`Self::forward`], and also the encoder's dense feature maps of the 0-based blocks `layers` (after
    /// the final norm, patch tokens as NCHW, at the levels of [`EomtConfig::feature_info`]), taken from the same pass so that other heads
    /// (a linear head on this encoder) cost no extra backbone work. Blocks before the query layers give the plain
    /// ViT features; query layers give the patch tokens of EoMT's sequence (which also attended to the queries).
    pub fn forward_with_features(
        &self,
        pixels: &Tensor,
        layers: &[i64],
    ) -> crate::Result<(EomtOutput, Vec<crate::model::FeatureMap>, Padding)> {
        let size = pixels.size();
        let m = self.config.vit.patch_size;
        let (h, w) = (size.get(2).copied().unwrap_or(0), size.get(3).copied().unwrap_or(0));
        if size.len() != 4 || size[1] != self.config.vit.num_channels || h < 1 || w < 1 {
            return Err(crate::Error::Input(format!(
                "pixel_values must be [B, {}, H, W], got {size:?}",
                self.config.vit.num_channels
            )));
        }
        let (ph, pw) = ((h + m - 1) / m * m, (w + m - 1) / m * m);
        let padding = Padding { input_hw: (h, w), padded_hw: (ph, pw) };
        let probs: Vec<f64> = Vec::<f64>::try_from(&self.attn_mask_probs.to_kind(Kind::Double)).unwrap_or_default();
        let (out, features) = crate::model::guarded(|| {
            let _g = tch::no_grad_guard();
            let x = if (ph, pw) != (h, w) {
                pixels.constant_pad_nd([0, pw - w, 0, ph - h])
            } else {
                pixels.shallow_clone()
            };
            self.run(&x, &probs, layers)
        })?;
        Ok((out, features, padding))
    }

    fn run(&self, pixels: &Tensor, probs: &[f64], want: &[i64]) -> (EomtOutput, Vec<crate::model::FeatureMap>) {
        let t = self.vit.embed(pixels);
        let layers = self.vit.num_layers();
        let first_query_layer = layers - self.config.num_blocks as usize;
        let mut x = t.x.shallow_clone();
        let prefix = self.vit.num_prefix_tokens();
        let rope = Rope::new(&t.cos, &t.sin, prefix);
        let mut features = Vec::new();
        for i in 0..first_query_layer {
            x = self.vit.block(i, &x, &rope, None);
            if want.contains(&(i as i64)) {
                features.push(self.vit.feature_map(&x, &t, prefix, i));
            }
        }
        let out = self.forward_tail(x, &t, probs, want, &mut features);
        (out, features)
    }

    /// The query layers and the heads, from the token state after the shared layers.
    fn forward_tail(
        &self,
        mut x: Tensor,
        t: &crate::model::vit::Tokens,
        probs: &[f64],
        want: &[i64],
        features: &mut Vec<crate::model::FeatureMap>,
    ) -> EomtOutput {
        let layers = self.vit.num_layers();
        let first_query_layer = layers - self.config.num_blocks as usize;
        let (b, _, d) = x.size3().unwrap_or((0, 0, 0));
        let q = self.config.num_queries;
        let queries = self.query.to_kind(x.kind()).unsqueeze(0).expand([b, q, d], false);
        x = Tensor::cat(&[queries, x], 1);
        let prefix = q + self.vit.num_prefix_tokens();
        let rope = Rope::new(&t.cos, &t.sin, prefix);
        for i in first_query_layer..layers {
            let p = probs.get(i - first_query_layer).copied().unwrap_or(0.0);
            let mask = (p > 0.0).then(|| self.attention_mask(&x, t.hp, t.wp));
            x = self.vit.block(i, &x, &rope, mask.as_ref());
            if want.contains(&(i as i64)) {
                features.push(self.vit.feature_map(&x, t, prefix, i));
            }
        }
        let normed = self.vit.final_norm(&x);
        let (masks, classes) = self.predict(&normed, t.hp, t.wp);
        EomtOutput { class_queries_logits: classes, masks_queries_logits: masks }
    }

    /// [B, 1, T, T] bool: everything may attend everywhere, except query -> patch where the query's current
    /// mask prediction (bilinearly resized to the patch grid) is not positive.
    fn attention_mask(&self, x: &Tensor, hp: i64, wp: i64) -> Tensor {
        let q = self.config.num_queries;
        let (b, t, _) = x.size3().unwrap_or((0, 0, 0));
        let (masks, _) = self.predict(&self.vit.final_norm(x), hp, wp);
        let grid = masks.upsample_bilinear2d([hp, wp], false, None, None).reshape([b, q, hp * wp]).gt(0.0);
        let mask = Tensor::ones([b, t, t], (Kind::Bool, x.device()));
        let start = q + self.vit.num_prefix_tokens();
        mask.narrow(1, 0, q).narrow(2, start, hp * wp).copy_(&grid);
        mask.unsqueeze(1)
    }
}

//! The transformer module, following transformers' `Mask2FormerTransformerModule` and
//! `Mask2FormerMaskedAttentionDecoder` (`modeling_mask2former.py`): learned queries, `decoder_layers - 1` layers of
//! masked cross-attention (torch `nn.MultiheadAttention` weights) -> self-attention (`Mask2FormerAttention`) -> FFN,
//! post-norm or pre-norm, cycling over the three scales; after the initial prediction and every layer the mask
//! predictor gives the masks, and from them the next layer's attention mask (bilinear to the next scale,
//! sigmoid < 0.5 blocks; a query with every key blocked is left unblocked, as transformers' `where` trick does).
//!
//! Batch-first internally ([B, tokens, C]); attention runs through `scaled_dot_product_attention`.

use super::{sine_position_embedding, HeadConfig};
use crate::model::layers::{layer_norm, linear, Activation};
use tch::nn::{self, Module};
use tch::Tensor;

const LEVELS: usize = super::pixel_decoder::LEVELS as usize;

/// Splits [B, T, C] into heads: [B, nh, T, C / nh].
fn split_heads(x: &Tensor, heads: i64) -> Tensor {
    let (b, t, c) = x.size3().unwrap_or_default();
    x.view([b, t, heads, c / heads]).transpose(1, 2)
}

/// Merges [B, nh, T, dh] back into [B, T, nh * dh].
fn merge_heads(x: &Tensor) -> Tensor {
    let (b, nh, t, dh) = x.size4().unwrap_or_default();
    x.transpose(1, 2).reshape([b, t, nh * dh])
}

/// torch `nn.MultiheadAttention` (`in_proj_weight` / `in_proj_bias` packed q, k, v; `out_proj`).
struct CrossAttention {
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: nn::Linear,
    heads: i64,
    dim: i64,
}

impl CrossAttention {
    fn new(p: &nn::Path, dim: i64, heads: i64) -> Self {
        CrossAttention {
            in_proj_weight: p.zeros("in_proj_weight", &[3 * dim, dim]),
            in_proj_bias: p.zeros("in_proj_bias", &[3 * dim]),
            out_proj: linear(p / "out_proj", dim, dim, true),
            heads,
            dim,
        }
    }

    fn project(&self, x: &Tensor, i: i64) -> Tensor {
        let w = self.in_proj_weight.narrow(0, i * self.dim, self.dim);
        let b = self.in_proj_bias.narrow(0, i * self.dim, self.dim);
        split_heads(&x.linear(&w, Some(&b)), self.heads)
    }

    /// `query`, `key`: with their position embeddings added; `allowed`: [B, 1, Q, K] bool, true = may attend.
    fn forward(&self, query: &Tensor, key: &Tensor, value: &Tensor, allowed: &Tensor) -> Tensor {
        let (q, k, v) = (self.project(query, 0), self.project(key, 1), self.project(value, 2));
        let o = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(allowed), 0.0, false, None, false);
        self.out_proj.forward(&merge_heads(&o))
    }
}

/// `Mask2FormerAttention` as self-attention: position embeddings added to the queries and keys, not the values.
struct SelfAttention {
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    out_proj: nn::Linear,
    heads: i64,
}

impl SelfAttention {
    fn new(p: &nn::Path, dim: i64, heads: i64) -> Self {
        SelfAttention {
            q_proj: linear(p / "q_proj", dim, dim, true),
            k_proj: linear(p / "k_proj", dim, dim, true),
            v_proj: linear(p / "v_proj", dim, dim, true),
            out_proj: linear(p / "out_proj", dim, dim, true),
            heads,
        }
    }

    fn forward(&self, x: &Tensor, pos: &Tensor) -> Tensor {
        let with_pos = x + pos;
        let q = split_heads(&self.q_proj.forward(&with_pos), self.heads);
        let k = split_heads(&self.k_proj.forward(&with_pos), self.heads);
        let v = split_heads(&self.v_proj.forward(x), self.heads);
        let o = Tensor::scaled_dot_product_attention(&q, &k, &v, None::<Tensor>, 0.0, false, None, false);
        self.out_proj.forward(&merge_heads(&o))
    }
}

/// `Mask2FormerMaskedAttentionDecoderLayer`.
struct DecoderLayer {
    cross_attn: CrossAttention,
    cross_attn_layer_norm: nn::LayerNorm,
    self_attn: SelfAttention,
    self_attn_layer_norm: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    final_layer_norm: nn::LayerNorm,
    activation: Activation,
    pre_norm: bool,
}

/// One scale's inputs to the cross-attention: values [B, HW, D] and keys (values + position) [B, HW, D].
struct Memory {
    value: Tensor,
    key: Tensor,
}

impl DecoderLayer {
    fn new(p: &nn::Path, c: &HeadConfig, activation: Activation) -> Self {
        let d = c.hidden_dim;
        DecoderLayer {
            cross_attn: CrossAttention::new(&(p / "cross_attn"), d, c.num_attention_heads),
            cross_attn_layer_norm: layer_norm(p / "cross_attn_layer_norm", d, 1e-5),
            self_attn: SelfAttention::new(&(p / "self_attn"), d, c.num_attention_heads),
            self_attn_layer_norm: layer_norm(p / "self_attn_layer_norm", d, 1e-5),
            fc1: linear(p / "fc1", d, c.dim_feedforward, true),
            fc2: linear(p / "fc2", c.dim_feedforward, d, true),
            final_layer_norm: layer_norm(p / "final_layer_norm", d, 1e-5),
            activation,
            pre_norm: c.pre_norm,
        }
    }

    fn ffn(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&self.activation.apply(&self.fc1.forward(x)))
    }

    fn forward(&self, x: &Tensor, query_pos: &Tensor, memory: &Memory, allowed: &Tensor) -> Tensor {
        if self.pre_norm {
            let n = self.cross_attn_layer_norm.forward(x);
            let x = x + self.cross_attn.forward(&(&n + query_pos), &memory.key, &memory.value, allowed);
            let x = &x + self.self_attn.forward(&self.self_attn_layer_norm.forward(&x), query_pos);
            &x + self.ffn(&self.final_layer_norm.forward(&x))
        } else {
            let a = self.cross_attn.forward(&(x + query_pos), &memory.key, &memory.value, allowed);
            let x = self.cross_attn_layer_norm.forward(&(x + a));
            let x = self.self_attn_layer_norm.forward(&(&x + self.self_attn.forward(&x, query_pos)));
            self.final_layer_norm.forward(&(&x + self.ffn(&x)))
        }
    }
}

/// `Mask2FormerMaskPredictor`: the mask MLP (`mask_embedder.{0,1,2}.0`, relu between) and the masks.
struct MaskPredictor {
    mlp: Vec<nn::Linear>,
}

impl MaskPredictor {
    fn new(p: &nn::Path, hidden: i64, mask_dim: i64) -> Self {
        let p = p / "mask_embedder";
        let mlp = (0..3).map(|i| linear(&p / i / "0", hidden, if i == 2 { mask_dim } else { hidden }, true)).collect();
        MaskPredictor { mlp }
    }

    /// `queries`: [B, Q, D] (layer-normed); `mask_features`: [B, Cm, H, W]. Returns the mask logits [B, Q, H, W].
    fn forward(&self, queries: &Tensor, mask_features: &Tensor) -> Tensor {
        let mut e = queries.shallow_clone();
        for (i, l) in self.mlp.iter().enumerate() {
            e = l.forward(&e);
            if i < 2 {
                e = e.relu();
            }
        }
        let (b, c, h, w) = mask_features.size4().unwrap_or_default();
        let q = e.size()[1];
        e.bmm(&mask_features.reshape([b, c, h * w])).view([b, q, h, w])
    }
}

/// Where the next layer's queries may attend at a `(h, w)` scale: [B, 1, Q, h * w] bool, true = allowed.
/// Blocked where sigmoid(bilinear(mask)) < 0.5; a query blocked everywhere is allowed everywhere instead.
fn allowed_keys(masks: &Tensor, (h, w): (i64, i64)) -> Tensor {
    let small = masks.upsample_bilinear2d([h, w], false, None, None).flatten(2, 3);
    let allowed = small.sigmoid().ge(0.5);
    let none = allowed.any_dim(-1, true).logical_not();
    allowed.logical_or(&none).unsqueeze(1)
}

/// `Mask2FormerTransformerModule` with its decoder.
pub(crate) struct TransformerModule {
    queries_embedder: Tensor,
    queries_features: Tensor,
    /// Present when `feature_size != hidden_dim` or `enforce_input_projection`.
    input_projections: Option<Vec<nn::Conv2D>>,
    level_embed: Tensor,
    layers: Vec<DecoderLayer>,
    layernorm: nn::LayerNorm,
    mask_predictor: MaskPredictor,
    hidden_dim: i64,
}

impl TransformerModule {
    pub(crate) fn new(p: &nn::Path, c: &HeadConfig) -> Result<Self, String> {
        let d = c.hidden_dim;
        let activation = Activation::parse(&c.activation_function)?;
        let input_projections = (c.feature_size != d || c.enforce_input_projection).then(|| {
            (0..LEVELS)
                .map(|i| nn::conv2d(p / "input_projections" / i, c.feature_size, d, 1, Default::default()))
                .collect()
        });
        let decoder = p / "decoder";
        Ok(TransformerModule {
            queries_embedder: (p / "queries_embedder").zeros("weight", &[c.num_queries, d]),
            queries_features: (p / "queries_features").zeros("weight", &[c.num_queries, d]),
            input_projections,
            level_embed: (p / "level_embed").zeros("weight", &[LEVELS as i64, d]),
            layers: (0..c.decoder_layers - 1)
                .map(|i| DecoderLayer::new(&(&decoder / "layers" / i), c, activation))
                .collect(),
            layernorm: layer_norm(&decoder / "layernorm", d, 1e-5),
            mask_predictor: MaskPredictor::new(&(&decoder / "mask_predictor"), d, c.mask_feature_size),
            hidden_dim: d,
        })
    }

    /// `multi_scale`: the pixel decoder's three maps (deepest first); `mask_features`: its mask features.
    /// Returns the last layer's layer-normed queries [B, Q, D] and mask logits [B, Q, H, W].
    pub(crate) fn forward(&self, multi_scale: &[Tensor], mask_features: &Tensor) -> (Tensor, Tensor) {
        let d = self.hidden_dim;
        let mut sizes = Vec::with_capacity(LEVELS);
        let mut memory = Vec::with_capacity(LEVELS);
        for (i, x) in multi_scale.iter().enumerate().take(LEVELS) {
            let (_, _, h, w) = x.size4().unwrap_or_default();
            sizes.push((h, w));
            let projected = match &self.input_projections {
                Some(p) => p[i].forward(x),
                None => x.shallow_clone(),
            };
            let value = projected.flatten(2, 3).transpose(1, 2) + self.level_embed.get(i as i64);
            let pos = sine_position_embedding(h, w, d / 2, x.kind(), x.device());
            let key = &value + pos;
            memory.push(Memory { value, key });
        }
        let b = mask_features.size()[0];
        let query_pos = self.queries_embedder.unsqueeze(0);
        let mut hidden = self.queries_features.unsqueeze(0).expand([b, -1, -1], false);
        let mut normed = self.layernorm.forward(&hidden);
        let mut masks = self.mask_predictor.forward(&normed, mask_features);
        for (idx, layer) in self.layers.iter().enumerate() {
            let allowed = allowed_keys(&masks, sizes[idx % LEVELS]);
            hidden = layer.forward(&hidden, &query_pos, &memory[idx % LEVELS], &allowed);
            normed = self.layernorm.forward(&hidden);
            masks = self.mask_predictor.forward(&normed, mask_features);
        }
        (normed, masks)
    }
}

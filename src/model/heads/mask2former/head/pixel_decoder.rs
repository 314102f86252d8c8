//! The pixel decoder, following transformers' `Mask2FormerPixelDecoder` (`modeling_mask2former.py`): input
//! projections of the last three maps (deepest first), an encoder of multi-scale deformable-attention layers
//! (`Mask2FormerPixelDecoderEncoderLayer`, post-norm) over their flattened tokens, then the FPN path (`adapter_i`
//! lateral convs, `layer_i` output convs) up to the mask features (`mask_projection`).
//!
//! The deformable attention is transformers' pure-PyTorch `multi_scale_deformable_attention`: bilinear
//! `grid_sample` (zeros padding, align_corners=False) at `2 * location - 1`, per level; the per-level samples are
//! weighted and summed as they come instead of being stacked first (same sum, less memory).

use super::{sine_position_embedding, ConvNorm, HeadConfig};
use crate::model::layers::{layer_norm, linear};
use tch::nn::{self, Module};
use tch::Tensor;

/// The deformable encoder's scales (transformers' `num_feature_levels`, fixed at 3).
pub(crate) const LEVELS: i64 = 3;
/// Sampling points per head and level (fixed at 4 in transformers).
const POINTS: i64 = 4;

/// `Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention`.
struct DeformableAttention {
    sampling_offsets: nn::Linear,
    attention_weights: nn::Linear,
    value_proj: nn::Linear,
    output_proj: nn::Linear,
    heads: i64,
}

/// What every encoder layer shares for one input: the level sizes and the reference points.
struct Levels {
    /// (h, w) per level, deepest first.
    shapes: Vec<(i64, i64)>,
    /// `[1, S, 1, 1, 1, 2]`: each token's cell centre (x, y) in [0, 1] (valid ratios are all 1: no padding mask).
    reference: Tensor,
    /// `[1, 1, 1, LEVELS, 1, 2]`: (w, h) per level, the offsets' normaliser.
    normalizer: Tensor,
}

impl DeformableAttention {
    fn new(p: &nn::Path, dim: i64, heads: i64) -> Self {
        DeformableAttention {
            sampling_offsets: linear(p / "sampling_offsets", dim, heads * LEVELS * POINTS * 2, true),
            attention_weights: linear(p / "attention_weights", dim, heads * LEVELS * POINTS, true),
            value_proj: linear(p / "value_proj", dim, dim, true),
            output_proj: linear(p / "output_proj", dim, dim, true),
            heads,
        }
    }

    /// `hidden`: [B, S, C] tokens of the three levels; `pos`: [1, S, C] their position (+ level) embeddings.
    fn forward(&self, hidden: &Tensor, pos: &Tensor, levels: &Levels) -> Tensor {
        let (b, s, c) = hidden.size3().unwrap_or_default();
        let (nh, dh) = (self.heads, c / self.heads);
        let query = hidden + pos;
        let value = self.value_proj.forward(hidden);
        // [B, S, nh, L, P, 2] -> sampling grids in [-1, 1], laid out [B, nh, L, S, P, 2] for per-level slices.
        let offsets = self.sampling_offsets.forward(&query).view([b, s, nh, LEVELS, POINTS, 2]);
        let locations = &levels.reference + offsets / &levels.normalizer;
        let grids = (locations * 2.0 - 1.0).permute([0, 2, 3, 1, 4, 5]).contiguous();
        let weights = self
            .attention_weights
            .forward(&query)
            .view([b, s, nh, LEVELS * POINTS])
            .softmax(-1, query.kind())
            .view([b, s, nh, LEVELS, POINTS])
            .permute([0, 2, 3, 1, 4])
            .contiguous();
        let mut out: Option<Tensor> = None;
        let mut start = 0;
        for (l, &(h, w)) in levels.shapes.iter().enumerate() {
            let l = l as i64;
            // [B, hw, C] -> [B * nh, dh, h, w]
            let v = value.narrow(1, start, h * w).transpose(1, 2).reshape([b * nh, dh, h, w]);
            start += h * w;
            let grid = grids.select(2, l).reshape([b * nh, s, POINTS, 2]);
            // mode 0 = bilinear, padding 0 = zeros.
            let sampled = v.grid_sampler_2d(&grid, 0, 0, false); // [B * nh, dh, S, P]
            let wl = weights.select(2, l).reshape([b * nh, 1, s, POINTS]);
            let part = (sampled * wl).sum_dim_intlist(-1, false, None);
            out = Some(match out {
                None => part,
                Some(acc) => acc + part,
            });
        }
        let out = out.unwrap_or_else(|| hidden.zeros_like().transpose(1, 2)).view([b, c, s]).transpose(1, 2);
        self.output_proj.forward(&out)
    }
}

/// `Mask2FormerPixelDecoderEncoderLayer`: deformable self-attention and a relu FFN, each post-norm.
struct EncoderLayer {
    self_attn: DeformableAttention,
    self_attn_layer_norm: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    final_layer_norm: nn::LayerNorm,
}

impl EncoderLayer {
    fn new(p: &nn::Path, c: &HeadConfig) -> Self {
        let d = c.feature_size;
        EncoderLayer {
            self_attn: DeformableAttention::new(&(p / "self_attn"), d, c.num_attention_heads),
            self_attn_layer_norm: layer_norm(p / "self_attn_layer_norm", d, 1e-5),
            fc1: linear(p / "fc1", d, c.encoder_feedforward_dim, true),
            fc2: linear(p / "fc2", c.encoder_feedforward_dim, d, true),
            final_layer_norm: layer_norm(p / "final_layer_norm", d, 1e-5),
        }
    }

    fn forward(&self, x: &Tensor, pos: &Tensor, levels: &Levels) -> Tensor {
        let x = self.self_attn_layer_norm.forward(&(x + self.self_attn.forward(x, pos, levels)));
        let y = self.fc2.forward(&self.fc1.forward(&x).relu());
        self.final_layer_norm.forward(&(x + y))
    }
}

/// `Mask2FormerPixelDecoder`.
pub(crate) struct PixelDecoder {
    level_embed: Tensor,
    /// Deepest map first.
    input_projections: Vec<ConvNorm>,
    layers: Vec<EncoderLayer>,
    mask_projection: nn::Conv2D,
    /// `(adapter_{i+1}, layer_{i+1})` for the first `num_fpn_levels` maps, shallow to deep.
    fpn: Vec<(ConvNorm, ConvNorm)>,
    feature_size: i64,
}

impl PixelDecoder {
    /// `feature_channels` has at least 3 entries and `config.num_fpn_levels()` is within 0..=its length (checked
    /// by the caller).
    pub(crate) fn new(p: &nn::Path, config: &HeadConfig, feature_channels: &[i64]) -> Self {
        let d = config.feature_size;
        let n = feature_channels.len();
        let input_projections = (0..LEVELS as usize)
            .map(|i| ConvNorm::new(&(p / "input_projections" / i), feature_channels[n - 1 - i], d, 1, true))
            .collect();
        let layers =
            (0..config.encoder_layers).map(|i| EncoderLayer::new(&(p / "encoder" / "layers" / i), config)).collect();
        let fpn_levels = config.num_fpn_levels().clamp(0, n as i64) as usize;
        let fpn = feature_channels[..fpn_levels]
            .iter()
            .enumerate()
            .map(|(i, &cin)| {
                let lateral = ConvNorm::new(&(p / format!("adapter_{}", i + 1)), cin, d, 1, false);
                let output = ConvNorm::new(&(p / format!("layer_{}", i + 1)), d, d, 3, false);
                (lateral, output)
            })
            .collect();
        PixelDecoder {
            level_embed: p.zeros("level_embed", &[LEVELS, d]),
            input_projections,
            layers,
            mask_projection: nn::conv2d(p / "mask_projection", d, config.mask_feature_size, 1, Default::default()),
            fpn,
            feature_size: d,
        }
    }

    /// `features`: the backbone's maps, shallow to deep. Returns the three multi-scale features (deepest first,
    /// [B, feature_size, h, w]) and the mask features [B, mask_feature_size, h, w] of the shallowest level.
    pub(crate) fn forward(&self, features: &[Tensor]) -> (Vec<Tensor>, Tensor) {
        let n = features.len();
        let d = self.feature_size;
        let mut tokens = Vec::with_capacity(LEVELS as usize);
        let mut pos = Vec::with_capacity(LEVELS as usize);
        let mut shapes = Vec::with_capacity(LEVELS as usize);
        let mut refs = Vec::with_capacity(LEVELS as usize);
        for (level, proj) in self.input_projections.iter().enumerate() {
            let x = &features[n - 1 - level];
            let (_, _, h, w) = x.size4().unwrap_or_default();
            let (kind, device) = (x.kind(), x.device());
            tokens.push(proj.forward(x).flatten(2, 3).transpose(1, 2));
            pos.push(sine_position_embedding(h, w, d / 2, kind, device) + self.level_embed.get(level as i64));
            shapes.push((h, w));
            // Cell centres (0.5 .. side - 0.5) / side, as transformers' linspace; x first.
            let ry = Tensor::linspace(0.5, h as f64 - 0.5, h, (kind, device)) / h as f64;
            let rx = Tensor::linspace(0.5, w as f64 - 0.5, w, (kind, device)) / w as f64;
            let ry = ry.unsqueeze(1).expand([h, w], false);
            let rx = rx.unsqueeze(0).expand([h, w], false);
            refs.push(Tensor::stack(&[rx, ry], -1).reshape([h * w, 2]));
        }
        let first = &features[n - 1];
        let (kind, device) = (first.kind(), first.device());
        let sides: Vec<f64> = shapes.iter().flat_map(|&(h, w)| [w as f64, h as f64]).collect();
        let levels = Levels {
            reference: Tensor::cat(&refs, 0).view([1, -1, 1, 1, 1, 2]),
            normalizer: Tensor::from_slice(&sides).to_kind(kind).to_device(device).view([1, 1, 1, LEVELS, 1, 2]),
            shapes,
        };
        let pos = Tensor::cat(&pos, 0).unsqueeze(0);
        let mut hidden = Tensor::cat(&tokens, 1);
        for layer in &self.layers {
            hidden = layer.forward(&hidden, &pos, &levels);
        }
        let b = hidden.size()[0];
        let mut outputs = Vec::with_capacity(LEVELS as usize + self.fpn.len());
        let mut start = 0;
        for &(h, w) in &levels.shapes {
            outputs.push(hidden.narrow(1, start, h * w).transpose(1, 2).reshape([b, d, h, w]));
            start += h * w;
        }
        for (i, (lateral, output)) in self.fpn.iter().enumerate().rev() {
            let cur = lateral.forward(&features[i]);
            let (_, _, h, w) = cur.size4().unwrap_or_default();
            let prev = outputs.last().map(|t| t.upsample_bilinear2d([h, w], false, None, None));
            let sum = match prev {
                Some(up) => cur + up,
                None => cur,
            };
            outputs.push(output.forward(&sum).relu());
        }
        let mask_features = outputs.last().map(|t| self.mask_projection.forward(t)).unwrap_or_default();
        outputs.truncate(LEVELS as usize);
        (outputs, mask_features)
    }
}

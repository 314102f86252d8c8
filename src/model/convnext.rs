//! DINOv3 ConvNeXt backbones (Liu et al., 2022, as distilled in DINOv3) on tch, following transformers'
//! `DINOv3ConvNextModel` (`modeling_dinov3_convnext.py`) name for name: four stages at strides 4/8/16/32, each a
//! down-sampling layer (4x4 stem conv + channels-first LayerNorm, then LayerNorm + 2x2 conv) and ConvNeXt blocks
//! (7x7 depthwise conv, LayerNorm, pointwise MLP, LayerScale `gamma`); a final LayerNorm over
//! [pooled token, stage-4 tokens].

use crate::model::config::ConvNextConfig;
use crate::model::layers::{layer_norm, layer_norm_channels_first, linear, Activation};
use crate::model::{BackboneOutput, FeatureMap, ForwardOptions};
use tch::nn::{self, Module};
use tch::Tensor;

struct Layer {
    dwconv: nn::Conv2D,
    norm: nn::LayerNorm,
    pw1: nn::Linear,
    pw2: nn::Linear,
    gamma: Tensor,
}

struct Stage {
    /// Stage 0: conv then norm; later stages: norm then conv.
    first: bool,
    down_conv: nn::Conv2D,
    down_norm: nn::LayerNorm,
    layers: Vec<Layer>,
}

/// The ConvNeXt backbone.
pub struct ConvNext {
    pub config: ConvNextConfig,
    act: Activation,
    stages: Vec<Stage>,
    /// The final LayerNorm (absent in transformers' `DINOv3ConvNextBackbone`, e.g. inside Mask2Former).
    norm: Option<nn::LayerNorm>,
}

impl ConvNext {
    /// Declares every parameter under transformers' names (`stages.N.*`, `layer_norm.*`: the names transformers writes to disk).
    pub fn new(p: &nn::Path, config: &ConvNextConfig) -> Result<Self, String> {
        Self::with_final_norm(p, config, true)
    }

    /// Like [`Self::new`]; without the final norm when `final_norm` is false (transformers'
    /// `DINOv3ConvNextBackbone`, which gives raw stage outputs and has no `layer_norm`).
    pub fn with_final_norm(p: &nn::Path, config: &ConvNextConfig, final_norm: bool) -> Result<Self, String> {
        config.validate()?;
        let c = config;
        let eps = c.layer_norm_eps;
        let mut prev = c.num_channels;
        let mut stages = Vec::new();
        for (i, (&dim, &depth)) in c.hidden_sizes.iter().zip(&c.depths).enumerate() {
            let s = p / "stages" / i;
            let down = &s / "downsample_layers";
            let (down_conv, down_norm) = if i == 0 {
                let conv_cfg = nn::ConvConfig { stride: 4, ..Default::default() };
                (nn::conv2d(&down / 0, prev, dim, 4, conv_cfg), layer_norm(&down / 1, dim, eps))
            } else {
                let norm = layer_norm(&down / 0, prev, eps);
                let conv_cfg = nn::ConvConfig { stride: 2, ..Default::default() };
                (nn::conv2d(&down / 1, prev, dim, 2, conv_cfg), norm)
            };
            let layers = (0..depth)
                .map(|j| {
                    let l = &s / "layers" / j;
                    Layer {
                        dwconv: nn::conv2d(
                            &l / "depthwise_conv",
                            dim,
                            dim,
                            7,
                            nn::ConvConfig { padding: 3, groups: dim, ..Default::default() },
                        ),
                        norm: layer_norm(&l / "layer_norm", dim, eps),
                        pw1: linear(&l / "pointwise_conv1", dim, 4 * dim, true),
                        pw2: linear(&l / "pointwise_conv2", 4 * dim, dim, true),
                        gamma: l.ones("gamma", &[dim]),
                    }
                })
                .collect();
            stages.push(Stage { first: i == 0, down_conv, down_norm, layers });
            prev = dim;
        }
        Ok(ConvNext {
            config: c.clone(),
            act: Activation::parse(&c.hidden_act)?,
            stages,
            norm: final_norm.then(|| layer_norm(p / "layer_norm", prev, eps)),
        })
    }

    /// Number of stages.
    pub fn num_stages(&self) -> usize {
        self.stages.len()
    }

    /// Stage `i` (down-sampling and blocks) on `x` (the input pixels for stage 0, in the weights' kind).
    pub fn stage(&self, i: usize, x: &Tensor) -> Tensor {
        let Some(stage) = self.stages.get(i) else { return x.shallow_clone() };
        let mut x = if stage.first {
            layer_norm_channels_first(&stage.down_norm, &stage.down_conv.forward(x))
        } else {
            stage.down_conv.forward(&layer_norm_channels_first(&stage.down_norm, x))
        };
        for l in &stage.layers {
            let y = l.dwconv.forward(&x).permute([0, 2, 3, 1]);
            let y = l.pw2.forward(&self.act.apply(&l.pw1.forward(&l.norm.forward(&y)))) * &l.gamma;
            x += y.permute([0, 3, 1, 2]);
        }
        x
    }

    /// The weights' kind.
    pub fn kind(&self) -> tch::Kind {
        self.stages.first().map_or(tch::Kind::Float, |s| s.down_conv.ws.kind())
    }

    /// The final LayerNorm over channels of an NCHW map, if the model has one.
    fn final_norm(&self, x: &Tensor) -> Tensor {
        match &self.norm {
            Some(n) => layer_norm_channels_first(n, x),
            None => x.shallow_clone(),
        }
    }

    /// Pixel sides must be multiples of this (the total stride); other sizes are padded.
    pub fn size_multiple(&self) -> i64 {
        32
    }

    /// Runs the backbone on normalised pixels [B, C, H, W] already padded to a multiple of 32.
    pub fn forward(&self, pixels: &Tensor, opts: &ForwardOptions) -> BackboneOutput {
        let kind = self.kind();
        let mut x = pixels.to_kind(kind);
        let mut hidden_states = Vec::new();
        let mut features = Vec::new();
        if opts.hidden_states {
            hidden_states.push(x.shallow_clone());
        }
        let n = self.stages.len();
        for i in 0..n {
            x = self.stage(i, &x);
            if opts.hidden_states {
                hidden_states.push(x.shallow_clone());
            }
            let stride = 4 << i;
            let wanted = opts.dense_layers.as_ref().is_none_or(|w| w.contains(&(i as i64)));
            if wanted {
                // The official dense features: stages 0-2 as they are, the last one through the final norm.
                let map = if i + 1 == n { self.final_norm(&x) } else { x.shallow_clone() };
                features.push(FeatureMap { index: i, stride, tensor: map });
            }
        }
        let (b, c, _, _) = x.size4().unwrap_or((0, 0, 0, 0));
        let pooled = x.mean_dim([2i64, 3].as_slice(), false, kind).view([b, 1, c]);
        let tokens = Tensor::cat(&[pooled, x.flatten(2, 3).transpose(1, 2)], 1);
        let last = match &self.norm {
            Some(n) => n.forward(&tokens),
            None => tokens,
        };
        BackboneOutput { cls_token: last.select(1, 0), last_hidden_state: last, hidden_states, features }
    }
}

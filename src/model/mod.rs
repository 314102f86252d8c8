//! Models on tch. One backbone contract: normalised pixels in, multi-level NCHW feature maps out, each addressed
//! by its level ([`FeatureInfo`]: ViT block or ConvNeXt stage, channels, stride, as timm's and transformers'
//! backbones describe them), plus the raw token outputs transformers returns. Heads use only this contract.

pub mod config;
pub mod convnext;
pub mod heads;
pub mod layers;
pub mod rope;
pub mod vit;

use crate::error::{first_line, Error, Result};
use config::BackboneConfig;
use tch::{nn, Device, Kind, Tensor};

/// What a forward pass should keep besides the final tokens and the dense feature maps.
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// Keep transformers' `hidden_states` (embeddings and every block output for the ViT; the input and every
    /// stage output for ConvNeXt). Costs memory: off for inference.
    pub hidden_states: bool,
    /// Override the dense layers (ViT block indices, ConvNeXt stage indices); None = the official rule.
    pub dense_layers: Option<Vec<i64>>,
}

/// A feature level an encoder can give a head, known from its config alone (see
/// [`config::BackboneConfig::feature_info`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureInfo {
    /// The 0-based ViT block or ConvNeXt stage whose output it is.
    pub index: usize,
    pub channels: i64,
    /// Input pixels per feature cell.
    pub stride: i64,
}

/// One dense feature map.
#[derive(Debug)]
pub struct FeatureMap {
    /// Its level: the [`FeatureInfo::index`] it was computed for.
    pub index: usize,
    /// Input pixels per feature cell.
    pub stride: i64,
    /// [B, C, H / stride, W / stride] over the padded input.
    pub tensor: Tensor,
}

/// The outputs of a backbone forward pass.
#[derive(Debug)]
pub struct BackboneOutput {
    /// transformers' `last_hidden_state`: [B, tokens, C] after the final norm.
    pub last_hidden_state: Tensor,
    /// transformers' `hidden_states` (empty unless asked for).
    pub hidden_states: Vec<Tensor>,
    /// The class token (ViT) or pooled token (ConvNeXt) after the final norm: [B, C].
    pub cls_token: Tensor,
    /// Dense feature maps, shallow to deep.
    pub features: Vec<FeatureMap>,
}

impl BackboneOutput {
    /// The feature map of level `index`, if it was computed.
    pub fn feature(&self, index: usize) -> Option<&FeatureMap> {
        self.features.iter().find(|f| f.index == index)
    }
}

/// A DINOv3 backbone of either family.
pub enum Backbone {
    Vit(Box<vit::Vit>),
    ConvNext(Box<convnext::ConvNext>),
}

/// The padding a forward pass added to reach the backbone's size multiple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Padding {
    pub input_hw: (i64, i64),
    pub padded_hw: (i64, i64),
}

impl Backbone {
    /// Declares the architecture's parameters on `p` (weights are loaded separately, see `checkpoint`).
    pub fn new(p: &nn::Path, config: &BackboneConfig) -> Result<Self> {
        let bad = |m: String| Error::Input(format!("invalid {} config: {m}", config.model_type()));
        Ok(match config {
            BackboneConfig::Vit(c) => Backbone::Vit(Box::new(vit::Vit::new(p, c).map_err(bad)?)),
            BackboneConfig::ConvNext(c) => Backbone::ConvNext(Box::new(convnext::ConvNext::new(p, c).map_err(bad)?)),
        })
    }

    pub fn config(&self) -> BackboneConfig {
        match self {
            Backbone::Vit(m) => BackboneConfig::Vit(m.config.clone()),
            Backbone::ConvNext(m) => BackboneConfig::ConvNext(m.config.clone()),
        }
    }

    /// Fuses the ViT's q/k/v projections (see [`vit::Vit::fuse_qkv`]); nothing for ConvNeXt.
    pub fn fuse_qkv(&mut self) {
        if let Backbone::Vit(v) = self {
            v.fuse_qkv();
        }
    }

    /// Input sides are padded up to a multiple of this.
    pub fn size_multiple(&self) -> i64 {
        match self {
            Backbone::Vit(m) => m.size_multiple(),
            Backbone::ConvNext(m) => m.size_multiple(),
        }
    }

    /// The feature levels it can give, shallow to deep (see [`BackboneConfig::feature_info`]).
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        match self {
            Backbone::Vit(m) => m.config.feature_info(),
            Backbone::ConvNext(m) => m.config.feature_info(),
        }
    }

    /// Runs the backbone on normalised pixels [B, C, H, W] of any size: sides that are not multiples of
    /// [`Self::size_multiple`] are zero-padded on the right and bottom (zero is the mean colour after
    /// normalisation) and the returned [`Padding`] says which part of the feature maps is real. libtorch
    /// failures (e.g. CUDA out of memory) come back as errors, never as panics.
    pub fn forward(&self, pixels: &Tensor, opts: &ForwardOptions) -> Result<(BackboneOutput, Padding)> {
        let size = pixels.size();
        let channels = match self {
            Backbone::Vit(m) => m.config.num_channels,
            Backbone::ConvNext(m) => m.config.num_channels,
        };
        if size.len() != 4 || size[1] != channels || size[2] < 1 || size[3] < 1 {
            return Err(Error::Input(format!("pixel_values must be [B, {channels}, H, W], got {size:?}")));
        }
        let m = self.size_multiple();
        let (h, w) = (size[2], size[3]);
        let (ph, pw) = ((h + m - 1) / m * m, (w + m - 1) / m * m);
        let padding = Padding { input_hw: (h, w), padded_hw: (ph, pw) };
        let out = guarded(|| {
            let _guard = tch::no_grad_guard();
            let x = if (ph, pw) != (h, w) {
                pixels.constant_pad_nd([0, pw - w, 0, ph - h])
            } else {
                pixels.shallow_clone()
            };
            match self {
                Backbone::Vit(m) => m.forward(&x, opts),
                Backbone::ConvNext(m) => m.forward(&x, opts),
            }
        })?;
        Ok((out, padding))
    }
}

/// Runs libtorch work, turning a libtorch exception (which tch raises as a panic) into an error: out of memory
/// as [`Error::OutOfMemory`], anything else as [`Error::Runtime`] of its first line. The panic prints nothing
/// once [`crate::error::install_quiet_panic_hook`] is in place: the caller reports the error.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T> {
    crate::error::catch_quiet(f).map_err(|caught| Error::from_panic(&caught, |t| Error::Runtime(first_line(&t))))
}

/// A backbone with its weights, device and precision.
pub struct LoadedBackbone {
    pub vs: nn::VarStore,
    pub backbone: Backbone,
    pub device: Device,
    pub kind: Kind,
}

impl LoadedBackbone {
    /// Builds the architecture on `device` with uninitialised (zero/one) weights.
    pub fn build(config: &BackboneConfig, device: Device) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let mut backbone = Backbone::new(&vs.root(), config)?;
        backbone.fuse_qkv();
        Ok(LoadedBackbone { vs, backbone, device, kind: Kind::Float })
    }

    /// Casts the weights to `kind` (Float, Half, BFloat16).
    pub fn set_kind(&mut self, kind: Kind) {
        self.vs.set_kind(kind);
        self.backbone.fuse_qkv();
        self.kind = kind;
    }

    /// Fills the weights with random values (normal, std 0.02; norms and LayerScale 1): real architecture and
    /// timings without a download. Features are meaningless.
    pub fn randomize(&mut self, seed: i64) {
        tch::manual_seed(seed);
        tch::no_grad(|| {
            for (name, mut t) in self.vs.variables() {
                let unit = t.dim() == 1 && (name.contains("norm") || name.contains("lambda") || name.contains("gamma"));
                if unit {
                    let _ = t.fill_(1.0);
                } else {
                    let _ = t.normal_(0.0, 0.02);
                }
            }
        });
    }

    /// The weights under their state-dict names, sorted.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Number of parameters (every tensor of the state dict).
    pub fn param_count(&self) -> i64 {
        self.vs.variables().values().map(|t| t.numel() as i64).sum()
    }
}

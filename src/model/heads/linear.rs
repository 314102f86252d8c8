//! The DINOv3 linear semantic head: the linear segmentation protocol of the DINOv3 paper (Siméoni et al., 2025,
//! ADE20K linear mIoU), following the official code (github.com/facebookresearch/dinov3,
//! `dinov3/eval/segmentation/models/heads/linear_head.py`, `LinearHead.predict`, and `models/__init__.py`).
//!
//! Forward pass at inference: the backbone's dense feature maps (taken after its final norm) — either the last one
//! ([`LayerSelection::Last`]) or the four official dense layers ([`LayerSelection::Dense4`]) — are bilinearly
//! resized (align_corners = false) to the size of the *first* selected map, as the official `_transform_inputs`
//! does, and concatenated on channels -> BatchNorm2d (running statistics) -> 1x1 Conv2d to the classes. Dropout
//! (training only) is skipped. [`LinearHead::forward`] returns the logits at the feature stride (ViT 16; ConvNeXt
//! 4 with `Dense4`, 32 with `Last`); [`LinearHead::forward_full`] up-samples them bilinearly to the padded input
//! and crops the padding off, so logits line up with the input pixels. For a ViT the four maps share stride 16;
//! for a ConvNeXt `Dense4` means stages 0-3 (strides 4-32) resized to stride 4 (sum of the stage widths as
//! channels; the official code has no ConvNeXt linear head with four layers: its builder assumes one width).
//!
//! Checkpoint format: see [`super::linear_format`], whose [`LinearHeadFile::read`] `check-params` also calls;
//! loading adds the weights (every one finite, `running_var` >= 0).

use crate::checkpoint::{load_weights, read_safetensors};
use crate::error::{Error, Result};
use crate::model::{guarded, Backbone, BackboneOutput, FeatureMap, ForwardOptions, Padding};
use std::path::Path;
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Tensor};

use super::linear_format::canonical_tensors;
pub use super::linear_format::{LayerSelection, LinearHeadConfig, LinearHeadFile};

/// The linear head. Parameters (relative to the path given to [`LinearHead::new`]): `bn.weight`, `bn.bias`,
/// `bn.running_mean`, `bn.running_var`, `conv.weight`, `conv.bias`.
#[derive(Debug)]
pub struct LinearHead {
    pub config: LinearHeadConfig,
    bn: nn::BatchNorm,
    conv: nn::Conv2D,
}

impl LinearHead {
    /// Declares the parameters on `p` (BatchNorm 1/0, running stats 0/1; load weights separately).
    pub fn new(p: &nn::Path, config: LinearHeadConfig) -> Result<Self> {
        config.validate().map_err(|m| Error::Input(format!("invalid linear head config: {m}")))?;
        let bn_cfg = nn::BatchNormConfig { eps: config.bn_eps, ..Default::default() };
        let bn = nn::batch_norm2d(p / "bn", config.in_channels, bn_cfg);
        let conv = nn::conv2d(p / "conv", config.in_channels, config.num_classes, 1, Default::default());
        Ok(LinearHead { config, bn, conv })
    }

    /// Checks the head fits `backbone` ([`LinearHeadConfig::select`] on its `feature_info`) and returns the
    /// forward options that make it compute the feature maps the head reads.
    pub fn required_layers(&self, backbone: &Backbone) -> Result<ForwardOptions> {
        let picked = self.config.select(&backbone.feature_info(), "the backbone").map_err(Error::Input)?;
        let layers = picked.iter().map(|f| f.index as i64).collect();
        Ok(ForwardOptions { dense_layers: Some(layers), ..Default::default() })
    }

    /// Logits [B, K, h, w] at the stride of the first selected feature map (over the padded input). Reads the maps
    /// `out` holds, shallow to deep: all four (`Dense4`) or the deepest (`Last`); run the backbone with
    /// [`Self::required_layers`], or pass the levels [`LinearHeadConfig::select`] picked.
    pub fn forward(&self, out: &BackboneOutput) -> Result<Tensor> {
        let maps: Vec<&FeatureMap> = match self.config.layers {
            LayerSelection::Last => out.features.last().into_iter().collect(),
            LayerSelection::Dense4 => out.features.iter().collect(),
        };
        let levels: Vec<usize> = out.features.iter().map(|m| m.index).collect();
        if maps.len() != self.config.layers.count() {
            return Err(Error::Input(format!(
                "linear head (layers: {}) needs {} dense feature maps, the backbone returned the levels {levels:?}: \
                 run it with `LinearHead::required_layers`",
                self.config.layers.as_str(),
                self.config.layers.count()
            )));
        }
        let mut channels = 0;
        for m in &maps {
            match m.tensor.size().as_slice() {
                [_, c, _, _] => channels += c,
                s => return Err(Error::Input(format!("feature map of level {} is not NCHW: {s:?}", m.index))),
            }
        }
        if channels != self.config.in_channels {
            return Err(Error::Input(format!(
                "linear head expects {} input channels but the feature maps of levels {levels:?} have {channels}",
                self.config.in_channels
            )));
        }
        let kind = self.conv.ws.kind();
        guarded(|| {
            let _g = tch::no_grad_guard();
            let size = maps[0].tensor.size();
            let (h, w) = (size[2], size[3]);
            let resized: Vec<Tensor> = maps
                .iter()
                .map(|m| {
                    let t = m.tensor.to_kind(kind);
                    if t.size()[2..] == [h, w] {
                        t
                    } else {
                        t.upsample_bilinear2d([h, w], false, None, None)
                    }
                })
                .collect();
            let x = if resized.len() == 1 { resized[0].shallow_clone() } else { Tensor::cat(&resized, 1) };
            self.forward_concat_t(&x, false)
        })
    }

    /// The head on its input already concatenated ([B, C, h, w], the head's kind): BatchNorm with batch statistics
    /// (updating the running ones) when `train`, else the running statistics, then the 1x1 conv. With gradients:
    /// what `dinoseg train-head` trains ([`Self::forward`] is this with `train` false, under no_grad).
    pub fn forward_concat_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.conv.forward(&self.bn.forward_t(x, train))
    }

    /// Logits [B, K, H, W] at the input resolution (see [`upsample_logits`]).
    pub fn forward_full(&self, out: &BackboneOutput, padding: &Padding) -> Result<Tensor> {
        upsample_logits(&self.forward(out)?, padding)
    }

    /// Reads a head checkpoint onto `device`, strictly: [`LinearHeadFile::read`]'s checks, then the weights.
    pub fn load(path: &Path, device: Device) -> Result<(LinearHead, nn::VarStore)> {
        let (file, loaded) = LinearHeadFile::open(path)?;
        // A file changed since its header was read still loads strictly: `load_weights` checks names and shapes.
        let tensors = match loaded {
            Some(t) => t,
            None => canonical_tensors(read_safetensors(path)?),
        };
        let vs = nn::VarStore::new(device);
        let head = LinearHead::new(&vs.root(), file.config)?;
        load_weights(&vs, tensors, path, &[])?;
        check_statistics(&vs, path)?;
        Ok((head, vs))
    }
}

/// Up-samples logits [B, K, h, w] bilinearly (align_corners = false) to the padded input size and crops the
/// padding off: [B, K, H, W] for the input that went into the backbone.
pub fn upsample_logits(logits: &Tensor, padding: &Padding) -> Result<Tensor> {
    let ((h, w), (ph, pw)) = (padding.input_hw, padding.padded_hw);
    if logits.dim() != 4 || h < 1 || w < 1 || h > ph || w > pw {
        return Err(Error::Input(format!("cannot up-sample logits {:?} with {padding:?}", logits.size())));
    }
    guarded(|| {
        let _g = tch::no_grad_guard();
        logits.upsample_bilinear2d([ph, pw], false, None, None).narrow(2, 0, h).narrow(3, 0, w)
    })
}

/// Every weight finite and the BatchNorm's `running_var` >= 0: anything else can only be wrong (it would turn
/// every pixel's logits into NaN). The error names the file, the tensor, the element and its value.
fn check_statistics(vs: &nn::VarStore, path: &Path) -> Result<()> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        let values = guarded(|| Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)))?
            .map_err(|e| Error::checkpoint(path, format!("tensor `{name}`: {e}")))?;
        let bad = values.iter().enumerate().find(|(_, v)| !v.is_finite() || (name == "bn.running_var" && **v < 0.0));
        if let Some((i, v)) = bad {
            let want = if name == "bn.running_var" { "a finite variance >= 0" } else { "finite values" };
            return Err(Error::checkpoint(path, format!("tensor `{name}` element {i} is {v}, expected {want}")));
        }
    }
    Ok(())
}

//! Mask2Former (Cheng et al., "Masked-attention Mask Transformer for Universal Image Segmentation", CVPR 2022) on
//! our DINOv3 backbones, name for name with transformers' `Mask2FormerForUniversalSegmentation`
//! (`models/mask2former/modeling_mask2former.py`): [`head`] is the pixel decoder, the masked-attention transformer
//! decoder and the class / mask predictors; [`config`] reads the three checkpoint forms (a `dinov3_convnext` or
//! `dinov3_vit` `backbone_config`, or the DINOv3-Mask2former adapter layout); [`encoder`] runs the backbone side of
//! each form and gives the head its feature maps.

pub mod config;
pub mod encoder;
pub mod head;

use crate::model::heads::eomt::EomtOutput;
use crate::model::{FeatureInfo, FeatureMap, Padding};
use config::Mask2FormerConfig;
use encoder::Encoder;
use head::Mask2FormerHead;
use tch::{nn, Tensor};

/// A Mask2Former model of any of the three forms.
pub struct Mask2Former {
    pub config: Mask2FormerConfig,
    encoder: Encoder,
    head: Mask2FormerHead,
}

impl Mask2Former {
    /// Declares every parameter on `p` (the model's root) under transformers' names.
    pub fn new(p: &nn::Path, config: &Mask2FormerConfig) -> Result<Self, String> {
        config.validate()?;
        let encoder = Encoder::new(p, config)?;
        let head = Mask2FormerHead::new(p, &config.head, &config.feature_channels())?;
        Ok(Mask2Former { config: config.clone(), encoder, head })
    }

    /// Fuses the ViT's q/k/v projections; call again after a precision change.
    pub fn fuse_qkv(&mut self) {
        self.encoder.fuse_qkv();
    }

    /// Input sides are padded (right and bottom) to a multiple of this.
    pub fn size_multiple(&self) -> i64 {
        self.config.size_multiple()
    }

    /// The dense levels [`Self::forward_with_features`] can give a linear head (see
    /// [`Mask2FormerConfig::feature_info`]).
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        self.config.feature_info()
    }

    pub fn class_names(&self) -> Vec<String> {
        self.config.class_names()
    }

    pub fn num_labels(&self) -> i64 {
        self.config.num_labels()
    }

    /// Runs the model on normalised pixels [B, C, H, W] of any size (padded right and bottom to
    /// [`Self::size_multiple`]).
    pub fn forward(&self, pixels: &Tensor) -> crate::Result<(EomtOutput, Padding)> {
        self.forward_with_features(pixels, &[]).map(|(out, _, padding)| (out, padding))
    }

    /// Like [`Self::forward`], and also the backbone's dense features of the levels `layers` (of
    /// [`Self::feature_info`]; others are skipped) from the same pass, as a linear head trained on the plain
    /// DINOv3 backbone reads them.
    pub fn forward_with_features(
        &self,
        pixels: &Tensor,
        layers: &[i64],
    ) -> crate::Result<(EomtOutput, Vec<FeatureMap>, Padding)> {
        let (x, padding) = self.pad(pixels)?;
        let (out, features) = crate::model::guarded(|| {
            let _g = tch::no_grad_guard();
            let x = x.to_kind(self.kind());
            let (maps, features) = self.encoder.forward(&x, layers);
            let (classes, masks) = self.head.forward(&maps);
            (EomtOutput { class_queries_logits: classes, masks_queries_logits: masks }, features)
        })?;
        Ok((out, features, padding))
    }

    /// The backbone feature maps the head reads (transformers' `encoder_hidden_states`), shallow to deep, over
    /// the padded input.
    pub fn encoder_features(&self, pixels: &Tensor) -> crate::Result<(Vec<Tensor>, Padding)> {
        let (x, padding) = self.pad(pixels)?;
        let maps = crate::model::guarded(|| {
            let _g = tch::no_grad_guard();
            self.encoder.forward(&x.to_kind(self.kind()), &[]).0
        })?;
        Ok((maps, padding))
    }

    /// The weights' kind.
    fn kind(&self) -> tch::Kind {
        self.encoder.kind()
    }

    /// Checks `pixels` and pads it to the size multiple.
    fn pad(&self, pixels: &Tensor) -> crate::Result<(Tensor, Padding)> {
        let size = pixels.size();
        let c = self.config.num_channels();
        let (h, w) = (size.get(2).copied().unwrap_or(0), size.get(3).copied().unwrap_or(0));
        if size.len() != 4 || size[1] != c || h < 1 || w < 1 {
            return Err(crate::Error::Input(format!("pixel_values must be [B, {c}, H, W], got {size:?}")));
        }
        let m = self.size_multiple();
        let (ph, pw) = ((h + m - 1) / m * m, (w + m - 1) / m * m);
        let padding = Padding { input_hw: (h, w), padded_hw: (ph, pw) };
        let x = crate::model::guarded(|| {
            if (ph, pw) != (h, w) {
                pixels.constant_pad_nd([0, pw - w, 0, ph - h])
            } else {
                pixels.shallow_clone()
            }
        })?;
        Ok((x, padding))
    }
}

//! The mask model of a head plan: the one EoMT or Mask2Former head, loaded, behind one interface: a forward
//! giving `class_queries_logits` / `masks_queries_logits` and, from the same pass, the dense feature maps that
//! linear heads with `source: eomt` / `mask2former` read. Both kinds share the post-processing.

use super::{HeadSpec, HeadSpecKind};
use crate::catalog::Normalization;
use crate::checkpoint::{self, LoadedEomt, LoadedMask2Former, LoadedModel};
use crate::error::{Error, Result};
use crate::model::heads::eomt::EomtOutput;
use crate::model::{FeatureInfo, FeatureMap};
use crate::pipeline::preprocess::Letterbox;
use crate::postprocess::{self, FrameSegmentation, Labels, MaskOutputs, PostprocessConfig};
use tch::{Device, Kind, Tensor};

/// A loaded mask model.
pub(crate) enum MaskModel {
    Eomt(Box<LoadedEomt>),
    Mask2Former(Box<LoadedMask2Former>),
}

impl MaskModel {
    /// Loads the model of a mask head (None for other heads), refusing a checkpoint of another kind.
    pub(crate) fn load(h: &HeadSpec, device: Device, kind: Kind) -> Result<Option<(Self, Normalization)>> {
        let key = || format!("heads.{}.checkpoint", h.name);
        match &h.kind {
            HeadSpecKind::Linear(_) => Ok(None),
            HeadSpecKind::Eomt(spec) => match checkpoint::load_model(&spec.model, None, device, kind)? {
                (LoadedModel::Eomt(m), n) => Ok(Some((MaskModel::Eomt(m), n))),
                (LoadedModel::Mask2Former(_), _) => Err(Error::parameter(
                    key(),
                    format!("`{}` is a Mask2Former model: declare it with `type: mask2former`", spec.model),
                )),
                _ => Err(Error::parameter(key(), format!("`{}` is not an EoMT (eomt_dinov3) model", spec.model))),
            },
            HeadSpecKind::Mask2Former(spec) => {
                let (m, n) = checkpoint::load_mask2former(&spec.model, &spec.options, device, kind)?;
                Ok(Some((MaskModel::Mask2Former(Box::new(m)), n)))
            }
        }
    }

    /// Class and mask logits, and the dense maps of `layers` from the same pass.
    pub(crate) fn forward_with_features(
        &self,
        pixels: &Tensor,
        layers: &[i64],
    ) -> Result<(EomtOutput, Vec<FeatureMap>)> {
        Ok(match self {
            MaskModel::Eomt(m) => {
                let (out, features, _) = m.model.forward_with_features(pixels, layers)?;
                (out, features)
            }
            MaskModel::Mask2Former(m) => {
                let (out, features, _) = m.model.forward_with_features(pixels, layers)?;
                (out, features)
            }
        })
    }

    /// The levels its encoder gives linear heads.
    pub(crate) fn feature_info(&self) -> Vec<FeatureInfo> {
        match self {
            MaskModel::Eomt(m) => m.model.config.feature_info(),
            MaskModel::Mask2Former(m) => m.model.feature_info(),
        }
    }

    /// Class names from the checkpoint's `id2label`.
    pub(crate) fn class_names(&self) -> Vec<String> {
        match self {
            MaskModel::Eomt(m) => m.model.config.class_names(),
            MaskModel::Mask2Former(m) => m.model.class_names(),
        }
    }

    /// Input sides must be multiples of this.
    pub(crate) fn size_multiple(&self) -> i64 {
        match self {
            MaskModel::Eomt(m) => m.model.config.vit.patch_size,
            MaskModel::Mask2Former(m) => m.model.size_multiple(),
        }
    }

    /// What messages call its encoder.
    pub(crate) fn encoder_name(&self) -> &'static str {
        match self {
            MaskModel::Eomt(_) => "the EoMT encoder",
            MaskModel::Mask2Former(_) => "the Mask2Former backbone",
        }
    }
}

/// A mask head's frames: masks and classes post-processed; stuff classes (marked in the labels) are regions,
/// not instances.
pub(crate) fn mask_frames(
    out: &EomtOutput,
    boxes: &[Letterbox],
    labels: &Labels,
    cfg: &PostprocessConfig,
    outputs: MaskOutputs,
) -> Result<Vec<FrameSegmentation>> {
    let mut frames = postprocess::postprocess_masks(
        &out.class_queries_logits,
        &out.masks_queries_logits,
        boxes,
        labels,
        cfg,
        outputs,
    )
    .map_err(Error::from)?;
    for f in &mut frames {
        if f.instances.iter().any(|i| !i.is_thing) {
            f.instances.retain(|i| i.is_thing);
            for (k, i) in f.instances.iter_mut().enumerate() {
                i.id = k as u32 + 1;
            }
        }
    }
    Ok(frames)
}

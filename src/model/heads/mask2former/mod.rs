//! Mask2Former (Cheng et al., "Masked-attention Mask Transformer for Universal Image Segmentation", CVPR 2022) on
//! our DINOv3 backbones, name for name with transformers' `Mask2FormerForUniversalSegmentation`
//! (`models/mask2former/modeling_mask2former.py`): [`head`] is the pixel decoder, the masked-attention transformer
//! decoder and the class / mask predictors; [`config`] reads the three checkpoint forms (a `dinov3_convnext` or
//! `dinov3_vit` `backbone_config`, or the DINOv3-Mask2former adapter layout); [`encoder`] runs the backbone side of
//! each form and gives the head its feature maps.

pub mod config;
pub mod encoder;
pub mod head;

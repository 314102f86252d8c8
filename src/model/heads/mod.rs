//! Segmentation heads on the backbone contract (`BackboneOutput`): the DINOv3 linear semantic head and EoMT.

pub mod eomt;
pub mod linear;
pub mod linear_format;
pub mod mask2former;

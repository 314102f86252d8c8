//! Panoptic and instance post-processing forced onto the tensors' device ([`super::DenseResize::Device`]) with a
//! chosen chunk size: the entry points the tests use to check the device kernels ([`super::device_kernels`], whose
//! docs say how they work) against the exact CPU kernels, on any device.

use super::labels::Labels;
use super::types::{Instance, PanopticMap};
use super::{DenseResize, PostprocessConfig, PostprocessError};
use crate::pipeline::preprocess::Letterbox;
use tch::Tensor;

pub use super::device_kernels::DEVICE_CHUNK_ELEMENTS;

/// Panoptic post-processing on the tensors' device ([`super::panoptic_from_masks`] with
/// [`DenseResize::Device`]) with at most `chunk_elements` query-pixels per chunk (at least one query).
pub fn panoptic_on_device(
    class_logits: &Tensor,
    mask_logits: &Tensor,
    boxes: &[Letterbox],
    labels: &Labels,
    cfg: &PostprocessConfig,
    chunk_elements: usize,
) -> Result<Vec<PanopticMap>, PostprocessError> {
    let cfg = PostprocessConfig { dense_resize: DenseResize::Device, ..*cfg };
    super::panoptic::panoptic_impl(class_logits, mask_logits, boxes, labels, &cfg, chunk_elements)
}

/// Instance post-processing on the tensors' device ([`super::instances_from_masks`] with
/// [`DenseResize::Device`]) with at most `chunk_elements` query-pixels per chunk (at least one query).
pub fn instances_on_device(
    class_logits: &Tensor,
    mask_logits: &Tensor,
    boxes: &[Letterbox],
    labels: &Labels,
    cfg: &PostprocessConfig,
    chunk_elements: usize,
) -> Result<Vec<Vec<Instance>>, PostprocessError> {
    let cfg = PostprocessConfig { dense_resize: DenseResize::Device, ..*cfg };
    super::instances::instances_impl(class_logits, mask_logits, boxes, labels, &cfg, chunk_elements)
}

//! Post-processing: raw head outputs to label maps, instances and panoptic segments at the input resolution.
//!
//! Mask classification heads (EoMT: Kerssies et al., "Your ViT is Secretly an Image Segmentation Model", CVPR 2025;
//! Mask2Former: Cheng et al., "Masked-attention Mask Transformer for Universal Image Segmentation", CVPR 2022) give
//! `class_logits` `[B, Q, K + 1]` (the last class is "no object") and `mask_logits` `[B, Q, h, w]` at stride 4 of
//! the padded model input. The rules follow transformers' image processors (`EomtImageProcessor`,
//! `Mask2FormerImageProcessor`: `post_process_{semantic,instance,panoptic}_segmentation`) with the defaults of
//! [`PostprocessConfig`]; each module documents its rule and where it departs from transformers:
//! [`semantic`] (also per-pixel logits of the linear head), [`instances`], [`panoptic`]; the geometry (padding
//! removed, resampled to the camera image in one step) is in [`resample`].
//!
//! Where the work runs ([`DenseResize`]). The small tensor work (softmax, the class x query product, the choice of
//! queries) always runs on the device the tensors are on. The dense work (resampling to the output fused with the
//! argmax / thresholds / areas) runs
//!
//! - on the CPU, for tensors on the CPU ([`DenseResize::Auto`]) or with [`DenseResize::Cpu`]: exact float64
//!   kernels that visit each output pixel about once and transfer only the cropped low-resolution maps of the
//!   queries that matter; a Python reference of the same rules (`tools/postprocess_reference.py`) checks every
//!   label bit for bit;
//! - with libtorch on the tensors' device, for tensors on CUDA ([`DenseResize::Auto`]) or with
//!   [`DenseResize::Device`] (then also on the CPU, which is how the tests check it): float32, one bilinear resize
//!   of the class score maps (semantic) or of the kept queries' mask logits (panoptic, instances: [`device`]), so
//!   that only the label / id map and small per-segment tables come back. On a GPU the CPU kernels, fed over PCIe,
//!   cost several times the forward pass (panoptic on an H200: 31 ms against an 8 ms ViT-S forward); the device
//!   path is what transformers does. Its results equal the CPU kernels' except at float32 near-ties
//!   (tests/postprocess.rs `device_*`: no pixel differs on the reference cases).
//!
//! The segment selection both paths share (mask threshold as a logit, overlap rule, stuff merging, a query's
//! mask) is in `segments`, the device kernels in `device_kernels`: `panoptic` and `instances` use both, [`device`]
//! (their forced-device entry points) uses `panoptic` and `instances`, and none imports one that imports it.

pub mod device;
mod device_kernels;
pub mod instances;
pub mod labels;
pub mod panoptic;
pub mod resample;
mod segments;
pub mod semantic;
mod simd;
pub mod types;

pub use instances::instances_from_masks;
pub use labels::Labels;
pub use panoptic::panoptic_from_masks;
pub use semantic::{semantic_from_logits, semantic_from_masks};
pub use types::{
    BBox, BinaryMask, FrameSegmentation, HeadSemantic, Instance, LabelData, LabelMap, PanopticMap, SegmentInfo,
    UNLABELLED_U16, UNLABELLED_U8,
};

use crate::pipeline::preprocess::Letterbox;
use std::path::PathBuf;
use tch::{Device, Tensor};

/// Why post-processing failed.
#[derive(Debug, thiserror::Error)]
pub enum PostprocessError {
    #[error("{what}: tensor of shape {shape:?} where {expected} was expected")]
    Shape { what: &'static str, shape: Vec<i64>, expected: String },
    #[error("{images} images in the batch but {boxes} letterboxes")]
    BatchMismatch { images: i64, boxes: usize },
    #[error("{classes} classes do not fit a label map (at most {} ids; 65535 is unlabelled)", labels::MAX_CLASS_ID + 1)]
    TooManyClasses { classes: i64 },
    #[error("invalid geometry: {0}")]
    Geometry(String),
    #[error("invalid post-processing config: {0}")]
    Config(String),
    #[error("{path}:{line}: {message}")]
    LabelsLine { path: PathBuf, line: usize, message: String },
    #[error("{path}: {message}")]
    Labels { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("libtorch failed in post-processing: {0}")]
    Torch(#[from] tch::TchError),
}

impl PostprocessError {
    pub(crate) fn shape(what: &'static str, shape: &[i64], expected: &str) -> Self {
        PostprocessError::Shape { what, shape: shape.to_vec(), expected: expected.to_string() }
    }
}

/// Where the dense work runs: the resample-and-argmax of semantic scores, the per-pixel winners and areas of
/// panoptic segments, the masks of instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DenseResize {
    /// On the CPU kernels when the tensors are on the CPU, with libtorch on their device otherwise.
    #[default]
    Auto,
    /// libtorch on the tensors' device ([`device`]; float32: results may differ from the CPU kernels at near-ties).
    /// Meant for GPUs: on the CPU it is several times slower than the CPU kernels (dense over every kept query).
    Device,
    /// The fused CPU kernels (exact in f64).
    Cpu,
}

impl DenseResize {
    /// Whether the dense work on tensors on `device` runs with libtorch there.
    pub fn on_device(self, device: Device) -> bool {
        match self {
            DenseResize::Auto => device != Device::Cpu,
            DenseResize::Device => true,
            DenseResize::Cpu => false,
        }
    }
}

/// Thresholds and limits. Defaults are transformers' `EomtImageProcessor` defaults (threshold 0.8, mask threshold
/// 0.5, overlap 0.8) and the EoMT / Mask2Former authors' 100 instances per image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PostprocessConfig {
    /// Instances: keep those with class probability x mean mask probability `>=` this (transformers
    /// `threshold`: 0.8 in EoMT, 0.5 in Mask2Former).
    pub score_threshold: f64,
    /// Panoptic: keep queries whose best class (of all `K + 1`) is not "no object" and whose probability is `>`
    /// this (transformers `threshold`, 0.8).
    pub query_threshold: f64,
    /// Mask probability threshold, in (0, 1): instance masks are `> t`, panoptic own masks `>= t` (0.5).
    pub mask_threshold: f64,
    /// Panoptic: a query keeps its segment only if the pixels it won over its own mask's area is `>` this (0.8).
    pub overlap_threshold: f64,
    /// Instances: (query, class) pairs considered, best first (100).
    pub top_k: usize,
    /// Where semantic maps are resampled (see [`DenseResize`]).
    pub dense_resize: DenseResize,
}

impl Default for PostprocessConfig {
    fn default() -> Self {
        PostprocessConfig {
            score_threshold: 0.8,
            query_threshold: 0.8,
            mask_threshold: 0.5,
            overlap_threshold: 0.8,
            top_k: 100,
            dense_resize: DenseResize::Auto,
        }
    }
}

impl PostprocessConfig {
    pub fn validate(&self) -> Result<(), PostprocessError> {
        let bad = |m: String| Err(PostprocessError::Config(m));
        if !(self.mask_threshold > 0.0 && self.mask_threshold < 1.0) {
            return bad(format!("mask_threshold must be in (0, 1), got {}", self.mask_threshold));
        }
        for (name, v) in [
            ("score_threshold", self.score_threshold),
            ("query_threshold", self.query_threshold),
            ("overlap_threshold", self.overlap_threshold),
        ] {
            if !v.is_finite() {
                return bad(format!("{name} must be finite, got {v}"));
            }
        }
        Ok(())
    }
}

/// Where a frame's semantic map comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemanticSource {
    Off,
    /// The class scores summed over queries ([`semantic_from_masks`]).
    Scores,
    /// The class of each pixel's panoptic segment, void unlabelled ([`PanopticMap::to_semantic`]).
    Panoptic,
}

/// Where a frame's instance list comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceSource {
    Off,
    /// Top-k (query, class) pairs, possibly overlapping ([`instances_from_masks`]).
    TopK,
    /// The thing segments of the panoptic result, non-overlapping ([`PanopticMap::to_instances`]).
    Panoptic,
}

/// What [`postprocess_masks`] produces. A panoptic source computes the panoptic map even if `panoptic` is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaskOutputs {
    pub semantic: SemanticSource,
    pub instances: InstanceSource,
    pub panoptic: bool,
}

impl MaskOutputs {
    /// A semantic label map only (ADE20K-style semantic models).
    pub fn semantic() -> Self {
        MaskOutputs { semantic: SemanticSource::Scores, instances: InstanceSource::Off, panoptic: false }
    }
    /// Top-k instances only (COCO instance models).
    pub fn instances() -> Self {
        MaskOutputs { semantic: SemanticSource::Off, instances: InstanceSource::TopK, panoptic: false }
    }
    /// Panoptic map, with the semantic map and the thing instances derived from it (COCO panoptic models).
    pub fn panoptic() -> Self {
        MaskOutputs { semantic: SemanticSource::Panoptic, instances: InstanceSource::Panoptic, panoptic: true }
    }
}

/// Post-processes a batch of mask classification outputs into one [`FrameSegmentation`] per image.
pub fn postprocess_masks(
    class_logits: &Tensor,
    mask_logits: &Tensor,
    boxes: &[Letterbox],
    labels: &Labels,
    cfg: &PostprocessConfig,
    outputs: MaskOutputs,
) -> Result<Vec<FrameSegmentation>, PostprocessError> {
    let dims = check_mask_outputs(class_logits, mask_logits, boxes)?;
    let k = dims.classes as usize;
    let mut frames = vec![FrameSegmentation { class_names: labels.names_for(k), ..Default::default() }; boxes.len()];
    let need_panoptic = outputs.panoptic
        || outputs.semantic == SemanticSource::Panoptic
        || outputs.instances == InstanceSource::Panoptic;
    if outputs.semantic == SemanticSource::Scores {
        for (f, m) in frames.iter_mut().zip(semantic_from_masks(class_logits, mask_logits, boxes, cfg)?) {
            f.semantic = Some(m);
        }
    }
    if outputs.instances == InstanceSource::TopK {
        for (f, i) in frames.iter_mut().zip(instances_from_masks(class_logits, mask_logits, boxes, labels, cfg)?) {
            f.instances = i;
        }
    }
    if need_panoptic {
        for (f, p) in frames.iter_mut().zip(panoptic_from_masks(class_logits, mask_logits, boxes, labels, cfg)?) {
            if outputs.semantic == SemanticSource::Panoptic {
                f.semantic = Some(p.to_semantic(k));
            }
            if outputs.instances == InstanceSource::Panoptic {
                f.instances = p.to_instances(labels);
            }
            if outputs.panoptic {
                f.panoptic = Some(p);
            }
        }
    }
    Ok(frames)
}

/// Post-processes per-pixel class logits `[B, K, h, w]` (the linear head) into one [`FrameSegmentation`] each.
pub fn postprocess_semantic_logits(
    logits: &Tensor,
    boxes: &[Letterbox],
    labels: &Labels,
    cfg: &PostprocessConfig,
) -> Result<Vec<FrameSegmentation>, PostprocessError> {
    let k = logits.size().get(1).copied().unwrap_or(0).max(0) as usize;
    Ok(semantic_from_logits(logits, boxes, cfg)?
        .into_iter()
        .map(|m| FrameSegmentation { semantic: Some(m), class_names: labels.names_for(k), ..Default::default() })
        .collect())
}

/// The sizes of a mask classification output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaskDims {
    pub batch: i64,
    /// K, without "no object".
    pub classes: i64,
    pub h: i64,
    pub w: i64,
}

pub(crate) fn check_mask_outputs(
    class_logits: &Tensor,
    mask_logits: &Tensor,
    boxes: &[Letterbox],
) -> Result<MaskDims, PostprocessError> {
    let (cs, ms) = (class_logits.size(), mask_logits.size());
    let &[b, q, k1] = cs.as_slice() else {
        return Err(PostprocessError::shape("class_logits", &cs, "[B, Q, K + 1]"));
    };
    if b < 1 || q < 1 || k1 < 2 {
        return Err(PostprocessError::shape("class_logits", &cs, "[B, Q, K + 1] with B, Q > 0 and K > 0"));
    }
    if q > i64::from(u16::MAX) - 1 {
        return Err(PostprocessError::shape("class_logits", &cs, "at most 65534 queries"));
    }
    let expected = format!("[{b}, {q}, h, w] (batch and queries of class_logits {cs:?}) with h, w > 0");
    match ms.as_slice() {
        &[mb, mq, h, w] if mb == b && mq == q && h > 0 && w > 0 => {
            check_classes(k1 - 1)?;
            if boxes.len() as i64 != b {
                return Err(PostprocessError::BatchMismatch { images: b, boxes: boxes.len() });
            }
            Ok(MaskDims { batch: b, classes: k1 - 1, h, w })
        }
        _ => Err(PostprocessError::shape("mask_logits", &ms, &expected)),
    }
}

pub(crate) fn check_classes(classes: i64) -> Result<(), PostprocessError> {
    if classes > labels::MAX_CLASS_ID as i64 + 1 {
        return Err(PostprocessError::TooManyClasses { classes });
    }
    Ok(())
}

/// `(index, letterbox)` for each image, after checking there is one letterbox per image.
pub(crate) fn image_boxes(
    boxes: &[Letterbox],
    batch: i64,
) -> Result<impl Iterator<Item = (i64, &Letterbox)>, PostprocessError> {
    if boxes.len() as i64 != batch {
        return Err(PostprocessError::BatchMismatch { images: batch, boxes: boxes.len() });
    }
    Ok(boxes.iter().enumerate().map(|(i, lb)| (i as i64, lb)))
}

/// Copies a float tensor to a CPU `Vec<f32>` (row-major).
pub(crate) fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>, PostprocessError> {
    let t = t.f_to_device(Device::Cpu)?.f_to_kind(tch::Kind::Float)?.f_contiguous()?;
    Ok(Vec::<f32>::try_from(t.f_reshape([-1])?)?)
}

//! Semantic label maps: from mask classification (EoMT, Mask2Former) and from per-pixel class logits (the DINOv3
//! linear head).
//!
//! Mask classification (Cheng et al. 2022, Mask2Former; Kerssies et al. 2025, EoMT): the score of class `k` at a
//! pixel is `sum_q softmax(class_q)[k] * sigmoid(mask_q)` (the last class, "no object", dropped), the label the
//! argmax over `k`. transformers up-samples the mask *logits* to the model input before the sigmoid; that costs
//! `Q x H x W` sigmoids and a `K x Q x H x W` product (~8 GFLOP for 200 queries, 133 classes, 640x480). We form
//! the scores at the mask resolution (stride 4) and resample the `K` score maps instead (see [`super::resample`]):
//! bilinear interpolation is linear but the sigmoid is not, so labels can differ from transformers' along class
//! boundaries, by up to about half a mask cell (2 pixels at stride 4): on synthetic EoMT-like outputs at 240 x 320,
//! 0.5 % (soft blobs) to 1.5 % (sharp tiles) of the pixels. With masks given at the output resolution the two
//! rules coincide (tests/postprocess.rs `semantic_matches_transformers_at_stride_1`). A panoptic model's semantic
//! map derived from its panoptic result ([`super::SemanticSource::Panoptic`]) follows transformers' order exactly.
//!
//! The resampling and the argmax are fused: for each cell between four map samples, a class can only win
//! somewhere inside if its largest corner score reaches the largest smallest-corner score of any class; pixels
//! of cells with one such candidate get it without interpolating, others compare the candidates only. This is
//! exact (ties go to the lowest class id, like `argmax`). On a CUDA device [`DenseResize::Auto`] instead resizes
//! the score maps with libtorch there and transfers the label map only.

use super::resample::{in_row_bands, lerp, slack, Axis, Plan};
use super::types::LabelMap;
use super::{check_mask_outputs, image_boxes, to_vec_f32, DenseResize, PostprocessConfig, PostprocessError};
use crate::pipeline::preprocess::Letterbox;
use tch::{Device, Kind, Tensor};

/// Semantic label maps from mask classification outputs: `class_logits` `[B, Q, K + 1]`, `mask_logits`
/// `[B, Q, h, w]` over the padded model input, one [`Letterbox`] per image. Maps are `input_h` x `input_w`.
pub fn semantic_from_masks(
    class_logits: &Tensor,
    mask_logits: &Tensor,
    boxes: &[Letterbox],
    cfg: &PostprocessConfig,
) -> Result<Vec<LabelMap>, PostprocessError> {
    let _guard = tch::no_grad_guard();
    let dims = check_mask_outputs(class_logits, mask_logits, boxes)?;
    let (cl, ml) = (class_logits.f_to_kind(Kind::Float)?, mask_logits.f_to_kind(Kind::Float)?);
    image_boxes(boxes, dims.batch)?
        .map(|(b, lb)| {
            let plan = Plan::new(lb, dims.h, dims.w)?;
            let scores = class_scores(&cl.f_get(b)?, &plan.crop(&ml.f_get(b)?)?)?;
            // [n, K] -> [K, rows, cols] over the crop.
            let chw = scores.f_tr()?.f_reshape([dims.classes, plan.crop_h, plan.crop_w])?;
            resample_argmax(&chw, &plan, dims.classes as usize, cfg.dense_resize)
        })
        .collect()
}

/// Semantic label maps from per-pixel class logits `[B, K, h, w]` over the padded model input (any stride), one
/// [`Letterbox`] per image: crop and resample to the input (as for mask scores), then argmax.
pub fn semantic_from_logits(
    logits: &Tensor,
    boxes: &[Letterbox],
    cfg: &PostprocessConfig,
) -> Result<Vec<LabelMap>, PostprocessError> {
    let _guard = tch::no_grad_guard();
    let size = logits.size();
    let &[batch, classes, h, w] = size.as_slice() else {
        return Err(PostprocessError::shape("logits", &size, "[B, K, h, w]"));
    };
    if classes < 1 || h < 1 || w < 1 {
        return Err(PostprocessError::shape("logits", &size, "[B, K, h, w] with K, h, w > 0"));
    }
    super::check_classes(classes)?;
    let logits = logits.f_to_kind(Kind::Float)?;
    image_boxes(boxes, batch)?
        .map(|(b, lb)| {
            let plan = Plan::new(lb, h, w)?;
            resample_argmax(&plan.crop(&logits.f_get(b)?)?, &plan, classes as usize, cfg.dense_resize)
        })
        .collect()
}

/// `sigmoid(masks)^T x softmax(class)[:, :K]`: `[rows * cols, K]` class scores over a cropped `[Q, rows, cols]`
/// mask map, for one image's `[Q, K + 1]` class logits. (The Python reference makes the same libtorch calls.)
pub(crate) fn class_scores(class_logits: &Tensor, masks: &Tensor) -> Result<Tensor, PostprocessError> {
    let (q, k1) = class_logits.size2()?;
    let probs = class_logits.f_softmax(-1, Kind::Float)?.f_narrow(1, 0, k1 - 1)?;
    let sig = masks.f_sigmoid()?.f_reshape([q, -1])?;
    Ok(sig.f_tr()?.f_matmul(&probs)?)
}

/// Resamples a cropped `[K, crop_h, crop_w]` score map to the output and takes the argmax over `K`.
fn resample_argmax(chw: &Tensor, plan: &Plan, classes: usize, mode: DenseResize) -> Result<LabelMap, PostprocessError> {
    let (oh, ow) = (plan.out_h, plan.out_w);
    let labels = if mode.on_device(chw.device()) {
        let resized = plan.resize_on_device(chw)?;
        let argmax = resized.f_argmax(0, false)?.f_to_kind(Kind::Int)?.f_to_device(Device::Cpu)?;
        Vec::<i32>::try_from(argmax.f_reshape([-1])?)?.into_iter().map(|v| v as u16).collect()
    } else {
        let prepared = plan.shrink(chw)?;
        let (rows, cols) = plan.prepared_hw();
        let hwc = to_vec_f32(&prepared.f_permute([1, 2, 0])?)?;
        debug_assert_eq!(hwc.len(), rows * cols * classes);
        let (ay, ax) = plan.axes();
        argmax_resampled(&hwc, classes, cols, &ay, &ax)
    };
    Ok(LabelMap::from_u16(oh as u32, ow as u32, labels, classes))
}

/// The argmax over channels of the bilinear resampling (`ay`, `ax`) of a pixel-major `[rows, cols, k]` map.
pub(crate) fn argmax_resampled(data: &[f32], k: usize, cols: usize, ay: &Axis, ax: &Axis) -> Vec<u16> {
    let width = ax.i0.len();
    let mut out = vec![0u16; ay.i0.len() * width];
    in_row_bands(ay, width, &mut out, |runs, rows| {
        let row0 = runs.first().map_or(0, |r| r.0);
        let mut cand: Vec<usize> = Vec::with_capacity(k);
        let px = |y: usize, x: usize| &data[(y * cols + x) * k..][..k];
        for &(ys, ye) in runs {
            let (y0, y1) = (ay.i0[ys], ay.i1[ys]);
            for &(xs, xe) in &ax.runs {
                let (x0, x1) = (ax.i0[xs], ax.i1[xs]);
                let (a, b, c, d) = (px(y0, x0), px(y0, x1), px(y1, x0), px(y1, x1));
                // The best lower bound, then every class whose upper bound reaches it.
                let mut lower = f32::NEG_INFINITY;
                for i in 0..k {
                    lower = lower.max(a[i].min(b[i]).min(c[i].min(d[i])));
                }
                let reach = f64::from(lower) - slack(f64::from(lower));
                cand.clear();
                cand.extend((0..k).filter(|&i| f64::from(a[i].max(b[i]).max(c[i].max(d[i]))) >= reach));
                if cand.len() <= 1 {
                    let label = cand.first().copied().unwrap_or(0) as u16;
                    for y in ys..ye {
                        rows[(y - row0) * width + xs..(y - row0) * width + xe].fill(label);
                    }
                    continue;
                }
                for y in ys..ye {
                    let (wy0, wy1) = (ay.w0[y], ay.w1[y]);
                    for x in xs..xe {
                        let (wx0, wx1) = (ax.w0[x], ax.w1[x]);
                        let mut best = (cand[0], f64::NEG_INFINITY);
                        for &i in &cand {
                            let corners = [a[i], b[i], c[i], d[i]].map(f64::from);
                            let v = lerp(wy0, wy1, wx0, wx1, corners);
                            if v > best.1 {
                                best = (i, v);
                            }
                        }
                        rows[(y - row0) * width + x] = best.0 as u16;
                    }
                }
            }
        }
    });
    out
}

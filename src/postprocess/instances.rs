//! Instance segmentation from mask classification, after Mask2Former's instance inference (Cheng et al. 2022;
//! transformers `Mask2FormerImageProcessor.post_process_instance_segmentation`) and the EoMT authors' evaluation
//! (Kerssies et al. 2025, `eval_top_k_instances = 100`):
//!
//! 1. Scores `softmax(class)[:, :K]` over all (query, class) pairs; the `top_k` (100) best pairs are candidates
//!    (libtorch `topk`; at most `Q x K`).
//! 2. A candidate's mask is its query's mask logit resampled to the input (see [`super::resample`]) `>
//!    ln(t / (1 - t))` for `mask_threshold` t (0.5: logit > 0, as transformers' `mask_pred > 0`).
//! 3. Its score is the class probability times the mean `sigmoid` inside the mask (`sum / (area + 1e-6)`, 0 when
//!    empty); candidates with an empty mask or a score below `score_threshold` (0.8, transformers' EoMT default;
//!    Mask2Former's is 0.5) are dropped.
//! 4. The list is sorted by score (descending; ties by query, then class); ids are 1-based positions.
//!
//! Masks may overlap, as in transformers (whose `overlap_mask_area_threshold` argument is unused by instance
//! post-processing); take the instances of the panoptic result for a non-overlapping set. transformers'
//! `EomtImageProcessor` takes each query's best class instead of a top-k over pairs; for `score_threshold >= 0.5`
//! and fewer than `top_k` passing pairs both give the same instances (a query has at most one class above 0.5).
//!
//! Since the mean mask probability is below 1, a pair whose class probability is below `score_threshold` cannot
//! pass: only the others are resampled, and only in the cells their mask reaches. The result is the same. On a
//! CUDA device ([`super::DenseResize::Auto`]; anywhere with `Device`) the masks, areas, probability sums and boxes
//! are computed there in float32 and only the statistics and the cropped masks of passing instances are
//! transferred ([`super::device`]).

use super::labels::Labels;
use super::resample::{lerp, par_map, sigmoid, slack, Axis, Plan};
use super::segments::{threshold_logit, QueryMask};
use super::types::{BBox, BinaryMask, Instance};
use super::{check_mask_outputs, image_boxes, to_vec_f32, PostprocessConfig, PostprocessError};
use crate::pipeline::preprocess::Letterbox;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// Instances from `class_logits` `[B, Q, K + 1]` and `mask_logits` `[B, Q, h, w]` over the padded model input,
/// one [`Letterbox`] per image; boxes and masks are in input pixels.
pub fn instances_from_masks(
    class_logits: &Tensor,
    mask_logits: &Tensor,
    boxes: &[Letterbox],
    labels: &Labels,
    cfg: &PostprocessConfig,
) -> Result<Vec<Vec<Instance>>, PostprocessError> {
    instances_impl(class_logits, mask_logits, boxes, labels, cfg, super::device_kernels::DEVICE_CHUNK_ELEMENTS)
}

/// [`instances_from_masks`], with at most `chunk_elements` resampled values per query chunk on the device path.
pub(crate) fn instances_impl(
    class_logits: &Tensor,
    mask_logits: &Tensor,
    boxes: &[Letterbox],
    labels: &Labels,
    cfg: &PostprocessConfig,
    chunk_elements: usize,
) -> Result<Vec<Vec<Instance>>, PostprocessError> {
    let _guard = tch::no_grad_guard();
    cfg.validate()?;
    let dims = check_mask_outputs(class_logits, mask_logits, boxes)?;
    let (cl, ml) = (class_logits.f_to_kind(Kind::Float)?, mask_logits.f_to_kind(Kind::Float)?);
    let on_device = cfg.dense_resize.on_device(ml.device());
    let k = dims.classes;
    let thr = threshold_logit(cfg.mask_threshold);
    image_boxes(boxes, dims.batch)?
        .map(|(b, lb)| {
            let plan = Plan::new(lb, dims.h, dims.w)?;
            let probs = cl.f_get(b)?.f_softmax(-1, Kind::Float)?.f_narrow(1, 0, k)?.f_reshape([-1])?;
            let top = (cfg.top_k as i64).min(probs.size()[0]);
            let (values, index) = probs.f_topk(top, 0, true, true)?;
            let values = to_vec_f32(&values)?;
            let index = Vec::<i64>::try_from(&index.f_to_device(Device::Cpu)?)?;
            // (probability, query, class) of the pairs that can pass; their distinct queries.
            let pairs: Vec<(f64, i64, i64)> = values
                .iter()
                .zip(&index)
                .map(|(&p, &i)| (f64::from(p), i / k, i % k))
                .filter(|&(p, _, _)| p >= cfg.score_threshold)
                .collect();
            let queries: Vec<i64> =
                pairs.iter().map(|p| p.1).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            let mut masks = BTreeMap::new();
            if !queries.is_empty() {
                let sel = Tensor::f_from_slice(&queries)?.f_to_device(ml.device())?;
                let cropped = plan.crop(&ml.f_get(b)?.f_index_select(0, &sel)?)?;
                let found = if on_device {
                    // Only masks that give an instance are transferred.
                    let needed = |j: usize, area: u64, prob_sum: f64| {
                        let m = QueryMask { area, prob_sum, ..QueryMask::empty() };
                        pairs.iter().any(|&(p, q, _)| Some(&q) == queries.get(j) && passes(p, &m, cfg.score_threshold))
                    };
                    super::device_kernels::query_masks(&cropped, &plan, thr, chunk_elements, needed)?
                } else {
                    let logits = to_vec_f32(&plan.shrink(&cropped)?)?;
                    let (rows, cols) = plan.prepared_hw();
                    let (ay, ax) = plan.axes();
                    par_map(queries.len(), |j| {
                        query_mask(&logits[j * rows * cols..][..rows * cols], cols, &ay, &ax, thr)
                    })
                };
                masks.extend(queries.iter().copied().zip(found));
            }
            let mut found: Vec<(f64, i64, i64)> = Vec::new();
            for &(p, q, c) in &pairs {
                let Some(m) = masks.get(&q) else { continue };
                if passes(p, m, cfg.score_threshold) {
                    found.push((score(p, m), q, c));
                }
            }
            found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let instances = found
                .iter()
                .enumerate()
                .filter_map(|(i, &(score, q, c))| {
                    let m = masks.get(&q)?;
                    Some(Instance {
                        id: i as u32 + 1,
                        class_id: c as u32,
                        class_name: labels.name(c as usize),
                        score: score as f32,
                        bbox: m.bbox,
                        mask: m.mask.clone(),
                        area: m.area as u32,
                        is_thing: labels.is_thing(c as usize),
                    })
                })
                .collect();
            Ok(instances)
        })
        .collect()
}

/// Step 3's score of a pair with class probability `p` and its query's mask.
fn score(p: f64, m: &QueryMask) -> f64 {
    p * (m.prob_sum / (m.area as f64 + 1e-6))
}

/// Step 3's test.
fn passes(p: f64, m: &QueryMask, score_threshold: f64) -> bool {
    m.area > 0 && score(p, m) >= score_threshold
}

/// Resamples one `[rows, cols]` logit map and thresholds it (`> thr`), visiting only cells the mask reaches.
fn query_mask(map: &[f32], cols: usize, ay: &Axis, ax: &Axis, thr: f64) -> QueryMask {
    // Cells some pixel of which may be in the mask, with their corner logits, and the pixels they span.
    let mut cells = Vec::new();
    let (mut x_lo, mut y_lo, mut x_hi, mut y_hi) = (usize::MAX, usize::MAX, 0, 0);
    for &(ys, ye) in &ay.runs {
        let (y0, y1) = (ay.i0[ys], ay.i1[ys]);
        for &(xs, xe) in &ax.runs {
            let (x0, x1) = (ax.i0[xs], ax.i1[xs]);
            let u = [map[y0 * cols + x0], map[y0 * cols + x1], map[y1 * cols + x0], map[y1 * cols + x1]].map(f64::from);
            let hi = u.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            if hi + slack(hi) > thr {
                cells.push((ys, ye, xs, xe, u));
                (x_lo, y_lo, x_hi, y_hi) = (x_lo.min(xs), y_lo.min(ys), x_hi.max(xe), y_hi.max(ye));
            }
        }
    }
    if cells.is_empty() {
        return QueryMask::empty();
    }
    let (span_w, span_x, span_y) = (x_hi - x_lo, x_lo, y_lo);
    let mut span = vec![0u8; (y_hi - y_lo) * span_w];
    let (mut area, mut prob_sum) = (0u64, 0f64);
    (x_lo, y_lo, x_hi, y_hi) = (usize::MAX, usize::MAX, 0, 0);
    for (ys, ye, xs, xe, u) in cells {
        for y in ys..ye {
            for x in xs..xe {
                let v = lerp(ay.w0[y], ay.w1[y], ax.w0[x], ax.w1[x], u);
                if v > thr {
                    span[(y - span_y) * span_w + x - span_x] = 255;
                    area += 1;
                    prob_sum += sigmoid(v);
                    (x_lo, y_lo, x_hi, y_hi) = (x_lo.min(x), y_lo.min(y), x_hi.max(x + 1), y_hi.max(y + 1));
                }
            }
        }
    }
    if area == 0 {
        return QueryMask::empty();
    }
    let (bw, bh) = (x_hi - x_lo, y_hi - y_lo);
    let mut data = Vec::with_capacity(bw * bh);
    for y in y_lo..y_hi {
        let row = (y - span_y) * span_w;
        data.extend_from_slice(&span[row + x_lo - span_x..row + x_hi - span_x]);
    }
    let bbox = BBox { x: x_lo as u32, y: y_lo as u32, width: bw as u32, height: bh as u32 };
    QueryMask { bbox, mask: BinaryMask { width: bw as u32, height: bh as u32, data }, area, prob_sum }
}

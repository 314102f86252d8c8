//! Panoptic segmentation from mask classification, following transformers' `EomtImageProcessor`
//! (`post_process_panoptic_segmentation`, `compute_segments`, `check_segment_validity`; itself after the EoMT
//! authors' `to_per_pixel_preds_panoptic` and Mask2Former's panoptic inference, Cheng et al. 2022):
//!
//! 1. Each query's class and score: the max of `softmax(class)` over all `K + 1` classes; queries whose class is
//!    "no object" or whose score is not above `query_threshold` (0.8) are dropped (compared in float32, as torch
//!    does).
//! 2. Every pixel goes to the kept query with the largest `score * sigmoid(mask logit)` (ties: the first query),
//!    the logits sampled bilinearly at the pixel (see [`super::resample`]).
//! 3. In query order, a query's segment is its pixels whose own mask probability is `>= mask_threshold` (0.5,
//!    i.e. logit `>= ln(t / (1 - t))`); it exists when its won area, its own-mask area and this final area are all
//!    non-zero and `won / own > overlap_threshold` (0.8; the ratio in float32, as torch divides int64 areas).
//! 4. Stuff classes (`label_ids_to_fuse`, [`Labels::stuff_ids`]) are merged: a later query of a stuff class that
//!    already has a segment adds its pixels to it. Other pixels are void (0); segment ids count from 1.
//!
//! Mask2Former's own `compute_segments` differs in step 3 (the segment is the won area, without the own-mask
//! condition, and fused queries add duplicate segment entries); we follow EoMT, the models this crate runs.
//!
//! Only kept queries are resampled, and only where it matters. Winners: in a cell between four map samples whose
//! corners share their best query and where every other query's corner values stay below that query's smallest,
//! it is the only candidate; elsewhere a query is a candidate only if its largest corner value reaches the largest
//! smallest-corner value (bounds from float32 values with a margin far above their rounding; float64 comparisons
//! among the candidates decide). Own-mask areas are counted per query, whole cells at once when all four corners
//! are on one side of the threshold. The result equals the dense rule exactly (tools/postprocess_reference.py).

use super::labels::Labels;
use super::resample::{in_row_bands, lerp, par_map, sigmoid, slack, Axis, Plan};
use super::types::{PanopticMap, SegmentInfo};
use super::{check_mask_outputs, image_boxes, to_vec_f32, PostprocessConfig, PostprocessError};
use crate::pipeline::preprocess::Letterbox;
use tch::{Device, Kind, Tensor};

/// Panoptic maps from `class_logits` `[B, Q, K + 1]` and `mask_logits` `[B, Q, h, w]` over the padded model input,
/// one [`Letterbox`] per image; maps are `input_h` x `input_w`.
pub fn panoptic_from_masks(
    class_logits: &Tensor,
    mask_logits: &Tensor,
    boxes: &[Letterbox],
    labels: &Labels,
    cfg: &PostprocessConfig,
) -> Result<Vec<PanopticMap>, PostprocessError> {
    let _guard = tch::no_grad_guard();
    cfg.validate()?;
    let dims = check_mask_outputs(class_logits, mask_logits, boxes)?;
    let (cl, ml) = (class_logits.f_to_kind(Kind::Float)?, mask_logits.f_to_kind(Kind::Float)?);
    image_boxes(boxes, dims.batch)?
        .map(|(b, lb)| {
            let plan = Plan::new(lb, dims.h, dims.w)?;
            let probs = cl.f_get(b)?.f_softmax(-1, Kind::Float)?;
            let (scores, classes) = probs.f_max_dim(-1, false)?;
            let keep = classes.f_ne(dims.classes)?.f_logical_and(&scores.f_gt(cfg.query_threshold)?)?;
            let index = keep.f_nonzero()?.f_reshape([-1])?;
            let kept = index.size()[0] as usize;
            let score_t = scores.f_index_select(0, &index)?;
            let scores = to_vec_f32(&score_t)?;
            let classes = classes.f_index_select(0, &index)?.f_to_device(Device::Cpu)?;
            let classes = Vec::<i64>::try_from(&classes)?;
            let pix = if kept == 0 {
                Pixels::void(plan.out_h * plan.out_w)
            } else {
                let logits = plan.prepare(&ml.f_get(b)?.f_index_select(0, &index)?)?;
                // score * sigmoid at the map samples (float32, for bounds only) and their best two per sample.
                let values = logits.f_sigmoid()?.f_mul(&score_t.f_view([-1, 1, 1])?)?;
                let (top, top_q) = values.f_topk(2.min(kept as i64), 0, true, true)?;
                let (rows, cols) = plan.prepared_hw();
                let (ay, ax) = plan.axes();
                let (values, top) = (to_vec_f32(&values)?, to_vec_f32(&top)?);
                let top_q =
                    Vec::<i32>::try_from(top_q.f_to_kind(Kind::Int)?.f_to_device(Device::Cpu)?.f_reshape([-1])?)?;
                let logits = to_vec_f32(&logits)?;
                let kept =
                    Kept { logits: &logits, values: &values, top: &top, top_q: &top_q, scores: &scores, rows, cols };
                let thr = threshold_logit(cfg.mask_threshold);
                let mut pix = assign_pixels(&kept, &ay, &ax, thr);
                pix.own = par_map(kept.scores.len(), |q| {
                    own_area(&logits[q * rows * cols..][..rows * cols], cols, &ay, &ax, thr)
                });
                pix
            };
            Ok(segments(pix, &classes, &scores, labels, cfg.overlap_threshold, plan.out_h, plan.out_w))
        })
        .collect()
}

/// `ln(t / (1 - t))`: `sigmoid(u) >= t` exactly when `u >= threshold_logit(t)` (0 for 0.5).
pub(crate) fn threshold_logit(t: f64) -> f64 {
    (t / (1.0 - t)).ln()
}

/// The kept queries' prepared logits `[n, rows, cols]` (CPU), `score * sigmoid` there (float32), the best two of
/// those per sample (`top`: `[2, rows, cols]`, `top_q`: the best's query) and the scores.
struct Kept<'a> {
    logits: &'a [f32],
    values: &'a [f32],
    top: &'a [f32],
    top_q: &'a [i32],
    scores: &'a [f32],
    rows: usize,
    cols: usize,
}

/// Per pixel, the winning kept query when its own mask is on there (else `NONE`); per kept query, the won
/// (`mask_k`), own-mask and final areas.
struct Pixels {
    winner: Vec<u16>,
    won: Vec<u64>,
    own: Vec<u64>,
    fin: Vec<u64>,
}

const NONE: u16 = u16::MAX;

impl Pixels {
    fn void(n: usize) -> Self {
        Pixels { winner: vec![NONE; n], won: vec![], own: vec![], fin: vec![] }
    }
}

/// Slack for bounds from float32 values in [0, 1]: far above their rounding, far below any gap that matters.
const SLACK32: f64 = 1e-5;

/// Step 2 with the won and final areas of step 3, fused with the resampling. A cell whose four corners have the
/// same best query, with every other query's corner values below its smallest, has one candidate; other cells
/// bound every query.
fn assign_pixels(kept: &Kept, ay: &Axis, ax: &Axis, thr: f64) -> Pixels {
    let n = kept.scores.len();
    let plane = kept.rows * kept.cols;
    let width = ax.i0.len();
    let mut winner = vec![NONE; ay.i0.len() * width];
    let bands = in_row_bands(ay, width, &mut winner, |runs, rows| {
        let row0 = runs.first().map_or(0, |r| r.0);
        let (mut won, mut fin) = (vec![0u64; n], vec![0u64; n]);
        let mut cand = Vec::with_capacity(n);
        let four = |src: &[f32], q: usize, at: [usize; 4]| at.map(|i| f64::from(src[q * plane + i]));
        for &(ys, ye) in runs {
            let (y0, y1) = (ay.i0[ys], ay.i1[ys]);
            for &(xs, xe) in &ax.runs {
                let (x0, x1) = (ax.i0[xs], ax.i1[xs]);
                let at = [y0 * kept.cols + x0, y0 * kept.cols + x1, y1 * kept.cols + x0, y1 * kept.cols + x1];
                let min4 = |v: [f64; 4]| v.into_iter().fold(f64::INFINITY, f64::min);
                let max4 = |v: [f64; 4]| v.into_iter().fold(f64::NEG_INFINITY, f64::max);
                cand.clear();
                let q = kept.top_q[at[0]] as usize;
                let same = at.iter().all(|&i| kept.top_q[i] as usize == q);
                if n == 1 || (same && max4(four(kept.top, 1, at)) < min4(four(kept.values, q, at)) - SLACK32) {
                    cand.push(q);
                } else {
                    let lower = (0..n).map(|q| min4(four(kept.values, q, at))).fold(f64::NEG_INFINITY, f64::max);
                    cand.extend((0..n).filter(|&q| max4(four(kept.values, q, at)) >= lower - SLACK32));
                    if cand.is_empty() {
                        cand.push(0); // only with NaN values
                    }
                }
                let logit = |q: usize, wy0, wy1, wx0, wx1| lerp(wy0, wy1, wx0, wx1, four(kept.logits, q, at));
                for y in ys..ye {
                    let (wy0, wy1) = (ay.w0[y], ay.w1[y]);
                    let row = &mut rows[(y - row0) * width + xs..(y - row0) * width + xe];
                    for (x, slot) in (xs..xe).zip(row.iter_mut()) {
                        let (wx0, wx1) = (ax.w0[x], ax.w1[x]);
                        // The winner (first of equals) and its logit here.
                        let (mut q, mut u) = (cand[0], logit(cand[0], wy0, wy1, wx0, wx1));
                        let mut best = f64::from(kept.scores[q]) * sigmoid(u);
                        for &c in cand.iter().skip(1) {
                            let uc = logit(c, wy0, wy1, wx0, wx1);
                            let v = f64::from(kept.scores[c]) * sigmoid(uc);
                            if v > best {
                                (q, u, best) = (c, uc, v);
                            }
                        }
                        won[q] += 1;
                        if u >= thr {
                            fin[q] += 1;
                            *slot = q as u16;
                        }
                    }
                }
            }
        }
        (won, fin)
    });
    let mut pix = Pixels { winner, won: vec![0; n], own: vec![0; n], fin: vec![0; n] };
    for (won, fin) in bands {
        pix.won.iter_mut().zip(won).for_each(|(a, b)| *a += b);
        pix.fin.iter_mut().zip(fin).for_each(|(a, b)| *a += b);
    }
    pix
}

/// Output pixels where one query's resampled logit `map` (`[rows, cols]`) is `>= thr`: whole cells when all four
/// corners are on one side, pixel by pixel otherwise.
fn own_area(map: &[f32], cols: usize, ay: &Axis, ax: &Axis, thr: f64) -> u64 {
    let mut area = 0u64;
    for &(ys, ye) in &ay.runs {
        let (y0, y1) = (ay.i0[ys], ay.i1[ys]);
        for &(xs, xe) in &ax.runs {
            let (x0, x1) = (ax.i0[xs], ax.i1[xs]);
            let u = [map[y0 * cols + x0], map[y0 * cols + x1], map[y1 * cols + x0], map[y1 * cols + x1]].map(f64::from);
            let lo = u.iter().fold(f64::INFINITY, |m, &v| m.min(v));
            let hi = u.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            if lo - slack(lo) >= thr {
                area += ((ye - ys) * (xe - xs)) as u64;
            } else if hi + slack(hi) >= thr {
                for y in ys..ye {
                    for x in xs..xe {
                        area += u64::from(lerp(ay.w0[y], ay.w1[y], ax.w0[x], ax.w1[x], u) >= thr);
                    }
                }
            }
        }
    }
    area
}

/// Steps 3 and 4: which kept queries become segments, stuff merged, and the id map.
fn segments(
    pix: Pixels,
    classes: &[i64],
    scores: &[f32],
    labels: &Labels,
    overlap_threshold: f64,
    out_h: usize,
    out_w: usize,
) -> PanopticMap {
    let mut seg_of = vec![0u16; pix.won.len()];
    let mut segments: Vec<SegmentInfo> = Vec::new();
    let mut stuff_segment = std::collections::HashMap::new();
    for q in 0..pix.won.len() {
        let (won, own, fin) = (pix.won[q], pix.own[q], pix.fin[q]);
        let ratio = won as f32 / own.max(1) as f32;
        if won == 0 || own == 0 || fin == 0 || f64::from(ratio) <= overlap_threshold {
            continue;
        }
        let class = classes[q].max(0) as usize;
        let is_thing = labels.is_thing(class);
        if !is_thing {
            if let Some(&id) = stuff_segment.get(&class) {
                seg_of[q] = id;
                continue;
            }
        }
        let id = segments.len() as u16 + 1;
        if !is_thing {
            stuff_segment.insert(class, id);
        }
        seg_of[q] = id;
        segments.push(SegmentInfo { id: u32::from(id), class_id: class as u32, is_thing, score: scores[q], area: 0 });
    }
    let ids: Vec<u16> =
        pix.winner.iter().map(|&w| if w == NONE { 0 } else { seg_of.get(w as usize).copied().unwrap_or(0) }).collect();
    for &id in &ids {
        if id > 0 {
            segments[id as usize - 1].area += 1;
        }
    }
    PanopticMap { height: out_h as u32, width: out_w as u32, ids, segments }
}

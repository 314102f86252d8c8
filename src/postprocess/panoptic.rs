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
//! Where it runs ([`super::DenseResize`]): on a CUDA device (or with `Device` anywhere) steps 2 and 3 run with
//! libtorch in float32 on the tensors' device ([`super::device`]); otherwise in the exact CPU kernel below. Steps
//! 1 and 4 are shared.
//!
//! The CPU kernel resamples only kept queries, and only where it matters, from a pixel-major copy of their logits
//! (`[rows, cols, n]`, `n` padded to a multiple of 8, so that a cell's four corners are four contiguous rows of all
//! queries). Per band of rows it first computes `score * sigmoid` at the map samples in float32 (a branchless
//! `e^-u`; AVX2 when the CPU has it). For each cell between four samples, a query's values inside lie between the
//! smallest and the largest of its corner values; it is a candidate only if its largest reaches the largest
//! smallest one (slack 1e-5, far above the float32 error). Cells with one candidate need no sigmoid: only the
//! winner's logit is interpolated, for the threshold, and not even that when its four corners are on one side. In
//! the other cells each pixel ranks the candidates in float32 by `(1 + e^-u) / score` (the inverse of the value:
//! no division) and evaluates exactly (float64, in the operation order the Python reference mirrors) only those
//! within a relative slack far above the float32 error of the best: usually one, which then wins without a float64
//! sigmoid. Own-mask areas are bounded by the same corner logits (cells with all corners above / below the
//! threshold); only queries whose overlap test the bounds leave open (the test is monotone in the own area) are
//! counted exactly, whole cells at once when all four corners are on one side. Every bound is conservative, so the
//! result equals the dense float64 rule exactly: tools/postprocess_reference.py checks every pixel, on cases that
//! include an untrained model's flat masks, where dozens of queries compete at every pixel (`flat`). That is also
//! the CPU worst case (bench/eomt.py `--confident 200`: 120 kept queries, ~90 candidates per pixel), where this
//! kernel needs about a fifth of the CPU time of evaluating a float64 sigmoid for every candidate. NaN logits give
//! unspecified (but in-range) winners.

use super::labels::Labels;
use super::resample::{in_row_bands, lerp, par_map, sigmoid, slack, Axis, Plan};
use super::segments::{finish, keeps, select_segments, threshold_logit, Queries};
use super::simd::{approx_inverse, count_at_most, first_at_most, has_avx2, max_f32, min_f32, scaled_sigmoid, PAD};
use super::types::PanopticMap;
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
    panoptic_impl(class_logits, mask_logits, boxes, labels, cfg, super::device_kernels::DEVICE_CHUNK_ELEMENTS)
}

/// [`panoptic_from_masks`], with at most `chunk_elements` resampled values per query chunk on the device path.
pub(crate) fn panoptic_impl(
    class_logits: &Tensor,
    mask_logits: &Tensor,
    boxes: &[Letterbox],
    labels: &Labels,
    cfg: &PostprocessConfig,
    chunk_elements: usize,
) -> Result<Vec<PanopticMap>, PostprocessError> {
    let _guard = tch::no_grad_guard();
    cfg.validate()?;
    let dims = check_mask_outputs(class_logits, mask_logits, boxes)?;
    let (cl, ml) = (class_logits.f_to_kind(Kind::Float)?, mask_logits.f_to_kind(Kind::Float)?);
    let on_device = cfg.dense_resize.on_device(ml.device());
    let thr = threshold_logit(cfg.mask_threshold);
    image_boxes(boxes, dims.batch)?
        .map(|(b, lb)| {
            let plan = Plan::new(lb, dims.h, dims.w)?;
            let probs = cl.f_get(b)?.f_softmax(-1, Kind::Float)?;
            let (scores, classes) = probs.f_max_dim(-1, false)?;
            let keep = classes.f_ne(dims.classes)?.f_logical_and(&scores.f_gt(cfg.query_threshold)?)?;
            let index = keep.f_nonzero()?.f_reshape([-1])?;
            let score_t = scores.f_index_select(0, &index)?;
            let scores = to_vec_f32(&score_t)?;
            let classes = classes.f_index_select(0, &index)?.f_to_device(Device::Cpu)?;
            let classes = Vec::<i64>::try_from(&classes)?;
            let queries = Queries { classes: &classes, scores: &scores, labels, overlap: cfg.overlap_threshold };
            if scores.is_empty() {
                return Ok(finish(vec![0; plan.out_h * plan.out_w], vec![], plan.out_h, plan.out_w));
            }
            let cropped = plan.crop(&ml.f_get(b)?.f_index_select(0, &index)?)?;
            if on_device {
                super::device_kernels::panoptic_image(&cropped, &score_t, &plan, thr, &queries, chunk_elements)
            } else {
                cpu_image(&cropped, &plan, thr, &queries)
            }
        })
        .collect()
}

/// The exact CPU kernel for one image: cropped kept logits `[n, crop_h, crop_w]` to the panoptic map.
fn cpu_image(cropped: &Tensor, plan: &Plan, thr: f64, q: &Queries) -> Result<PanopticMap, PostprocessError> {
    let prepared = plan.shrink(cropped)?;
    let (rows, cols) = plan.prepared_hw();
    let (ay, ax) = plan.axes();
    let n = q.scores.len();
    let stride = n.div_ceil(PAD) * PAD;
    // [rows, cols, stride]: queries padded with logit 0 (and score 0 below).
    let pm = prepared.f_permute([1, 2, 0])?.f_constant_pad_nd([0, (stride - n) as i64])?;
    let pm = to_vec_f32(&pm)?;
    let mut padded_scores = q.scores.to_vec();
    padded_scores.resize(stride, 0.0);
    let kept = Kept { pm: &pm, scores: q.scores, padded_scores: &padded_scores, n, stride, cols };
    let mut pix = assign_pixels(&kept, &ay, &ax, thr);
    // Own-mask areas: the bounds decide most overlap tests; count the others exactly.
    let mut open = Vec::new();
    for j in 0..n {
        let lo = pix.own_lo[j].max(pix.fin[j]); // the final area is part of the own-mask area
        let hi = pix.own_hi[j].max(lo);
        if keeps(pix.won[j], lo, pix.fin[j], q.overlap) == keeps(pix.won[j], hi, pix.fin[j], q.overlap) {
            pix.own_lo[j] = lo;
        } else {
            open.push(j as i64);
        }
    }
    if !open.is_empty() {
        let sel = Tensor::f_from_slice(&open)?.f_to_device(prepared.device())?;
        let planes = to_vec_f32(&prepared.f_index_select(0, &sel)?)?;
        let exact = par_map(open.len(), |i| own_area(&planes[i * rows * cols..][..rows * cols], cols, &ay, &ax, thr));
        for (&j, area) in open.iter().zip(exact) {
            pix.own_lo[j as usize] = area;
        }
    }
    let (seg_of, segments) = select_segments(&pix.won, &pix.own_lo, &pix.fin, q);
    let ids = pix.winner.iter().map(|&w| if w == NONE { 0 } else { seg_of.get(w as usize).copied().unwrap_or(0) });
    Ok(finish(ids.collect(), segments, plan.out_h, plan.out_w))
}

/// The `n` kept queries' prepared logits, pixel-major (`[rows, cols, stride]`, padded with 0 to a `stride` that
/// is a multiple of [`PAD`]), and their scores (`padded_scores`: padded with 0).
struct Kept<'a> {
    pm: &'a [f32],
    scores: &'a [f32],
    padded_scores: &'a [f32],
    n: usize,
    stride: usize,
    cols: usize,
}

/// Per pixel, the winning kept query when its own mask is on there (else `NONE`); per kept query, the won
/// (`mask_k`) and final areas, and bounds on the own-mask area.
struct Pixels {
    winner: Vec<u16>,
    won: Vec<u64>,
    fin: Vec<u64>,
    own_lo: Vec<u64>,
    own_hi: Vec<u64>,
}

const NONE: u16 = u16::MAX;

/// Slack for bounds from float32 values in [0, 1]: far above their rounding (and `sigmoid32`'s error, < 1e-7),
/// far below any gap that matters.
const SLACK32: f32 = 1e-5;

/// Per-band work buffers.
struct Scratch {
    lo: Vec<f32>,
    hi: Vec<f32>,
    vlo: Vec<f32>,
    vhi: Vec<f32>,
    cand: Vec<usize>,
    /// The candidates' corner logits, scores and inverse scores, gathered (structure of arrays).
    corners: [Vec<f32>; 4],
    score: Vec<f32>,
    inverse: Vec<f32>,
    approx: Vec<f32>,
    near: Vec<usize>,
}

impl Scratch {
    /// For `stride` (a multiple of [`PAD`]) padded queries.
    fn new(stride: usize) -> Self {
        let v = || vec![0f32; stride];
        Scratch {
            lo: v(),
            hi: v(),
            vlo: v(),
            vhi: v(),
            cand: Vec::with_capacity(stride),
            corners: [v(), v(), v(), v()],
            score: v(),
            inverse: v(),
            approx: v(),
            near: Vec::with_capacity(stride),
        }
    }
}

/// The per-query areas a band counts.
struct Counts {
    won: Vec<u64>,
    fin: Vec<u64>,
    own_lo: Vec<u64>,
    own_hi: Vec<u64>,
}

/// float32 thresholds on corner logits: a cell whose four corners are all `>= up` is inside the own mask at every
/// pixel, one whose corners are all `< down` outside (the f64 interpolation stays within a relative 1e-15 of its
/// corners' range; the margin is 1e-6).
fn f32_thresholds(thr: f64) -> (f32, f32) {
    let margin = 1e-6 * (1.0 + thr.abs());
    let (mut up, mut down) = ((thr + margin) as f32, (thr - margin) as f32);
    if f64::from(up) < thr + margin {
        up = up.next_up();
    }
    if f64::from(down) > thr - margin {
        down = down.next_down();
    }
    (up, down)
}

/// Step 2 with the won and final areas of step 3 and the own-area bounds, fused with the resampling.
fn assign_pixels(kept: &Kept, ay: &Axis, ax: &Axis, thr: f64) -> Pixels {
    let n = kept.n;
    let width = ax.i0.len();
    let mut winner = vec![NONE; ay.i0.len() * width];
    let bands = in_row_bands(ay, width, &mut winner, |runs, rows| {
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2() {
                // SAFETY: the CPU has the features `assign_band_avx2` is compiled for.
                return unsafe { assign_band_avx2(kept, ay, ax, thr, runs, rows) };
            }
        }
        assign_band(kept, ay, ax, thr, runs, rows)
    });
    let zeros = || vec![0u64; n];
    let mut pix = Pixels { winner, won: zeros(), fin: zeros(), own_lo: zeros(), own_hi: zeros() };
    for c in bands {
        let add = |a: &mut Vec<u64>, b: Vec<u64>| a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        add(&mut pix.won, c.won);
        add(&mut pix.fin, c.fin);
        add(&mut pix.own_lo, c.own_lo);
        add(&mut pix.own_hi, c.own_hi);
    }
    pix
}

/// [`assign_band`] compiled for AVX2 (8 float32 lanes). Vectorisation only: Rust never fuses or reorders
/// floating-point operations, so every float64 value, hence every decision, is the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn assign_band_avx2(kept: &Kept, ay: &Axis, ax: &Axis, thr: f64, runs: &[(usize, usize)], rows: &mut [u16]) -> Counts {
    assign_band(kept, ay, ax, thr, runs, rows)
}

/// One band of row runs (`rows`: its part of the winner map).
#[inline(always)]
fn assign_band(kept: &Kept, ay: &Axis, ax: &Axis, thr: f64, runs: &[(usize, usize)], rows: &mut [u16]) -> Counts {
    let (n, stride, cols) = (kept.n, kept.stride, kept.cols);
    let width = ax.i0.len();
    let (up, down) = f32_thresholds(thr);
    let row0 = runs.first().map_or(0, |r| r.0);
    let zeros = || vec![0u64; n];
    let mut c = Counts { won: zeros(), fin: zeros(), own_lo: zeros(), own_hi: zeros() };
    let mut s = Scratch::new(stride);
    // `score * sigmoid32` (float32) at the map samples this band reads (rows first..=last), for the bounds.
    let first = runs.first().map_or(0, |r| ay.i0[r.0]);
    let last = runs.last().map_or(0, |r| ay.i1[r.0]);
    let logits = kept.pm.get(first * cols * stride..(last + 1) * cols * stride).unwrap_or_default();
    let mut values = vec![0f32; logits.len()];
    for (u, v) in logits.chunks_exact(stride).zip(values.chunks_exact_mut(stride)) {
        scaled_sigmoid(u, kept.padded_scores, v);
    }
    for &(ys, ye) in runs {
        let (y0, y1) = (ay.i0[ys], ay.i1[ys]);
        for &(xs, xe) in &ax.runs {
            let (x0, x1) = (ax.i0[xs], ax.i1[xs]);
            let at = [y0 * cols + x0, y0 * cols + x1, y1 * cols + x0, y1 * cols + x1];
            let cell = at.map(|i| &kept.pm[i * stride..][..stride]);
            let cell_values = at.map(|i| &values[(i - first * cols) * stride..][..stride]);
            let area = ((ye - ys) * (xe - xs)) as u64;
            cell_bounds(&cell, &cell_values, n, (up, down), area, &mut s, &mut c);
            let band = &mut rows[(ys - row0) * width..(ye - row0) * width];
            let cellw = CellWindow { ys, ye, xs, xe, width };
            if s.cand.len() == 1 {
                let q = s.cand[0];
                c.won[q] += area;
                if s.lo[q] >= up {
                    c.fin[q] += area;
                    cellw.fill(band, q as u16);
                } else if s.hi[q] >= down {
                    let u = cell.map(|v| f64::from(v[q]));
                    for y in ys..ye {
                        for x in xs..xe {
                            if lerp(ay.w0[y], ay.w1[y], ax.w0[x], ax.w1[x], u) >= thr {
                                c.fin[q] += 1;
                                band[(y - ys) * width + x] = q as u16;
                            }
                        }
                    }
                }
            } else {
                contested_cell(&cell, kept.scores, ay, ax, thr, &cellw, band, &mut s, &mut c);
            }
        }
    }
    c
}

/// The output pixels of one cell: rows `ys..ye`, columns `xs..xe` of a band starting at row `ys`.
struct CellWindow {
    ys: usize,
    ye: usize,
    xs: usize,
    xe: usize,
    width: usize,
}

impl CellWindow {
    fn fill(&self, band: &mut [u16], v: u16) {
        for y in self.ys..self.ye {
            band[(y - self.ys) * self.width + self.xs..(y - self.ys) * self.width + self.xe].fill(v);
        }
    }
}

/// Per query: the corner logit range (`s.lo`, `s.hi`), own-area bounds (whole cells), and the candidates
/// (`s.cand`): queries whose largest value in the cell reaches the largest smallest value of any query.
#[inline(always)]
fn cell_bounds(
    cell: &[&[f32]; 4],
    values: &[&[f32]; 4],
    n: usize,
    (up, down): (f32, f32),
    area: u64,
    s: &mut Scratch,
    c: &mut Counts,
) {
    let stride = s.lo.len();
    let [a, b, cc, d] = cell.map(|v| &v[..stride]);
    let (lo, hi) = (&mut s.lo[..stride], &mut s.hi[..stride]);
    for q in 0..stride {
        lo[q] = a[q].min(b[q]).min(cc[q].min(d[q]));
        hi[q] = a[q].max(b[q]).max(cc[q].max(d[q]));
    }
    let (own_lo, own_hi) = (&mut c.own_lo[..n], &mut c.own_hi[..n]);
    for q in 0..n {
        own_lo[q] += area * u64::from(lo[q] >= up);
        own_hi[q] += area * u64::from(hi[q] >= down);
    }
    // The values are within 2e-7 of `score * sigmoid` of the corner logits, which is monotone: their smallest and
    // largest bound each query's values inside the cell. Padding has values 0: never above the largest lower
    // bound, and never taken as a candidate.
    let [a, b, cc, d] = values.map(|v| &v[..stride]);
    let (vlo, vhi) = (&mut s.vlo[..stride], &mut s.vhi[..stride]);
    for q in 0..stride {
        vlo[q] = a[q].min(b[q]).min(cc[q].min(d[q]));
        vhi[q] = a[q].max(b[q]).max(cc[q].max(d[q]));
    }
    let reach = max_f32(vlo) - SLACK32;
    s.cand.resize(n, 0);
    let mut len = 0;
    for (q, &v) in vhi[..n].iter().enumerate() {
        s.cand[len] = q; // branch-free compaction
        len += usize::from(v >= reach);
    }
    s.cand.truncate(len);
    if s.cand.is_empty() {
        s.cand.push(0); // only with NaN values
    }
}

/// A cell with several candidates: per pixel, float32 values of every candidate, then float64 values of those
/// within the slack of the best (the winner directly when only one is).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn contested_cell(
    cell: &[&[f32]; 4],
    scores: &[f32],
    ay: &Axis,
    ax: &Axis,
    thr: f64,
    w: &CellWindow,
    band: &mut [u16],
    s: &mut Scratch,
    c: &mut Counts,
) {
    let m = s.cand.len();
    let padded = m.div_ceil(PAD) * PAD;
    let mut largest = 0f32;
    for k in 0..4 {
        s.corners[k].resize(padded, 0.0);
    }
    s.score.resize(padded, 0.0);
    s.inverse.resize(padded, 0.0);
    s.approx.resize(padded, 0.0);
    for (j, &q) in s.cand.iter().enumerate() {
        for (k, corner) in cell.iter().enumerate() {
            s.corners[k][j] = corner[q];
            largest = largest.max(corner[q].abs());
        }
        (s.score[j], s.inverse[j]) = (scores[q], 1.0 / scores[q]);
    }
    for k in 0..4 {
        s.corners[k][m..padded].fill(0.0);
    }
    // Padding: +inf, never near the best.
    s.inverse[m..padded].fill(f32::INFINITY);
    // The candidates are ranked by `r = (1 + e^-u) / score` (the inverse of the value; no division). Its float32
    // relative error is below 1.2e-6 + 4.4e-7 * largest (the lerp's rounding, `exp_neg32`, the products);
    // `slack` is more than 4 times twice that, so a candidate with `r > (1 + slack) * min r` has a smaller exact
    // value than the best. Beyond `min r > 1e30` (every value below 1e-30) `exp_neg32` may saturate: then all
    // candidates are evaluated exactly.
    let slack = SLACK32 + 4e-6 * largest;
    let [ca, cb, cc, cd] = s.corners.each_ref().map(|v| &v[..padded]);
    let (sc, inv) = (&s.score[..padded], &s.inverse[..padded]);
    for y in w.ys..w.ye {
        let (wy0, wy1) = (ay.w0[y], ay.w1[y]);
        for x in w.xs..w.xe {
            let (wx0, wx1) = (ax.w0[x], ax.w1[x]);
            let weights = [wy0 as f32, wy1 as f32, wx0 as f32, wx1 as f32];
            let approx = &mut s.approx[..padded];
            approx_inverse([ca, cb, cc, cd], inv, weights, approx);
            let best = min_f32(approx);
            let cut = best * (1.0 + slack);
            s.near.clear();
            let single = best <= 1e30 && count_at_most(approx, cut) == 1;
            if let Some(j) = first_at_most(approx, cut).filter(|_| single) {
                s.near.push(j);
            } else if best <= 1e30 {
                s.near.extend((0..m).filter(|&j| approx[j] <= cut));
            } else {
                s.near.extend(0..m); // tiny values everywhere, or NaN
            }
            let exact = |j: usize| lerp(wy0, wy1, wx0, wx1, [ca[j], cb[j], cc[j], cd[j]].map(f64::from));
            // The winner (first of equals) and its logit here.
            let (mut best_j, mut u) = (s.near[0], exact(s.near[0]));
            if s.near.len() > 1 {
                let mut best = f64::from(sc[best_j]) * sigmoid(u);
                for &j in &s.near[1..] {
                    let uj = exact(j);
                    let v = f64::from(sc[j]) * sigmoid(uj);
                    if v > best {
                        (best_j, u, best) = (j, uj, v);
                    }
                }
            }
            let q = s.cand[best_j];
            c.won[q] += 1;
            if u >= thr {
                c.fin[q] += 1;
                band[(y - w.ys) * w.width + x] = q as u16;
            }
        }
    }
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

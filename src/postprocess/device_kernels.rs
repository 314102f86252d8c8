//! The device kernels of panoptic and instance post-processing: libtorch on the tensors' device, like transformers'
//! `EomtImageProcessor.post_process_{panoptic,instance}_segmentation` (`compute_segments`), but with this crate's
//! single-step geometry (`Plan::resize_on_device`: crop, then one bilinear resize of the kept queries' mask
//! logits to the output, as [`super::resample`] and `Letterbox::crop_and_resize_back` do).
//!
//! Used on CUDA with [`super::DenseResize::Auto`], and on any device with [`super::DenseResize::Device`]. The CPU
//! kernels ([`super::panoptic`], [`super::instances`]) are exact in float64 but visit every output pixel on the
//! CPU; on a GPU that costs several times the model's forward pass, while here the GPU does the dense work and
//! only small results cross to the host:
//!
//! - panoptic: per chunk of kept queries, resize, `sigmoid x score`, a running max / argmax over queries (a later
//!   chunk wins only where strictly larger, so ties still go to the first query), the winner's logit, and each
//!   query's own-mask area (`>= t`); then won and final areas by `bincount`. The per-query areas (3 x n) come to
//!   the CPU for the overlap rule and stuff merging (`select_segments`, shared with the CPU kernel), the segment
//!   lookup table goes back, and only the id map (int16, or int32 beyond 32767 segments) comes back.
//! - instances: the top-k pairs and their queries are chosen as on the CPU; per chunk of those queries, the
//!   binary masks (`> t`), their areas, probability sums (float32 sigmoid, summed in float64) and boxes (first /
//!   last row and column that hold mask pixels) are computed on the device; only the statistics and, for the
//!   queries that yield an instance, the masks cropped to their boxes (uint8) are transferred.
//!
//! Everything runs in float32, so results differ from the CPU kernels only at near-ties: a pixel whose two best
//! queries' values, or whose logit and the threshold, agree to about 1e-6 (relative); through such pixels, a
//! segment whose won / own ratio is within a pixel's worth of `overlap_threshold`, an instance whose score is
//! within about 1e-6 of `score_threshold` (tests/postprocess.rs `device_*` compare both paths on every reference
//! case: no pixel, segment or box differs there).
//!
//! Memory: a chunk holds its resized logits, their scaled sigmoids and a boolean mask, about 9 bytes per query
//! and output pixel. Chunks have at most [`DEVICE_CHUNK_ELEMENTS`] (2^26) query-pixels: 218 queries at 480 x 640
//! (~600 MB), 32 at 1920 x 1080 (~600 MB), never fewer than one query. The running winner is a few arrays of
//! output size.

use super::resample::Plan;
use super::segments::{finish, select_segments, Queries, QueryMask};
use super::types::{BBox, BinaryMask, PanopticMap};
use super::PostprocessError;
use tch::{Device, Kind, Tensor};

/// Query-pixels resampled at once on the device path (see the module docs).
pub const DEVICE_CHUNK_ELEMENTS: usize = 1 << 26;

/// Queries per chunk for this output size.
fn chunk_queries(chunk_elements: usize, plan: &Plan) -> i64 {
    (chunk_elements / (plan.out_h * plan.out_w).max(1)).clamp(1, i64::MAX as usize) as i64
}

/// One image's panoptic map from its kept queries' cropped logits `[n, crop_h, crop_w]` and scores `[n]` (both
/// on the device; `n > 0`).
pub(crate) fn panoptic_image(
    cropped: &Tensor,
    scores: &Tensor,
    plan: &Plan,
    thr: f64,
    q: &Queries,
    chunk_elements: usize,
) -> Result<PanopticMap, PostprocessError> {
    let n = cropped.size()[0];
    let per = chunk_queries(chunk_elements, plan);
    // The winner so far per pixel: its value, query and logit, each [1, out_h, out_w].
    let mut best: Option<(Tensor, Tensor, Tensor)> = None;
    let mut own = Vec::new();
    let mut start = 0;
    while start < n {
        let len = per.min(n - start);
        let u = plan.resize_on_device(&cropped.f_narrow(0, start, len)?)?;
        own.push(u.f_ge(thr)?.f_sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Int64)?);
        let mut v = u.f_sigmoid()?;
        let _ = v.f_mul_(&scores.f_narrow(0, start, len)?.f_view([-1, 1, 1])?)?;
        let (value, arg) = v.f_max_dim(0, true)?;
        drop(v);
        let logit = u.f_gather(0, &arg, false)?;
        let arg = arg.f_add_scalar(start)?;
        best = Some(match best.take() {
            None => (value, arg, logit),
            Some((bv, bq, bu)) => {
                let better = value.f_gt_tensor(&bv)?;
                (value.f_where_self(&better, &bv)?, arg.f_where_self(&better, &bq)?, logit.f_where_self(&better, &bu)?)
            }
        });
        start += len;
    }
    let Some((_, winner, logit)) = best else {
        return Ok(finish(vec![0; plan.out_h * plan.out_w], vec![], plan.out_h, plan.out_w));
    };
    let winner = winner.f_reshape([-1])?;
    let on = logit.f_reshape([-1])?.f_ge(thr)?;
    let won = winner.f_bincount(None::<Tensor>, n)?;
    let fin = winner.f_masked_fill(&on.f_logical_not()?, n)?.f_bincount(None::<Tensor>, n + 1)?.f_narrow(0, 0, n)?;
    let areas = Tensor::f_stack(&[won, Tensor::f_cat(&own, 0)?, fin], 0)?.f_to_device(Device::Cpu)?;
    let areas: Vec<u64> = Vec::<i64>::try_from(areas.f_reshape([-1])?)?.into_iter().map(|a| a.max(0) as u64).collect();
    let nu = n as usize;
    if areas.len() != 3 * nu {
        return Err(PostprocessError::Geometry(format!("{} areas for {n} queries", areas.len())));
    }
    let (seg_of, segments) = select_segments(&areas[..nu], &areas[nu..2 * nu], &areas[2 * nu..], q);
    let ids = if segments.len() <= i16::MAX as usize {
        let lut: Vec<i16> = seg_of.iter().map(|&s| s as i16).collect();
        let ids = segment_ids(&Tensor::f_from_slice(&lut)?, &winner, &on)?;
        Vec::<i16>::try_from(ids)?.into_iter().map(|v| v as u16).collect()
    } else {
        let lut: Vec<i32> = seg_of.iter().map(|&s| i32::from(s)).collect();
        let ids = segment_ids(&Tensor::f_from_slice(&lut)?, &winner, &on)?;
        Vec::<i32>::try_from(ids)?.into_iter().map(|v| v as u16).collect()
    };
    Ok(finish(ids, segments, plan.out_h, plan.out_w))
}

/// `lut[winner]` where the winner's own mask is on, else 0, computed on the winners' device, returned on the CPU.
fn segment_ids(lut: &Tensor, winner: &Tensor, on: &Tensor) -> Result<Tensor, PostprocessError> {
    let lut = lut.f_to_device(winner.device())?;
    let ids = lut.f_index_select(0, winner)?.f_mul(&on.f_to_kind(lut.kind())?)?;
    Ok(ids.f_to_device(Device::Cpu)?)
}

/// The masks of the candidate queries `[m, crop_h, crop_w]` (cropped logits on the device). `needed(j, area,
/// prob_sum)` says whether query `j`'s mask can give an instance; only those masks are transferred (the others
/// come back with their area and probability sum and an empty mask).
pub(crate) fn query_masks(
    cropped: &Tensor,
    plan: &Plan,
    thr: f64,
    chunk_elements: usize,
    needed: impl Fn(usize, u64, f64) -> bool,
) -> Result<Vec<QueryMask>, PostprocessError> {
    let m = cropped.size()[0];
    let per = chunk_queries(chunk_elements, plan);
    let (oh, ow) = (plan.out_h as i64, plan.out_w as i64);
    let mut out = Vec::with_capacity(m as usize);
    let mut start = 0;
    while start < m {
        let len = per.min(m - start);
        let u = plan.resize_on_device(&cropped.f_narrow(0, start, len)?)?;
        let mask = u.f_gt(thr)?;
        let dims = [1i64, 2];
        let area = mask.f_sum_dim_intlist(dims.as_slice(), false, Kind::Int64)?;
        let mut prob = u.f_sigmoid()?;
        let prob = prob.f_mul_(&mask)?.f_sum_dim_intlist(dims.as_slice(), false, Kind::Double)?;
        // First and one-past-last row / column holding mask pixels (0 and the size for empty masks).
        let (rows, cols) =
            (mask.f_any_dim(2, false)?.f_to_kind(Kind::Int)?, mask.f_any_dim(1, false)?.f_to_kind(Kind::Int)?);
        let first = |t: &Tensor| t.f_argmax(1, false);
        let end = |t: &Tensor, size: i64| -> Result<Tensor, tch::TchError> {
            t.f_flip([1i64].as_slice())?.f_argmax(1, false)?.f_neg()?.f_add_scalar(size)
        };
        let stats = Tensor::f_stack(&[area, first(&rows)?, end(&rows, oh)?, first(&cols)?, end(&cols, ow)?], 1)?;
        let stats = Vec::<i64>::try_from(stats.f_to_device(Device::Cpu)?.f_reshape([-1])?)?;
        let prob = Vec::<f64>::try_from(prob.f_to_device(Device::Cpu)?)?;
        let mut crops = Vec::new();
        let mut found = Vec::new();
        for (i, (s, &p)) in stats.chunks_exact(5).zip(&prob).enumerate() {
            let area = s[0].max(0) as u64;
            let (y0, y1, x0, x1) = (s[1], s[2], s[3], s[4]);
            let ok = area > 0 && y0 < y1 && x0 < x1 && y1 <= oh && x1 <= ow && y0 >= 0 && x0 >= 0;
            let mut qm = QueryMask::empty();
            (qm.area, qm.prob_sum) = (area, p);
            if ok && needed((start + i as i64) as usize, area, p) {
                crops.push(mask.f_get(i as i64)?.f_narrow(0, y0, y1 - y0)?.f_narrow(1, x0, x1 - x0)?.f_reshape([-1])?);
                let (w, h) = ((x1 - x0) as u32, (y1 - y0) as u32);
                qm.bbox = BBox { x: x0 as u32, y: y0 as u32, width: w, height: h };
                qm.mask = BinaryMask { width: w, height: h, data: Vec::new() };
                found.push(out.len());
            }
            out.push(qm);
        }
        if !crops.is_empty() {
            let bytes = Tensor::f_cat(&crops, 0)?.f_to_kind(Kind::Uint8)?.f_mul_scalar(255)?;
            let bytes = Vec::<u8>::try_from(bytes.f_to_device(Device::Cpu)?)?;
            let mut at = 0;
            for j in found {
                let qm = &mut out[j];
                let len = qm.mask.width as usize * qm.mask.height as usize;
                qm.mask.data = bytes.get(at..at + len).map(<[u8]>::to_vec).unwrap_or_default();
                at += len;
            }
        }
        start += len;
    }
    Ok(out)
}

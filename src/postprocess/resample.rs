//! The way from a map over the padded model input (at any stride: stride-4 mask logits, stride-16 linear logits)
//! to the input image, with the padding removed, as one resampling step.
//!
//! Rule (the same as [`Letterbox::crop_and_resize_back`]): a map of `h` rows over `padded_h` input rows covers
//! the resized image with `valid_h = resized_h * h / padded_h` rows (possibly ending inside a cell). The first
//! `ceil(valid_h)` rows are kept (the padding band beyond is never read) and sampled bilinearly
//! (`align_corners = false`) at the exact position each output pixel came from: output row `o` of `input_h`
//! reads map row `max((o + 0.5) * valid_h / input_h - 0.5, 0)`, between rows `i0 = floor(.)` and
//! `i1 = min(i0 + 1, crop - 1)` with weights `1 - l`, `l` (`l = src - i0`, clamped to [0, 1]); columns likewise.
//!
//! transformers (`EomtImageProcessor.unpad_image`) takes two steps instead: up-sample to the padded input, crop,
//! resize to the input. Where the input keeps its size (only padding), both agree to float rounding, except that
//! when the valid region ends on a cell border, transformers' first step blends the first padded cell into the
//! last `stride / 2` rows / columns and ours does not (tests/postprocess.rs `single_step_matches_two_steps` checks
//! both claims). Where the image was resized, the two-step result is an interpolation of an interpolation: near
//! cell borders it differs by a fraction of the map's local slope change (about 5 % of the standard deviation of a
//! smooth test map).
//!
//! Weights and interpolation run in f64 on the CPU, so that the Python reference
//! (`tools/postprocess_reference.py`) reproduces every value bit for bit. When the output is smaller than the
//! valid region on either axis (shrinking), the map is first resized on its device with libtorch's antialiased
//! bilinear filter (as `crop_and_resize_back` does) and then read 1:1.

use super::PostprocessError;
use crate::pipeline::preprocess::Letterbox;
use tch::Tensor;

/// Output index -> (source indices, weights) along one axis, and the runs of output indices that share their
/// source pair ("cells").
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    pub i0: Vec<usize>,
    pub i1: Vec<usize>,
    pub w0: Vec<f64>,
    pub w1: Vec<f64>,
    /// `(start, end)` of each run of output indices with the same `i0` (hence the same `i1`).
    pub runs: Vec<(usize, usize)>,
}

impl Axis {
    /// `coarse` map cells of which `valid` (fractional) cover the image, resampled to `out` pixels.
    pub fn new(coarse: usize, valid: f64, out: usize) -> Self {
        let scale = valid / out as f64;
        let last = coarse.saturating_sub(1);
        let mut a = Axis { i0: vec![], i1: vec![], w0: vec![], w1: vec![], runs: vec![] };
        for o in 0..out {
            let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(last);
            let i1 = (i0 + 1).min(last);
            let l = (src - i0 as f64).clamp(0.0, 1.0);
            a.i0.push(i0);
            a.i1.push(i1);
            a.w0.push(1.0 - l);
            a.w1.push(l);
            match a.runs.last_mut() {
                Some(run) if a.i0[run.0] == i0 => run.1 = o + 1,
                _ => a.runs.push((o, o + 1)),
            }
        }
        a
    }
}

/// One map's way to the input image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub crop_h: i64,
    pub crop_w: i64,
    pub valid_h: f64,
    pub valid_w: f64,
    pub out_h: usize,
    pub out_w: usize,
    /// The output is smaller than the valid region on some axis: resize on the device first.
    pub shrink: bool,
}

impl Plan {
    /// For a map of `h` x `w` cells over the padded canvas of `lb`.
    pub fn new(lb: &Letterbox, h: i64, w: i64) -> Result<Self, PostprocessError> {
        if h < 1 || w < 1 || lb.padded_h == 0 || lb.padded_w == 0 || lb.input_h == 0 || lb.input_w == 0 {
            return Err(PostprocessError::Geometry(format!("map {h}x{w} cannot be mapped back with {lb:?}")));
        }
        if lb.resized_h > lb.padded_h || lb.resized_w > lb.padded_w {
            return Err(PostprocessError::Geometry(format!("resized size exceeds the padded size in {lb:?}")));
        }
        let valid_h = f64::from(lb.resized_h) * h as f64 / f64::from(lb.padded_h);
        let valid_w = f64::from(lb.resized_w) * w as f64 / f64::from(lb.padded_w);
        let (out_h, out_w) = (lb.input_h as usize, lb.input_w as usize);
        Ok(Plan {
            crop_h: (valid_h.ceil() as i64).clamp(1, h),
            crop_w: (valid_w.ceil() as i64).clamp(1, w),
            valid_h,
            valid_w,
            out_h,
            out_w,
            shrink: (out_h as f64) < valid_h || (out_w as f64) < valid_w,
        })
    }

    /// Crops the last two dimensions of `t` (`[C, h, w]`) to the valid region.
    pub fn crop(&self, t: &Tensor) -> Result<Tensor, PostprocessError> {
        Ok(t.f_narrow(-2, 0, self.crop_h)?.f_narrow(-1, 0, self.crop_w)?)
    }

    /// When shrinking, resizes a cropped `[C, crop_h, crop_w]` map (antialiased) to the output size; otherwise
    /// returns it. The result is what [`Plan::axes`] reads.
    pub fn shrink(&self, cropped: &Tensor) -> Result<Tensor, PostprocessError> {
        if !self.shrink {
            return Ok(cropped.shallow_clone());
        }
        let (oh, ow) = (self.out_h as i64, self.out_w as i64);
        let (sh, sw) = (oh as f64 / self.valid_h, ow as f64 / self.valid_w);
        Ok(cropped.f_unsqueeze(0)?.f_internal_upsample_bilinear2d_aa([oh, ow], false, sh, sw)?.f_squeeze_dim(0)?)
    }

    /// [`Plan::crop`] then [`Plan::shrink`].
    pub fn prepare(&self, t: &Tensor) -> Result<Tensor, PostprocessError> {
        self.shrink(&self.crop(t)?)
    }

    /// Resamples a cropped `[C, crop_h, crop_w]` map to `[C, out_h, out_w]` with libtorch on its device, in one
    /// step with the geometry above (bilinear, `align_corners = false`, scales `out / valid`; antialiased when
    /// shrinking): the float32 device form of what the CPU kernels compute in f64.
    pub fn resize_on_device(&self, cropped: &Tensor) -> Result<Tensor, PostprocessError> {
        if self.shrink {
            return self.shrink(cropped);
        }
        let (oh, ow) = (self.out_h as i64, self.out_w as i64);
        let (sh, sw) = (oh as f64 / self.valid_h, ow as f64 / self.valid_w);
        Ok(cropped.f_unsqueeze(0)?.f_upsample_bilinear2d([oh, ow], false, sh, sw)?.f_squeeze_dim(0)?)
    }

    /// Rows and columns of the map after [`Plan::prepare`].
    pub fn prepared_hw(&self) -> (usize, usize) {
        if self.shrink {
            (self.out_h, self.out_w)
        } else {
            (self.crop_h as usize, self.crop_w as usize)
        }
    }

    /// The row and column resampling of the prepared map to the output.
    pub fn axes(&self) -> (Axis, Axis) {
        if self.shrink {
            (Axis::new(self.out_h, self.out_h as f64, self.out_h), Axis::new(self.out_w, self.out_w as f64, self.out_w))
        } else {
            (
                Axis::new(self.crop_h as usize, self.valid_h, self.out_h),
                Axis::new(self.crop_w as usize, self.valid_w, self.out_w),
            )
        }
    }
}

/// Bilinear interpolation in a fixed operation order (mirrored by the Python reference).
#[inline(always)]
pub(crate) fn lerp(wy0: f64, wy1: f64, wx0: f64, wx1: f64, [a, b, c, d]: [f64; 4]) -> f64 {
    wy0 * (wx0 * a + wx1 * b) + wy1 * (wx0 * c + wx1 * d)
}

/// The logistic function in f64, in a fixed operation order (mirrored by the Python reference).
#[inline(always)]
pub(crate) fn sigmoid(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}

/// A bound slack far above f64 rounding of a convex combination of values of magnitude `m`, and far below any
/// gap that matters: it only widens candidate sets, so results stay exact.
#[inline(always)]
pub(crate) fn slack(m: f64) -> f64 {
    1e-9 * (1.0 + m.abs())
}

/// Runs `f(first_run, runs, rows)` on bands of row runs in parallel (scoped threads), where `rows` is the band's
/// part of a row-major `out` buffer of `width` columns. Returns each band's result in order.
pub(crate) fn in_row_bands<T: Send, R: Send>(
    ay: &Axis,
    width: usize,
    out: &mut [T],
    f: impl Fn(&[(usize, usize)], &mut [T]) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let pixels = ay.runs.last().map_or(0, |r| r.1) * width;
    if threads < 2 || pixels < 1 << 16 || ay.runs.len() < 2 * threads {
        return vec![f(&ay.runs, out)];
    }
    let per = ay.runs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut rest = out;
        let mut handles = Vec::new();
        for band in ay.runs.chunks(per) {
            let rows = band.last().map_or(0, |r| r.1) - band.first().map_or(0, |r| r.0);
            let (mine, tail) = rest.split_at_mut(rows * width);
            rest = tail;
            let f = &f;
            handles.push(scope.spawn(move || f(band, mine)));
        }
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// A `[C, h, w]` map over the padded model input resampled to `[C, input_h, input_w]` (float64, CPU) by the rule
/// above: the dense form of what the post-processing kernels compute, for inspection and tests.
pub fn resample_to_input(map: &Tensor, lb: &Letterbox) -> Result<Tensor, PostprocessError> {
    let size = map.size();
    let &[c, h, w] = size.as_slice() else {
        return Err(PostprocessError::shape("map", &size, "[C, h, w]"));
    };
    let plan = Plan::new(lb, h, w)?;
    let data = super::to_vec_f32(&plan.prepare(&map.f_to_kind(tch::Kind::Float)?)?)?;
    let (rows, cols) = plan.prepared_hw();
    let (ay, ax) = plan.axes();
    let mut out = Vec::with_capacity(c as usize * plan.out_h * plan.out_w);
    for plane in data.chunks_exact(rows * cols) {
        for y in 0..plan.out_h {
            for x in 0..plan.out_w {
                let at = |yy: usize, xx: usize| f64::from(plane[yy * cols + xx]);
                let (y0, y1, x0, x1) = (ay.i0[y], ay.i1[y], ax.i0[x], ax.i1[x]);
                out.push(lerp(
                    ay.w0[y],
                    ay.w1[y],
                    ax.w0[x],
                    ax.w1[x],
                    [at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1)],
                ));
            }
        }
    }
    Ok(Tensor::f_from_slice(&out)?.f_reshape([c, plan.out_h as i64, plan.out_w as i64])?)
}

/// `f(0..n)` on scoped threads (contiguous chunks), results in order.
pub(crate) fn par_map<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(8).min(n);
    if threads < 2 {
        return (0..n).map(f).collect();
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (0..n)
            .step_by(per)
            .map(|start| scope.spawn(move || (start..(start + per).min(n)).map(f).collect::<Vec<R>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

//! COCO run-length-encoded masks (RLE), computed exactly as pycocotools' C mask API (`maskApi.c`) does, so that
//! areas, boxes, IoUs and polygon masks are bit-identical to the reference evaluation.
//!
//! An RLE covers an `h x w` mask in column-major order (down the first column, then the next) as alternating run
//! lengths starting with a run of 0s (possibly empty). Three JSON forms exist: polygons (`[[x0, y0, x1, y1, ...],
//! ...]`, rasterised as `rleFrPoly` does: vertices up-sampled by 5, the boundary walked pixel by pixel, the same
//! rounding), uncompressed RLE (`counts` a list of integers) and compressed RLE (`counts` a string: each count,
//! from the fourth on as the difference to the count two before, in 5-bit groups with a continuation bit, each
//! group + 48 as one character, as `rleToString` / `rleFrString`).
//!
//! Stricter than pycocotools where it would read garbage: counts must be non-negative and sum to `h * w`, sizes
//! are capped at [`MAX_PIXELS`], polygons need an even number of finite coordinates within +-[`MAX_COORD`] and
//! at most [`MAX_POLYGON_POINTS`] boundary points. Errors name the offending count, character offset or
//! coordinate; callers add the annotation.

/// Largest mask this module accepts, in pixels (16384 x 16384).
pub const MAX_PIXELS: u64 = 1 << 28;
/// Largest polygon coordinate magnitude accepted (pycocotools' C ints would overflow further out).
pub const MAX_COORD: f64 = 1e8;
/// Most boundary points a polygon may have after up-sampling (bounds time and memory; a polygon around a
/// 16384 x 16384 image has about 330,000).
pub const MAX_POLYGON_POINTS: u64 = 1 << 24;

/// Why an RLE or polygon could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RleError {
    #[error("size {h}x{w} is too large (at most {MAX_PIXELS} pixels)")]
    TooLarge { h: u64, w: u64 },
    #[error("count {index} is negative ({value})")]
    NegativeCount { index: usize, value: i64 },
    #[error("count {index} ({value}) is larger than the mask")]
    HugeCount { index: usize, value: i64 },
    #[error("counts sum to {sum}, not height x width = {expected}")]
    BadSum { sum: u64, expected: u64 },
    #[error("byte {offset} ({byte:#04x}) is not a compressed-RLE character ('0'..='o')")]
    BadChar { offset: usize, byte: u8 },
    #[error("the count starting at byte {offset} does not end (the string stops inside it)")]
    Unterminated { offset: usize },
    #[error("the count starting at byte {offset} has more than 6 characters")]
    TooLong { offset: usize },
    #[error("polygon has an odd number of coordinates ({0})")]
    OddPolygon(usize),
    #[error("polygon has no points")]
    EmptyPolygon,
    #[error("polygon coordinate {index} ({value}) is not a finite number within +-{MAX_COORD}")]
    BadCoordinate { index: usize, value: f64 },
    #[error("polygon has {0} boundary points after up-sampling, more than {MAX_POLYGON_POINTS}")]
    PolygonTooLong(u64),
    #[error("polygons need an image of at least 1x1 pixels, this is {h}x{w}")]
    EmptyImage { h: u32, w: u32 },
}

/// A run-length-encoded binary mask of `h x w` pixels; its counts always sum to `h * w`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rle {
    h: u32,
    w: u32,
    counts: Vec<u32>,
}

fn check_size(h: u64, w: u64) -> Result<(u32, u32), RleError> {
    match h.checked_mul(w) {
        Some(n) if n <= MAX_PIXELS => Ok((h as u32, w as u32)),
        _ => Err(RleError::TooLarge { h, w }),
    }
}

/// C's `(int)` of a double on x86-64: truncation toward zero, and `INT_MIN` for NaN or out-of-range values.
fn c_int(v: f64) -> i32 {
    if v.is_nan() || v >= 2147483648.0 || v <= -2147483649.0 {
        i32::MIN
    } else {
        v as i32
    }
}

impl Rle {
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.h
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.w
    }

    /// The run lengths, starting with a run of 0s.
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// An uncompressed RLE (`{"size": [h, w], "counts": [...]}`): counts non-negative, summing to `h * w`.
    pub fn from_counts(h: u64, w: u64, counts: &[i64]) -> Result<Rle, RleError> {
        let (h32, w32) = check_size(h, w)?;
        let mut sum = 0u64;
        let mut out = Vec::with_capacity(counts.len().min(1 << 20));
        for (index, &value) in counts.iter().enumerate() {
            if value < 0 {
                return Err(RleError::NegativeCount { index, value });
            }
            if value as u64 > MAX_PIXELS {
                return Err(RleError::HugeCount { index, value });
            }
            sum += value as u64;
            out.push(value as u32);
        }
        if sum != h * w {
            return Err(RleError::BadSum { sum, expected: h * w });
        }
        Ok(Rle { h: h32, w: w32, counts: out })
    }

    /// A compressed RLE's `counts` string (pycocotools' `rleFrString`).
    pub fn from_compressed(h: u64, w: u64, s: &[u8]) -> Result<Rle, RleError> {
        let (h32, w32) = check_size(h, w)?;
        let mut counts: Vec<u32> = Vec::new();
        let mut sum = 0u64;
        let mut p = 0;
        while p < s.len() {
            let start = p;
            let mut x: i64 = 0;
            let mut k = 0;
            loop {
                let Some(&byte) = s.get(p) else { return Err(RleError::Unterminated { offset: start }) };
                if !(48..=111).contains(&byte) {
                    return Err(RleError::BadChar { offset: p, byte });
                }
                if k == 6 {
                    return Err(RleError::TooLong { offset: start });
                }
                let c = i64::from(byte - 48);
                x |= (c & 0x1f) << (5 * k);
                p += 1;
                k += 1;
                if c & 0x20 == 0 {
                    if c & 0x10 != 0 {
                        x |= -1i64 << (5 * k);
                    }
                    break;
                }
            }
            let index = counts.len();
            if index > 2 {
                x += i64::from(counts[index - 2]);
            }
            if x < 0 {
                return Err(RleError::NegativeCount { index, value: x });
            }
            if x as u64 > MAX_PIXELS {
                return Err(RleError::HugeCount { index, value: x });
            }
            sum += x as u64;
            counts.push(x as u32);
        }
        if sum != h * w {
            return Err(RleError::BadSum { sum, expected: h * w });
        }
        Ok(Rle { h: h32, w: w32, counts })
    }

    /// The compressed `counts` string (pycocotools' `rleToString`).
    pub fn to_compressed(&self) -> String {
        let mut s = String::with_capacity(self.counts.len() * 2);
        for (i, &c) in self.counts.iter().enumerate() {
            let mut x = i64::from(c);
            if i > 2 {
                x -= i64::from(self.counts[i - 2]);
            }
            loop {
                let mut group = (x & 0x1f) as u8;
                x >>= 5;
                let more = if group & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    group |= 0x20;
                }
                s.push(char::from(group + 48));
                if !more {
                    break;
                }
            }
        }
        s
    }

    /// Encodes a column-major mask (`mask[x * h + y]`, nonzero = set), as pycocotools' `encode` of a Fortran array.
    pub fn from_column_major(h: u64, w: u64, mask: &[u8]) -> Result<Rle, RleError> {
        let (h32, w32) = check_size(h, w)?;
        if mask.len() as u64 != h * w {
            return Err(RleError::BadSum { sum: mask.len() as u64, expected: h * w });
        }
        Ok(Self::encode_iter(h32, w32, mask.iter().map(|&v| v != 0)))
    }

    /// Encodes a row-major mask (`mask[y * w + x]`, nonzero = set): an image as usually stored.
    pub fn from_row_major(h: u64, w: u64, mask: &[u8]) -> Result<Rle, RleError> {
        let (h32, w32) = check_size(h, w)?;
        if mask.len() as u64 != h * w {
            return Err(RleError::BadSum { sum: mask.len() as u64, expected: h * w });
        }
        let (hu, wu) = (h32 as usize, w32 as usize);
        Ok(Self::encode_iter(h32, w32, (0..wu).flat_map(|x| (0..hu).map(move |y| mask[y * wu + x] != 0))))
    }

    fn encode_iter(h: u32, w: u32, bits: impl Iterator<Item = bool>) -> Rle {
        let mut counts = Vec::new();
        let (mut current, mut run) = (false, 0u32);
        for bit in bits {
            if bit != current {
                counts.push(run);
                run = 0;
                current = bit;
            }
            run += 1;
        }
        counts.push(run);
        Rle { h, w, counts }
    }

    /// The mask, column-major (`[x * h + y]`), 0 or 1 per pixel.
    pub fn decode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.h as usize * self.w as usize);
        let mut value = 0u8;
        for &c in &self.counts {
            out.extend(std::iter::repeat_n(value, c as usize));
            value ^= 1;
        }
        out
    }

    /// Number of set pixels (pycocotools' `area`).
    pub fn area(&self) -> u64 {
        self.counts.iter().skip(1).step_by(2).map(|&c| u64::from(c)).sum()
    }

    /// The bounding box `[x, y, width, height]` as pycocotools' `toBbox` computes it (including its unsigned
    /// arithmetic on unusual counts, e.g. a trailing empty run).
    pub fn bbox(&self) -> [f64; 4] {
        let (h, w) = (self.h, self.w);
        let m = self.counts.len() / 2 * 2;
        if m == 0 || h == 0 {
            return [0.0; 4];
        }
        let (mut xs, mut ys, mut xe, mut ye) = (w, h, 0u32, 0u32);
        let (mut cc, mut xp) = (0u32, 0u32);
        for j in 0..m {
            cc = cc.wrapping_add(self.counts[j]);
            let t = cc.wrapping_sub((j % 2) as u32);
            let y = t % h;
            let x = (t - y) / h;
            if j % 2 == 0 {
                xp = x;
            } else if xp < x {
                ys = 0;
                ye = h - 1;
            }
            xs = xs.min(x);
            xe = xe.max(x);
            ys = ys.min(y);
            ye = ye.max(y);
        }
        let width = f64::from(xe.wrapping_sub(xs).wrapping_add(1));
        let height = f64::from(ye.wrapping_sub(ys).wrapping_add(1));
        [f64::from(xs), f64::from(ys), width, height]
    }

    /// One polygon (`[x0, y0, x1, y1, ...]`, pixel coordinates) rasterised as pycocotools' `rleFrPoly`.
    pub fn from_polygon(xy: &[f64], h: u64, w: u64) -> Result<Rle, RleError> {
        let (h, w) = check_size(h, w)?;
        if h == 0 || w == 0 {
            return Err(RleError::EmptyImage { h, w });
        }
        if !xy.len().is_multiple_of(2) {
            return Err(RleError::OddPolygon(xy.len()));
        }
        if xy.is_empty() {
            return Err(RleError::EmptyPolygon);
        }
        if let Some((index, &value)) = xy.iter().enumerate().find(|(_, v)| !v.is_finite() || v.abs() > MAX_COORD) {
            return Err(RleError::BadCoordinate { index, value });
        }
        let k = xy.len() / 2;
        let (vx, vy) = upsampled(xy);
        let points = polygon_points(xy);
        if points > MAX_POLYGON_POINTS {
            return Err(RleError::PolygonTooLong(points));
        }
        // Walk the up-sampled boundary point by point; wherever x changes, a y-boundary point may be kept.
        let mut walk = Walk { h, w, prev: None, bounds: Vec::new() };
        for j in 0..k {
            let (mut xs, mut xe, mut ys, mut ye) = (vx[j], vx[j + 1], vy[j], vy[j + 1]);
            let dx = (xe - xs).abs();
            let dy = (ys - ye).abs();
            let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
            if flip {
                std::mem::swap(&mut xs, &mut xe);
                std::mem::swap(&mut ys, &mut ye);
            }
            if dx >= dy {
                let s = f64::from(ye - ys) / f64::from(dx);
                for d in 0..=dx {
                    let t = if flip { dx - d } else { d };
                    walk.visit(t + xs, c_int(f64::from(ys) + s * f64::from(t) + 0.5));
                }
            } else {
                let s = f64::from(xe - xs) / f64::from(dy);
                for d in 0..=dy {
                    let t = if flip { dy - d } else { d };
                    walk.visit(c_int(f64::from(xs) + s * f64::from(t) + 0.5), t + ys);
                }
            }
        }
        let mut a = walk.bounds;
        a.push(h * w);
        a.sort_unstable();
        let mut prev = 0u32;
        for v in a.iter_mut() {
            let t = *v;
            *v -= prev;
            prev = t;
        }
        // Runs of length 0 (two boundaries at one place) cancel: merge the runs around them.
        let mut counts = Vec::with_capacity(a.len());
        counts.push(a[0]);
        let mut j = 1;
        while j < a.len() {
            if a[j] > 0 {
                counts.push(a[j]);
                j += 1;
            } else {
                j += 1;
                if j < a.len() {
                    if let Some(last) = counts.last_mut() {
                        *last += a[j];
                    }
                    j += 1;
                }
            }
        }
        Ok(Rle { h, w, counts })
    }

    /// An object of one or more polygons: each rasterised, then merged (pycocotools' `frPyObjects` + `merge`).
    pub fn from_polygons<P: AsRef<[f64]>>(polygons: &[P], h: u64, w: u64) -> Result<Rle, RleError> {
        let mut merged: Option<Rle> = None;
        for p in polygons {
            let r = Rle::from_polygon(p.as_ref(), h, w)?;
            merged = Some(match merged {
                None => r,
                Some(m) => m.union(&r),
            });
        }
        merged.ok_or(RleError::EmptyPolygon)
    }

    /// The union of two masks of the same size (pycocotools' `merge` with `intersect=0`); a size mismatch gives
    /// an empty 0x0 RLE, as pycocotools.
    pub fn union(&self, other: &Rle) -> Rle {
        if self.h != other.h || self.w != other.w {
            return Rle { h: 0, w: 0, counts: Vec::new() };
        }
        let (mut a, mut b) = (Runs::new(&self.counts), Runs::new(&other.counts));
        let mut out = Vec::with_capacity(self.counts.len() + other.counts.len());
        let (mut v, mut cc, mut ct) = (false, 0u32, 1u64);
        while ct > 0 {
            let c = a.left.min(b.left);
            cc += c;
            ct = a.take(c) + b.take(c);
            let vp = v;
            v = a.on || b.on;
            if v != vp || ct == 0 {
                out.push(cc);
                cc = 0;
            }
        }
        Rle { h: self.h, w: self.w, counts: out }
    }
}

/// A polygon's vertices up-sampled by 5 and rounded as `rleFrPoly` does, the first repeated at the end.
fn upsampled(xy: &[f64]) -> (Vec<i32>, Vec<i32>) {
    const SCALE: f64 = 5.0;
    let k = xy.len() / 2;
    let vx = (0..=k).map(|j| c_int(SCALE * xy[2 * (j % k)] + 0.5)).collect();
    let vy = (0..=k).map(|j| c_int(SCALE * xy[2 * (j % k) + 1] + 0.5)).collect();
    (vx, vy)
}

/// How many boundary points [`Rle::from_polygon`] walks for `xy` (its time is proportional to this): callers
/// can budget the polygons of a file before rasterising them. Coordinates that [`Rle::from_polygon`] refuses
/// count as 0 (it refuses them before walking).
pub fn polygon_points(xy: &[f64]) -> u64 {
    if xy.len() < 2 || xy.iter().any(|v| !v.is_finite() || v.abs() > MAX_COORD) {
        return 0;
    }
    let k = xy.len() / 2;
    let (vx, vy) = upsampled(&xy[..2 * k]);
    (0..k).map(|j| u64::from((vx[j] - vx[j + 1]).unsigned_abs().max((vy[j] - vy[j + 1]).unsigned_abs())) + 1).sum()
}

/// The boundary walk of [`Rle::from_polygon`]: keeps the previous up-sampled point and the y-boundary points
/// (as `x * h + y` positions) found so far.
struct Walk {
    h: u32,
    w: u32,
    prev: Option<(i32, i32)>,
    bounds: Vec<u32>,
}

impl Walk {
    fn visit(&mut self, u: i32, v: i32) {
        if let Some((pu, pv)) = self.prev {
            if u != pu {
                let scale = 5.0;
                let xd = (f64::from(if u < pu { u } else { u - 1 }) + 0.5) / scale - 0.5;
                if xd.floor() == xd && xd >= 0.0 && xd <= f64::from(self.w - 1) {
                    let mut yd = (f64::from(if v < pv { v } else { pv }) + 0.5) / scale - 0.5;
                    yd = yd.clamp(0.0, f64::from(self.h)).ceil();
                    self.bounds.push(xd as u32 * self.h + yd as u32);
                }
            }
        }
        self.prev = Some((u, v));
    }
}

/// A walk over one mask's runs, as pycocotools' `rleMerge` / `rleIou` step two masks together: `left` pixels
/// remain in the current run, `on` whether it is foreground (runs alternate, starting with background).
struct Runs<'a> {
    counts: &'a [u32],
    next: usize,
    left: u32,
    on: bool,
}

impl<'a> Runs<'a> {
    fn new(counts: &'a [u32]) -> Self {
        Runs { counts, next: 1, left: counts.first().copied().unwrap_or(0), on: false }
    }

    /// Consumes `c` pixels (at most `left`); at the end of a run steps to the next one, if any. Returns the
    /// pixels left in the current run (0 only at the end of the counts).
    fn take(&mut self, c: u32) -> u64 {
        self.left -= c;
        if self.left == 0 && self.next < self.counts.len() {
            self.left = self.counts[self.next];
            self.next += 1;
            self.on = !self.on;
        }
        u64::from(self.left)
    }
}

/// Intersection over union of a detection and a ground-truth mask as pycocotools' `rleIou`: 0 when their
/// bounding boxes do not overlap, -1 when the sizes differ, and for a crowd ground truth the intersection over the
/// detection's area.
pub fn iou(dt: &Rle, gt: &Rle, crowd: bool) -> f64 {
    if box_iou(dt.bbox(), gt.bbox(), crowd) <= 0.0 {
        return 0.0;
    }
    if dt.h != gt.h || dt.w != gt.w {
        return -1.0;
    }
    let (mut a, mut b) = (Runs::new(&dt.counts), Runs::new(&gt.counts));
    let (mut inter, mut union, mut ct) = (0u64, 0u64, 1u64);
    while ct > 0 {
        let c = a.left.min(b.left);
        if a.on || b.on {
            union += u64::from(c);
            if a.on && b.on {
                inter += u64::from(c);
            }
        }
        ct = a.take(c) + b.take(c);
    }
    if inter == 0 {
        union = 1;
    } else if crowd {
        union = dt.area();
    }
    inter as f64 / union as f64
}

/// pycocotools' `bbIou` of two `[x, y, w, h]` boxes (the pre-check of [`iou`]).
fn box_iou(d: [f64; 4], g: [f64; 4], crowd: bool) -> f64 {
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let (da, ga) = (d[2] * d[3], g[2] * g[3]);
    let u = if crowd { da } else { da + ga - i };
    i / u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_round_trip() {
        let r = Rle::from_counts(3, 3, &[1, 2, 6]).unwrap();
        assert_eq!(r.to_compressed(), "126");
        let r = Rle::from_counts(100, 100, &[5, 300, 1000, 20, 8675]).unwrap();
        let s = r.to_compressed();
        assert_eq!(Rle::from_compressed(100, 100, s.as_bytes()).unwrap(), r);
    }

    #[test]
    fn polygon_matches_pycocotools() {
        // pycocotools: frPyObjects([[0.5,0.5,8.2,1.1,4.4,9.9]], 10, 12) -> b';282N3M2NM3N2NY1'
        let r = Rle::from_polygon(&[0.5, 0.5, 8.2, 1.1, 4.4, 9.9], 10, 12).unwrap();
        assert_eq!(r.to_compressed(), ";282N3M2NM3N2NY1");
    }

    #[test]
    fn bad_strings_are_named() {
        assert_eq!(Rle::from_compressed(3, 3, b"1 6"), Err(RleError::BadChar { offset: 1, byte: b' ' }));
        assert_eq!(Rle::from_compressed(3, 3, b"12P"), Err(RleError::Unterminated { offset: 2 }));
        assert_eq!(Rle::from_compressed(3, 3, b"125"), Err(RleError::BadSum { sum: 8, expected: 9 }));
    }
}

//! Float32 helpers of the panoptic CPU kernel ([`super::panoptic`]): branchless `e^-u` and logistic functions and
//! the loops that rank candidate queries with them, with an AVX2 form (runtime-detected, bit for bit the same values) and a
//! portable form. They only bound and rank; every decision that must be exact is taken in float64 afterwards.

/// Lanes of the float32 reductions.
pub(crate) const LANES: usize = 8;
/// Candidate arrays are padded to a multiple of this (the AVX2 forms' width; any length works, tails are slower).
pub(crate) const PAD: usize = LANES;

/// Whether the AVX2 forms can run here.
#[inline(always)]
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds |t| < 2^22 to an integer in the low bits
const COEF: [f32; 6] = [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0];

/// The logistic function in float32, branchless: `e^-u` as `2^n * p(f)` with a degree-6 polynomial. Absolute
/// error below 1e-6 for every finite `u` (tested: below 1e-7), NaN for NaN.
#[inline(always)]
pub(crate) fn sigmoid32(u: f32) -> f32 {
    1.0 / (1.0 + exp_neg32(u))
}

/// `e^-u` in float32, branchless, for `|u| <= 87.3` (beyond: clamped to `2^-126` or `2^126`). Relative error below
/// `1e-6 + 8e-8 |u|` (the rounding of `-u log2(e)`, then a degree-6 polynomial; tested).
#[inline(always)]
pub(crate) fn exp_neg32(u: f32) -> f32 {
    // 2^t with t = -u log2(e), clamped so that 2^round(t) is a normal float: beyond, sigmoid is 0 or 1 to 1e-38.
    let t = (-u * std::f32::consts::LOG2_E).clamp(-126.0, 126.0);
    let k = t + ROUND;
    let n = k.to_bits().wrapping_sub(ROUND.to_bits()); // round(t) as a two's complement integer
    let x = (t - (k - ROUND)) * std::f32::consts::LN_2; // |x| <= ln(2) / 2
    let mut h = COEF[0];
    for c in &COEF[1..] {
        h = c + x * h;
    }
    let p = 1.0 + x * h;
    let scale = f32::from_bits(n.wrapping_add(127) << 23);
    p * scale
}

/// [`sigmoid32`] on eight lanes, the same operations in the same order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sigmoid32_x8(u: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let one = _mm256_set1_ps(1.0);
    _mm256_div_ps(one, _mm256_add_ps(one, exp_neg32_x8(u)))
}

/// [`exp_neg32`] on eight lanes, the same operations in the same order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn exp_neg32_x8(u: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let f = |v: f32| _mm256_set1_ps(v);
    let (one, round) = (f(1.0), f(ROUND));
    let neg = _mm256_xor_ps(u, f(-0.0));
    let t = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(neg, f(std::f32::consts::LOG2_E)), f(-126.0)), f(126.0));
    let k = _mm256_add_ps(t, round);
    let n = _mm256_sub_epi32(_mm256_castps_si256(k), _mm256_castps_si256(round));
    let x = _mm256_mul_ps(_mm256_sub_ps(t, _mm256_sub_ps(k, round)), f(std::f32::consts::LN_2));
    let mut h = f(COEF[0]);
    for &c in &COEF[1..] {
        h = _mm256_add_ps(f(c), _mm256_mul_ps(x, h));
    }
    let p = _mm256_add_ps(one, _mm256_mul_ps(x, h));
    let scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
    _mm256_mul_ps(p, scale)
}

/// `out[j] = scores[j] * sigmoid32(u[j])` over `out.len()` (the inputs at least as long).
#[inline(always)]
pub(crate) fn scaled_sigmoid(u: &[f32], scores: &[f32], out: &mut [f32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            // SAFETY: the CPU has AVX2.
            done = unsafe { scaled_sigmoid_avx2(u, scores, out) };
        }
    }
    let n = out.len();
    let (u, s) = (&u[..n], &scores[..n]);
    for j in done..n {
        out[j] = s[j] * sigmoid32(u[j]);
    }
}

/// The AVX2 form over the first multiple of [`LANES`] values; returns how many it did.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scaled_sigmoid_avx2(u: &[f32], scores: &[f32], out: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let n = out.len() / LANES * LANES;
    let (u, s) = (&u[..n], &scores[..n]);
    for j in (0..n).step_by(LANES) {
        // SAFETY: `j + LANES <= n` and every slice holds `n` values.
        unsafe {
            let v = _mm256_mul_ps(_mm256_loadu_ps(s.as_ptr().add(j)), sigmoid32_x8(_mm256_loadu_ps(u.as_ptr().add(j))));
            _mm256_storeu_ps(out.as_mut_ptr().add(j), v);
        }
    }
    n
}

/// `(1 + e^-lerp) / score`, the inverse of `score * sigmoid(lerp)`, of every candidate (corner logits
/// `[a, b, c, d]`, `1 / score` in `inv_scores`) at one pixel with weights `[wy0, wy1, wx0, wx1]`, into `out`
/// (the inputs at least as long). No division: the smallest is the best candidate.
#[inline(always)]
pub(crate) fn approx_inverse(corners: [&[f32]; 4], inv_scores: &[f32], w: [f32; 4], out: &mut [f32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            // SAFETY: the CPU has AVX2.
            done = unsafe { approx_inverse_avx2(corners, inv_scores, w, out) };
        }
    }
    approx_inverse_portable(corners, inv_scores, w, out, done)
}

/// The portable form from index `from` on.
#[inline(always)]
fn approx_inverse_portable(corners: [&[f32]; 4], inv_scores: &[f32], w: [f32; 4], out: &mut [f32], from: usize) {
    let [fy0, fy1, fx0, fx1] = w;
    let n = out.len();
    let ([a, b, c, d], s) = (corners.map(|v| &v[..n]), &inv_scores[..n]);
    for j in from..n {
        let u = fy0 * (fx0 * a[j] + fx1 * b[j]) + fy1 * (fx0 * c[j] + fx1 * d[j]);
        out[j] = (1.0 + exp_neg32(u)) * s[j];
    }
}

/// The AVX2 form over the first multiple of [`LANES`] values; returns how many it did.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn approx_inverse_avx2(corners: [&[f32]; 4], inv_scores: &[f32], w: [f32; 4], out: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let n = out.len() / LANES * LANES;
    let ([a, b, c, d], s) = (corners.map(|v| &v[..n]), &inv_scores[..n]);
    let f = |v: f32| _mm256_set1_ps(v);
    let (fy0, fy1, fx0, fx1, one) = (f(w[0]), f(w[1]), f(w[2]), f(w[3]), f(1.0));
    for j in (0..n).step_by(LANES) {
        // SAFETY: `j + LANES <= n` and every slice holds `n` values.
        unsafe {
            let ld = |v: &[f32]| _mm256_loadu_ps(v.as_ptr().add(j));
            let top = _mm256_add_ps(_mm256_mul_ps(fx0, ld(a)), _mm256_mul_ps(fx1, ld(b)));
            let bottom = _mm256_add_ps(_mm256_mul_ps(fx0, ld(c)), _mm256_mul_ps(fx1, ld(d)));
            let u = _mm256_add_ps(_mm256_mul_ps(fy0, top), _mm256_mul_ps(fy1, bottom));
            let r = _mm256_mul_ps(_mm256_add_ps(one, exp_neg32_x8(u)), ld(s));
            _mm256_storeu_ps(out.as_mut_ptr().add(j), r);
        }
    }
    n
}

/// The largest value (NaN ignored; -inf for none), with independent lanes so that it vectorises.
#[inline(always)]
pub(crate) fn max_f32(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for ch in chunks {
        for (m, &x) in acc.iter_mut().zip(ch) {
            *m = m.max(x);
        }
    }
    for &x in rest {
        acc[0] = acc[0].max(x);
    }
    acc.into_iter().fold(f32::NEG_INFINITY, f32::max)
}

/// The smallest value (NaN ignored; +inf for none), with independent lanes so that it vectorises.
#[inline(always)]
pub(crate) fn min_f32(v: &[f32]) -> f32 {
    let mut acc = [f32::INFINITY; LANES];
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for ch in chunks {
        for (m, &x) in acc.iter_mut().zip(ch) {
            *m = m.min(x);
        }
    }
    for &x in rest {
        acc[0] = acc[0].min(x);
    }
    acc.into_iter().fold(f32::INFINITY, f32::min)
}

/// How many values are `<= cut` (branch-free, so that it vectorises).
#[inline(always)]
pub(crate) fn count_at_most(v: &[f32], cut: f32) -> usize {
    v.iter().fold(0usize, |n, &x| n + usize::from(x <= cut))
}

/// The first index of a value `<= cut`, if any (a branch-free test per [`LANES`] values).
#[inline(always)]
pub(crate) fn first_at_most(v: &[f32], cut: f32) -> Option<usize> {
    let chunk = v.chunks(LANES).position(|ch| ch.iter().fold(false, |any, &x| any | (x <= cut)))?;
    let start = chunk * LANES;
    v[start..].iter().position(|&x| x <= cut).map(|i| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postprocess::resample::sigmoid;

    #[test]
    fn sigmoid32_is_within_1e_7() {
        let mut worst = 0f64;
        let mut u = -120.0f32;
        while u <= 120.0 {
            worst = worst.max((f64::from(sigmoid32(u)) - sigmoid(f64::from(u))).abs());
            u += 1.0 / 1024.0 + u.abs() * 1e-6;
        }
        for u in [0.0, -0.0, f32::MIN_POSITIVE, 1e-30, -1e-30, f32::MAX, f32::MIN, f32::INFINITY, f32::NEG_INFINITY] {
            worst = worst.max((f64::from(sigmoid32(u)) - sigmoid(f64::from(u))).abs());
        }
        assert!(worst < 1e-7, "max |sigmoid32 - sigmoid| = {worst:e}");
        assert!(sigmoid32(f32::NAN).is_nan());
    }

    /// Pseudo-random values in [-scale, scale) of several magnitudes.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        let scale = [0.3f32, 3.0, 30.0, 300.0];
        (0..n)
            .map(|i| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale[i % 4]
            })
            .collect()
    }

    #[test]
    fn exp_neg32_is_within_its_bound() {
        let mut u = -87.0f32;
        while u <= 87.0 {
            let rel = (f64::from(exp_neg32(u)) / (-f64::from(u)).exp() - 1.0).abs();
            assert!(rel < 1e-6 + 8e-8 * f64::from(u.abs()), "u = {u}: relative error {rel:e}");
            u += 1.0 / 512.0 + u.abs() * 1e-6;
        }
    }

    #[test]
    fn avx2_forms_equal_portable_forms() {
        if !has_avx2() {
            return;
        }
        let n = 4096;
        let corners: Vec<Vec<f32>> = (0..4).map(|k| values(n, 7 + k)).collect();
        let scores: Vec<f32> =
            values(n, 99).iter().enumerate().map(|(i, v)| if i % 97 == 0 { f32::INFINITY } else { v.abs() }).collect();
        let c = [&corners[0][..], &corners[1][..], &corners[2][..], &corners[3][..]];
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        for w in [[0.25f32, 0.75, 0.6, 0.4], [1.0, 0.0, 0.125, 0.875], [0.5, 0.5, 1.0, 0.0]] {
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            approx_inverse_portable(c, &scores, w, &mut a, 0);
            // SAFETY: the CPU has AVX2 (checked above).
            assert_eq!(unsafe { approx_inverse_avx2(c, &scores, w, &mut b) }, n);
            assert!(same(&a, &b), "AVX2 and portable candidate values differ");
        }
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        for j in 0..n {
            a[j] = scores[j] * sigmoid32(corners[0][j]);
        }
        // SAFETY: as above.
        assert_eq!(unsafe { scaled_sigmoid_avx2(&corners[0], &scores, &mut b) }, n);
        assert!(same(&a, &b), "AVX2 and portable scaled sigmoids differ");
        // Tails: the dispatching forms on lengths that are not multiples of the lanes.
        let (mut a, mut b) = (vec![0f32; 13], vec![0f32; 13]);
        approx_inverse(c, &scores, [0.25, 0.75, 0.6, 0.4], &mut a);
        approx_inverse_portable(c, &scores, [0.25, 0.75, 0.6, 0.4], &mut b, 0);
        assert!(same(&a, &b), "tails differ");
        scaled_sigmoid(&corners[1], &scores, &mut a);
        (0..13).for_each(|j| b[j] = scores[j] * sigmoid32(corners[1][j]));
        assert!(same(&a, &b), "tails differ");
    }

    #[test]
    fn reductions() {
        let v = [1.0f32, f32::NAN, 3.0, -2.0, 3.0, 0.5, 0.0, 2.0, 2.5, 3.0, -2.0];
        assert_eq!((max_f32(&v), min_f32(&v)), (3.0, -2.0));
        assert_eq!((max_f32(&[]), min_f32(&[])), (f32::NEG_INFINITY, f32::INFINITY));
        assert_eq!(count_at_most(&v, 0.5), 4);
        assert_eq!(first_at_most(&v, 0.0), Some(3));
        assert_eq!(first_at_most(&v, -3.0), None);
        assert_eq!(first_at_most(&v[4..], 0.5), Some(1));
        assert_eq!(first_at_most(&v[4..], -1.0), Some(6));
    }
}

//! Small AVX2+FMA building blocks shared by the fast kernels: 8-lane loads and stores with a
//! masked tail, horizontal reductions, vectorised `exp`, `tanh` and `erf`, and the rayon
//! splitting used by the elementwise kernels.
//!
//! Tail convention: a slice whose length is not a multiple of 8 finishes with ONE masked
//! load/store (`_mm256_maskload_ps` / `_mm256_maskstore_ps`), never touching memory past the end.
//! The tail thus runs the same vector math as the body, so an element's result does not depend
//! on its position or on how the slice was split between threads.
//!
//! Safety contract of every `unsafe fn` here (stated once instead of per function): the CPU must
//! support AVX2+FMA (callers have checked [`super::has_avx2`]), and the slice helpers must be
//! given in-bounds indices as their docs say (`loadu(s, i)` needs i + 8 <= s.len(), the `_tail`
//! ones s.len() - i < 8). Those bounds are `debug_assert!`ed; the kernels only loop over
//! in-bounds indices.
#![cfg(target_arch = "x86_64")]
#![allow(clippy::missing_safety_doc)]

use super::PAR_CHUNK;
use rayon::prelude::*;
use std::arch::x86_64::*;

/// f32 lanes in one `__m256`.
pub const LANES: usize = 8;

/// Eight -1 then eight 0: loading 8 i32 at offset 8 - n gives a mask of the first n lanes.
static TAIL_MASK: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

// ---------------------------------------------------------------- loads and stores

/// Lane mask selecting the first `n` lanes, n in 0..=8.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tail_mask(n: usize) -> __m256i {
    debug_assert!(n <= LANES);
    _mm256_loadu_si256(TAIL_MASK.as_ptr().add(LANES - n) as *const __m256i)
}

/// s[i..i + 8]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn loadu(s: &[f32], i: usize) -> __m256 {
    debug_assert!(i + LANES <= s.len());
    _mm256_loadu_ps(s.as_ptr().add(i))
}

/// s[i..i + 8] = v
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn storeu(s: &mut [f32], i: usize, v: __m256) {
    debug_assert!(i + LANES <= s.len());
    _mm256_storeu_ps(s.as_mut_ptr().add(i), v)
}

/// s[i..] (fewer than 8 elements) in the low lanes, 0.0 in the others.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn load_tail(s: &[f32], i: usize) -> __m256 {
    debug_assert!(i <= s.len() && s.len() - i < LANES);
    _mm256_maskload_ps(s.as_ptr().add(i), tail_mask(s.len() - i))
}

/// s[i..] (fewer than 8 elements) in the low lanes, `fill` in the others (e.g. -inf for a max).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn load_tail_or(s: &[f32], i: usize, fill: f32) -> __m256 {
    debug_assert!(i <= s.len() && s.len() - i < LANES);
    let m = tail_mask(s.len() - i);
    let v = _mm256_maskload_ps(s.as_ptr().add(i), m);
    _mm256_blendv_ps(_mm256_set1_ps(fill), v, _mm256_castsi256_ps(m))
}

/// s[i..] = the low s.len() - i (< 8) lanes of v.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn store_tail(s: &mut [f32], i: usize, v: __m256) {
    debug_assert!(i <= s.len() && s.len() - i < LANES);
    _mm256_maskstore_ps(s.as_mut_ptr().add(i), tail_mask(s.len() - i), v)
}

// ---------------------------------------------------------------- horizontal reductions

/// v[0] + ... + v[7]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// max(v[0], ..., v[7])
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn hmax(v: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// sum of s: (n), four accumulators so the adds pipeline.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sum(s: &[f32]) -> f32 {
    let n = s.len();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 4 * LANES <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = _mm256_add_ps(*a, loadu(s, i + k * LANES));
        }
        i += 4 * LANES;
    }
    while i + LANES <= n {
        acc[0] = _mm256_add_ps(acc[0], loadu(s, i));
        i += LANES;
    }
    if i < n {
        acc[1] = _mm256_add_ps(acc[1], load_tail(s, i));
    }
    hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
}

/// max of s: (n), -inf for an empty slice.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn max(s: &[f32]) -> f32 {
    let n = s.len();
    let mut acc = [_mm256_set1_ps(f32::NEG_INFINITY); 4];
    let mut i = 0;
    while i + 4 * LANES <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = _mm256_max_ps(*a, loadu(s, i + k * LANES));
        }
        i += 4 * LANES;
    }
    while i + LANES <= n {
        acc[0] = _mm256_max_ps(acc[0], loadu(s, i));
        i += LANES;
    }
    if i < n {
        acc[1] = _mm256_max_ps(acc[1], load_tail_or(s, i, f32::NEG_INFINITY));
    }
    hmax(_mm256_max_ps(_mm256_max_ps(acc[0], acc[1]), _mm256_max_ps(acc[2], acc[3])))
}

// ---------------------------------------------------------------- elementwise maps

/// out[i] = f(a[i]) over 8-lane groups, the tail masked. out, a: (n).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn map1<F: Fn(__m256) -> __m256>(out: &mut [f32], a: &[f32], f: F) {
    let n = out.len();
    debug_assert_eq!(a.len(), n);
    let mut i = 0;
    while i + LANES <= n {
        storeu(out, i, f(loadu(a, i)));
        i += LANES;
    }
    if i < n {
        store_tail(out, i, f(load_tail(a, i)));
    }
}

/// out[i] = f(a[i], b[i]) over 8-lane groups, the tail masked. out, a, b: (n).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn map2<F: Fn(__m256, __m256) -> __m256>(out: &mut [f32], a: &[f32], b: &[f32], f: F) {
    let n = out.len();
    debug_assert!(a.len() == n && b.len() == n);
    let mut i = 0;
    while i + LANES <= n {
        storeu(out, i, f(loadu(a, i), loadu(b, i)));
        i += LANES;
    }
    if i < n {
        store_tail(out, i, f(load_tail(a, i), load_tail(b, i)));
    }
}

/// Fewest elements worth threading for kernels doing a transcendental per element (exp, tanh,
/// erf: ~0.4 ns per element on one core). Waking the rayon pool from outside costs ~15 us on the
/// 2-vCPU dev VM (measured with a bare `rayon::join`), so threading only pays from ~100k
/// elements: measured gelu_tanh 65k: 28 us serial vs 38 threaded; 131k: 55 vs 36.
pub const PAR_MIN_HEAVY: usize = 4 * PAR_CHUNK;
/// Fewest elements worth threading for memory-bound kernels (a few flops per element, copies):
/// measured add 262k: 30 us serial vs 55 threaded; 524k: 64 vs 57; 1M: 101 vs 74.
pub const PAR_MIN_LIGHT: usize = 16 * PAR_CHUNK;

/// Calls f on matching PAR_CHUNK-element pieces of out and a: on the rayon pool when there are
/// at least `min` elements (PAR_MIN_HEAVY or PAR_MIN_LIGHT), inline otherwise.
pub fn par_zip1<F>(out: &mut [f32], a: &[f32], min: usize, f: F)
where
    F: Fn(&mut [f32], &[f32]) + Sync + Send,
{
    if out.len() < min.max(2 * PAR_CHUNK) {
        return f(out, a);
    }
    out.par_chunks_mut(PAR_CHUNK).zip(a.par_chunks(PAR_CHUNK)).for_each(|(o, a)| f(o, a));
}

/// [`par_zip1`] with two inputs.
pub fn par_zip2<F>(out: &mut [f32], a: &[f32], b: &[f32], min: usize, f: F)
where
    F: Fn(&mut [f32], &[f32], &[f32]) + Sync + Send,
{
    if out.len() < min.max(2 * PAR_CHUNK) {
        return f(out, a, b);
    }
    out.par_chunks_mut(PAR_CHUNK)
        .zip(a.par_chunks(PAR_CHUNK))
        .zip(b.par_chunks(PAR_CHUNK))
        .for_each(|((o, a), b)| f(o, a, b));
}

/// Rows per rayon task for a row-wise kernel over (rows, cols), or None when there are fewer
/// than `min` elements (PAR_MIN_HEAVY or PAR_MIN_LIGHT). Tasks hold about PAR_CHUNK elements (at
/// least one row).
pub fn par_rows(rows: usize, cols: usize, min: usize) -> Option<usize> {
    if rows < 2 || rows * cols < min.max(2 * PAR_CHUNK) {
        return None;
    }
    Some((PAR_CHUNK / cols.max(1)).clamp(1, rows.div_ceil(2)))
}

// ---------------------------------------------------------------- exp

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split for the Cody-Waite reduction: HI is ln 2 rounded to f32, LO the remainder.
const LN2_HI: f32 = std::f32::consts::LN_2;
const LN2_LO: f32 = -1.904_654_3e-9;
/// e^r on |r| <= ln(2)/2, degree 6, fitted for relative error by iteratively reweighted least
/// squares (near-minimax); the fit's own error after rounding the coefficients to f32 is 1.7e-8.
const EXP_P: [f32; 7] = [1.0, 1.0, 0.499_999_9, 0.166_664_2, 0.041_668_225, 0.008_374_816, 0.001_383_683];

/// Horner evaluation with FMA: c[0] + c[1] t + c[2] t^2 + ...
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn poly<const N: usize>(t: __m256, c: &[f32; N]) -> __m256 {
    let mut p = _mm256_set1_ps(c[N - 1]);
    for k in (0..N - 1).rev() {
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(c[k]));
    }
    p
}

/// e^x per lane. x = n ln2 + r, |r| <= ln2/2; e^x = 2^n p(r).
/// Measured (unit test `exp_accuracy`, every 61st f32 in [-87.3, 88.7]): max error 1.03 ulp;
/// results in the subnormal range (x down to -103.9) are within 0.86 subnormal step; x < -104 gives
/// +0, x > 88.73 gives +inf, -inf gives 0, NaN stays NaN.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp(x: __m256) -> __m256 {
    // Clamp so 2^n stays in [2^-150, 2^128]: below -104 the result rounds to 0 anyway, above 89
    // it overflows to inf anyway. Clamp value first so max/min return x when x is NaN.
    let x = _mm256_max_ps(_mm256_set1_ps(-104.0), x);
    let x = _mm256_min_ps(_mm256_set1_ps(89.0), x);
    let n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let p = poly(r, &EXP_P);
    // Scale by 2^n as 2^(n/2) * 2^(n - n/2): each factor has a normal exponent for every n in
    // [-150, 128], so subnormal results round once and overflow becomes inf naturally.
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32(ni, 1);
    let n2 = _mm256_sub_epi32(ni, n1);
    let bias = _mm256_set1_epi32(127);
    let s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    let s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    _mm256_mul_ps(_mm256_mul_ps(p, s1), s2)
}

// ---------------------------------------------------------------- tanh

/// Below this |x| tanh uses the odd polynomial; above, the exp formula (no cancellation there).
const TANH_SMALL: f32 = 0.625;
/// (tanh(x)/x - 1)/x^2 as a polynomial in x^2 on |x| <= 0.625, degree 4 (near-minimax fit; its
/// relative error after f32 rounding of the coefficients is 5e-9).
const TANH_P: [f32; 5] = [-0.333_332_84, 0.133_314_91, -0.053_743_485, 0.020_650_554, -0.005_717_011];

/// tanh per lane. |x| < 0.625: x + x^3 P(x^2) (accurate down to subnormals, keeps -0);
/// otherwise sign(x) (1 - 2 / (e^{2|x|} + 1)) with |x| clamped at 9.5 (tanh is 1.0f32 beyond 9.02).
/// Measured (unit test `tanh_accuracy`, every 61st f32 with |x| < 12): max error 1.3 ulp.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tanh(x: __m256) -> __m256 {
    let sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0));
    let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
    let y = _mm256_mul_ps(a, a);
    let small = _mm256_fmadd_ps(_mm256_mul_ps(a, y), poly(y, &TANH_P), a);
    // min(9.5, a) keeps e finite (the result rounds to 1.0 there anyway) and passes NaN on.
    let e = exp(_mm256_mul_ps(_mm256_set1_ps(2.0), _mm256_min_ps(_mm256_set1_ps(9.5), a)));
    let one = _mm256_set1_ps(1.0);
    let large = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)));
    let is_small = _mm256_cmp_ps(a, _mm256_set1_ps(TANH_SMALL), _CMP_LT_OQ);
    _mm256_or_ps(_mm256_blendv_ps(large, small, is_small), sign)
}

// ---------------------------------------------------------------- erf, erfc

/// Below this |x| erf and erfc use the odd polynomial in x; above, erfc = e^{-x^2} erfcx(x).
const ERF_SMALL: f32 = 1.0;
/// erf(x)/x as a polynomial in x^2 on |x| <= 1, degree 6: the constant is 2/sqrt(pi) rounded to
/// f32 (so erf keeps full relative accuracy near 0), the rest fitted near-minimax for relative
/// error (fit error after f32 rounding 6e-8).
const ERF_P: [f32; 7] = [
    std::f32::consts::FRAC_2_SQRT_PI,
    -0.376_130_25,
    0.112_880_53,
    -0.027_038_515,
    0.005_536_163_7,
    -0.001_104_479,
    0.000_178_173_93,
];
/// erfcx(x) = erfc(x) e^{x^2} as a polynomial in u = 1/(x + 1) on 1 <= x <= 10, degree 8
/// (erfcx behaves like 1/(sqrt(pi) x), smooth in u; near-minimax for relative error: 3.4e-8
/// before and 2e-7 after f32 rounding and f32 evaluation).
const ERFCX_Q: [f32; 9] = [
    6.112_490_6e-6,
    0.563_909_95,
    0.569_620_3,
    0.223_532_99,
    0.101_638_33,
    -2.261_336_8,
    3.557_046_4,
    -2.328_761_3,
    0.564_419,
];

/// e^{-c x^2} per lane for c = 1 or 0.5 (so c x^2 needs no rounding of its own). x^2 is taken
/// as hi + lo with lo from an FMA, and e^{-c lo} ~ 1 - c lo applied, so the result does not
/// inherit x^2's rounding (which alone would cost x^2 * 6e-8 relative, 1e-6 at x = 4).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_neg_sq(x: __m256, c: f32) -> __m256 {
    let hi = _mm256_mul_ps(x, x);
    let lo = _mm256_fmsub_ps(x, x, hi);
    let vc = _mm256_set1_ps(c);
    let e = exp(_mm256_mul_ps(_mm256_set1_ps(-c), hi));
    // e - e c lo; lo is NaN when x is +-inf (e = 0 is right) or NaN (e is NaN already)
    let corr = _mm256_fnmadd_ps(_mm256_mul_ps(e, vc), lo, e);
    _mm256_blendv_ps(corr, e, _mm256_cmp_ps(lo, lo, _CMP_UNORD_Q))
}

/// erfc(a) per lane for a >= 0 (callers pass |x|), given e = e^{-a^2}:
/// a < 1: 1 - a P(a^2) (>= 0.157, no cancellation); a >= 1: e * erfcx(a), formed directly so it
/// keeps its RELATIVE accuracy where erfc is tiny (1 - erf would cancel). Beyond a ~ 10 e
/// underflows and the result goes to 0 through the subnormals, as erfc does. NaN stays NaN.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn erfc_abs_with(a: __m256, e: __m256) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    let small = _mm256_fnmadd_ps(a, poly(_mm256_mul_ps(a, a), &ERF_P), one);
    let u = _mm256_div_ps(one, _mm256_add_ps(a, one));
    let large = _mm256_mul_ps(e, poly(u, &ERFCX_Q));
    let is_small = _mm256_cmp_ps(a, _mm256_set1_ps(ERF_SMALL), _CMP_LT_OQ);
    _mm256_blendv_ps(large, small, is_small)
}

/// erfc(a) per lane for a >= 0. Measured (unit test `erfc_accuracy`): max relative error 3.2e-7
/// over [1, 9.1] (erfc down to 1e-37, the normal f32 range), max absolute error 9.2e-8 over
/// [0, 10] (near a = 1, where erfc ~ 0.16).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn erfc_abs(a: __m256) -> __m256 {
    erfc_abs_with(a, exp_neg_sq(a, 1.0))
}

/// erf per lane: |x| < 1: x P(x^2); otherwise sign(x) (1 - erfc(|x|)), which rounds to +-1 from
/// |x| = 3.92 on (including +-inf). NaN stays NaN.
/// Measured (unit test `erf_accuracy`, every 61st f32 with |x| < 6): max absolute error 1.2e-7
/// (about 2 ulp of erf near 1, from f32 rounding in the polynomials); max 2.3 ulp relative for
/// |x| < 1, so tiny inputs stay accurate.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn erf(x: __m256) -> __m256 {
    let sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0));
    let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
    let small = _mm256_mul_ps(a, poly(_mm256_mul_ps(a, a), &ERF_P));
    let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
    let large = _mm256_sub_ps(_mm256_set1_ps(1.0), erfc_abs_with(a, e));
    let is_small = _mm256_cmp_ps(a, _mm256_set1_ps(ERF_SMALL), _CMP_LT_OQ);
    _mm256_or_ps(_mm256_blendv_ps(large, small, is_small), sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a lane function over every `step`-th f32 in [lo, hi] (by bit pattern, both signs of
    /// the range as given) and returns (max ulp error, max abs error, worst x) against `want`.
    fn sweep(f: unsafe fn(__m256) -> __m256, want: fn(f64) -> f64, lo: f32, hi: f32, step: u32) -> (f64, f64, f32) {
        let mut xs = Vec::new();
        for (from, to) in [(0.0f32, hi), (0.0f32, -lo)] {
            let (mut b, end) = (from.to_bits(), to.to_bits());
            while b <= end {
                let x = f32::from_bits(b);
                xs.push(if to == hi { x } else { -x });
                b += step;
            }
        }
        xs.retain(|&x| x >= lo && x <= hi);
        let mut got = vec![0f32; xs.len()];
        unsafe {
            map1(&mut got, &xs, |v| f(v));
        }
        let (mut worst_ulp, mut worst_abs, mut at) = (0f64, 0f64, 0f32);
        for (&x, &g) in xs.iter().zip(&got) {
            let w = want(x as f64);
            let wf = w as f32;
            let ulp = if wf == 0.0 || !wf.is_finite() {
                f32::from_bits(1) as f64
            } else {
                (f32::from_bits(wf.abs().to_bits() + 1) - wf.abs()) as f64
            };
            let err = if g as f64 == w || (g.is_infinite() && wf.is_infinite() && g == wf) {
                0.0
            } else {
                (g as f64 - w).abs()
            };
            if err / ulp > worst_ulp {
                worst_ulp = err / ulp;
                at = x;
            }
            worst_abs = worst_abs.max(err);
        }
        (worst_ulp, worst_abs, at)
    }

    #[test]
    fn exp_accuracy() {
        if !crate::cpu::has_avx2() {
            return;
        }
        let (u, _, at) = sweep(exp, f64::exp, -87.3, 88.7, 61);
        eprintln!("exp normal range: max {u:.3} ulp at {at}");
        assert!(u <= 1.5, "exp: {u} ulp at {at}");
        // subnormal results: error counted in units of the smallest subnormal
        let (u, _, at) = sweep(exp, f64::exp, -103.9, -87.4, 61);
        eprintln!("exp subnormal range: max {u:.3} steps at {at}");
        assert!(u <= 1.0, "exp subnormal: {u} at {at}");
        let special = [-1e30f32, -104.5, -200.0, f32::NEG_INFINITY, 88.8, 100.0, f32::INFINITY];
        let mut out = [0f32; 7];
        unsafe { map1(&mut out, &special, |v| exp(v)) };
        assert_eq!(&out[..4], &[0.0; 4]);
        assert!(out[4..].iter().all(|v| *v == f32::INFINITY), "{out:?}");
        let mut nan = [0f32; 1];
        unsafe { map1(&mut nan, &[f32::NAN], |v| exp(v)) };
        assert!(nan[0].is_nan());
    }

    #[test]
    fn tanh_accuracy() {
        if !crate::cpu::has_avx2() {
            return;
        }
        let (u, _, at) = sweep(tanh, f64::tanh, -12.0, 12.0, 61);
        eprintln!("tanh: max {u:.3} ulp at {at}");
        assert!(u <= 2.5, "tanh: {u} ulp at {at}");
        let xs = [-0.0f32, 0.0, 1e-40, -1e-30, 30.0, -30.0, f32::INFINITY, f32::NAN];
        let mut out = [0f32; 8];
        unsafe { map1(&mut out, &xs, |v| tanh(v)) };
        assert!(out[0] == 0.0 && out[0].is_sign_negative());
        assert!(out[1] == 0.0 && out[1].is_sign_positive());
        assert_eq!(&out[2..7], &[1e-40, -1e-30, 1.0, -1.0, 1.0]);
        assert!(out[7].is_nan());
    }

    #[test]
    fn erf_accuracy() {
        if !crate::cpu::has_avx2() {
            return;
        }
        let (_, a, _) = sweep(erf, libm::erf, -6.0, 6.0, 61);
        eprintln!("erf: max abs error {a:.3e}");
        assert!(a <= 1.5e-7, "erf: abs error {a}");
        // relative accuracy where erf is small (the polynomial branch)
        let (u, _, at) = sweep(erf, libm::erf, -1.0, 1.0, 61);
        eprintln!("erf |x| < 1: max {u:.3} ulp at {at}");
        assert!(u <= 3.0, "erf: {u} ulp at {at}");
        let xs = [-0.0f32, 1e-40, 30.0, -30.0, f32::INFINITY, f32::NAN, 0.0, 0.0];
        let mut out = [0f32; 8];
        unsafe { map1(&mut out, &xs, |v| erf(v)) };
        assert!(out[0] == 0.0 && out[0].is_sign_negative());
        assert_eq!(&out[2..5], &[1.0, -1.0, 1.0]);
        assert!(out[1] > 0.0 && out[5].is_nan());
    }

    #[test]
    fn erfc_accuracy() {
        if !crate::cpu::has_avx2() {
            return;
        }
        let (_, a, _) = sweep(erfc_abs, libm::erfc, 0.0, 10.0, 61);
        eprintln!("erfc: max abs error {a:.3e}");
        assert!(a <= 1e-7, "erfc: abs error {a}");
        // relative error where erfc is small, down to x = 9.1 (erfc 1e-37, still a normal f32)
        let xs: Vec<f32> = (0..100_000).map(|i| 1.0 + i as f32 * 0.000081).collect();
        let mut got = vec![0f32; xs.len()];
        unsafe { map1(&mut got, &xs, |v| erfc_abs(v)) };
        let (mut rel, mut at) = (0f64, 0f32);
        for (&x, &g) in xs.iter().zip(&got) {
            let w = libm::erfc(x as f64);
            let r = ((g as f64 - w) / w).abs();
            if r > rel {
                (rel, at) = (r, x);
            }
        }
        eprintln!("erfc [1, 9.1]: max rel error {rel:.3e} at {at}");
        assert!(rel <= 6e-7, "erfc: rel error {rel} at {at}");
        let mut out = [0f32; 8];
        let xs = [0.0f32, 11.0, 30.0, f32::INFINITY, f32::NAN, 0.5, 1.0, 2.0];
        unsafe { map1(&mut out, &xs, |v| erfc_abs(v)) };
        assert_eq!(&out[..4], &[1.0, 0.0, 0.0, 0.0]);
        assert!(out[4].is_nan());
    }

    #[test]
    fn tails_and_reductions() {
        if !crate::cpu::has_avx2() {
            return;
        }
        for n in 0..40 {
            let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let s = unsafe { sum(&v) };
            let m = unsafe { max(&v) };
            assert!((s - v.iter().sum::<f32>()).abs() < 1e-5, "sum n={n}");
            assert_eq!(m, v.iter().copied().fold(f32::NEG_INFINITY, f32::max), "max n={n}");
        }
    }
}

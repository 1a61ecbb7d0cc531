//! Pointwise activations: `gelu_tanh` (HF "gelu_new", and what the official ALBERT code calls
//! "gelu"), `gelu_erf` (HF "gelu", PyTorch's default), `tanh`, `relu`.
//!
//! Shapes: every slice is the same length n (any flattened shape).
//! Backward kernels overwrite `dinp` (activation gradients are never accumulated here).

use crate::Real;

#[cfg(target_arch = "x86_64")]
use super::simd::{self, map1, map2, par_zip1, par_zip2, PAR_MIN_HEAVY, PAR_MIN_LIGHT};
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// sqrt(2/pi), the constant inside the tanh approximation of GELU.
pub const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient of the tanh approximation.
pub const GELU_TANH_C: f64 = 0.044_715;

// ---------------------------------------------------------------- gelu_tanh
/// out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
pub fn gelu_tanh_fwd_scalar<T: Real>(out: &mut [T], inp: &[T]) {
    assert_eq!(out.len(), inp.len(), "gelu_tanh_fwd: out and inp lengths");
    let (k, c, half) = (T::c(SQRT_2_OVER_PI), T::c(GELU_TANH_C), T::c(0.5));
    for (o, &x) in out.iter_mut().zip(inp) {
        *o = half * x * (T::one() + (k * (x + c * x * x * x)).tanh());
    }
}

/// dinp = dout * d/dx gelu_tanh(x)
///      = dout * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)),  t = tanh(u)
pub fn gelu_tanh_bwd_scalar<T: Real>(dinp: &mut [T], inp: &[T], dout: &[T]) {
    assert!(dinp.len() == inp.len() && inp.len() == dout.len(), "gelu_tanh_bwd: lengths");
    let (k, c, half) = (T::c(SQRT_2_OVER_PI), T::c(GELU_TANH_C), T::c(0.5));
    for ((d, &x), &g) in dinp.iter_mut().zip(inp).zip(dout) {
        let t = (k * (x + c * x * x * x)).tanh();
        let du = k * (T::one() + T::c(3.0) * c * x * x);
        *d = g * (half * (T::one() + t) + half * x * (T::one() - t * t) * du);
    }
}

/// out, inp: (n). Uses 0.5 (1 + tanh(u)) = 1 / (1 + e^{-2u}): one exp, and no cancellation
/// for negative x, where 1 + tanh(u) would lose all relative accuracy.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gelu_tanh_fwd_avx2(out: &mut [f32], inp: &[f32]) {
    assert_eq!(out.len(), inp.len(), "gelu_tanh_fwd: out and inp lengths");
    par_zip1(out, inp, PAR_MIN_HEAVY, |o, x| map1(o, x, |x| gelu_tanh8(x)));
}

/// x * sigmoid(2u) per lane; e^{-2u} = inf for very negative x gives x / inf = -0, as expected.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_tanh8(x: __m256) -> __m256 {
    let m2u = gelu_tanh_m2u(x);
    _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), simd::exp(m2u)))
}

/// -2u = -2 sqrt(2/pi) x (1 + 0.044715 x^2) per lane.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_tanh_m2u(x: __m256) -> __m256 {
    let x2 = _mm256_mul_ps(x, x);
    let poly = _mm256_fmadd_ps(_mm256_set1_ps(GELU_TANH_C as f32), x2, _mm256_set1_ps(1.0));
    _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0 * SQRT_2_OVER_PI as f32), x), poly)
}

/// dinp, inp, dout: (n). With s = sigmoid(2u): 0.5 (1 + t) = s and 1 - t^2 = 4 s (1 - s), where
/// 1 - s = e^{-2u} s is formed without cancellation.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gelu_tanh_bwd_avx2(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
    assert!(dinp.len() == inp.len() && inp.len() == dout.len(), "gelu_tanh_bwd: lengths");
    let (k, c3) = (SQRT_2_OVER_PI as f32, 3.0 * GELU_TANH_C as f32);
    par_zip2(dinp, inp, dout, PAR_MIN_HEAVY, |d, x, g| {
        map2(d, x, g, |x, g| {
            // Capping -2u at 88 keeps e finite (so e * s is not inf * 0); s is then ~1e-38
            // instead of smaller, far below anything that matters.
            let e = simd::exp(_mm256_min_ps(_mm256_set1_ps(88.0), gelu_tanh_m2u(x)));
            let one = _mm256_set1_ps(1.0);
            let s = _mm256_div_ps(one, _mm256_add_ps(one, e));
            let one_minus_s = _mm256_mul_ps(e, s);
            let du = _mm256_mul_ps(_mm256_set1_ps(k), _mm256_fmadd_ps(_mm256_set1_ps(c3), _mm256_mul_ps(x, x), one));
            // s + 2 x s (1 - s) du
            let t = _mm256_mul_ps(_mm256_mul_ps(_mm256_add_ps(x, x), s), one_minus_s);
            _mm256_mul_ps(g, _mm256_fmadd_ps(t, du, s))
        })
    });
}

pub fn gelu_tanh_fwd(out: &mut [f32], inp: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { gelu_tanh_fwd_avx2(out, inp) };
    }
    gelu_tanh_fwd_scalar(out, inp)
}

pub fn gelu_tanh_bwd(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { gelu_tanh_bwd_avx2(dinp, inp, dout) };
    }
    gelu_tanh_bwd_scalar(dinp, inp, dout)
}

// ---------------------------------------------------------------- gelu_erf
/// out = 0.5 x (1 + erf(x / sqrt 2))
pub fn gelu_erf_fwd_scalar<T: Real>(out: &mut [T], inp: &[T]) {
    assert_eq!(out.len(), inp.len(), "gelu_erf_fwd: out and inp lengths");
    let (half, r2) = (T::c(0.5), T::c(std::f64::consts::FRAC_1_SQRT_2));
    for (o, &x) in out.iter_mut().zip(inp) {
        *o = half * x * (T::one() + (x * r2).erf());
    }
}

/// dinp = dout * (Phi(x) + x phi(x)),  Phi the normal CDF, phi the normal density.
pub fn gelu_erf_bwd_scalar<T: Real>(dinp: &mut [T], inp: &[T], dout: &[T]) {
    assert!(dinp.len() == inp.len() && inp.len() == dout.len(), "gelu_erf_bwd: lengths");
    let (half, r2) = (T::c(0.5), T::c(std::f64::consts::FRAC_1_SQRT_2));
    let inv_sqrt_2pi = T::c(0.398_942_280_401_432_7);
    for ((d, &x), &g) in dinp.iter_mut().zip(inp).zip(dout) {
        let cdf = half * (T::one() + (x * r2).erf());
        let pdf = inv_sqrt_2pi * (-half * x * x).exp();
        *d = g * (cdf + x * pdf);
    }
}

/// out, inp: (n).
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gelu_erf_fwd_avx2(out: &mut [f32], inp: &[f32]) {
    assert_eq!(out.len(), inp.len(), "gelu_erf_fwd: out and inp lengths");
    par_zip1(out, inp, PAR_MIN_HEAVY, |o, x| map1(o, x, |x| _mm256_mul_ps(x, normal_cdf(x).0)));
}

/// Phi(x) = 0.5 (1 + erf(x / sqrt 2)) per lane, taken from erfc(|x| / sqrt 2) so that for x < 0
/// it is formed without the cancellation of 1 + erf: relative accuracy ~1e-6 (bounded by the
/// rounding of x / sqrt 2) instead of ~1e-1 where Phi is small. Also returns e^{-x^2/2}, which
/// the backward needs for the density.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn normal_cdf(x: __m256) -> (__m256, __m256) {
    let a = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0), x), _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    // e^{-a^2} = e^{-x^2/2} from x itself, so a's rounding does not reach the exponent
    let e = simd::exp_neg_sq(x, 0.5);
    let half_erfc = _mm256_mul_ps(_mm256_set1_ps(0.5), simd::erfc_abs_with(a, e));
    let upper = _mm256_sub_ps(_mm256_set1_ps(1.0), half_erfc);
    // the sign bit (x < 0 or -0) picks erfc/2; Phi(-0) = 0.5 either way
    (_mm256_blendv_ps(upper, half_erfc, x), e)
}

/// dinp, inp, dout: (n).
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gelu_erf_bwd_avx2(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
    assert!(dinp.len() == inp.len() && inp.len() == dout.len(), "gelu_erf_bwd: lengths");
    par_zip2(dinp, inp, dout, PAR_MIN_HEAVY, |d, x, g| {
        map2(d, x, g, |x, g| {
            let (cdf, e) = normal_cdf(x);
            let pdf = _mm256_mul_ps(_mm256_set1_ps(0.398_942_3), e);
            _mm256_mul_ps(g, _mm256_fmadd_ps(x, pdf, cdf))
        })
    });
}

pub fn gelu_erf_fwd(out: &mut [f32], inp: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { gelu_erf_fwd_avx2(out, inp) };
    }
    gelu_erf_fwd_scalar(out, inp)
}

pub fn gelu_erf_bwd(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { gelu_erf_bwd_avx2(dinp, inp, dout) };
    }
    gelu_erf_bwd_scalar(dinp, inp, dout)
}

// ---------------------------------------------------------------- tanh
pub fn tanh_fwd_scalar<T: Real>(out: &mut [T], inp: &[T]) {
    assert_eq!(out.len(), inp.len(), "tanh_fwd: out and inp lengths");
    for (o, &x) in out.iter_mut().zip(inp) {
        *o = x.tanh();
    }
}

/// dinp = dout * (1 - y^2), from the saved OUTPUT y (no need to keep the input).
pub fn tanh_bwd_scalar<T: Real>(dinp: &mut [T], out: &[T], dout: &[T]) {
    assert!(dinp.len() == out.len() && out.len() == dout.len(), "tanh_bwd: lengths");
    for ((d, &y), &g) in dinp.iter_mut().zip(out).zip(dout) {
        *d = g * (T::one() - y * y);
    }
}

/// out, inp: (n).
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tanh_fwd_avx2(out: &mut [f32], inp: &[f32]) {
    assert_eq!(out.len(), inp.len(), "tanh_fwd: out and inp lengths");
    par_zip1(out, inp, PAR_MIN_HEAVY, |o, x| map1(o, x, |x| simd::tanh(x)));
}

/// dinp, out, dout: (n).
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tanh_bwd_avx2(dinp: &mut [f32], out: &[f32], dout: &[f32]) {
    assert!(dinp.len() == out.len() && out.len() == dout.len(), "tanh_bwd: lengths");
    par_zip2(dinp, out, dout, PAR_MIN_LIGHT, |d, y, g| {
        map2(d, y, g, |y, g| _mm256_mul_ps(g, _mm256_fnmadd_ps(y, y, _mm256_set1_ps(1.0))))
    });
}

pub fn tanh_fwd(out: &mut [f32], inp: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { tanh_fwd_avx2(out, inp) };
    }
    tanh_fwd_scalar(out, inp)
}

pub fn tanh_bwd(dinp: &mut [f32], out: &[f32], dout: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { tanh_bwd_avx2(dinp, out, dout) };
    }
    tanh_bwd_scalar(dinp, out, dout)
}

// ---------------------------------------------------------------- relu
pub fn relu_fwd_scalar<T: Real>(out: &mut [T], inp: &[T]) {
    assert_eq!(out.len(), inp.len(), "relu_fwd: out and inp lengths");
    for (o, &x) in out.iter_mut().zip(inp) {
        *o = if x > T::zero() { x } else { T::zero() };
    }
}

/// dinp = dout where x > 0, else 0 (the subgradient at 0 is taken as 0, as PyTorch does).
pub fn relu_bwd_scalar<T: Real>(dinp: &mut [T], inp: &[T], dout: &[T]) {
    assert!(dinp.len() == inp.len() && inp.len() == dout.len(), "relu_bwd: lengths");
    for ((d, &x), &g) in dinp.iter_mut().zip(inp).zip(dout) {
        *d = if x > T::zero() { g } else { T::zero() };
    }
}

/// out, inp: (n). max_ps(x, 0) returns its second operand for NaN and for -0 vs +0, which is
/// exactly the scalar `x > 0 ? x : 0`.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn relu_fwd_avx2(out: &mut [f32], inp: &[f32]) {
    assert_eq!(out.len(), inp.len(), "relu_fwd: out and inp lengths");
    par_zip1(out, inp, PAR_MIN_LIGHT, |o, x| map1(o, x, |x| _mm256_max_ps(x, _mm256_setzero_ps())));
}

/// dinp, inp, dout: (n).
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn relu_bwd_avx2(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
    assert!(dinp.len() == inp.len() && inp.len() == dout.len(), "relu_bwd: lengths");
    par_zip2(dinp, inp, dout, PAR_MIN_LIGHT, |d, x, g| {
        map2(d, x, g, |x, g| _mm256_and_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ), g))
    });
}

pub fn relu_fwd(out: &mut [f32], inp: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { relu_fwd_avx2(out, inp) };
    }
    relu_fwd_scalar(out, inp)
}

pub fn relu_bwd(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { relu_bwd_avx2(dinp, inp, dout) };
    }
    relu_bwd_scalar(dinp, inp, dout)
}

//! Softmax over the last axis fused with a scale and an optional additive mask: the attention
//! probabilities `softmax(scale * scores + mask)`.
//!
//! Shapes: inp, out, dout, dinp: (R, C). mask: (R / rows_per_mask, C): one mask row is shared by
//! `rows_per_mask` consecutive rows (scores [B,N,S,S] with a padding mask [B,S] use
//! rows_per_mask = N*S). Masked entries are usually a large negative number (HF uses the dtype's
//! minimum); a row whose every entry is -inf yields NaN, as in PyTorch.

use crate::Real;

#[cfg(target_arch = "x86_64")]
use super::simd::{self, LANES, PAR_MIN_HEAVY, PAR_MIN_LIGHT};
#[cfg(target_arch = "x86_64")]
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// out[r, c] = exp(z[r,c] - max_r) / sum_c exp(z[r,c] - max_r),  z = scale * inp + mask
pub fn softmax_fwd_scalar<T: Real>(
    out: &mut [T],
    inp: &[T],
    mask: Option<&[T]>,
    rows: usize,
    cols: usize,
    rows_per_mask: usize,
    scale: T,
) {
    check_shapes(out.len(), inp.len(), mask.map(|m| m.len()), rows, cols, rows_per_mask);
    for r in 0..rows {
        let x = &inp[r * cols..(r + 1) * cols];
        let y = &mut out[r * cols..(r + 1) * cols];
        let m = mask.map(|m| &m[(r / rows_per_mask) * cols..(r / rows_per_mask + 1) * cols]);
        for c in 0..cols {
            y[c] = scale * x[c] + m.map_or(T::zero(), |m| m[c]);
        }
        let max = y.iter().copied().fold(T::neg_infinity(), T::max);
        let mut sum = T::zero();
        for v in y.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = T::one() / sum;
        for v in y.iter_mut() {
            *v *= inv;
        }
    }
}

/// dinp[r, c] = scale * y[r,c] * (dout[r,c] - sum_c' dout[r,c'] y[r,c'])   (overwritten)
/// Needs only the saved output y; the mask is a constant and gets no gradient.
pub fn softmax_bwd_scalar<T: Real>(dinp: &mut [T], out: &[T], dout: &[T], rows: usize, cols: usize, scale: T) {
    assert!(dinp.len() == rows * cols && out.len() == rows * cols && dout.len() == rows * cols, "softmax_bwd: lengths");
    for r in 0..rows {
        let y = &out[r * cols..(r + 1) * cols];
        let g = &dout[r * cols..(r + 1) * cols];
        let dot: T = y.iter().zip(g).map(|(&a, &b)| a * b).sum();
        for c in 0..cols {
            dinp[r * cols + c] = scale * y[c] * (g[c] - dot);
        }
    }
}

pub(crate) fn check_shapes(out: usize, inp: usize, mask: Option<usize>, rows: usize, cols: usize, rpm: usize) {
    assert!(out == rows * cols && inp == rows * cols, "softmax_fwd: lengths");
    if let Some(m) = mask {
        assert!(rpm > 0 && rows.is_multiple_of(rpm), "softmax_fwd: rows_per_mask must divide rows");
        assert_eq!(m, rows / rpm * cols, "softmax_fwd: mask length");
    }
}

/// out, inp: (R, C); mask: (R / rows_per_mask, C). Three passes per row (z and its max, exp
/// and sum, normalise) that stay in L1 for attention-sized rows; threaded over row blocks.
/// z = fma(scale, x, mask) rounds once where the scalar code rounds twice.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn softmax_fwd_avx2(
    out: &mut [f32],
    inp: &[f32],
    mask: Option<&[f32]>,
    rows: usize,
    cols: usize,
    rows_per_mask: usize,
    scale: f32,
) {
    check_shapes(out.len(), inp.len(), mask.map(|m| m.len()), rows, cols, rows_per_mask);
    if out.is_empty() {
        return;
    }
    // y, x: a block of whole rows starting at global row r0
    let run = |y: &mut [f32], x: &[f32], r0: usize| {
        for (k, (y, x)) in y.chunks_exact_mut(cols).zip(x.chunks_exact(cols)).enumerate() {
            let m = mask.map(|m| {
                let mr = (r0 + k) / rows_per_mask;
                &m[mr * cols..(mr + 1) * cols]
            });
            softmax_row(y, x, m, scale);
        }
    };
    match simd::par_rows(rows, cols, PAR_MIN_HEAVY) {
        None => run(out, inp, 0),
        Some(per) => out
            .par_chunks_mut(per * cols)
            .zip(inp.par_chunks(per * cols))
            .enumerate()
            .for_each(|(k, (y, x))| run(y, x, k * per)),
    }
}

/// One row: y = softmax(scale * x + m).  y, x, m: (C).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_row(y: &mut [f32], x: &[f32], m: Option<&[f32]>, scale: f32) {
    let n = y.len();
    let vs = _mm256_set1_ps(scale);
    // pass 1: z into y
    match m {
        Some(m) => simd::map2(y, x, m, |x, m| _mm256_fmadd_ps(vs, x, m)),
        None => simd::map1(y, x, |x| _mm256_mul_ps(vs, x)),
    }
    let max = _mm256_set1_ps(simd::max(y));
    // pass 2: y = exp(z - max), summed as we go. Masked tail lanes hold exp(0 - max) garbage in
    // the register but are zeroed before the sum and never stored.
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + LANES <= n {
        let e = simd::exp(_mm256_sub_ps(simd::loadu(y, i), max));
        simd::storeu(y, i, e);
        acc = _mm256_add_ps(acc, e);
        i += LANES;
    }
    if i < n {
        let mask = _mm256_castsi256_ps(simd::tail_mask(n - i));
        let e = _mm256_and_ps(simd::exp(_mm256_sub_ps(simd::load_tail(y, i), max)), mask);
        simd::store_tail(y, i, e);
        acc = _mm256_add_ps(acc, e);
    }
    // pass 3: normalise
    let inv = _mm256_set1_ps(1.0 / simd::hsum(acc));
    let mut i = 0;
    while i + LANES <= n {
        simd::storeu(y, i, _mm256_mul_ps(simd::loadu(y, i), inv));
        i += LANES;
    }
    if i < n {
        simd::store_tail(y, i, _mm256_mul_ps(simd::load_tail(y, i), inv));
    }
}

/// dinp, out, dout: (R, C). Per row a dot product then one fused pass; threaded over row blocks.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn softmax_bwd_avx2(dinp: &mut [f32], out: &[f32], dout: &[f32], rows: usize, cols: usize, scale: f32) {
    assert!(dinp.len() == rows * cols && out.len() == rows * cols && dout.len() == rows * cols, "softmax_bwd: lengths");
    if dinp.is_empty() {
        return;
    }
    let run = |d: &mut [f32], y: &[f32], g: &[f32]| {
        for ((d, y), g) in d.chunks_exact_mut(cols).zip(y.chunks_exact(cols)).zip(g.chunks_exact(cols)) {
            let dot = _mm256_set1_ps(dot(y, g));
            let vs = _mm256_set1_ps(scale);
            simd::map2(d, y, g, |y, g| _mm256_mul_ps(_mm256_mul_ps(vs, y), _mm256_sub_ps(g, dot)));
        }
    };
    match simd::par_rows(rows, cols, PAR_MIN_LIGHT) {
        None => run(dinp, out, dout),
        Some(per) => dinp
            .par_chunks_mut(per * cols)
            .zip(out.par_chunks(per * cols))
            .zip(dout.par_chunks(per * cols))
            .for_each(|((d, y), g)| run(d, y, g)),
    }
}

/// sum_i a[i] b[i];  a, b: (n). Two accumulators hide the FMA latency.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    debug_assert_eq!(b.len(), n);
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 2 * LANES <= n {
        s0 = _mm256_fmadd_ps(simd::loadu(a, i), simd::loadu(b, i), s0);
        s1 = _mm256_fmadd_ps(simd::loadu(a, i + LANES), simd::loadu(b, i + LANES), s1);
        i += 2 * LANES;
    }
    if i + LANES <= n {
        s0 = _mm256_fmadd_ps(simd::loadu(a, i), simd::loadu(b, i), s0);
        i += LANES;
    }
    if i < n {
        s1 = _mm256_fmadd_ps(simd::load_tail(a, i), simd::load_tail(b, i), s1);
    }
    simd::hsum(_mm256_add_ps(s0, s1))
}

/// out, inp: (R, C); mask: (R / rows_per_mask, C).
pub fn softmax_fwd(
    out: &mut [f32],
    inp: &[f32],
    mask: Option<&[f32]>,
    rows: usize,
    cols: usize,
    rows_per_mask: usize,
    scale: f32,
) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { softmax_fwd_avx2(out, inp, mask, rows, cols, rows_per_mask, scale) };
    }
    softmax_fwd_scalar(out, inp, mask, rows, cols, rows_per_mask, scale)
}

/// dinp, out, dout: (R, C).
pub fn softmax_bwd(dinp: &mut [f32], out: &[f32], dout: &[f32], rows: usize, cols: usize, scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { softmax_bwd_avx2(dinp, out, dout, rows, cols, scale) };
    }
    softmax_bwd_scalar(dinp, out, dout, rows, cols, scale)
}

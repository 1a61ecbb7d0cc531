//! Cross-entropy over logits with integer targets, fused log-softmax + NLL.
//!
//! Shapes: logits, dlogits: (R, C); targets: (R); lse: (R) = log sum_c exp(logits[r, c]).
//! Rows whose target equals `ignore_index` contribute nothing (HF uses -100); the loss is the mean
//! over the remaining rows. The forward saves only `lse`; the backward rebuilds each softmax entry
//! from the logits and `lse` straight into `dlogits`, so no softmax copy is ever materialised.
//! Targets must be valid (0 <= t < C) or ignore_index: the engine checks before calling.

use crate::Real;

#[cfg(target_arch = "x86_64")]
use super::simd::{self, LANES, PAR_MIN_HEAVY};
#[cfg(target_arch = "x86_64")]
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Returns (sum over counted rows of -log softmax(logits)[r, t_r], number of counted rows).
pub fn cross_entropy_fwd_scalar<T: Real>(
    lse: &mut [T],
    logits: &[T],
    targets: &[i64],
    rows: usize,
    cols: usize,
    ignore_index: i64,
) -> (T, usize) {
    assert!(logits.len() == rows * cols && lse.len() == rows && targets.len() == rows, "cross_entropy_fwd: lengths");
    let mut loss = T::zero();
    let mut count = 0;
    for r in 0..rows {
        let x = &logits[r * cols..(r + 1) * cols];
        let max = x.iter().copied().fold(T::neg_infinity(), T::max);
        let sum: T = x.iter().map(|&v| (v - max).exp()).sum();
        lse[r] = max + sum.ln();
        let t = targets[r];
        if t != ignore_index {
            loss += lse[r] - x[t as usize];
            count += 1;
        }
    }
    (loss, count)
}

/// dlogits[r, c] = scale * (exp(logits[r,c] - lse[r]) - [c == t_r]) for counted rows, 0 for
/// ignored rows (overwritten). For the mean loss, scale = dloss / count.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_bwd_scalar<T: Real>(
    dlogits: &mut [T],
    logits: &[T],
    lse: &[T],
    targets: &[i64],
    rows: usize,
    cols: usize,
    ignore_index: i64,
    scale: T,
) {
    assert!(dlogits.len() == rows * cols && logits.len() == rows * cols, "cross_entropy_bwd: lengths");
    assert!(lse.len() == rows && targets.len() == rows, "cross_entropy_bwd: lse/targets lengths");
    for r in 0..rows {
        let d = &mut dlogits[r * cols..(r + 1) * cols];
        let t = targets[r];
        if t == ignore_index {
            d.fill(T::zero());
            continue;
        }
        let x = &logits[r * cols..(r + 1) * cols];
        for c in 0..cols {
            d[c] = scale * (x[c] - lse[r]).exp();
        }
        d[t as usize] -= scale;
    }
}

/// lse: (R); logits: (R, C); targets: (R). Two passes per row (max, then sum of exp) threaded
/// over row blocks; the loss itself is summed afterwards in f64 in row order (R terms, cheap).
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn cross_entropy_fwd_avx2(
    lse: &mut [f32],
    logits: &[f32],
    targets: &[i64],
    rows: usize,
    cols: usize,
    ignore_index: i64,
) -> (f32, usize) {
    assert!(logits.len() == rows * cols && lse.len() == rows && targets.len() == rows, "cross_entropy_fwd: lengths");
    if cols == 0 {
        // degenerate: keep the reference's behaviour exactly
        return cross_entropy_fwd_scalar(lse, logits, targets, rows, cols, ignore_index);
    }
    // a block of whole rows: l: (r); x: (r, C)
    let run = |l: &mut [f32], x: &[f32]| {
        for (l, x) in l.iter_mut().zip(x.chunks_exact(cols)) {
            *l = log_sum_exp(x);
        }
    };
    match simd::par_rows(rows, cols, PAR_MIN_HEAVY) {
        None => run(lse, logits),
        Some(per) => lse.par_chunks_mut(per).zip(logits.par_chunks(per * cols)).for_each(|(l, x)| run(l, x)),
    }
    let mut loss = 0f64;
    let mut count = 0;
    for (r, (&t, &l)) in targets.iter().zip(lse.iter()).enumerate() {
        if t != ignore_index {
            // index within the row, so a bad target panics as in the reference
            loss += (l - logits[r * cols..(r + 1) * cols][t as usize]) as f64;
            count += 1;
        }
    }
    (loss as f32, count)
}

/// log sum_c exp(x[c]) = max + ln sum exp(x - max).  x: (C), C >= 1.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn log_sum_exp(x: &[f32]) -> f32 {
    let n = x.len();
    let max = simd::max(x);
    let vmax = _mm256_set1_ps(max);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 2 * LANES <= n {
        a0 = _mm256_add_ps(a0, simd::exp(_mm256_sub_ps(simd::loadu(x, i), vmax)));
        a1 = _mm256_add_ps(a1, simd::exp(_mm256_sub_ps(simd::loadu(x, i + LANES), vmax)));
        i += 2 * LANES;
    }
    if i + LANES <= n {
        a0 = _mm256_add_ps(a0, simd::exp(_mm256_sub_ps(simd::loadu(x, i), vmax)));
        i += LANES;
    }
    if i < n {
        // tail lanes read as -inf, whose exp is exactly 0
        let v = simd::load_tail_or(x, i, f32::NEG_INFINITY);
        a1 = _mm256_add_ps(a1, simd::exp(_mm256_sub_ps(v, vmax)));
    }
    max + simd::hsum(_mm256_add_ps(a0, a1)).ln()
}

/// dlogits, logits: (R, C); lse, targets: (R). Threaded over row blocks.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn cross_entropy_bwd_avx2(
    dlogits: &mut [f32],
    logits: &[f32],
    lse: &[f32],
    targets: &[i64],
    rows: usize,
    cols: usize,
    ignore_index: i64,
    scale: f32,
) {
    assert!(dlogits.len() == rows * cols && logits.len() == rows * cols, "cross_entropy_bwd: lengths");
    assert!(lse.len() == rows && targets.len() == rows, "cross_entropy_bwd: lse/targets lengths");
    if dlogits.is_empty() {
        // nothing to compute (the reference still checks the targets of 0-column rows)
        return cross_entropy_bwd_scalar(dlogits, logits, lse, targets, rows, cols, ignore_index, scale);
    }
    // a block of whole rows: d, x: (r, C); l, t: (r)
    let run = |d: &mut [f32], x: &[f32], l: &[f32], t: &[i64]| {
        for (((d, x), &l), &t) in d.chunks_exact_mut(cols).zip(x.chunks_exact(cols)).zip(l).zip(t) {
            if t == ignore_index {
                d.fill(0.0);
                continue;
            }
            let (vl, vs) = (_mm256_set1_ps(l), _mm256_set1_ps(scale));
            simd::map1(d, x, |x| _mm256_mul_ps(vs, simd::exp(_mm256_sub_ps(x, vl))));
            d[t as usize] -= scale;
        }
    };
    match simd::par_rows(rows, cols, PAR_MIN_HEAVY) {
        None => run(dlogits, logits, lse, targets),
        Some(per) => dlogits
            .par_chunks_mut(per * cols)
            .zip(logits.par_chunks(per * cols))
            .zip(lse.par_chunks(per).zip(targets.par_chunks(per)))
            .for_each(|((d, x), (l, t))| run(d, x, l, t)),
    }
}

/// lse: (R); logits: (R, C); targets: (R). Returns (summed loss, counted rows).
pub fn cross_entropy_fwd(
    lse: &mut [f32],
    logits: &[f32],
    targets: &[i64],
    rows: usize,
    cols: usize,
    ignore_index: i64,
) -> (f32, usize) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { cross_entropy_fwd_avx2(lse, logits, targets, rows, cols, ignore_index) };
    }
    cross_entropy_fwd_scalar(lse, logits, targets, rows, cols, ignore_index)
}

/// dlogits, logits: (R, C); lse, targets: (R).
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_bwd(
    dlogits: &mut [f32],
    logits: &[f32],
    lse: &[f32],
    targets: &[i64],
    rows: usize,
    cols: usize,
    ignore_index: i64,
    scale: f32,
) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { cross_entropy_bwd_avx2(dlogits, logits, lse, targets, rows, cols, ignore_index, scale) };
    }
    cross_entropy_bwd_scalar(dlogits, logits, lse, targets, rows, cols, ignore_index, scale)
}

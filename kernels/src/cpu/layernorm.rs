//! LayerNorm over the last axis with biased variance (as TF `nn.moments` and PyTorch do) and a
//! configurable eps (ALBERT: 1e-12).
//!
//! Shapes: inp, out, dout, dinp: (R, C); gamma, beta, dgamma, dbeta: (C); mean, rstd: (R).
//! The forward saves only mean and rstd (1/sqrt(var + eps)) for the backward.

use crate::Real;

#[cfg(target_arch = "x86_64")]
use super::simd::{self, LANES, PAR_MIN_LIGHT};
#[cfg(target_arch = "x86_64")]
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// out = (x - mean) * rstd * gamma + beta
#[allow(clippy::too_many_arguments)]
pub fn layernorm_fwd_scalar<T: Real>(
    out: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
    inp: &[T],
    gamma: &[T],
    beta: &[T],
    rows: usize,
    cols: usize,
    eps: T,
) {
    check(out.len(), inp.len(), mean.len(), rstd.len(), gamma.len(), beta.len(), rows, cols);
    let n = T::from_usize(cols).unwrap();
    for r in 0..rows {
        let x = &inp[r * cols..(r + 1) * cols];
        let m = x.iter().copied().sum::<T>() / n;
        let var = x.iter().map(|&v| (v - m) * (v - m)).sum::<T>() / n;
        let s = T::one() / (var + eps).sqrt();
        let y = &mut out[r * cols..(r + 1) * cols];
        for c in 0..cols {
            y[c] = (x[c] - m) * s * gamma[c] + beta[c];
        }
        mean[r] = m;
        rstd[r] = s;
    }
}

/// dinp = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)),  g = dout * gamma   (overwritten)
/// dgamma += sum_r dout * xhat;  dbeta += sum_r dout   (parameters accumulate)
#[allow(clippy::too_many_arguments)]
pub fn layernorm_bwd_scalar<T: Real>(
    dinp: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
    dout: &[T],
    inp: &[T],
    gamma: &[T],
    mean: &[T],
    rstd: &[T],
    rows: usize,
    cols: usize,
) {
    check(dinp.len(), inp.len(), mean.len(), rstd.len(), dgamma.len(), dbeta.len(), rows, cols);
    assert!(dout.len() == rows * cols && gamma.len() == cols, "layernorm_bwd: dout/gamma lengths");
    let n = T::from_usize(cols).unwrap();
    for r in 0..rows {
        let x = &inp[r * cols..(r + 1) * cols];
        let g = &dout[r * cols..(r + 1) * cols];
        let (m, s) = (mean[r], rstd[r]);
        let mut sum_g = T::zero();
        let mut sum_gx = T::zero();
        for c in 0..cols {
            let xhat = (x[c] - m) * s;
            let gg = g[c] * gamma[c];
            sum_g += gg;
            sum_gx += gg * xhat;
            dgamma[c] += g[c] * xhat;
            dbeta[c] += g[c];
        }
        let (mg, mgx) = (sum_g / n, sum_gx / n);
        for c in 0..cols {
            let xhat = (x[c] - m) * s;
            dinp[r * cols + c] = s * (g[c] * gamma[c] - mg - xhat * mgx);
        }
    }
}

/// out, inp: (R, C); gamma, beta: (C); mean, rstd: (R). Two-pass mean/variance per row like
/// the scalar code (no E[x^2] - E[x]^2 cancellation); threaded over row blocks.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn layernorm_fwd_avx2(
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    inp: &[f32],
    gamma: &[f32],
    beta: &[f32],
    rows: usize,
    cols: usize,
    eps: f32,
) {
    check(out.len(), inp.len(), mean.len(), rstd.len(), gamma.len(), beta.len(), rows, cols);
    if cols == 0 {
        // degenerate rows: keep the reference's 0/0 statistics
        return layernorm_fwd_scalar(out, mean, rstd, inp, gamma, beta, rows, cols, eps);
    }
    // a block of whole rows: y, x: (r, C); mean, rstd: (r)
    let run = |y: &mut [f32], mean: &mut [f32], rstd: &mut [f32], x: &[f32]| {
        let rows = y.chunks_exact_mut(cols).zip(x.chunks_exact(cols));
        for (((y, x), m), s) in rows.zip(mean.iter_mut()).zip(rstd.iter_mut()) {
            (*m, *s) = layernorm_row_fwd(y, x, gamma, beta, eps);
        }
    };
    match simd::par_rows(rows, cols, PAR_MIN_LIGHT) {
        None => run(out, mean, rstd, inp),
        Some(per) => out
            .par_chunks_mut(per * cols)
            .zip(mean.par_chunks_mut(per))
            .zip(rstd.par_chunks_mut(per))
            .zip(inp.par_chunks(per * cols))
            .for_each(|(((y, m), s), x)| run(y, m, s, x)),
    }
}

/// One row: y = (x - mean) rstd gamma + beta, returns (mean, rstd).  y, x, gamma, beta: (C).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn layernorm_row_fwd(y: &mut [f32], x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len();
    let m = simd::sum(x) / n as f32;
    let vm = _mm256_set1_ps(m);
    // sum (x - m)^2; masked tail lanes load 0 and are zeroed after the subtraction
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 2 * LANES <= n {
        let d0 = _mm256_sub_ps(simd::loadu(x, i), vm);
        let d1 = _mm256_sub_ps(simd::loadu(x, i + LANES), vm);
        a0 = _mm256_fmadd_ps(d0, d0, a0);
        a1 = _mm256_fmadd_ps(d1, d1, a1);
        i += 2 * LANES;
    }
    if i + LANES <= n {
        let d = _mm256_sub_ps(simd::loadu(x, i), vm);
        a0 = _mm256_fmadd_ps(d, d, a0);
        i += LANES;
    }
    if i < n {
        let keep = _mm256_castsi256_ps(simd::tail_mask(n - i));
        let d = _mm256_and_ps(_mm256_sub_ps(simd::load_tail(x, i), vm), keep);
        a1 = _mm256_fmadd_ps(d, d, a1);
    }
    let var = simd::hsum(_mm256_add_ps(a0, a1)) / n as f32;
    let s = 1.0 / (var + eps).sqrt();
    let vs = _mm256_set1_ps(s);
    let mut i = 0;
    while i + LANES <= n {
        let xh = _mm256_mul_ps(_mm256_sub_ps(simd::loadu(x, i), vm), vs);
        simd::storeu(y, i, _mm256_fmadd_ps(xh, simd::loadu(gamma, i), simd::loadu(beta, i)));
        i += LANES;
    }
    if i < n {
        let xh = _mm256_mul_ps(_mm256_sub_ps(simd::load_tail(x, i), vm), vs);
        let v = _mm256_fmadd_ps(xh, simd::load_tail(gamma, i), simd::load_tail(beta, i));
        simd::store_tail(y, i, v);
    }
    (m, s)
}

/// dinp, dout, inp: (R, C); gamma, dgamma, dbeta: (C); mean, rstd: (R). dinp is overwritten,
/// dgamma/dbeta accumulate. When threaded over row blocks, every task sums into its own zeroed
/// partial (dgamma, dbeta); the partials are reduced and added once at the end, so no two
/// threads ever write the same parameter gradient.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn layernorm_bwd_avx2(
    dinp: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dout: &[f32],
    inp: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    rows: usize,
    cols: usize,
) {
    check(dinp.len(), inp.len(), mean.len(), rstd.len(), dgamma.len(), dbeta.len(), rows, cols);
    assert!(dout.len() == rows * cols && gamma.len() == cols, "layernorm_bwd: dout/gamma lengths");
    if dinp.is_empty() {
        return;
    }
    // a block of whole rows: d, g, x: (r, C); m, s: (r); dg, db: (C) accumulators
    let run = |d: &mut [f32], g: &[f32], x: &[f32], m: &[f32], s: &[f32], dg: &mut [f32], db: &mut [f32]| {
        let rows = d.chunks_exact_mut(cols).zip(g.chunks_exact(cols)).zip(x.chunks_exact(cols));
        for (((d, g), x), (&m, &s)) in rows.zip(m.iter().zip(s)) {
            layernorm_row_bwd(d, dg, db, g, x, gamma, m, s);
        }
    };
    let Some(per) = simd::par_rows(rows, cols, PAR_MIN_LIGHT) else {
        return run(dinp, dout, inp, mean, rstd, dgamma, dbeta);
    };
    let partial = dinp
        .par_chunks_mut(per * cols)
        .zip(dout.par_chunks(per * cols))
        .zip(inp.par_chunks(per * cols))
        .zip(mean.par_chunks(per).zip(rstd.par_chunks(per)))
        .fold(
            || vec![0f32; 2 * cols],
            |mut acc, (((d, g), x), (m, s))| {
                let (dg, db) = acc.split_at_mut(cols);
                run(d, g, x, m, s, dg, db);
                acc
            },
        )
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        });
    if let Some(p) = partial {
        dgamma.iter_mut().zip(&p[..cols]).for_each(|(a, b)| *a += b);
        dbeta.iter_mut().zip(&p[cols..]).for_each(|(a, b)| *a += b);
    }
}

/// One row. d, g (dout), x, gamma, dg, db: (C); m, s: this row's mean and rstd.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn layernorm_row_bwd(
    d: &mut [f32],
    dg: &mut [f32],
    db: &mut [f32],
    g: &[f32],
    x: &[f32],
    gamma: &[f32],
    m: f32,
    s: f32,
) {
    let n = x.len();
    let (vm, vs) = (_mm256_set1_ps(m), _mm256_set1_ps(s));
    // pass 1: row sums of g*gamma and g*gamma*xhat, and the parameter gradients. Masked tail
    // lanes load zeros for g, so they add nothing anywhere.
    let (mut sum_g, mut sum_gx) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + LANES <= n {
        let xh = _mm256_mul_ps(_mm256_sub_ps(simd::loadu(x, i), vm), vs);
        let gv = simd::loadu(g, i);
        let gg = _mm256_mul_ps(gv, simd::loadu(gamma, i));
        sum_g = _mm256_add_ps(sum_g, gg);
        sum_gx = _mm256_fmadd_ps(gg, xh, sum_gx);
        simd::storeu(dg, i, _mm256_fmadd_ps(gv, xh, simd::loadu(dg, i)));
        simd::storeu(db, i, _mm256_add_ps(simd::loadu(db, i), gv));
        i += LANES;
    }
    if i < n {
        let xh = _mm256_mul_ps(_mm256_sub_ps(simd::load_tail(x, i), vm), vs);
        let gv = simd::load_tail(g, i);
        let gg = _mm256_mul_ps(gv, simd::load_tail(gamma, i));
        sum_g = _mm256_add_ps(sum_g, gg);
        sum_gx = _mm256_fmadd_ps(gg, xh, sum_gx);
        simd::store_tail(dg, i, _mm256_fmadd_ps(gv, xh, simd::load_tail(dg, i)));
        simd::store_tail(db, i, _mm256_add_ps(simd::load_tail(db, i), gv));
    }
    let mg = _mm256_set1_ps(simd::hsum(sum_g) / n as f32);
    let mgx = _mm256_set1_ps(simd::hsum(sum_gx) / n as f32);
    // pass 2: dinp = s * (g*gamma - mean(g*gamma) - xhat * mean(g*gamma*xhat))
    let dx = |x: __m256, g: __m256, gm: __m256| {
        let xh = _mm256_mul_ps(_mm256_sub_ps(x, vm), vs);
        // g * gamma rounded as in the row sums (not fused): with C = 1, or a constant row and a
        // tiny eps, g gamma - mean(g gamma) must cancel to exactly 0 before the huge rstd
        let gg = _mm256_mul_ps(g, gm);
        let t = _mm256_sub_ps(_mm256_sub_ps(gg, mg), _mm256_mul_ps(xh, mgx));
        _mm256_mul_ps(vs, t)
    };
    let mut i = 0;
    while i + LANES <= n {
        simd::storeu(d, i, dx(simd::loadu(x, i), simd::loadu(g, i), simd::loadu(gamma, i)));
        i += LANES;
    }
    if i < n {
        simd::store_tail(d, i, dx(simd::load_tail(x, i), simd::load_tail(g, i), simd::load_tail(gamma, i)));
    }
}
#[allow(clippy::too_many_arguments)]
fn check(out: usize, inp: usize, mean: usize, rstd: usize, g: usize, b: usize, rows: usize, cols: usize) {
    assert!(out == rows * cols && inp == rows * cols, "layernorm: data lengths");
    assert!(mean == rows && rstd == rows, "layernorm: mean/rstd lengths");
    assert!(g == cols && b == cols, "layernorm: gamma/beta lengths");
}

/// out, inp: (R, C); gamma, beta: (C); mean, rstd: (R).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_fwd(
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    inp: &[f32],
    gamma: &[f32],
    beta: &[f32],
    rows: usize,
    cols: usize,
    eps: f32,
) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { layernorm_fwd_avx2(out, mean, rstd, inp, gamma, beta, rows, cols, eps) };
    }
    layernorm_fwd_scalar(out, mean, rstd, inp, gamma, beta, rows, cols, eps)
}

/// dinp, dout, inp: (R, C); gamma, dgamma, dbeta: (C); mean, rstd: (R).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_bwd(
    dinp: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dout: &[f32],
    inp: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    rows: usize,
    cols: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { layernorm_bwd_avx2(dinp, dgamma, dbeta, dout, inp, gamma, mean, rstd, rows, cols) };
    }
    layernorm_bwd_scalar(dinp, dgamma, dbeta, dout, inp, gamma, mean, rstd, rows, cols)
}

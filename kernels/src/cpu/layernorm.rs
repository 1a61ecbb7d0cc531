//! LayerNorm over the last axis with biased variance (as TF `nn.moments` and PyTorch do) and a
//! configurable eps (ALBERT: 1e-12).
//!
//! Shapes: inp, out, dout, dinp: (R, C); gamma, beta, dgamma, dbeta: (C); mean, rstd: (R).
//! The forward saves only mean and rstd (1/sqrt(var + eps)) for the backward.

use crate::Real;

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

#[allow(clippy::too_many_arguments)]
fn check(out: usize, inp: usize, mean: usize, rstd: usize, g: usize, b: usize, rows: usize, cols: usize) {
    assert!(out == rows * cols && inp == rows * cols, "layernorm: data lengths");
    assert!(mean == rows && rstd == rows, "layernorm: mean/rstd lengths");
    assert!(g == cols && b == cols, "layernorm: gamma/beta lengths");
}

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
    layernorm_fwd_scalar(out, mean, rstd, inp, gamma, beta, rows, cols, eps)
}

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
    layernorm_bwd_scalar(dinp, dgamma, dbeta, dout, inp, gamma, mean, rstd, rows, cols)
}

//! Softmax over the last axis fused with a scale and an optional additive mask: the attention
//! probabilities `softmax(scale * scores + mask)`.
//!
//! Shapes: inp, out, dout, dinp: (R, C). mask: (R / rows_per_mask, C): one mask row is shared by
//! `rows_per_mask` consecutive rows (scores [B,N,S,S] with a padding mask [B,S] use
//! rows_per_mask = N*S). Masked entries are usually a large negative number (HF uses the dtype's
//! minimum); a row whose every entry is -inf yields NaN, as in PyTorch.

use crate::Real;

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
        assert!(rpm > 0 && rows % rpm == 0, "softmax_fwd: rows_per_mask must divide rows");
        assert_eq!(m, rows / rpm * cols, "softmax_fwd: mask length");
    }
}

pub fn softmax_fwd(
    out: &mut [f32],
    inp: &[f32],
    mask: Option<&[f32]>,
    rows: usize,
    cols: usize,
    rows_per_mask: usize,
    scale: f32,
) {
    softmax_fwd_scalar(out, inp, mask, rows, cols, rows_per_mask, scale)
}

pub fn softmax_bwd(dinp: &mut [f32], out: &[f32], dout: &[f32], rows: usize, cols: usize, scale: f32) {
    softmax_bwd_scalar(dinp, out, dout, rows, cols, scale)
}

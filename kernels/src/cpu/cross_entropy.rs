//! Cross-entropy over logits with integer targets, fused log-softmax + NLL.
//!
//! Shapes: logits, dlogits: (R, C); targets: (R); lse: (R) = log sum_c exp(logits[r, c]).
//! Rows whose target equals `ignore_index` contribute nothing (HF uses -100); the loss is the mean
//! over the remaining rows. The forward saves only `lse`; the backward rebuilds each softmax entry
//! from the logits and `lse` straight into `dlogits`, so no softmax copy is ever materialised.
//! Targets must be valid (0 <= t < C) or ignore_index: the engine checks before calling.

use crate::Real;

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

pub fn cross_entropy_fwd(
    lse: &mut [f32],
    logits: &[f32],
    targets: &[i64],
    rows: usize,
    cols: usize,
    ignore_index: i64,
) -> (f32, usize) {
    cross_entropy_fwd_scalar(lse, logits, targets, rows, cols, ignore_index)
}

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
    cross_entropy_bwd_scalar(dlogits, logits, lse, targets, rows, cols, ignore_index, scale)
}

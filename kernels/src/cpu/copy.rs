//! Data movement: strided gather into a contiguous buffer (what `Tensor::contiguous` runs, and how
//! broadcasts are materialised), and concatenation along an axis with its backward (split).
//!
//! Concat shapes: the tensors are viewed as (outer, w_i) where w_i = len_i * inner is the width of
//! part i's block; out: (outer, sum w_i).

use crate::Real;

/// out[k] = inp[offset + sum_d idx_d(k) * strides[d]] for k in row-major order over `shape`.
/// Strides may be 0 (broadcast) and need not be sorted (permuted views).
pub fn copy_strided_scalar<T: Copy>(out: &mut [T], inp: &[T], shape: &[usize], strides: &[usize], offset: usize) {
    let n: usize = shape.iter().product();
    assert_eq!(out.len(), n, "copy_strided: out length");
    assert_eq!(shape.len(), strides.len(), "copy_strided: rank");
    if n == 0 {
        return;
    }
    let rank = shape.len();
    let mut idx = vec![0usize; rank];
    let mut src = offset;
    for o in out.iter_mut() {
        *o = inp[src];
        // odometer increment over the multi-index, keeping `src` in step
        for d in (0..rank).rev() {
            idx[d] += 1;
            src += strides[d];
            if idx[d] < shape[d] {
                break;
            }
            src -= strides[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/// out: (outer, sum w_i), part i: (outer, w_i)
pub fn concat_fwd_scalar<T: Real>(out: &mut [T], parts: &[&[T]], outer: usize) {
    let total: usize = parts.iter().map(|p| p.len() / outer.max(1)).sum();
    assert_eq!(out.len(), outer * total, "concat_fwd: out length");
    for o in 0..outer {
        let mut at = o * total;
        for p in parts {
            let w = p.len() / outer;
            out[at..at + w].copy_from_slice(&p[o * w..(o + 1) * w]);
            at += w;
        }
    }
}

/// dpart i: (outer, w_i) = the matching columns of dout: (outer, sum w_i)   (overwritten)
pub fn concat_bwd_scalar<T: Real>(dparts: &mut [&mut [T]], dout: &[T], outer: usize) {
    let total: usize = dparts.iter().map(|p| p.len() / outer.max(1)).sum();
    assert_eq!(dout.len(), outer * total, "concat_bwd: dout length");
    for o in 0..outer {
        let mut at = o * total;
        for p in dparts.iter_mut() {
            let w = p.len() / outer;
            p[o * w..(o + 1) * w].copy_from_slice(&dout[at..at + w]);
            at += w;
        }
    }
}

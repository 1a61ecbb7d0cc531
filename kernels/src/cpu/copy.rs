//! Data movement: strided gather into a contiguous buffer (what `Tensor::contiguous` runs, and how
//! broadcasts are materialised), and concatenation along an axis with its backward (split).
//!
//! Concat shapes: the tensors are viewed as (outer, w_i) where w_i = len_i * inner is the width of
//! part i's block; out: (outer, sum w_i).

use crate::Real;

use super::PAR_CHUNK;
use rayon::prelude::*;

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

/// Shortest contiguous run worth a `copy_from_slice` call; below it the odometer is as fast.
const MIN_RUN: usize = 8;
/// Fewest elements worth threading a copy: waking the rayon pool costs ~15 us, a copy of 1M
/// floats ~100 us (the same rule as `simd::PAR_MIN_LIGHT`, which is x86-only).
const PAR_MIN: usize = 16 * PAR_CHUNK;

/// out: (prod shape) = the strided view of inp, as [`copy_strided_scalar`]. Dimensions of size 1
/// are dropped and adjacent dimensions that are contiguous with each other are merged; when the
/// innermost merged dimension has stride 1 (and runs of at least MIN_RUN), whole runs are copied
/// with `copy_from_slice`, threaded over blocks of runs when large. Other layouts run the scalar
/// odometer on the merged (shorter) shape.
pub fn copy_strided<T: Copy + Send + Sync>(
    out: &mut [T],
    inp: &[T],
    shape: &[usize],
    strides: &[usize],
    offset: usize,
) {
    let n: usize = shape.iter().product();
    assert_eq!(out.len(), n, "copy_strided: out length");
    assert_eq!(shape.len(), strides.len(), "copy_strided: rank");
    if n == 0 {
        return;
    }
    // (size, stride) pairs, outermost first
    let mut dims: Vec<(usize, usize)> = Vec::with_capacity(shape.len());
    for (&size, &stride) in shape.iter().zip(strides) {
        if size == 1 {
            continue;
        }
        match dims.last_mut() {
            Some(last) if last.1 == stride * size => *last = (last.0 * size, stride),
            _ => dims.push((size, stride)),
        }
    }
    let (run, outer) = match dims.split_last() {
        None => {
            out[0] = inp[offset];
            return;
        }
        Some((&(run, 1), outer)) if run >= MIN_RUN => (run, outer),
        _ => {
            let (sh, st): (Vec<usize>, Vec<usize>) = dims.into_iter().unzip();
            return copy_strided_scalar(out, inp, &sh, &st, offset);
        }
    };
    let runs = n / run;
    if n < PAR_MIN || runs < 2 {
        return copy_runs(out, inp, outer, run, 0, offset);
    }
    let per = (PAR_CHUNK / run).clamp(1, runs.div_ceil(2));
    out.par_chunks_mut(per * run).enumerate().for_each(|(k, o)| copy_runs(o, inp, outer, run, k * per, offset));
}

/// out: (m * run) = runs first_run.. of the view whose outer dims are `outer` (size, stride)
/// and whose innermost dim is contiguous of length run.
fn copy_runs<T: Copy>(out: &mut [T], inp: &[T], outer: &[(usize, usize)], run: usize, first_run: usize, offset: usize) {
    // multi-index of the first run, and its source offset
    let mut idx = vec![0usize; outer.len()];
    let mut rest = first_run;
    let mut src = offset;
    for (d, &(size, stride)) in outer.iter().enumerate().rev() {
        idx[d] = rest % size;
        rest /= size;
        src += idx[d] * stride;
    }
    for o in out.chunks_exact_mut(run) {
        o.copy_from_slice(&inp[src..src + run]);
        // odometer increment over the outer multi-index, keeping `src` in step
        for (d, &(size, stride)) in outer.iter().enumerate().rev() {
            idx[d] += 1;
            src += stride;
            if idx[d] < size {
                break;
            }
            src -= stride * size;
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

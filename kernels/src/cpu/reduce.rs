//! Sum over one axis. The tensor is viewed as (outer, len, inner) with the reduced axis in the
//! middle; `mean` is this followed by a scale of 1/len (done by the engine).

use crate::Real;

#[cfg(target_arch = "x86_64")]
use super::simd::{self, LANES, PAR_MIN_LIGHT};
#[cfg(target_arch = "x86_64")]
use super::PAR_CHUNK;
#[cfg(target_arch = "x86_64")]
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// out: (outer, inner) = sum over l of inp: (outer, len, inner)
pub fn sum_axis_fwd_scalar<T: Real>(out: &mut [T], inp: &[T], outer: usize, len: usize, inner: usize) {
    assert_eq!(inp.len(), outer * len * inner, "sum_axis_fwd: inp length");
    assert_eq!(out.len(), outer * inner, "sum_axis_fwd: out length");
    for o in 0..outer {
        let dst = &mut out[o * inner..(o + 1) * inner];
        dst.fill(T::zero());
        for l in 0..len {
            let src = &inp[(o * len + l) * inner..(o * len + l + 1) * inner];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        }
    }
}

/// dinp: (outer, len, inner) = dout: (outer, inner) broadcast along the reduced axis.
pub fn sum_axis_bwd_scalar<T: Real>(dinp: &mut [T], dout: &[T], outer: usize, len: usize, inner: usize) {
    assert_eq!(dinp.len(), outer * len * inner, "sum_axis_bwd: dinp length");
    assert_eq!(dout.len(), outer * inner, "sum_axis_bwd: dout length");
    for o in 0..outer {
        let src = &dout[o * inner..(o + 1) * inner];
        for l in 0..len {
            dinp[(o * len + l) * inner..(o * len + l + 1) * inner].copy_from_slice(src);
        }
    }
}

/// out: (outer, inner) = sum over l of inp: (outer, len, inner). inner == 1 sums contiguous
/// runs; otherwise columns are summed in register blocks over l. Threads split `outer` when it
/// has several slabs, else the columns (or, for one long run, the run itself).
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sum_axis_fwd_avx2(out: &mut [f32], inp: &[f32], outer: usize, len: usize, inner: usize) {
    assert_eq!(inp.len(), outer * len * inner, "sum_axis_fwd: inp length");
    assert_eq!(out.len(), outer * inner, "sum_axis_fwd: out length");
    if out.is_empty() {
        return;
    }
    if len == 0 {
        out.fill(0.0);
        return;
    }
    let slab = len * inner;
    let threaded = inp.len() >= PAR_MIN_LIGHT;
    if inner == 1 {
        if !threaded {
            for (o, x) in out.iter_mut().zip(inp.chunks_exact(len)) {
                *o = simd::sum(x);
            }
        } else if outer == 1 {
            out[0] = inp.par_chunks(PAR_CHUNK).map(|c| simd::sum(c)).sum();
        } else {
            let per = (PAR_CHUNK / len).max(1);
            out.par_chunks_mut(per).zip(inp.par_chunks(per * len)).for_each(|(o, x)| {
                for (o, x) in o.iter_mut().zip(x.chunks_exact(len)) {
                    *o = simd::sum(x);
                }
            });
        }
        return;
    }
    if !threaded {
        for (o, x) in out.chunks_exact_mut(inner).zip(inp.chunks_exact(slab)) {
            sum_cols(o, x, len, inner, 0);
        }
    } else if outer >= 2 {
        let per = (PAR_CHUNK / slab).clamp(1, outer.div_ceil(2));
        out.par_chunks_mut(per * inner).zip(inp.par_chunks(per * slab)).for_each(|(o, x)| {
            for (o, x) in o.chunks_exact_mut(inner).zip(x.chunks_exact(slab)) {
                sum_cols(o, x, len, inner, 0);
            }
        });
    } else {
        // One slab (e.g. a bias gradient summed over all rows): split its columns.
        let width = inner.div_ceil(2 * rayon::current_num_threads()).next_multiple_of(LANES).max(64);
        out.par_chunks_mut(width).enumerate().for_each(|(k, o)| sum_cols(o, inp, len, inner, k * width));
    }
}

/// dst[j] = sum over l of src[l * inner + c0 + j] for j < dst.len().  src: (len, inner),
/// dst: (w) with c0 + w <= inner. Four column vectors live in registers across the l loop.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_cols(dst: &mut [f32], src: &[f32], len: usize, inner: usize, c0: usize) {
    let w = dst.len();
    assert!(c0 + w <= inner && src.len() == len * inner, "sum_cols: bounds");
    let row = |l: usize| &src[l * inner + c0..l * inner + c0 + w];
    let mut j = 0;
    while j + 4 * LANES <= w {
        let mut acc = [_mm256_setzero_ps(); 4];
        for l in 0..len {
            let r = row(l);
            for (k, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_ps(*a, simd::loadu(r, j + k * LANES));
            }
        }
        for (k, a) in acc.iter().enumerate() {
            simd::storeu(dst, j + k * LANES, *a);
        }
        j += 4 * LANES;
    }
    while j + LANES <= w {
        let mut acc = _mm256_setzero_ps();
        for l in 0..len {
            acc = _mm256_add_ps(acc, simd::loadu(row(l), j));
        }
        simd::storeu(dst, j, acc);
        j += LANES;
    }
    if j < w {
        let mut acc = _mm256_setzero_ps();
        for l in 0..len {
            acc = _mm256_add_ps(acc, simd::load_tail(row(l), j));
        }
        simd::store_tail(dst, j, acc);
    }
}

/// dinp: (outer, len, inner) = dout: (outer, inner) broadcast along the reduced axis. Pure
/// copies (memcpy is already vectorised); threaded over rows of dinp when large.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sum_axis_bwd_avx2(dinp: &mut [f32], dout: &[f32], outer: usize, len: usize, inner: usize) {
    assert_eq!(dinp.len(), outer * len * inner, "sum_axis_bwd: dinp length");
    assert_eq!(dout.len(), outer * inner, "sum_axis_bwd: dout length");
    if dinp.is_empty() {
        return;
    }
    // dinp viewed as (outer * len, inner); `first` is the global index of the chunk's first row.
    let fill = |d: &mut [f32], first: usize| {
        if inner == 1 {
            // rows are single elements: fill each run sharing one o
            let mut r = first;
            let mut d = d;
            while !d.is_empty() {
                let o = r / len;
                let take = ((o + 1) * len - r).min(d.len());
                let (head, rest) = d.split_at_mut(take);
                head.fill(dout[o]);
                d = rest;
                r += take;
            }
        } else {
            for (k, row) in d.chunks_exact_mut(inner).enumerate() {
                let o = (first + k) / len;
                row.copy_from_slice(&dout[o * inner..(o + 1) * inner]);
            }
        }
    };
    let rows = outer * len;
    if dinp.len() < PAR_MIN_LIGHT {
        return fill(dinp, 0);
    }
    let per = (PAR_CHUNK / inner).clamp(1, rows.div_ceil(2));
    dinp.par_chunks_mut(per * inner).enumerate().for_each(|(k, d)| fill(d, k * per));
}

/// out: (outer, inner) = sum over the middle axis of inp: (outer, len, inner).
pub fn sum_axis_fwd(out: &mut [f32], inp: &[f32], outer: usize, len: usize, inner: usize) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { sum_axis_fwd_avx2(out, inp, outer, len, inner) };
    }
    sum_axis_fwd_scalar(out, inp, outer, len, inner)
}

/// dinp: (outer, len, inner) = dout: (outer, inner) broadcast.
pub fn sum_axis_bwd(dinp: &mut [f32], dout: &[f32], outer: usize, len: usize, inner: usize) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { sum_axis_bwd_avx2(dinp, dout, outer, len, inner) };
    }
    sum_axis_bwd_scalar(dinp, dout, outer, len, inner)
}

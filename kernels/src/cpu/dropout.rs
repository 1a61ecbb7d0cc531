//! Inverted dropout: out = inp * keep * 1/(1-p). The keep mask (1 = kept) is drawn by the engine's
//! seeded RNG, so the same seed gives the same mask; the backward applies the same mask.
//!
//! Shapes: out, inp, dout, dinp, keep: (n).

use crate::Real;

#[cfg(target_arch = "x86_64")]
use super::simd::{self, LANES, PAR_MIN_LIGHT};
#[cfg(target_arch = "x86_64")]
use super::PAR_CHUNK;
#[cfg(target_arch = "x86_64")]
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// out = keep ? inp * scale : 0,  scale = 1/(1-p)
pub fn dropout_fwd_scalar<T: Real>(out: &mut [T], inp: &[T], keep: &[u8], scale: T) {
    assert!(out.len() == inp.len() && keep.len() == inp.len(), "dropout_fwd: lengths");
    for ((o, &x), &k) in out.iter_mut().zip(inp).zip(keep) {
        *o = if k != 0 { x * scale } else { T::zero() };
    }
}

/// dinp = keep ? dout * scale : 0   (overwritten)
pub fn dropout_bwd_scalar<T: Real>(dinp: &mut [T], dout: &[T], keep: &[u8], scale: T) {
    dropout_fwd_scalar(dinp, dout, keep, scale)
}

/// out, inp, keep: (n). Eight keep bytes widen to a lane mask; the tail (< 8) runs the scalar
/// formula, which gives the same bits. Threaded in PAR_CHUNK pieces from PAR_MIN_LIGHT elements.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dropout_fwd_avx2(out: &mut [f32], inp: &[f32], keep: &[u8], scale: f32) {
    assert!(out.len() == inp.len() && keep.len() == inp.len(), "dropout_fwd: lengths");
    // o, x, k: (m), one piece
    let run = |o: &mut [f32], x: &[f32], k: &[u8]| {
        let n = o.len();
        let vs = _mm256_set1_ps(scale);
        let mut i = 0;
        while i + LANES <= n {
            debug_assert!(i + 8 <= k.len());
            let kb = _mm_loadl_epi64(k.as_ptr().add(i) as *const __m128i);
            let dropped = _mm256_cmpeq_epi32(_mm256_cvtepu8_epi32(kb), _mm256_setzero_si256());
            let v = _mm256_mul_ps(simd::loadu(x, i), vs);
            simd::storeu(o, i, _mm256_andnot_ps(_mm256_castsi256_ps(dropped), v));
            i += LANES;
        }
        for ((o, &x), &k) in o[i..].iter_mut().zip(&x[i..]).zip(&k[i..]) {
            *o = if k != 0 { x * scale } else { 0.0 };
        }
    };
    if out.len() < PAR_MIN_LIGHT {
        return run(out, inp, keep);
    }
    out.par_chunks_mut(PAR_CHUNK)
        .zip(inp.par_chunks(PAR_CHUNK))
        .zip(keep.par_chunks(PAR_CHUNK))
        .for_each(|((o, x), k)| run(o, x, k));
}

/// dinp, dout, keep: (n): the forward applied to dout.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dropout_bwd_avx2(dinp: &mut [f32], dout: &[f32], keep: &[u8], scale: f32) {
    dropout_fwd_avx2(dinp, dout, keep, scale)
}

/// out, inp, keep: (n).
pub fn dropout_fwd(out: &mut [f32], inp: &[f32], keep: &[u8], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { dropout_fwd_avx2(out, inp, keep, scale) };
    }
    dropout_fwd_scalar(out, inp, keep, scale)
}

/// dinp, dout, keep: (n).
pub fn dropout_bwd(dinp: &mut [f32], dout: &[f32], keep: &[u8], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { dropout_bwd_avx2(dinp, dout, keep, scale) };
    }
    dropout_bwd_scalar(dinp, dout, keep, scale)
}

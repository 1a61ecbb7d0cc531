//! Elementwise binary ops on equal-length slices (the engine materialises broadcasts and reduces
//! their gradients back), scaling, and the `+=` used to accumulate gradients.
//!
//! Shapes: out, a, b, dout, da, db: (n).

use crate::Real;

#[cfg(target_arch = "x86_64")]
use super::simd::{self, map1, map2, par_zip1, par_zip2, LANES, PAR_MIN_LIGHT};
#[cfg(target_arch = "x86_64")]
use super::PAR_CHUNK;
#[cfg(target_arch = "x86_64")]
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

macro_rules! binary_scalar {
    ($name:ident, $op:tt, $doc:literal) => {
        #[doc = $doc]
        pub fn $name<T: Real>(out: &mut [T], a: &[T], b: &[T]) {
            assert!(out.len() == a.len() && a.len() == b.len(), concat!(stringify!($name), ": lengths"));
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = x $op y;
            }
        }
    };
}

binary_scalar!(add_fwd_scalar, +, "out = a + b");
binary_scalar!(sub_fwd_scalar, -, "out = a - b");
binary_scalar!(mul_fwd_scalar, *, "out = a * b");
binary_scalar!(div_fwd_scalar, /, "out = a / b");

/// da = dout * b,  db = dout * a   (both overwritten)
pub fn mul_bwd_scalar<T: Real>(da: &mut [T], db: &mut [T], a: &[T], b: &[T], dout: &[T]) {
    assert!(da.len() == a.len() && db.len() == a.len() && b.len() == a.len() && dout.len() == a.len());
    for i in 0..a.len() {
        da[i] = dout[i] * b[i];
        db[i] = dout[i] * a[i];
    }
}

/// da = dout / b,  db = -dout * a / b^2   (both overwritten)
pub fn div_bwd_scalar<T: Real>(da: &mut [T], db: &mut [T], a: &[T], b: &[T], dout: &[T]) {
    assert!(da.len() == a.len() && db.len() == a.len() && b.len() == a.len() && dout.len() == a.len());
    for i in 0..a.len() {
        let inv = T::one() / b[i];
        da[i] = dout[i] * inv;
        db[i] = -dout[i] * a[i] * inv * inv;
    }
}

/// out = s * a   (also the backward of scale: dinp = s * dout)
pub fn scale_fwd_scalar<T: Real>(out: &mut [T], a: &[T], s: T) {
    assert_eq!(out.len(), a.len(), "scale: lengths");
    for (o, &x) in out.iter_mut().zip(a) {
        *o = s * x;
    }
}

/// acc += x   (gradient accumulation)
pub fn add_assign_scalar<T: Real>(acc: &mut [T], x: &[T]) {
    assert_eq!(acc.len(), x.len(), "add_assign: lengths");
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += v;
    }
}

// ---------------------------------------------------------------- AVX2 versions
// Same operations in the same order as the scalar code (no FMA contraction), so every result
// here is bit-identical to the f32 scalar reference.

macro_rules! binary_avx2 {
    ($name:ident, $intr:ident, $doc:literal) => {
        #[doc = $doc]
        ///
        /// # Safety
        /// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn $name(out: &mut [f32], a: &[f32], b: &[f32]) {
            assert!(out.len() == a.len() && a.len() == b.len(), concat!(stringify!($name), ": lengths"));
            par_zip2(out, a, b, PAR_MIN_LIGHT, |o, a, b| map2(o, a, b, |x, y| $intr(x, y)));
        }
    };
}

binary_avx2!(add_fwd_avx2, _mm256_add_ps, "out = a + b;  out, a, b: (n)");
binary_avx2!(sub_fwd_avx2, _mm256_sub_ps, "out = a - b;  out, a, b: (n)");
binary_avx2!(mul_fwd_avx2, _mm256_mul_ps, "out = a * b;  out, a, b: (n)");
binary_avx2!(div_fwd_avx2, _mm256_div_ps, "out = a / b;  out, a, b: (n)");

/// Shared driver of mul_bwd / div_bwd: per 8-lane group, (da, db) = f(a, b, dout), tail masked.
/// da, db, a, b, dout: (n); threaded in PAR_CHUNK pieces from PAR_MIN_LIGHT elements.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn bwd2<F>(da: &mut [f32], db: &mut [f32], a: &[f32], b: &[f32], dout: &[f32], f: F)
where
    F: Fn(__m256, __m256, __m256) -> (__m256, __m256) + Sync + Send + Copy,
{
    let run = |da: &mut [f32], db: &mut [f32], a: &[f32], b: &[f32], g: &[f32]| {
        let n = da.len();
        let mut i = 0;
        while i + LANES <= n {
            let (x, y) = f(simd::loadu(a, i), simd::loadu(b, i), simd::loadu(g, i));
            simd::storeu(da, i, x);
            simd::storeu(db, i, y);
            i += LANES;
        }
        if i < n {
            let (x, y) = f(simd::load_tail(a, i), simd::load_tail(b, i), simd::load_tail(g, i));
            simd::store_tail(da, i, x);
            simd::store_tail(db, i, y);
        }
    };
    if a.len() < PAR_MIN_LIGHT {
        return run(da, db, a, b, dout);
    }
    da.par_chunks_mut(PAR_CHUNK)
        .zip(db.par_chunks_mut(PAR_CHUNK))
        .zip(a.par_chunks(PAR_CHUNK))
        .zip(b.par_chunks(PAR_CHUNK))
        .zip(dout.par_chunks(PAR_CHUNK))
        .for_each(|((((da, db), a), b), g)| run(da, db, a, b, g));
}

/// da = dout * b,  db = dout * a;  all (n)
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn mul_bwd_avx2(da: &mut [f32], db: &mut [f32], a: &[f32], b: &[f32], dout: &[f32]) {
    assert!(da.len() == a.len() && db.len() == a.len() && b.len() == a.len() && dout.len() == a.len());
    bwd2(da, db, a, b, dout, |x, y, g| (_mm256_mul_ps(g, y), _mm256_mul_ps(g, x)));
}

/// da = dout / b,  db = -dout * a / b^2;  all (n)
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn div_bwd_avx2(da: &mut [f32], db: &mut [f32], a: &[f32], b: &[f32], dout: &[f32]) {
    assert!(da.len() == a.len() && db.len() == a.len() && b.len() == a.len() && dout.len() == a.len());
    bwd2(da, db, a, b, dout, |x, y, g| {
        let inv = _mm256_div_ps(_mm256_set1_ps(1.0), y);
        let neg_g = _mm256_xor_ps(g, _mm256_set1_ps(-0.0));
        let db = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(neg_g, x), inv), inv);
        (_mm256_mul_ps(g, inv), db)
    });
}

/// out = s * a;  out, a: (n)
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn scale_fwd_avx2(out: &mut [f32], a: &[f32], s: f32) {
    assert_eq!(out.len(), a.len(), "scale: lengths");
    par_zip1(out, a, PAR_MIN_LIGHT, |o, a| map1(o, a, |x| _mm256_mul_ps(_mm256_set1_ps(s), x)));
}

/// acc += x;  acc, x: (n)
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn add_assign_avx2(acc: &mut [f32], x: &[f32]) {
    assert_eq!(acc.len(), x.len(), "add_assign: lengths");
    let run = |acc: &mut [f32], x: &[f32]| {
        let n = acc.len();
        let mut i = 0;
        while i + LANES <= n {
            simd::storeu(acc, i, _mm256_add_ps(simd::loadu(acc, i), simd::loadu(x, i)));
            i += LANES;
        }
        if i < n {
            simd::store_tail(acc, i, _mm256_add_ps(simd::load_tail(acc, i), simd::load_tail(x, i)));
        }
    };
    par_zip1(acc, x, PAR_MIN_LIGHT, run);
}

// ---------------------------------------------------------------- f32 entry points
// Shapes as in the scalar versions above: every slice (n).

/// Calls the AVX2 version when the CPU has it, the scalar reference otherwise.
macro_rules! dispatch {
    ($fast:ident, $slow:ident ( $($arg:expr),* )) => {{
        #[cfg(target_arch = "x86_64")]
        if super::has_avx2() {
            return unsafe { $fast($($arg),*) };
        }
        $slow($($arg),*)
    }};
}

pub fn add_fwd(out: &mut [f32], a: &[f32], b: &[f32]) {
    dispatch!(add_fwd_avx2, add_fwd_scalar(out, a, b))
}
pub fn sub_fwd(out: &mut [f32], a: &[f32], b: &[f32]) {
    dispatch!(sub_fwd_avx2, sub_fwd_scalar(out, a, b))
}
pub fn mul_fwd(out: &mut [f32], a: &[f32], b: &[f32]) {
    dispatch!(mul_fwd_avx2, mul_fwd_scalar(out, a, b))
}
pub fn div_fwd(out: &mut [f32], a: &[f32], b: &[f32]) {
    dispatch!(div_fwd_avx2, div_fwd_scalar(out, a, b))
}
pub fn mul_bwd(da: &mut [f32], db: &mut [f32], a: &[f32], b: &[f32], dout: &[f32]) {
    dispatch!(mul_bwd_avx2, mul_bwd_scalar(da, db, a, b, dout))
}
pub fn div_bwd(da: &mut [f32], db: &mut [f32], a: &[f32], b: &[f32], dout: &[f32]) {
    dispatch!(div_bwd_avx2, div_bwd_scalar(da, db, a, b, dout))
}
pub fn scale_fwd(out: &mut [f32], a: &[f32], s: f32) {
    dispatch!(scale_fwd_avx2, scale_fwd_scalar(out, a, s))
}
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    dispatch!(add_assign_avx2, add_assign_scalar(acc, x))
}

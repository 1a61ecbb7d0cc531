//! Row gather and its backward, scatter-add. One kernel family serves both the embedding lookup
//! (rows of a table by token id) and the gather of masked positions for the MLM head.
//!
//! Shapes: table/inp: (V, C); idx: (n) with every idx < V (checked by the engine);
//! out/dout: (n, C); dtable: (V, C).

use crate::Real;

#[cfg(target_arch = "x86_64")]
use super::simd::{self, LANES, PAR_MIN_LIGHT};
#[cfg(target_arch = "x86_64")]
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// out[i, :] = table[idx[i], :]
pub fn gather_rows_fwd_scalar<T: Real>(out: &mut [T], table: &[T], idx: &[usize], cols: usize) {
    assert_eq!(out.len(), idx.len() * cols, "gather_rows_fwd: out length");
    for (i, &row) in idx.iter().enumerate() {
        out[i * cols..(i + 1) * cols].copy_from_slice(&table[row * cols..(row + 1) * cols]);
    }
}

/// dtable[idx[i], :] += dout[i, :]   (accumulates: repeated ids add up, and the table is
/// usually a parameter)
pub fn gather_rows_bwd_scalar<T: Real>(dtable: &mut [T], dout: &[T], idx: &[usize], cols: usize) {
    assert_eq!(dout.len(), idx.len() * cols, "gather_rows_bwd: dout length");
    for (i, &row) in idx.iter().enumerate() {
        let dst = &mut dtable[row * cols..(row + 1) * cols];
        for (d, &g) in dst.iter_mut().zip(&dout[i * cols..(i + 1) * cols]) {
            *d += g;
        }
    }
}

/// out: (n, C) = table: (V, C) rows at idx: (n). Row copies (memcpy), threaded over blocks of
/// output rows, which are disjoint.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gather_rows_fwd_avx2(out: &mut [f32], table: &[f32], idx: &[usize], cols: usize) {
    assert_eq!(out.len(), idx.len() * cols, "gather_rows_fwd: out length");
    if out.is_empty() {
        return;
    }
    let run = |o: &mut [f32], idx: &[usize]| {
        for (o, &row) in o.chunks_exact_mut(cols).zip(idx) {
            o.copy_from_slice(&table[row * cols..(row + 1) * cols]);
        }
    };
    match simd::par_rows(idx.len(), cols, PAR_MIN_LIGHT) {
        None => run(out, idx),
        Some(per) => out.par_chunks_mut(per * cols).zip(idx.par_chunks(per)).for_each(|(o, i)| run(o, i)),
    }
}

/// A raw pointer that may cross threads; see the SAFETY note where it is dereferenced.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
#[cfg(target_arch = "x86_64")]
unsafe impl Send for SharedMut {}
#[cfg(target_arch = "x86_64")]
unsafe impl Sync for SharedMut {}
#[cfg(target_arch = "x86_64")]
impl SharedMut {
    // A method (not `.0`) so closures capture the whole Send wrapper, not the bare pointer.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// dtable: (V, C) += dout: (n, C) scattered by idx: (n). Repeated ids add in idx order. Threads
/// never split the ids (two of them could hit the same row): each thread instead takes a range
/// of columns and walks all ids, so every dtable element has exactly one writer.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`super::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gather_rows_bwd_avx2(dtable: &mut [f32], dout: &[f32], idx: &[usize], cols: usize) {
    assert_eq!(dout.len(), idx.len() * cols, "gather_rows_bwd: dout length");
    if dout.is_empty() {
        return;
    }
    // The check the reference makes per row through slicing, made up front for all rows because
    // the threaded path below writes through a raw pointer.
    let vrows = dtable.len() / cols;
    assert!(idx.iter().all(|&r| r < vrows), "gather_rows_bwd: id out of range for dtable");
    let n = idx.len();
    if n * cols < PAR_MIN_LIGHT || cols < 128 {
        for (i, &row) in idx.iter().enumerate() {
            add_row(&mut dtable[row * cols..(row + 1) * cols], &dout[i * cols..(i + 1) * cols]);
        }
        return;
    }
    let width = cols.div_ceil(2 * rayon::current_num_threads()).next_multiple_of(LANES).max(64);
    let tasks = cols.div_ceil(width);
    let base = SharedMut(dtable.as_mut_ptr());
    (0..tasks).into_par_iter().for_each(|k| {
        let (c0, c1) = (k * width, ((k + 1) * width).min(cols));
        for (i, &row) in idx.iter().enumerate() {
            // SAFETY: row < vrows (asserted above), so row * cols + c1 <= vrows * cols <=
            // dtable.len(): the range is inside dtable. Tasks own disjoint column ranges, and
            // within a task this slice is dropped before the next one is made, so no element
            // is ever reachable through two live &mut.
            let dst = unsafe { std::slice::from_raw_parts_mut(base.get().add(row * cols + c0), c1 - c0) };
            add_row(dst, &dout[i * cols + c0..i * cols + c1]);
        }
    });
}

/// dst += src;  dst, src: (w)
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_row(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    debug_assert_eq!(src.len(), n);
    let mut i = 0;
    while i + LANES <= n {
        simd::storeu(dst, i, _mm256_add_ps(simd::loadu(dst, i), simd::loadu(src, i)));
        i += LANES;
    }
    if i < n {
        simd::store_tail(dst, i, _mm256_add_ps(simd::load_tail(dst, i), simd::load_tail(src, i)));
    }
}

/// out: (n, C) = table: (V, C) rows at idx: (n).
pub fn gather_rows_fwd(out: &mut [f32], table: &[f32], idx: &[usize], cols: usize) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { gather_rows_fwd_avx2(out, table, idx, cols) };
    }
    gather_rows_fwd_scalar(out, table, idx, cols)
}

/// dtable: (V, C) += dout: (n, C) scattered by idx: (n).
pub fn gather_rows_bwd(dtable: &mut [f32], dout: &[f32], idx: &[usize], cols: usize) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2() {
        return unsafe { gather_rows_bwd_avx2(dtable, dout, idx, cols) };
    }
    gather_rows_bwd_scalar(dtable, dout, idx, cols)
}

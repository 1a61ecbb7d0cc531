//! A probe of this CPU's f32 FMA throughput, the ceiling the bench's "% of peak" divides by.
//!
//! Theoretical peak = cores x FMA pipes x lanes x 2 FLOPs x clock; for AVX2 that is 2 pipes x 8
//! lanes x 2 = 32 FLOPs per cycle per core. The clock under FMA load (boost) is not what
//! /proc/cpuinfo prints, so we measure instead: 12 independent chains of 256-bit FMAs (enough to
//! cover the 4-cycle latency on 2 pipes) for a fixed number of iterations, on every thread of
//! the rayon pool at once. The implied clock is the measured rate / 32 per core.

use std::time::Instant;

/// FMAs per chain per timed call (12 chains x 8 lanes x 2 FLOPs each).
const ITERS: usize = 4_000_000;

/// Measured GFLOP/s of one thread running AVX2 FMAs back to back, or None without AVX2+FMA.
pub fn fma_gflops_one_thread() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return None;
        }
        let t0 = Instant::now();
        // SAFETY: AVX2 and FMA were detected just above.
        let sink = unsafe { fma_chains(ITERS) };
        let dt = t0.elapsed().as_secs_f64();
        std::hint::black_box(sink);
        Some((ITERS * 12 * 8 * 2) as f64 / dt / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Measured GFLOP/s of all rayon threads running [`fma_gflops_one_thread`] together (best of
/// `rounds`), or None without AVX2+FMA.
pub fn fma_gflops_all_threads(rounds: usize) -> Option<f64> {
    let mut best: Option<f64> = None;
    for _ in 0..rounds.max(1) {
        let per: Vec<Option<f64>> = rayon::broadcast(|_| fma_gflops_one_thread());
        let sum: Option<f64> = per.into_iter().sum();
        best = match (best, sum) {
            (Some(b), Some(s)) => Some(b.max(s)),
            (b, s) => b.or(s),
        };
    }
    best
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); 12];
    let x = _mm256_set1_ps(std::hint::black_box(0.999_999));
    let y = _mm256_set1_ps(std::hint::black_box(1e-7));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, x, y);
        }
    }
    let mut s = _mm256_setzero_ps();
    for a in acc {
        s = _mm256_add_ps(s, a);
    }
    let mut out = [0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), s);
    out.iter().sum()
}

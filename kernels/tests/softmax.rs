//! Masked, scaled softmax: the dispatched f32 kernels against the scalar reference run in f64.
mod common;

use common::{assert_close, f32v, f64v, proptest_config, rand_vec, Guarded};
use kernels::cpu::softmax::*;
use proptest::prelude::*;

// Tolerances. fwd: each probability carries exp's 1 ulp, the row sum's rounding (C terms, in a
// different order) and one multiply, all relative: 1e-6 relative; tiny probabilities (e^-16 and
// below for inputs in [-8, 8]) get an absolute floor far under anything that matters.
const FWD: (f32, f32) = (1e-9, 1e-6);
// bwd: scale * y * (g - dot); dot is a C-term f32 sum of y g with |y g| <= 2 and sum y = 1, so
// its error is a few ulp of 2; that absolute error is multiplied by scale * y <= 1.
const BWD: (f32, f32) = (1e-6, 1e-6);

/// The bounds in this file are for the AVX2 kernels. Without AVX2 (or with ALBERT_FORCE_SCALAR=1)
/// the entry points run the scalar reference in f32 instead, which sums each row's exponentials
/// sequentially (C rounding steps instead of ~C/8): that path gets an absolute floor of 1e-9 and
/// 50x the relative bound.
fn tol(t: (f32, f32)) -> (f32, f32) {
    if kernels::cpu::has_avx2() {
        t
    } else {
        (t.0.max(1e-9), t.1 * 50.0)
    }
}

/// Mask rows (m_rows, C): entry 0 of each row is 0 (rows are never fully masked: in f64 the
/// reference would then resolve -1e9 + x exactly while f32 cannot), the others 0, -1e9 or f32::MIN.
fn make_mask(seed: u64, m_rows: usize, cols: usize) -> Vec<f32> {
    let u = rand_vec(seed, m_rows * cols, 0.0, 1.0);
    u.iter()
        .enumerate()
        .map(|(i, &u)| match (i % cols, u) {
            (0, _) => 0.0,
            (_, u) if u < 0.5 => 0.0,
            (_, u) if u < 0.75 => -1e9,
            _ => f32::MIN,
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn check_fwd(x: &[f32], mask: Option<&[f32]>, rows: usize, cols: usize, rpm: usize, scale: f32, tol: (f32, f32)) {
    let mut out = Guarded::new(rows * cols, f32::NAN);
    softmax_fwd(out.inner_mut(), x, mask, rows, cols, rpm, scale);
    out.check_canaries("softmax_fwd");
    let mut want = vec![0f64; rows * cols];
    let m64 = mask.map(f64v);
    softmax_fwd_scalar(&mut want, &f64v(x), m64.as_deref(), rows, cols, rpm, scale as f64);
    let tol = self::tol(tol);
    assert_close("softmax_fwd", out.inner(), &f32v(&want), tol.0, tol.1);
}

fn check_bwd(y: &[f32], g: &[f32], rows: usize, cols: usize, scale: f32) {
    let mut d = Guarded::new(rows * cols, f32::NAN);
    softmax_bwd(d.inner_mut(), y, g, rows, cols, scale);
    d.check_canaries("softmax_bwd");
    let mut want = vec![0f64; rows * cols];
    softmax_bwd_scalar(&mut want, &f64v(y), &f64v(g), rows, cols, scale as f64);
    let tol = tol(BWD);
    assert_close("softmax_bwd", d.inner(), &f32v(&want), tol.0, tol.1);
}

/// Runs fwd (with or without a mask) then bwd on the forward's output, all inputs taken at
/// offset `off` of larger buffers.
fn check(rows: usize, cols: usize, rpm: Option<usize>, scale: f32, off: usize, seed: u64) {
    let n = rows * cols;
    let x = rand_vec(seed, n + off, -8.0, 8.0);
    let x = &x[off..off + n];
    let mask_buf = rpm.map(|r| make_mask(seed ^ 7, rows / r + 1, cols));
    let mask = mask_buf.as_ref().map(|m| &m[cols..]); // starts one row in: another offset
    check_fwd(x, mask, rows, cols, rpm.unwrap_or(1), scale, FWD);

    let mut y = vec![0f32; n + off];
    softmax_fwd(&mut y[off..], x, mask, rows, cols, rpm.unwrap_or(1), scale);
    let g = rand_vec(seed ^ 1, n + 5, -1.0, 1.0);
    check_bwd(&y[off..], &g[5..], rows, cols, scale);
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn softmax_matches_reference(
        rows in prop::sample::select(vec![1usize, 2, 3, 7, 17]),
        cols in prop::sample::select(vec![1usize, 3, 7, 8, 9, 17, 33, 129, 768]),
        masked in any::<bool>(),
        per_all in any::<bool>(),
        scale in prop::sample::select(vec![1.0f32, 0.125, 2.0]),
        off in prop::sample::select(vec![0usize, 1, 3, 5, 7]),
        seed in any::<u64>(),
    ) {
        // rows_per_mask: 1 (a mask row per row) or every row sharing one mask row
        let rpm = masked.then_some(if per_all { rows } else { 1 });
        check(rows, cols, rpm, scale, off, seed);
    }
}

#[test]
fn threaded_attention_shape() {
    // [B=2, N=4, S=100, S=769] scores with a [B, S] padding mask: rows_per_mask = N * S, and
    // enough elements (615k) for the row-block threading of both directions
    // (simd::PAR_MIN_HEAVY = 131072 for fwd, PAR_MIN_LIGHT = 524288 for bwd)
    check(2 * 4 * 100, 769, Some(4 * 100), 0.125, 3, 9);
    check(2 * 4 * 100, 769, None, 1.0, 0, 10);
}

#[test]
fn fully_masked_rows() {
    let cols = 11;
    let x = rand_vec(3, 3 * cols, -2.0, 2.0);
    // row 0: all f32::MIN, so every z equals f32::MIN and the row is uniform (as in HF)
    // row 1: all -inf, which gives NaN (as in PyTorch)
    // row 2: one entry left unmasked: probability exactly 1 there
    let mut mask = vec![f32::MIN; cols];
    mask.extend(vec![f32::NEG_INFINITY; cols]);
    mask.extend((0..cols).map(|c| if c == 4 { 0.0 } else { -1e9 }));
    let mut out = Guarded::new(3 * cols, f32::NAN);
    softmax_fwd(out.inner_mut(), &x, Some(&mask), 3, cols, 1, 1.0);
    out.check_canaries("softmax_fwd masked");
    let y = out.inner();
    for &p in &y[..cols] {
        assert!((p - 1.0 / cols as f32).abs() < 1e-7, "uniform row: {p}");
    }
    assert!(y[cols..2 * cols].iter().all(|p| p.is_nan()), "-inf row must be NaN");
    for (c, &p) in y[2 * cols..].iter().enumerate() {
        assert_eq!(p, if c == 4 { 1.0 } else { 0.0 });
    }
    // and the same against the reference (NaN matches NaN in assert_close)
    check_fwd(&x, Some(&mask), 3, cols, 1, 1.0, FWD);
}

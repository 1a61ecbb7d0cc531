//! Fused log-softmax + NLL: the dispatched f32 kernels against the scalar reference run in f64.
mod common;

use common::{assert_close, f32v, f64v, proptest_config, rand_vec, Guarded};
use kernels::cpu::cross_entropy::*;
use proptest::prelude::*;

const IGNORE: i64 = -100;

// Tolerances (logits in [-10, 10]).
// lse = max + ln(sum exp(x - max)): exp's 1 ulp and a C-term sum in another order give a few ulp
// relative error in the sum, i.e. a few 1e-7 absolute after the log, plus one rounding of |lse|
// <= ~20: 2e-6 absolute.
const LSE: (f32, f32) = (2e-6, 2e-7);
// loss: R terms lse - x[t], each within ~2e-6, summed (in f64 by the kernel): 2e-6 per row.
const LOSS_PER_ROW: f32 = 2e-6;
// dlogits = scale (exp(x - lse) - [c == t]): x - lse rounds to ~1 ulp of 20 (1e-6 absolute),
// which exp turns into ~2e-6 relative, plus lse's own error: 4e-6 relative; at the target,
// p - 1 cancels, leaving that error absolute (times |scale| <= 1).
const DLOGITS: (f32, f32) = (4e-6, 4e-6);

/// The bounds in this file are for the AVX2 kernels. Without AVX2 (or with ALBERT_FORCE_SCALAR=1)
/// the entry points run the scalar reference in f32 instead, which sums each row's exponentials
/// sequentially (C rounding steps, up to 30000) and accumulates the loss in f32: that path gets an
/// absolute floor of 1e-5 and 20x the relative bound.
fn tol(t: (f32, f32)) -> (f32, f32) {
    if kernels::cpu::has_avx2() {
        t
    } else {
        (t.0.max(1e-5), t.1 * 20.0)
    }
}

/// Targets in [0, cols) with about a quarter set to IGNORE (always at least one counted row).
fn make_targets(seed: u64, rows: usize, cols: usize) -> Vec<i64> {
    let u = rand_vec(seed, rows, 0.0, 1.0);
    u.iter()
        .enumerate()
        .map(|(r, &u)| if u < 0.25 && r > 0 { IGNORE } else { ((u * 7919.0) as usize % cols) as i64 })
        .collect()
}

fn check(rows: usize, cols: usize, off: usize, seed: u64, scale: f32) {
    let n = rows * cols;
    let x = rand_vec(seed, n + off, -10.0, 10.0);
    let x = &x[off..off + n];
    let t = make_targets(seed ^ 1, rows, cols);
    let x64 = f64v(x);

    let mut lse = Guarded::new(rows, f32::NAN);
    let (loss, count) = cross_entropy_fwd(lse.inner_mut(), x, &t, rows, cols, IGNORE);
    lse.check_canaries("cross_entropy_fwd lse");
    let mut wl = vec![0f64; rows];
    let (wloss, wcount) = cross_entropy_fwd_scalar(&mut wl, &x64, &t, rows, cols, IGNORE);
    assert_eq!(count, wcount, "cross_entropy_fwd count");
    let tl = tol(LSE);
    assert_close("cross_entropy_fwd lse", lse.inner(), &f32v(&wl), tl.0, tl.1);
    let tl = tol((LOSS_PER_ROW * rows as f32, 1e-6));
    assert_close("cross_entropy_fwd loss", &[loss], &[wloss as f32], tl.0, tl.1);

    // backward from the kernel's own f32 lse (the reference gets the same values in f64)
    let mut d = Guarded::new(n, f32::NAN);
    let lse32 = lse.inner().to_vec();
    cross_entropy_bwd(d.inner_mut(), x, &lse32, &t, rows, cols, IGNORE, scale);
    d.check_canaries("cross_entropy_bwd");
    let mut wd = vec![0f64; n];
    cross_entropy_bwd_scalar(&mut wd, &x64, &f64v(&lse32), &t, rows, cols, IGNORE, scale as f64);
    let tl = tol(DLOGITS);
    assert_close("cross_entropy_bwd", d.inner(), &f32v(&wd), tl.0, tl.1);
    // ignored rows are exactly zero
    for (r, row) in d.inner().chunks_exact(cols).enumerate() {
        if t[r] == IGNORE {
            assert!(row.iter().all(|&v| v == 0.0), "ignored row {r} not zero");
        }
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn cross_entropy_matches_reference(
        rows in prop::sample::select(vec![1usize, 2, 3, 7, 17]),
        cols in prop::sample::select(vec![1usize, 3, 7, 8, 9, 17, 33, 129, 768]),
        off in prop::sample::select(vec![0usize, 1, 3, 5, 7]),
        mean in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // scale: the mean-loss 1/count, or an arbitrary upstream gradient
        let scale = if mean { 1.0 / rows as f32 } else { -0.7 };
        check(rows, cols, off, seed, scale);
    }
}

#[test]
fn vocabulary_rows_threaded() {
    // MLM-head shape with an ALBERT-sized vocabulary: enough elements (> simd::PAR_MIN_HEAVY =
    // 131072) for the row-block threading
    check(5, 30_000, 3, 17, 0.2);
    check(50, 3_001, 0, 18, 1.0 / 50.0);
}

#[test]
fn all_rows_ignored() {
    let (rows, cols) = (3, 10);
    let x = rand_vec(1, rows * cols, -1.0, 1.0);
    let mut lse = vec![0f32; rows];
    let (loss, count) = cross_entropy_fwd(&mut lse, &x, &[IGNORE; 3], rows, cols, IGNORE);
    assert_eq!((loss, count), (0.0, 0));
    let mut d = vec![f32::NAN; rows * cols];
    cross_entropy_bwd(&mut d, &x, &lse, &[IGNORE; 3], rows, cols, IGNORE, 1.0);
    assert!(d.iter().all(|&v| v == 0.0));
}

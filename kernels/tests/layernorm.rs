//! LayerNorm: the dispatched f32 kernels against the scalar reference run in f64.
mod common;

use common::{assert_close, f32v, f64v, proptest_config, rand_vec, Guarded};
use kernels::cpu::layernorm::*;
use proptest::prelude::*;

// Tolerances. Inputs: rows of noise in [-3, 3] around a per-row shift up to +-10 (std >= 0.8),
// gamma in [-2, 2], beta in [-1, 1].
// mean: a C-term f32 sum of values up to 13 in another order: ~C/2 ulp of 13 at worst, relative
// to the mean (which may be near 0 only for small shifts): 2e-6 absolute.
const MEAN: (f32, f32) = (2e-6, 1e-6);
// rstd: variance from a C-term sum of squares, a square root and a division: a few ulp; 2e-6.
const RSTD: (f32, f32) = (0.0, 2e-6);
// out = xhat gamma + beta: xhat = (x - mean) rstd carries the mean's absolute error times rstd
// (<= 1.25) plus rstd's relative error times |xhat| (<= ~sqrt(C)); |gamma| <= 2.
const OUT: (f32, f32) = (1e-5, 1e-5);
// dinp = rstd (g gamma - mean(g gamma) - xhat mean(g gamma xhat)): row sums of C terms of size
// ~2 |xhat| cancel, leaving an absolute error of a few ulp of 2 sqrt(C), times rstd.
const DINP: (f32, f32) = (2e-5, 1e-5);
// dgamma/dbeta: R-term sums of g xhat or g onto a random start, in another order (threaded
// partials): a few ulp of the running magnitude (<= R * 2 sqrt(C)).
const DPARAM: (f32, f32) = (2e-5, 1e-5);

/// The bounds in this file are for the AVX2 kernels. Without AVX2 (or with ALBERT_FORCE_SCALAR=1)
/// the entry points run the scalar reference in f32 instead, which sums each row sequentially (C
/// rounding steps of a growing partial sum): that path gets an absolute floor of 1e-5 and 20x the
/// relative bound.
fn tol(t: (f32, f32)) -> (f32, f32) {
    if kernels::cpu::has_avx2() {
        t
    } else {
        (t.0.max(1e-5), t.1 * 20.0)
    }
}

struct Case {
    rows: usize,
    cols: usize,
    eps: f32,
    off: usize,
    seed: u64,
}

impl Case {
    fn run(&self) {
        let Case { rows, cols, eps, off, seed } = *self;
        let n = rows * cols;
        let shift = rand_vec(seed ^ 9, rows, -10.0, 10.0);
        let mut xb = rand_vec(seed, n + off, -3.0, 3.0);
        for (r, row) in xb[off..].chunks_exact_mut(cols).enumerate() {
            // entries shift - 1 and shift + 1 keep std >= 0.8 (rstd <= 1.25): a row with tiny
            // variance next to a large mean would amplify the rounding of x itself, which no
            // f32 kernel can avoid, so such rows would only test the tolerance
            if cols >= 2 {
                row[0] = -1.0;
                row[1] = 1.0;
            }
            row.iter_mut().for_each(|v| *v += shift[r]);
        }
        let x = &xb[off..off + n];
        let gamma = rand_vec(seed ^ 1, cols + 1, -2.0, 2.0);
        let beta = rand_vec(seed ^ 2, cols + 3, -1.0, 1.0);
        let (gamma, beta) = (&gamma[1..], &beta[3..]);

        // forward
        let mut out = Guarded::new(n, f32::NAN);
        let mut mean = Guarded::new(rows, f32::NAN);
        let mut rstd = Guarded::new(rows, f32::NAN);
        layernorm_fwd(out.inner_mut(), mean.inner_mut(), rstd.inner_mut(), x, gamma, beta, rows, cols, eps);
        out.check_canaries("layernorm_fwd out");
        mean.check_canaries("layernorm_fwd mean");
        rstd.check_canaries("layernorm_fwd rstd");
        let (mut wo, mut wm, mut ws) = (vec![0f64; n], vec![0f64; rows], vec![0f64; rows]);
        let (x64, g64) = (f64v(x), f64v(gamma));
        layernorm_fwd_scalar(&mut wo, &mut wm, &mut ws, &x64, &g64, &f64v(beta), rows, cols, eps as f64);
        let t = tol(MEAN);
        assert_close("layernorm_fwd mean", mean.inner(), &f32v(&wm), t.0, t.1);
        let t = tol(RSTD);
        assert_close("layernorm_fwd rstd", rstd.inner(), &f32v(&ws), t.0, t.1);
        let t = tol(OUT);
        assert_close("layernorm_fwd out", out.inner(), &f32v(&wo), t.0, t.1);

        // backward from the saved f32 statistics (both sides see the same mean and rstd)
        let dout = rand_vec(seed ^ 3, n + 5, -1.0, 1.0);
        let dout = &dout[5..];
        let dg0 = rand_vec(seed ^ 4, cols, -3.0, 3.0);
        let db0 = rand_vec(seed ^ 5, cols, -3.0, 3.0);
        let mut dinp = Guarded::new(n, f32::NAN);
        let mut dgamma = Guarded::from(&dg0);
        let mut dbeta = Guarded::from(&db0);
        let (m32, s32) = (mean.inner().to_vec(), rstd.inner().to_vec());
        layernorm_bwd(dinp.inner_mut(), dgamma.inner_mut(), dbeta.inner_mut(), dout, x, gamma, &m32, &s32, rows, cols);
        dinp.check_canaries("layernorm_bwd dinp");
        dgamma.check_canaries("layernorm_bwd dgamma");
        dbeta.check_canaries("layernorm_bwd dbeta");
        let (mut wd, mut wg, mut wb) = (vec![0f64; n], f64v(&dg0), f64v(&db0));
        layernorm_bwd_scalar(&mut wd, &mut wg, &mut wb, &f64v(dout), &x64, &g64, &f64v(&m32), &f64v(&s32), rows, cols);
        let t = tol(DINP);
        assert_close("layernorm_bwd dinp", dinp.inner(), &f32v(&wd), t.0, t.1);
        let t = tol(DPARAM);
        assert_close("layernorm_bwd dgamma", dgamma.inner(), &f32v(&wg), t.0, t.1);
        let t = tol(DPARAM);
        assert_close("layernorm_bwd dbeta", dbeta.inner(), &f32v(&wb), t.0, t.1);
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn layernorm_matches_reference(
        rows in prop::sample::select(vec![1usize, 2, 3, 7, 17]),
        cols in prop::sample::select(vec![1usize, 3, 7, 8, 9, 17, 33, 129, 768]),
        eps in prop::sample::select(vec![1e-12f32, 1e-5]),
        off in prop::sample::select(vec![0usize, 1, 3, 5, 7]),
        seed in any::<u64>(),
    ) {
        Case { rows, cols, eps, off, seed }.run();
    }
}

#[test]
fn threaded_rows() {
    // 700 x 769 = 538k elements (> simd::PAR_MIN_LIGHT): the row-block threading, with
    // per-thread dgamma/dbeta partials
    Case { rows: 700, cols: 769, eps: 1e-12, off: 3, seed: 5 }.run();
    // ALBERT's [1024 x 768], odd row count
    Case { rows: 1023, cols: 768, eps: 1e-12, off: 1, seed: 6 }.run();
}

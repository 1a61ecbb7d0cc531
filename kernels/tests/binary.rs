//! Elementwise binary ops, scale and add_assign: the dispatched f32 kernels against the scalar
//! reference run in f64.
mod common;

use common::{assert_close, f32v, f64v, proptest_config, rand_vec, Guarded};
use kernels::cpu::binary::*;
use proptest::prelude::*;

type Bin32 = fn(&mut [f32], &[f32], &[f32]);
type Bin64 = fn(&mut [f64], &[f64], &[f64]);
type Bwd32 = fn(&mut [f32], &mut [f32], &[f32], &[f32], &[f32]);
type Bwd64 = fn(&mut [f64], &mut [f64], &[f64], &[f64], &[f64]);

/// Element counts: tiny, around one vector, not multiples of 8, and two past the threading
/// thresholds (simd::PAR_MIN_HEAVY = 131072, PAR_MIN_LIGHT = 524288) so the threaded paths run.
fn sizes() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 3, 7, 8, 9, 17, 33, 129, 1000, 140_001, 600_001])
}

/// Where each input starts inside its buffer: odd offsets give unaligned slices.
fn offsets() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![0usize, 1, 3, 5, 7])
}

/// Divisors: magnitudes in [0.25, 4], every third one negative.
fn divisors(seed: u64, n: usize) -> Vec<f32> {
    let mut b = rand_vec(seed, n, 0.25, 4.0);
    b.iter_mut().step_by(3).for_each(|v| *v = -*v);
    b
}

// Tolerances: add, sub, mul of two f32 are exact in f64, so the reference rounded to f32 is the
// correctly rounded result, which is what one f32 op gives: exact. div rounds in f64 then again
// to f32 (double rounding): 1 ulp. div_bwd's db takes four f32 roundings: 4 ulp.
const EXACT: (f32, f32) = (0.0, 0.0);
const ULP1: (f32, f32) = (0.0, 1.2e-7);
const ULP4: (f32, f32) = (0.0, 4.8e-7);

fn check_bin(what: &str, a: &[f32], b: &[f32], fast: Bin32, reference: Bin64, tol: (f32, f32)) {
    let mut out = Guarded::new(a.len(), f32::NAN);
    fast(out.inner_mut(), a, b);
    out.check_canaries(what);
    let mut want = vec![0f64; a.len()];
    reference(&mut want, &f64v(a), &f64v(b));
    assert_close(what, out.inner(), &f32v(&want), tol.0, tol.1);
}

fn check_bwd(what: &str, a: &[f32], b: &[f32], g: &[f32], fast: Bwd32, reference: Bwd64, tol: (f32, f32)) {
    let n = a.len();
    let (mut da, mut db) = (Guarded::new(n, f32::NAN), Guarded::new(n, f32::NAN));
    fast(da.inner_mut(), db.inner_mut(), a, b, g);
    da.check_canaries(what);
    db.check_canaries(what);
    let (mut wa, mut wb) = (vec![0f64; n], vec![0f64; n]);
    reference(&mut wa, &mut wb, &f64v(a), &f64v(b), &f64v(g));
    assert_close(&format!("{what} da"), da.inner(), &f32v(&wa), tol.0, tol.1);
    assert_close(&format!("{what} db"), db.inner(), &f32v(&wb), tol.0, tol.1);
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn binary_fwd_matches_reference(n in sizes(), oa in offsets(), ob in offsets(), seed in any::<u64>()) {
        let a = rand_vec(seed, n + oa, -4.0, 4.0);
        let b = divisors(seed ^ 1, n + ob);
        let (a, b) = (&a[oa..oa + n], &b[ob..ob + n]);
        check_bin("add_fwd", a, b, add_fwd, add_fwd_scalar::<f64>, EXACT);
        check_bin("sub_fwd", a, b, sub_fwd, sub_fwd_scalar::<f64>, EXACT);
        check_bin("mul_fwd", a, b, mul_fwd, mul_fwd_scalar::<f64>, EXACT);
        check_bin("div_fwd", a, b, div_fwd, div_fwd_scalar::<f64>, ULP1);
    }

    #[test]
    fn binary_bwd_matches_reference(n in sizes(), oa in offsets(), ob in offsets(), seed in any::<u64>()) {
        let a = rand_vec(seed, n + oa, -4.0, 4.0);
        let b = divisors(seed ^ 1, n + ob);
        let g = rand_vec(seed ^ 2, n + 3, -2.0, 2.0);
        let (a, b, g) = (&a[oa..oa + n], &b[ob..ob + n], &g[3..3 + n]);
        check_bwd("mul_bwd", a, b, g, mul_bwd, mul_bwd_scalar::<f64>, EXACT);
        check_bwd("div_bwd", a, b, g, div_bwd, div_bwd_scalar::<f64>, ULP4);
    }

    #[test]
    fn scale_and_add_assign_match_reference(n in sizes(), off in offsets(), s in -3.0f32..3.0, seed in any::<u64>()) {
        let a = rand_vec(seed, n + off, -4.0, 4.0);
        let a = &a[off..off + n];
        let mut out = Guarded::new(n, f32::NAN);
        scale_fwd(out.inner_mut(), a, s);
        out.check_canaries("scale_fwd");
        let mut want = vec![0f64; n];
        scale_fwd_scalar(&mut want, &f64v(a), s as f64);
        // one product of two f32: exact in f64, so exactly the f32 product
        assert_close("scale_fwd", out.inner(), &f32v(&want), EXACT.0, EXACT.1);

        // accumulates onto random non-zero contents
        let init = rand_vec(seed ^ 3, n, -5.0, 5.0);
        let mut acc = Guarded::from(&init);
        add_assign(acc.inner_mut(), a);
        acc.check_canaries("add_assign");
        let mut want = f64v(&init);
        add_assign_scalar(&mut want, &f64v(a));
        // one f32 sum: exact, as for add_fwd
        assert_close("add_assign", acc.inner(), &f32v(&want), EXACT.0, EXACT.1);
    }
}

#[test]
fn bit_identical_to_f32_scalar() {
    // Same operations in the same order as the scalar code, including inf/NaN/-0 handling.
    let n = 77;
    let mut a = rand_vec(11, n, -3.0, 3.0);
    let mut b = divisors(12, n);
    a[..6].copy_from_slice(&[0.0, -0.0, f32::INFINITY, f32::NAN, 1e-40, -5.0]);
    b[..6].copy_from_slice(&[-0.0, 0.0, 2.0, 1.0, 3.0, f32::INFINITY]);
    let g = rand_vec(13, n, -1.0, 1.0);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (name, fast, slow) in [
        ("add", add_fwd as Bin32, add_fwd_scalar::<f32> as Bin32),
        ("sub", sub_fwd, sub_fwd_scalar::<f32>),
        ("mul", mul_fwd, mul_fwd_scalar::<f32>),
        ("div", div_fwd, div_fwd_scalar::<f32>),
    ] {
        let (mut x, mut y) = (vec![0f32; n], vec![0f32; n]);
        fast(&mut x, &a, &b);
        slow(&mut y, &a, &b);
        assert_eq!(bits(&x), bits(&y), "{name}");
    }
    for (name, fast, slow) in
        [("mul_bwd", mul_bwd as Bwd32, mul_bwd_scalar::<f32> as Bwd32), ("div_bwd", div_bwd, div_bwd_scalar::<f32>)]
    {
        let (mut x1, mut x2, mut y1, mut y2) = (vec![0f32; n], vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        fast(&mut x1, &mut x2, &a, &b, &g);
        slow(&mut y1, &mut y2, &a, &b, &g);
        assert_eq!(bits(&x1), bits(&y1), "{name} da");
        assert_eq!(bits(&x2), bits(&y2), "{name} db");
    }
}

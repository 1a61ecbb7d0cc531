//! sum_axis: the dispatched f32 kernels against the scalar reference run in f64.
mod common;

use common::{assert_close, f32v, f64v, proptest_config, rand_vec, Guarded};
use kernels::cpu::reduce::*;
use proptest::prelude::*;

/// Runs both directions on an (outer, len, inner) view whose data starts at `off` in its buffer.
fn check(outer: usize, len: usize, inner: usize, off: usize, seed: u64) {
    let n = outer * len * inner;
    let buf = rand_vec(seed, n + off, -1.0, 1.0);
    let x = &buf[off..off + n];
    let mut out = Guarded::new(outer * inner, f32::NAN);
    sum_axis_fwd(out.inner_mut(), x, outer, len, inner);
    out.check_canaries("sum_axis_fwd");
    let mut want = vec![0f64; outer * inner];
    sum_axis_fwd_scalar(&mut want, &f64v(x), outer, len, inner);
    // f32 sum of len terms in [-1, 1], in a different order from the reference: each of the len
    // additions rounds at most half an ulp of a partial sum; partial sums stay below ~4 in
    // practice (random signs), so 2 ulp-of-1 (2.4e-7) per term is a safe bound that still
    // catches a missing or doubled term
    let abs = 2.4e-7 * len as f32;
    assert_close("sum_axis_fwd", out.inner(), &f32v(&want), abs, 0.0);

    let g = rand_vec(seed ^ 1, outer * inner + 3, -1.0, 1.0);
    let g = &g[3..];
    let mut d = Guarded::new(n, f32::NAN);
    sum_axis_bwd(d.inner_mut(), g, outer, len, inner);
    d.check_canaries("sum_axis_bwd");
    let mut want = vec![0f64; n];
    sum_axis_bwd_scalar(&mut want, &f64v(g), outer, len, inner);
    // copies: exact
    assert_close("sum_axis_bwd", d.inner(), &f32v(&want), 0.0, 0.0);
}

proptest! {
    #![proptest_config(proptest_config())]

    // Up to 7 * 129 * 768 = 693k elements, so some cases pass the threading threshold
    // (simd::PAR_MIN_LIGHT = 524288) alongside the tiny shapes; `threaded_shapes` covers each split.
    #[test]
    fn sum_axis_matches_reference(
        outer in prop::sample::select(vec![1usize, 2, 3, 7]),
        len in prop::sample::select(vec![1usize, 3, 7, 17, 33, 129]),
        inner in prop::sample::select(vec![1usize, 3, 7, 8, 9, 17, 33, 129, 768]),
        off in prop::sample::select(vec![0usize, 1, 3, 5, 7]),
        seed in any::<u64>(),
    ) {
        check(outer, len, inner, off, seed);
    }
}

#[test]
fn threaded_shapes() {
    // one long run (inner = 1, outer = 1), many runs, one wide slab, several slabs
    // (all above simd::PAR_MIN_LIGHT = 524288 elements)
    for &(outer, len, inner) in &[(1, 600_003, 1), (6000, 101, 1), (1, 1024, 768), (3, 1400, 129), (2, 70, 4099)] {
        check(outer, len, inner, 3, 42);
    }
}

#[test]
fn empty_axis_gives_zeros() {
    let mut out = Guarded::new(6, f32::NAN);
    sum_axis_fwd(out.inner_mut(), &[], 2, 0, 3);
    out.check_canaries("sum_axis_fwd len 0");
    assert_eq!(out.inner(), &[0.0; 6]);
}

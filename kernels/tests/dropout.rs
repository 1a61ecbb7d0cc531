//! Inverted dropout: the dispatched f32 kernels against the scalar reference run in f64.
mod common;

use common::{assert_close, f32v, f64v, proptest_config, rand_vec, Guarded};
use kernels::cpu::dropout::*;
use proptest::prelude::*;

/// Keep bytes: 0 (dropped) or any non-zero value (kept), about p of them zero.
fn make_keep(seed: u64, n: usize, p: f32) -> Vec<u8> {
    let u = rand_vec(seed, n, 0.0, 1.0);
    u.iter().map(|&u| if u < p { 0 } else { [1u8, 2, 255][(u * 1000.0) as usize % 3] }).collect()
}

// x * scale for two f32 is exact in f64, so the reference rounded to f32 is exactly the f32
// product, and dropped elements are exactly 0: both directions are exact.
const EXACT: (f32, f32) = (0.0, 0.0);

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn dropout_matches_reference(
        n in prop::sample::select(vec![1usize, 3, 7, 8, 9, 17, 33, 129, 1000, 600_001]),
        off in prop::sample::select(vec![0usize, 1, 3, 5, 7]),
        koff in prop::sample::select(vec![0usize, 1, 3]),
        p in prop::sample::select(vec![0.0f32, 0.1, 0.5, 1.0]),
        seed in any::<u64>(),
    ) {
        let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
        let x = rand_vec(seed, n + off, -4.0, 4.0);
        let x = &x[off..off + n];
        let keep = make_keep(seed ^ 1, n + koff, p);
        let keep = &keep[koff..];
        for (name, f, r) in [
            ("dropout_fwd", dropout_fwd as fn(&mut [f32], &[f32], &[u8], f32), dropout_fwd_scalar::<f64> as fn(&mut [f64], &[f64], &[u8], f64)),
            ("dropout_bwd", dropout_bwd, dropout_bwd_scalar::<f64>),
        ] {
            let mut out = Guarded::new(n, f32::NAN);
            f(out.inner_mut(), x, keep, scale);
            out.check_canaries(name);
            let mut want = vec![0f64; n];
            r(&mut want, &f64v(x), keep, scale as f64);
            assert_close(name, out.inner(), &f32v(&want), EXACT.0, EXACT.1);
        }
    }
}

#[test]
fn dropped_nan_becomes_zero() {
    // a dropped element is 0 whatever the input (the reference's `if`), a kept NaN stays NaN
    let x = [f32::NAN, f32::NAN, f32::INFINITY, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, f32::NAN];
    let keep = [0u8, 1, 0, 1, 0, 1, 0, 1, 0, 0];
    let mut out = [7f32; 10];
    dropout_fwd(&mut out, &x, &keep, 2.0);
    assert_eq!(out[0].to_bits(), 0f32.to_bits());
    assert!(out[1].is_nan());
    assert_eq!(&out[2..], &[0.0, 2.0, 0.0, 6.0, 0.0, 10.0, 0.0, 0.0]);
}

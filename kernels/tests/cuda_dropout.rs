//! GPU dropout (kernels::cuda::dropout), whose mask is recomputed from (seed, index): the kept
//! fraction is within statistical bounds, forward and backward equal the CPU reference
//! (cpu::dropout::*_scalar) applied with the mask `dropout_keep_mask` writes, the same seed gives
//! the same mask and different seeds different ones. f32 and bf16 storage.
//! Skips (passes) when there is no CUDA device.
mod common;

use common::{assert_close, rand_vec};
use kernels::cpu::dropout::{dropout_bwd_scalar, dropout_fwd_scalar};
use kernels::cuda::dropout::{dropout_bwd, dropout_fwd, dropout_keep_mask, dropout_scale};
use kernels::cuda::{download_f32, test_device, upload_f32, Dt, Gpu};
use std::sync::Arc;

fn stored(x: &[f32], dt: Dt) -> Vec<f32> {
    match dt {
        Dt::F32 => x.to_vec(),
        Dt::BF16 => x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect(),
    }
}

/// The keep mask of (n, p, seed), written `shift` bytes after an aligned address.
fn mask(g: &Arc<Gpu>, n: usize, p: f32, seed: u64, shift: usize) -> Vec<u8> {
    let buf = g.upload(&vec![0xEEu8; shift + n + 16]).unwrap();
    dropout_keep_mask(g, buf.ptr(shift), n, p, seed).unwrap();
    let all = g.download(&buf, 0, shift + n + 16).unwrap();
    assert!(all[..shift].iter().chain(&all[shift + n..]).all(|&b| b == 0xEE), "dropout_keep_mask wrote outside");
    all[shift..shift + n].to_vec()
}

#[test]
fn kept_fraction_is_within_bounds() {
    let Some(g) = test_device() else { return };
    let n = (1usize << 20) + 3;
    for p in [0.1f32, 0.5, 0.9] {
        let m = mask(&g, n, p, 1234, 0);
        assert!(m.iter().all(|&b| b <= 1), "mask bytes are 0 or 1");
        let kept = m.iter().filter(|&&b| b == 1).count() as f64 / n as f64;
        let q = 1.0 - f64::from(p);
        let sigma = (q * (1.0 - q) / n as f64).sqrt();
        assert!((kept - q).abs() < 6.0 * sigma, "p {p}: kept fraction {kept}, expected {q} +- {}", 6.0 * sigma);
        // neighbours are independent: P(m[i] == m[i+1]) = q^2 + p^2
        let same = m.windows(2).filter(|w| w[0] == w[1]).count() as f64 / (n - 1) as f64;
        let want = q * q + (1.0 - q) * (1.0 - q);
        assert!(
            (same - want).abs() < 6.0 * (want * (1.0 - want) / n as f64).sqrt() * 2.0,
            "p {p}: neighbours agree {same}, expected {want}"
        );
    }
    // p = 0 keeps everything
    assert!(mask(&g, 1000, 0.0, 9, 0).iter().all(|&b| b == 1));
}

#[test]
fn seeds_decide_the_mask() {
    let Some(g) = test_device() else { return };
    let n = 100_003;
    let a = mask(&g, n, 0.3, 42, 0);
    assert_eq!(a, mask(&g, n, 0.3, 42, 0), "same seed, same mask");
    // the mask is a function of the element index, whatever the output's alignment
    assert_eq!(a, mask(&g, n, 0.3, 42, 3), "aligned and unaligned writes agree");
    for other in [43u64, 42 ^ (1 << 63), 0] {
        let b = mask(&g, n, 0.3, other, 0);
        let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count() as f64 / n as f64;
        // independent masks differ in a fraction 2 p (1 - p) = 0.42 of places
        assert!((differ - 0.42).abs() < 0.02, "seeds 42 and {other}: masks differ in {differ} of places");
    }
}

#[test]
fn fwd_and_bwd_apply_the_keep_mask() {
    let Some(g) = test_device() else { return };
    for dt in [Dt::F32, Dt::BF16] {
        for &n in &[1usize, 3, 17, 33, 127, 1000, 4099, 100_003] {
            for shift in [0usize, 1] {
                for (p, seed) in [(0.1f32, 7u64), (0.5, 8), (0.0, 9)] {
                    let what = format!("dropout {dt:?} n {n} shift {shift} p {p}");
                    let keep = mask(&g, n, p, seed, 0);
                    let scale = dropout_scale(p);
                    let x = stored(&rand_vec(n as u64, n, -2.0, 2.0), dt);
                    let mut buf = vec![0.0f32; shift];
                    buf.extend_from_slice(&x);
                    let xin = upload_f32(&g, &buf, dt).unwrap();
                    let out = upload_f32(&g, &vec![f32::NAN; n + shift], dt).unwrap();
                    dropout_fwd(&g, dt, out.ptr(shift * dt.size()), xin.ptr(shift * dt.size()), n, p, seed).unwrap();
                    let mut want = vec![0f32; n];
                    dropout_fwd_scalar(&mut want, &x, &keep, scale);
                    // the same f32 product, then the same rounding: exact
                    let got = download_f32(&out, dt, shift, n).unwrap();
                    assert_close(&format!("{what} fwd"), &got, &stored(&want, dt), 0.0, 0.0);
                    if p == 0.0 {
                        assert_close(&format!("{what} p = 0 is the identity"), &got, &x, 0.0, 0.0);
                    }
                    // backward in place on dout: the same mask
                    dropout_bwd(&g, dt, xin.ptr(shift * dt.size()), xin.ptr(shift * dt.size()), n, p, seed).unwrap();
                    let mut want = vec![0f32; n];
                    dropout_bwd_scalar(&mut want, &x, &keep, scale);
                    let got = download_f32(&xin, dt, shift, n).unwrap();
                    assert_close(&format!("{what} bwd"), &got, &stored(&want, dt), 0.0, 0.0);
                }
            }
        }
    }
}

#[test]
fn bad_probabilities_are_errors() {
    let Some(g) = test_device() else { return };
    let buf = upload_f32(&g, &[0.0; 4], Dt::F32).unwrap();
    for p in [1.0f32, -0.1, f32::NAN, 1.5] {
        assert!(dropout_fwd(&g, Dt::F32, buf.ptr(0), buf.ptr(0), 4, p, 1).is_err(), "p {p}");
        assert!(dropout_keep_mask(&g, buf.ptr(0), 4, p, 1).is_err(), "p {p}");
    }
}

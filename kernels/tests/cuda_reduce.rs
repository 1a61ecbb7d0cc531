//! GPU sums (kernels::cuda::reduce) against the CPU scalar references run in f64
//! (cpu::reduce::sum_axis_*_scalar): every path of sum_axis_fwd (warp rows, block rows with and
//! without segments, column tiles with and without segments, the 65536 x 768 bias gradient),
//! sum_axis_bwd (exact), sum_squares; f32 and bf16 storage; repeated runs agree bit for bit.
//! Skips (passes) when there is no CUDA device.
mod common;

use common::{assert_close, f32v, f64v, rand_vec};
use kernels::cpu::reduce::{sum_axis_bwd_scalar, sum_axis_fwd_scalar};
use kernels::cuda::reduce::{sum_axis_bwd, sum_axis_fwd, sum_squares};
use kernels::cuda::{download_f32, test_device, upload_f32, DeviceBuffer, Dt, Gpu};
use std::sync::Arc;

const CANARY: f32 = -7.5e29;
const GUARD: usize = 8;

fn stored(x: &[f32], dt: Dt) -> Vec<f32> {
    match dt {
        Dt::F32 => x.to_vec(),
        Dt::BF16 => x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect(),
    }
}

/// A canary-filled buffer for n outputs at element GUARD (+ shift).
fn guarded(g: &Arc<Gpu>, n: usize, dt: Dt, shift: usize) -> DeviceBuffer {
    upload_f32(g, &vec![CANARY; 2 * GUARD + shift + n], dt).unwrap()
}

/// The n outputs of a `guarded` buffer; panics if a canary changed.
fn outputs(buf: &DeviceBuffer, n: usize, dt: Dt, shift: usize, what: &str) -> Vec<f32> {
    let front = GUARD + shift;
    let all = download_f32(buf, dt, 0, front + n + GUARD).unwrap();
    let canary = stored(&[CANARY], dt)[0];
    assert!(all[..front].iter().chain(&all[front + n..]).all(|&v| v == canary), "{what}: wrote outside its output");
    all[front..front + n].to_vec()
}

fn check_fwd(g: &Arc<Gpu>, dt: Dt, outer: usize, len: usize, inner: usize, shift: usize) {
    let what = format!("sum_axis_fwd {dt:?} ({outer}, {len}, {inner}) shift {shift}");
    let n = outer * len * inner;
    let x = stored(&rand_vec((outer * 31 + len * 7 + inner) as u64, n, -1.0, 1.0), dt);
    let inp = upload_f32(g, &[vec![0.0; shift], x.clone()].concat(), dt).unwrap();
    let mut want = vec![0f64; outer * inner];
    sum_axis_fwd_scalar(&mut want, &f64v(&x), outer, len, inner);
    // f32 accumulation of len terms in [-1, 1] in a different order (the rule of the CPU test:
    // 2 ulp-of-1 per term), plus one rounding of the output for bf16
    let abs = 2.4e-7 * len as f32;
    let rel = if dt == Dt::BF16 { 4.0e-3 } else { 0.0 };
    let mut first: Option<Vec<f32>> = None;
    for _run in 0..2 {
        let out = guarded(g, outer * inner, dt, shift);
        sum_axis_fwd(g, dt, out.ptr((GUARD + shift) * dt.size()), inp.ptr(shift * dt.size()), outer, len, inner)
            .unwrap();
        let got = outputs(&out, outer * inner, dt, shift, &what);
        assert_close(&what, &got, &f32v(&want), abs, rel);
        // deterministic: the second run gives the same bits
        match &first {
            None => first = Some(got),
            Some(f) => assert!(f.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}: runs differ"),
        }
    }
}

#[test]
fn sum_axis_fwd_every_path() {
    let Some(g) = test_device() else { return };
    let shapes = [
        (1usize, 1usize, 1usize),
        (3, 5, 1),       // warp rows
        (6000, 101, 1),  // many warp rows
        (2, 1024, 1),    // longest warp row
        (2, 1025, 1),    // block rows, one segment each
        (3, 5000, 1),    // block rows, segmented
        (1, 600_003, 1), // one long row, ~300 segments
        (7, 129, 3),     // narrow columns
        (3, 1400, 129),  // column tiles, segmented
        (2, 70, 4099),   // many tiles
        (4096, 2, 8),    // many slabs, short len
        (1, 3, 1000),    // short len, wide
        (1, 65536, 768), // bias gradient over 65536 rows
        (5, 0, 3),       // len 0: zeros
        (0, 5, 3),       // empty
    ];
    for dt in [Dt::F32, Dt::BF16] {
        for &(outer, len, inner) in &shapes {
            for shift in [0usize, 1] {
                check_fwd(&g, dt, outer, len, inner, shift);
            }
        }
    }
}

#[test]
fn sum_axis_bwd_broadcasts_exactly() {
    let Some(g) = test_device() else { return };
    for dt in [Dt::F32, Dt::BF16] {
        for &(outer, len, inner) in
            &[(1usize, 1usize, 1usize), (3, 5, 1), (2, 17, 33), (3, 1000, 129), (2, 70, 768), (1, 65536, 8)]
        {
            for shift in [0usize, 1] {
                let what = format!("sum_axis_bwd {dt:?} ({outer}, {len}, {inner}) shift {shift}");
                let dout = stored(&rand_vec((outer + len + inner) as u64, outer * inner, -1.0, 1.0), dt);
                let d = upload_f32(&g, &[vec![0.0; shift], dout.clone()].concat(), dt).unwrap();
                let n = outer * len * inner;
                let out = guarded(&g, n, dt, shift);
                sum_axis_bwd(&g, dt, out.ptr((GUARD + shift) * dt.size()), d.ptr(shift * dt.size()), outer, len, inner)
                    .unwrap();
                let mut want = vec![0f64; n];
                sum_axis_bwd_scalar(&mut want, &f64v(&dout), outer, len, inner);
                assert_close(&what, &outputs(&out, n, dt, shift, &what), &f32v(&want), 0.0, 0.0);
            }
        }
    }
}

#[test]
fn sum_squares_matches_f64_and_repeats() {
    let Some(g) = test_device() else { return };
    for dt in [Dt::F32, Dt::BF16] {
        for &n in &[0usize, 1, 3, 17, 33, 127, 1000, 16384, 16385, 1_000_003, 20_000_000] {
            for shift in [0usize, 1] {
                let what = format!("sum_squares {dt:?} n {n} shift {shift}");
                let x = stored(&rand_vec(n as u64 + 5, n, -1.0, 1.0), dt);
                let d = upload_f32(&g, &[vec![0.0; shift], x.clone()].concat(), dt).unwrap();
                let want: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
                let out = upload_f32(&g, &[f32::NAN], Dt::F32).unwrap();
                let mut runs = Vec::new();
                for _ in 0..2 {
                    sum_squares(&g, dt, out.ptr(0), d.ptr(shift * dt.size()), n).unwrap();
                    runs.push(download_f32(&out, Dt::F32, 0, 1).unwrap()[0]);
                }
                // a sum of positive terms: f32 partial sums of at most ~80 terms per thread, then
                // trees; relative error well under 1e-5
                assert_close(&what, &runs[..1], &[want as f32], 0.0, 1e-5);
                assert_eq!(runs[0].to_bits(), runs[1].to_bits(), "{what}: runs differ");
            }
        }
    }
}

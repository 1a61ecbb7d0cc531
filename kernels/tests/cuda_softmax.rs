//! GPU softmax (kernels::cuda::softmax) against the CPU scalar reference, f32 and bf16 storage,
//! warp (cols <= 1024) and block versions, with masks that include fully masked rows.
//! Every test skips (passes) on a machine without a CUDA device.
mod common;

use common::gpu::{round, Buf};

use common::{assert_close, f32v, f64v, rand_vec};
use kernels::cpu::softmax::{softmax_bwd_scalar, softmax_fwd_scalar};
use kernels::cuda::softmax::{softmax_bwd, softmax_fwd};
use kernels::cuda::{Dt, Gpu};
use std::sync::Arc;

// ------------------------------------------------------------------------------------- softmax

/// The mask value HF uses: the storage type's minimum (bf16's is not f32::MIN, which rounds to
/// -inf in bf16).
fn dtype_min(dt: Dt) -> f32 {
    match dt {
        Dt::F32 => f32::MIN,
        Dt::BF16 => half::bf16::MIN.to_f32(),
    }
}

/// Mask rows (m_rows, C). Row kinds by index mod 4: 1 all -inf (the output is NaN), 2 all the
/// dtype minimum (f32 rounds scale * x away: uniform output), 0 and 3 mixed: entry 0 is 0, the
/// others 0, the minimum or -inf.
fn make_mask(dt: Dt, seed: u64, m_rows: usize, cols: usize) -> Vec<f32> {
    let u = rand_vec(seed, m_rows * cols, 0.0, 1.0);
    (0..m_rows * cols)
        .map(|i| match ((i / cols) % 4, i % cols, u[i]) {
            (1, _, _) => f32::NEG_INFINITY,
            (2, _, _) => dtype_min(dt),
            (_, 0, _) => 0.0,
            (_, _, u) if u < 0.5 => 0.0,
            (_, _, u) if u < 0.75 => dtype_min(dt),
            _ => f32::NEG_INFINITY,
        })
        .collect()
}

/// (abs, rel) tolerances of the forward: f32 output within a few ulp of the f64 reference plus the
/// exp and sum rounding; bf16 output within its rounding (2^-9 relative) of it.
fn fwd_tol(dt: Dt) -> (f32, f32) {
    match dt {
        Dt::F32 => (1e-7, 2e-5),
        Dt::BF16 => (1e-5, 8e-3),
    }
}

#[allow(clippy::too_many_arguments)]
fn check_fwd(g: &Arc<Gpu>, dt: Dt, rows: usize, cols: usize, rpm: Option<usize>, scale: f32, seed: u64) {
    let n = rows * cols;
    let x = round(dt, &rand_vec(seed, n, -8.0, 8.0));
    let mask = rpm.map(|rpm| round(dt, &make_mask(dt, seed ^ 7, rows / rpm, cols)));
    let rpm_or_1 = rpm.unwrap_or(1);
    let xb = Buf::new(g, dt, &x);
    let mb = mask.as_ref().map(|m| Buf::new(g, dt, m));
    let out = Buf::new(g, dt, &vec![f32::NAN; n]);
    softmax_fwd(g, dt, out.ptr(), xb.ptr(), mb.as_ref().map(|m| m.ptr()), rows, cols, rpm_or_1, scale).unwrap();
    let got = out.read("softmax_fwd");

    let mut want64 = vec![0f64; n];
    let m64 = mask.as_ref().map(|m| f64v(m));
    softmax_fwd_scalar(&mut want64, &f64v(&x), m64.as_deref(), rows, cols, rpm_or_1, scale as f64);
    let mut want = f32v(&want64);
    // Rows masked entirely with the minimum: in f64, scale * x + min keeps the differences of x,
    // while f32 (the CPU kernel's and the GPU's arithmetic) rounds them away, so the f32 reference
    // is the spec there.
    if let Some(m) = &mask {
        let mut want32 = vec![0f32; n];
        softmax_fwd_scalar(&mut want32, &x, Some(m), rows, cols, rpm_or_1, scale);
        for r in 0..rows {
            let mr = &m[(r / rpm_or_1) * cols..(r / rpm_or_1 + 1) * cols];
            if mr.iter().all(|&v| v == dtype_min(dt)) {
                want[r * cols..(r + 1) * cols].copy_from_slice(&want32[r * cols..(r + 1) * cols]);
            }
        }
    }
    let (abs, rel) = fwd_tol(dt);
    assert_close(&format!("softmax_fwd {dt:?} {rows}x{cols} rpm {rpm:?} scale {scale}"), &got, &want, abs, rel);
}

fn check_bwd(g: &Arc<Gpu>, dt: Dt, rows: usize, cols: usize, scale: f32, seed: u64) {
    let n = rows * cols;
    // y: real softmax rows (positive, summing to 1), as the backward gets them
    let mut y64 = vec![0f64; n];
    softmax_fwd_scalar(&mut y64, &f64v(&rand_vec(seed, n, -4.0, 4.0)), None, rows, cols, 1, 1.0);
    let y = round(dt, &f32v(&y64));
    let dout = round(dt, &rand_vec(seed ^ 3, n, -1.0, 1.0));
    let (yb, gb) = (Buf::new(g, dt, &y), Buf::new(g, dt, &dout));
    let dx = Buf::new(g, dt, &vec![f32::NAN; n]);
    softmax_bwd(g, dt, dx.ptr(), yb.ptr(), gb.ptr(), rows, cols, scale).unwrap();
    let got = dx.read("softmax_bwd");
    let mut want = vec![0f64; n];
    softmax_bwd_scalar(&mut want, &f64v(&y), &f64v(&dout), rows, cols, scale as f64);
    // |dx| <= scale * y * 2; the dot's f32 rounding is a few ulp of 1, times scale * y.
    let (abs, rel) = match dt {
        Dt::F32 => (1e-6, 1e-5),
        Dt::BF16 => (1e-5, 8e-3),
    };
    assert_close(&format!("softmax_bwd {dt:?} {rows}x{cols} scale {scale}"), &got, &f32v(&want), abs, rel);
}

const DTS: [Dt; 2] = [Dt::F32, Dt::BF16];
/// Both sides of every warp bucket (128, 256, 512, 768, 1024) and the block version.
const COLS: [usize; 15] = [1, 3, 17, 32, 33, 127, 128, 129, 257, 512, 768, 769, 1024, 1025, 3001];

#[test]
fn forward_matches_the_reference_without_a_mask() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        for (i, &cols) in COLS.iter().enumerate() {
            for rows in [1, 5, 37] {
                check_fwd(&g, dt, rows, cols, None, 1.0, i as u64 * 100 + rows as u64);
                check_fwd(&g, dt, rows, cols, None, 0.125, i as u64 * 100 + rows as u64 + 1);
            }
        }
    }
}

#[test]
fn forward_with_masks_shared_by_row_groups_and_fully_masked_rows() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        for (i, &cols) in COLS.iter().enumerate() {
            // 24 rows: 24, 8 or 2 mask rows (2: kinds 0 and 1 only), or one per row.
            for rpm in [1, 3, 12] {
                check_fwd(&g, dt, 24, cols, Some(rpm), 0.125, 7_000 + i as u64 * 10 + rpm as u64);
            }
        }
    }
}

#[test]
fn backward_matches_the_reference() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        for (i, &cols) in COLS.iter().enumerate() {
            for rows in [1, 6, 37] {
                check_bwd(&g, dt, rows, cols, 0.125, 9_000 + i as u64 * 100 + rows as u64);
            }
            check_bwd(&g, dt, 3, cols, 1.0, 9_999 + i as u64);
        }
    }
}

#[test]
fn many_rows_use_many_blocks() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        // 4099 rows: the warp versions' last block is partly empty (4 rows per block).
        check_fwd(&g, dt, 4099, 100, None, 0.5, 1);
        check_fwd(&g, dt, 4096, 64, Some(512), 0.5, 2);
        check_bwd(&g, dt, 4099, 100, 0.5, 3);
        check_fwd(&g, dt, 300, 2000, None, 0.5, 4);
    }
}

#[test]
fn empty_shapes_launch_nothing_and_bad_mask_groups_are_errors() {
    let Some(g) = kernels::cuda::test_device() else { return };
    let b = Buf::new(&g, Dt::F32, &[0.0; 12]);
    softmax_fwd(&g, Dt::F32, b.ptr(), b.ptr(), None, 0, 5, 1, 1.0).unwrap();
    softmax_fwd(&g, Dt::F32, b.ptr(), b.ptr(), None, 5, 0, 1, 1.0).unwrap();
    softmax_bwd(&g, Dt::F32, b.ptr(), b.ptr(), b.ptr(), 0, 5, 1.0).unwrap();
    let e = softmax_fwd(&g, Dt::F32, b.ptr(), b.ptr(), Some(b.ptr()), 4, 3, 3, 1.0).unwrap_err();
    assert!(e.0.contains("softmax_fwd") && e.0.contains("rows_per_mask"), "{e}");
    assert!(softmax_fwd(&g, Dt::F32, b.ptr(), b.ptr(), Some(b.ptr()), 4, 3, 0, 1.0).is_err());
    assert_eq!(b.read("untouched"), vec![0.0; 12]);
}

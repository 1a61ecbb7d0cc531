//! GPU cross-entropy (kernels::cuda::cross_entropy) against the CPU scalar reference in f64:
//! lse, the summed loss and the counted rows, and the backward driven by dloss and count read on
//! the device; f32 and bf16 logits, 16-byte and element-wise paths, ignored targets (-100),
//! rows with -inf logits. Skips on a machine without a CUDA device.
mod common;

use common::gpu::{round, Buf, GUARD};

use common::{assert_close, f32v, f64v, rand_vec};
use kernels::cpu::cross_entropy::{cross_entropy_bwd_scalar, cross_entropy_fwd_scalar};
use kernels::cuda::cross_entropy::{cross_entropy_bwd, cross_entropy_fwd};
use kernels::cuda::{upload_i64, Dt, Gpu};
use std::sync::Arc;

// ------------------------------------------------------------------------------- cross-entropy

const IGNORE: i64 = -100;

/// Targets in [0, cols), every `ignore_every`-th row (from row 1) IGNORE (0: none).
fn make_targets(seed: u64, rows: usize, cols: usize, ignore_every: usize) -> Vec<i64> {
    let u = rand_vec(seed, rows, 0.0, cols as f32);
    (0..rows)
        .map(|r| if ignore_every > 0 && r % ignore_every == 1 { IGNORE } else { (u[r] as i64).min(cols as i64 - 1) })
        .collect()
}

/// Runs forward then backward on `logits` (already rounded to `dt`) and checks both.
#[allow(clippy::too_many_arguments)]
fn check(g: &Arc<Gpu>, dt: Dt, logits: &[f32], targets: &[i64], rows: usize, cols: usize, lead: usize, what: &str) {
    let what = format!("{what} {dt:?} {rows}x{cols} lead {lead}");
    let lb = Buf::with_lead(g, dt, logits, lead);
    let tb = upload_i64(g, targets).unwrap();
    let lse = Buf::new(g, Dt::F32, &vec![f32::NAN; rows]);
    let (loss, count) = (Buf::new(g, Dt::F32, &[f32::NAN]), Buf::new(g, Dt::F32, &[f32::NAN]));
    cross_entropy_fwd(g, dt, loss.ptr(), count.ptr(), lse.ptr(), lb.ptr(), tb.ptr(0), rows, cols, IGNORE).unwrap();

    let mut want_lse = vec![0f64; rows];
    let (want_loss, want_count) = cross_entropy_fwd_scalar(&mut want_lse, &f64v(logits), targets, rows, cols, IGNORE);
    let got_lse = lse.read(&what);
    // lse ~ max + ln(C) <= ~21: f32 exp/log/sum rounding, a few ulp of it.
    assert_close(&format!("{what}: lse"), &got_lse, &f32v(&want_lse), 1e-5, 1e-5);
    assert_eq!(count.read(&what), vec![want_count as f32], "{what}: count");
    // Each row's loss lse - x[t] is f32 (error ~ ulp(21)); they are added in f64.
    let loss_abs = 4e-6 * rows as f32;
    assert_close(&format!("{what}: loss_sum"), &loss.read(&what), &[want_loss as f32], loss_abs, 1e-5);

    let dloss = Buf::new(g, Dt::F32, &[0.7]);
    let dl = Buf::with_lead(g, dt, &vec![f32::NAN; rows * cols], lead);
    cross_entropy_bwd(g, dt, dl.ptr(), lb.ptr(), lse.ptr(), tb.ptr(0), rows, cols, IGNORE, dloss.ptr(), count.ptr())
        .unwrap();
    // Reference on the GPU's own lse (so only the backward's arithmetic is compared); scale as the
    // engine would form it: dloss / count.
    let mut want = vec![0f64; rows * cols];
    let scale = if want_count > 0 { 0.7 / want_count as f64 } else { 0.0 };
    cross_entropy_bwd_scalar(&mut want, &f64v(logits), &f64v(&got_lse), targets, rows, cols, IGNORE, scale);
    // exp(x - lse): |x - lse| <= ~41, its f32 rounding is a relative error of a few 1e-6; the
    // one-hot entry subtracts scale in f32.
    let (abs, rel) = match dt {
        Dt::F32 => (1e-7, 2e-5),
        Dt::BF16 => (1e-7, 8e-3),
    };
    assert_close(&format!("{what}: dlogits"), &dl.read(&what), &f32v(&want), abs, rel);
}

const DTS: [Dt; 2] = [Dt::F32, Dt::BF16];
/// 30000: whole 16-byte units for both storage types (the vector path); 30001 and the odd widths
/// only element-wise; 8 and 32: vector path with one or a few units per row.
const COLS: [usize; 9] = [1, 3, 8, 32, 33, 769, 1000, 30000, 30001];

#[test]
fn forward_and_backward_match_the_reference() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        for (i, &cols) in COLS.iter().enumerate() {
            for rows in [1, 4, 37] {
                let seed = i as u64 * 100 + rows as u64;
                let logits = round(dt, &rand_vec(seed, rows * cols, -10.0, 10.0));
                let targets = make_targets(seed ^ 1, rows, cols, 3);
                check(&g, dt, &logits, &targets, rows, cols, GUARD, "cross_entropy");
            }
        }
    }
}

#[test]
fn misaligned_logits_take_the_element_wise_path() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        for cols in [8, 32, 30000] {
            let logits = round(dt, &rand_vec(cols as u64, 5 * cols, -10.0, 10.0));
            let targets = make_targets(3, 5, cols, 4);
            check(&g, dt, &logits, &targets, 5, cols, GUARD + 1, "cross_entropy misaligned");
        }
    }
}

#[test]
fn many_rows() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        // More rows than the reduction block has threads, with ignored rows among them.
        let (rows, cols) = (3000, 200);
        let logits = round(dt, &rand_vec(17, rows * cols, -10.0, 10.0));
        let targets = make_targets(18, rows, cols, 5);
        check(&g, dt, &logits, &targets, rows, cols, GUARD, "cross_entropy many rows");
    }
}

#[test]
fn rows_with_minus_infinity_and_all_ignored_rows() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        for cols in [50, 4096] {
            let rows = 4;
            let mut logits = round(dt, &rand_vec(5, rows * cols, -10.0, 10.0));
            // row 1: every odd class masked to -inf (target on an even class)
            for c in (1..cols).step_by(2) {
                logits[cols + c] = f32::NEG_INFINITY;
            }
            // row 2: all -inf (lse is NaN as in the reference), but its target is ignored
            logits[2 * cols..3 * cols].fill(f32::NEG_INFINITY);
            let targets = vec![7, 10, IGNORE, 3];
            check(&g, dt, &logits, &targets, rows, cols, GUARD, "cross_entropy -inf rows");
            // every row ignored: loss 0, count 0, dlogits 0
            check(&g, dt, &logits, &[IGNORE; 4], rows, cols, GUARD, "cross_entropy all ignored");
        }
    }
}

#[test]
fn no_rows_writes_zero_loss_and_zero_classes_is_an_error() {
    let Some(g) = kernels::cuda::test_device() else { return };
    let (loss, count) = (Buf::new(&g, Dt::F32, &[f32::NAN]), Buf::new(&g, Dt::F32, &[f32::NAN]));
    let e = Buf::new(&g, Dt::F32, &[]);
    cross_entropy_fwd(&g, Dt::F32, loss.ptr(), count.ptr(), e.ptr(), e.ptr(), e.ptr(), 0, 10, IGNORE).unwrap();
    assert_eq!((loss.read("loss"), count.read("count")), (vec![0.0], vec![0.0]));
    let err = cross_entropy_fwd(&g, Dt::F32, loss.ptr(), count.ptr(), e.ptr(), e.ptr(), e.ptr(), 3, 0, IGNORE);
    assert!(err.unwrap_err().0.contains("cross_entropy_fwd"));
    cross_entropy_bwd(&g, Dt::F32, e.ptr(), e.ptr(), e.ptr(), e.ptr(), 0, 10, IGNORE, loss.ptr(), count.ptr()).unwrap();
}

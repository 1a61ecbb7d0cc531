//! GPU row gather and scatter-add (kernels::cuda::gather) against the CPU scalar reference, f32
//! and bf16 storage, 16-byte and element-wise copies, repeated ids and out-of-range ids (the
//! forward writes zeros, the backward skips). Skips on a machine without a CUDA device.
mod common;

use common::gpu::{round, Buf, GUARD};

use common::{assert_close, f32v, f64v, rand_vec};
use kernels::cpu::gather::{gather_rows_bwd_scalar, gather_rows_fwd_scalar};
use kernels::cuda::gather::{gather_rows_bwd, gather_rows_fwd};
use kernels::cuda::{upload_i64, Dt, Gpu};
use std::sync::Arc;

// -------------------------------------------------------------------------------------- gather

/// `rows` ids into a table of `v` rows, with repeats; when `bad`, some are -1, v, and i64 extremes.
fn make_ids(seed: u64, rows: usize, v: usize, bad: bool) -> Vec<i64> {
    let u = rand_vec(seed, rows, 0.0, v as f32);
    (0..rows)
        .map(|r| match (bad, r % 7) {
            (true, 3) => -1,
            (true, 5) => v as i64,
            (true, 6) if r % 2 == 0 => i64::MIN,
            (true, 6) => i64::MAX,
            _ => (u[r] as i64).min(v as i64 - 1),
        })
        .collect()
}

fn in_range(id: i64, v: usize) -> bool {
    id >= 0 && (id as u64) < v as u64
}

#[allow(clippy::too_many_arguments)]
fn check_fwd(g: &Arc<Gpu>, dt: Dt, rows: usize, cols: usize, v: usize, bad: bool, lead: usize, seed: u64) {
    let table = round(dt, &rand_vec(seed, v * cols, -3.0, 3.0));
    let ids = make_ids(seed ^ 1, rows, v, bad);
    let tb = Buf::with_lead(g, dt, &table, lead);
    let ib = upload_i64(g, &ids).unwrap();
    let out = Buf::with_lead(g, dt, &vec![f32::NAN; rows * cols], lead);
    gather_rows_fwd(g, dt, out.ptr(), tb.ptr(), ib.ptr(0), rows, cols, v).unwrap();
    // Reference: the CPU gather of the valid ids; rows of invalid ids are zeros.
    let valid: Vec<usize> = ids.iter().filter(|&&i| in_range(i, v)).map(|&i| i as usize).collect();
    let mut gathered = vec![0f32; valid.len() * cols];
    gather_rows_fwd_scalar(&mut gathered, &table, &valid, cols);
    let mut want = vec![0f32; rows * cols];
    let mut k = 0;
    for (r, &id) in ids.iter().enumerate() {
        if in_range(id, v) {
            want[r * cols..(r + 1) * cols].copy_from_slice(&gathered[k * cols..(k + 1) * cols]);
            k += 1;
        }
    }
    let what = format!("gather_rows_fwd {dt:?} {rows}x{cols} from {v} rows (bad ids {bad}, lead {lead})");
    // A copy: bit-exact.
    assert_close(&what, &out.read(&what), &want, 0.0, 0.0);
}

fn check_bwd(g: &Arc<Gpu>, dt: Dt, rows: usize, cols: usize, v: usize, bad: bool, seed: u64) {
    let dout = round(dt, &rand_vec(seed, rows * cols, -1.0, 1.0));
    let init = rand_vec(seed ^ 2, v * cols, -1.0, 1.0);
    let ids = make_ids(seed ^ 1, rows, v, bad);
    let db = Buf::new(g, dt, &dout);
    let ib = upload_i64(g, &ids).unwrap();
    let dtable = Buf::new(g, Dt::F32, &init); // always f32, accumulates
    gather_rows_bwd(g, dt, dtable.ptr(), db.ptr(), ib.ptr(0), rows, cols, v).unwrap();
    // Reference: init + the CPU scatter-add of the rows with valid ids, in f64.
    let (mut idx, mut kept) = (Vec::new(), Vec::new());
    for (r, &id) in ids.iter().enumerate() {
        if in_range(id, v) {
            idx.push(id as usize);
            kept.extend_from_slice(&dout[r * cols..(r + 1) * cols]);
        }
    }
    let mut want = f64v(&init);
    gather_rows_bwd_scalar(&mut want, &f64v(&kept), &idx, cols);
    let what = format!("gather_rows_bwd {dt:?} {rows}x{cols} into {v} rows (bad ids {bad})");
    // f32 atomic adds in any order: a few ulp of the running sums (up to ~rows / v terms of 1).
    assert_close(&what, &dtable.read(&what), &f32v(&want), 1e-4, 1e-5);
}

const DTS: [Dt; 2] = [Dt::F32, Dt::BF16];
/// Row widths: 16-byte units for f32 only (4, 12), for both (8, 16, 128), or neither (odd).
const COLS: [usize; 10] = [1, 3, 4, 8, 12, 16, 17, 33, 128, 769];

#[test]
fn forward_copies_rows_and_zeroes_out_of_range_ids() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        for (i, &cols) in COLS.iter().enumerate() {
            for (rows, v) in [(1, 1), (7, 3), (100, 30), (1000, 7)] {
                let seed = i as u64 * 1000 + rows as u64;
                check_fwd(&g, dt, rows, cols, v, false, GUARD, seed);
                check_fwd(&g, dt, rows, cols, v, true, GUARD, seed + 1);
                // misaligned by one element: the element-wise path even for whole units
                check_fwd(&g, dt, rows, cols, v, false, GUARD + 1, seed + 2);
            }
        }
        check_fwd(&g, dt, 70_000, 64, 30_000, true, GUARD, 99);
    }
}

#[test]
fn backward_accumulates_repeated_ids_and_skips_out_of_range_ids() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        for (i, &cols) in COLS.iter().enumerate() {
            for (rows, v) in [(1, 1), (7, 3), (100, 30), (1000, 7)] {
                let seed = 5_000 + i as u64 * 1000 + rows as u64;
                check_bwd(&g, dt, rows, cols, v, false, seed);
                check_bwd(&g, dt, rows, cols, v, true, seed + 1);
            }
        }
        check_bwd(&g, dt, 70_000, 64, 30_000, true, 98);
    }
}

#[test]
fn empty_shapes_launch_nothing() {
    let Some(g) = kernels::cuda::test_device() else { return };
    let b = Buf::new(&g, Dt::F32, &[1.0; 4]);
    gather_rows_fwd(&g, Dt::F32, b.ptr(), b.ptr(), b.ptr(), 0, 4, 1).unwrap();
    gather_rows_fwd(&g, Dt::F32, b.ptr(), b.ptr(), b.ptr(), 1, 0, 1).unwrap();
    gather_rows_bwd(&g, Dt::F32, b.ptr(), b.ptr(), b.ptr(), 0, 4, 1).unwrap();
    assert_eq!(b.read("untouched"), vec![1.0; 4]);
}

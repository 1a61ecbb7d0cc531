//! GPU LayerNorm (kernels::cuda::layernorm) against the CPU scalar reference in f64: forward,
//! residual-fused forward and backward (dx, and dgamma/dbeta reduced over many blocks), f32 and
//! bf16 storage, warp (cols <= 1024) and block versions. Skips on a machine without a CUDA device.
mod common;

use common::gpu::{round, Buf};

use common::{assert_close, f32v, f64v, rand_vec};
use kernels::cpu::layernorm::{layernorm_bwd_scalar, layernorm_fwd_scalar};
use kernels::cuda::layernorm::{layernorm_bwd, layernorm_fwd, layernorm_residual_fwd};
use kernels::cuda::{Dt, Gpu};
use std::sync::Arc;

// ----------------------------------------------------------------------------------- layernorm

/// Rows with a per-row offset (so the mean is far from 0 and the two-pass variance matters) and a
/// per-row spread.
fn make_x(seed: u64, rows: usize, cols: usize) -> Vec<f32> {
    let u = rand_vec(seed, rows * cols, -1.0, 1.0);
    let off = rand_vec(seed ^ 11, rows, -4.0, 4.0);
    let spread = rand_vec(seed ^ 13, rows, 0.2, 3.0);
    (0..rows * cols).map(|i| off[i / cols.max(1)] + spread[i / cols.max(1)] * u[i]).collect()
}

/// (abs, rel) for the normalised output: f32 within a few ulp of the f64 reference (the mean's
/// rounding is amplified by rstd); bf16 within its own rounding (2^-9) of it.
fn out_tol(dt: Dt) -> (f32, f32) {
    match dt {
        Dt::F32 => (2e-5, 2e-5),
        Dt::BF16 => (2e-3, 8e-3),
    }
}

/// mean and rstd are f32 for both storage types, computed from the same (rounded) inputs.
const STATS_TOL: (f32, f32) = (1e-5, 5e-5);

struct Fwd {
    out: Vec<f32>,
    mean: Vec<f32>,
    rstd: Vec<f32>,
}

/// The f64 reference forward on (already rounded) x.
fn reference_fwd(x: &[f32], gamma: &[f32], beta: &[f32], rows: usize, cols: usize, eps: f32) -> Fwd {
    let (mut out, mut mean, mut rstd) = (vec![0f64; rows * cols], vec![0f64; rows], vec![0f64; rows]);
    let (gm, bt) = (f64v(gamma), f64v(beta));
    layernorm_fwd_scalar(&mut out, &mut mean, &mut rstd, &f64v(x), &gm, &bt, rows, cols, eps as f64);
    Fwd { out: f32v(&out), mean: f32v(&mean), rstd: f32v(&rstd) }
}

fn check_fwd(g: &Arc<Gpu>, dt: Dt, rows: usize, cols: usize, eps: f32, seed: u64) {
    let x = round(dt, &make_x(seed, rows, cols));
    let gamma = round(dt, &rand_vec(seed ^ 1, cols, 0.5, 1.5));
    let beta = round(dt, &rand_vec(seed ^ 2, cols, -0.5, 0.5));
    let (xb, gb, bb) = (Buf::new(g, dt, &x), Buf::new(g, dt, &gamma), Buf::new(g, dt, &beta));
    let out = Buf::new(g, dt, &vec![f32::NAN; rows * cols]);
    let (mean, rstd) = (Buf::new(g, Dt::F32, &vec![f32::NAN; rows]), Buf::new(g, Dt::F32, &vec![f32::NAN; rows]));
    layernorm_fwd(g, dt, out.ptr(), mean.ptr(), rstd.ptr(), xb.ptr(), gb.ptr(), bb.ptr(), rows, cols, eps).unwrap();
    let want = reference_fwd(&x, &gamma, &beta, rows, cols, eps);
    let what = format!("layernorm_fwd {dt:?} {rows}x{cols} eps {eps}");
    let (abs, rel) = out_tol(dt);
    assert_close(&format!("{what}: out"), &out.read(&what), &want.out, abs, rel);
    assert_close(&format!("{what}: mean"), &mean.read(&what), &want.mean, STATS_TOL.0, STATS_TOL.1);
    assert_close(&format!("{what}: rstd"), &rstd.read(&what), &want.rstd, STATS_TOL.0, STATS_TOL.1);
}

fn check_residual_fwd(g: &Arc<Gpu>, dt: Dt, rows: usize, cols: usize, seed: u64) {
    let eps = 1e-12;
    let x = round(dt, &make_x(seed, rows, cols));
    let res = round(dt, &rand_vec(seed ^ 5, rows * cols, -2.0, 2.0));
    let gamma = round(dt, &rand_vec(seed ^ 1, cols, 0.5, 1.5));
    let beta = round(dt, &rand_vec(seed ^ 2, cols, -0.5, 0.5));
    let bufs = [&x, &res, &gamma, &beta].map(|v| Buf::new(g, dt, v));
    let out = Buf::new(g, dt, &vec![f32::NAN; rows * cols]);
    let sum = Buf::new(g, dt, &vec![f32::NAN; rows * cols]);
    let (mean, rstd) = (Buf::new(g, Dt::F32, &vec![f32::NAN; rows]), Buf::new(g, Dt::F32, &vec![f32::NAN; rows]));
    let p = bufs.each_ref().map(|b| b.ptr());
    layernorm_residual_fwd(
        g,
        dt,
        out.ptr(),
        sum.ptr(),
        mean.ptr(),
        rstd.ptr(),
        p[0],
        p[1],
        p[2],
        p[3],
        rows,
        cols,
        eps,
    )
    .unwrap();
    // The kernel adds in f32 and stores the sum in `dt`; LN then runs on the stored sum.
    let want_sum = round(dt, &x.iter().zip(&res).map(|(a, b)| a + b).collect::<Vec<f32>>());
    let what = format!("layernorm_residual_fwd {dt:?} {rows}x{cols}");
    assert_close(&format!("{what}: sum"), &sum.read(&what), &want_sum, 0.0, 0.0);
    let want = reference_fwd(&want_sum, &gamma, &beta, rows, cols, eps);
    let (abs, rel) = out_tol(dt);
    assert_close(&format!("{what}: out"), &out.read(&what), &want.out, abs, rel);
    assert_close(&format!("{what}: mean"), &mean.read(&what), &want.mean, STATS_TOL.0, STATS_TOL.1);
    assert_close(&format!("{what}: rstd"), &rstd.read(&what), &want.rstd, STATS_TOL.0, STATS_TOL.1);
}

fn check_bwd(g: &Arc<Gpu>, dt: Dt, rows: usize, cols: usize, seed: u64) {
    let n = rows * cols;
    let x = round(dt, &make_x(seed, rows, cols));
    let gamma = round(dt, &rand_vec(seed ^ 1, cols, 0.5, 1.5));
    let dout = round(dt, &rand_vec(seed ^ 3, n, -1.0, 1.0));
    // The statistics the forward saved (f32), as the backward gets them.
    let stats = reference_fwd(&x, &gamma, &vec![0.0; cols], rows, cols, 1e-12);
    let (xb, gb, db) = (Buf::new(g, dt, &x), Buf::new(g, dt, &gamma), Buf::new(g, dt, &dout));
    let (mb, rb) = (Buf::new(g, Dt::F32, &stats.mean), Buf::new(g, Dt::F32, &stats.rstd));
    let dx = Buf::new(g, dt, &vec![f32::NAN; n]);
    // Garbage in dgamma/dbeta: the GPU backward overwrites them.
    let dgamma = Buf::new(g, dt, &vec![1e3; cols]);
    let dbeta = Buf::new(g, dt, &vec![-1e3; cols]);
    layernorm_bwd(
        g,
        dt,
        dx.ptr(),
        dgamma.ptr(),
        dbeta.ptr(),
        db.ptr(),
        xb.ptr(),
        gb.ptr(),
        mb.ptr(),
        rb.ptr(),
        rows,
        cols,
    )
    .unwrap();
    let (mut wdx, mut wdg, mut wdb) = (vec![0f64; n], vec![0f64; cols], vec![0f64; cols]);
    let (m64, r64) = (f64v(&stats.mean), f64v(&stats.rstd));
    layernorm_bwd_scalar(&mut wdx, &mut wdg, &mut wdb, &f64v(&dout), &f64v(&x), &f64v(&gamma), &m64, &r64, rows, cols);
    let what = format!("layernorm_bwd {dt:?} {rows}x{cols}");
    // dx = rstd (g - mean(g) - xhat mean(g xhat)): rstd up to ~5 here amplifies f32 rounding of
    // terms of size ~1; dgamma/dbeta are sums over up to 20000 rows (f32, blocked).
    let (dx_tol, dp_tol) = match dt {
        Dt::F32 => ((1e-4, 1e-4), (1e-3, 1e-4)),
        Dt::BF16 => ((2e-3, 8e-3), (2e-2, 8e-3)),
    };
    assert_close(&format!("{what}: dx"), &dx.read(&what), &f32v(&wdx), dx_tol.0, dx_tol.1);
    assert_close(&format!("{what}: dgamma"), &dgamma.read(&what), &f32v(&wdg), dp_tol.0, dp_tol.1);
    assert_close(&format!("{what}: dbeta"), &dbeta.read(&what), &f32v(&wdb), dp_tol.0, dp_tol.1);
}

const DTS: [Dt; 2] = [Dt::F32, Dt::BF16];
/// Both sides of every warp bucket (128, 256, 512, 768, 1024) and the block version.
const COLS: [usize; 14] = [1, 3, 17, 33, 127, 128, 129, 256, 512, 768, 769, 1024, 1025, 3001];

#[test]
fn forward_matches_the_reference() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        for (i, &cols) in COLS.iter().enumerate() {
            for rows in [1, 5, 37] {
                check_fwd(&g, dt, rows, cols, 1e-12, i as u64 * 100 + rows as u64);
            }
            check_fwd(&g, dt, 9, cols, 1e-5, 50_000 + i as u64);
        }
        check_fwd(&g, dt, 4099, 768, 1e-12, 77);
    }
}

#[test]
fn zero_columns_give_nan_statistics_like_the_reference() {
    let Some(g) = kernels::cuda::test_device() else { return };
    let empty = Buf::new(&g, Dt::F32, &[]);
    let (mean, rstd) = (Buf::new(&g, Dt::F32, &[0.0; 3]), Buf::new(&g, Dt::F32, &[0.0; 3]));
    let e = empty.ptr();
    layernorm_fwd(&g, Dt::F32, e, mean.ptr(), rstd.ptr(), e, e, e, 3, 0, 1e-12).unwrap();
    assert!(mean.read("mean").iter().chain(&rstd.read("rstd")).all(|v| v.is_nan()));
}

#[test]
fn residual_forward_stores_the_sum_and_normalises_it() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        for (i, &cols) in COLS.iter().enumerate() {
            for rows in [1, 6, 37] {
                check_residual_fwd(&g, dt, rows, cols, 1_000 + i as u64 * 100 + rows as u64);
            }
        }
    }
}

#[test]
fn backward_matches_the_reference() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        for (i, &cols) in COLS.iter().enumerate() {
            for rows in [1, 7, 37, 300] {
                check_bwd(&g, dt, rows, cols, 2_000 + i as u64 * 100 + rows as u64);
            }
        }
    }
}

#[test]
fn backward_reduces_parameter_gradients_over_many_blocks() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        // Up to the 2048-block cap with several rows per warp, partly filled last blocks, and
        // the block version with several rows per block.
        check_bwd(&g, dt, 20_001, 64, 1);
        check_bwd(&g, dt, 5_000, 33, 2);
        check_bwd(&g, dt, 4_099, 768, 3);
        check_bwd(&g, dt, 3_000, 1025, 4);
    }
}

#[test]
fn backward_of_no_rows_zeroes_the_parameter_gradients() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        let (dgamma, dbeta) = (Buf::new(&g, dt, &[5.0; 40]), Buf::new(&g, dt, &[5.0; 40]));
        let e = Buf::new(&g, dt, &[]);
        let p = e.ptr();
        layernorm_bwd(&g, dt, p, dgamma.ptr(), dbeta.ptr(), p, p, p, p, p, 0, 40).unwrap();
        assert_eq!(dgamma.read("dgamma"), vec![0.0; 40]);
        assert_eq!(dbeta.read("dbeta"), vec![0.0; 40]);
    }
}

#[test]
fn the_backward_is_bitwise_reproducible() {
    let Some(g) = kernels::cuda::test_device() else { return };
    let (rows, cols) = (10_000, 768);
    let x = make_x(5, rows, cols);
    let gamma = rand_vec(6, cols, 0.5, 1.5);
    let dout = rand_vec(7, rows * cols, -1.0, 1.0);
    let stats = reference_fwd(&x, &gamma, &vec![0.0; cols], rows, cols, 1e-12);
    let bufs = [&x, &gamma, &dout, &stats.mean, &stats.rstd].map(|v| Buf::new(&g, Dt::F32, v));
    let p = bufs.each_ref().map(|b| b.ptr());
    let run = || {
        let dx = Buf::new(&g, Dt::F32, &vec![0.0; rows * cols]);
        let (dgamma, dbeta) = (Buf::new(&g, Dt::F32, &vec![0.0; cols]), Buf::new(&g, Dt::F32, &vec![0.0; cols]));
        layernorm_bwd(&g, Dt::F32, dx.ptr(), dgamma.ptr(), dbeta.ptr(), p[2], p[0], p[1], p[3], p[4], rows, cols)
            .unwrap();
        (dgamma.read("dgamma"), dbeta.read("dbeta"))
    };
    let (a, b) = (run(), run());
    assert!(a.0.iter().zip(&b.0).all(|(u, v)| u.to_bits() == v.to_bits()), "dgamma differs between runs");
    assert!(a.1.iter().zip(&b.1).all(|(u, v)| u.to_bits() == v.to_bits()), "dbeta differs between runs");
}

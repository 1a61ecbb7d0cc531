//! The GPU front of ALBERT's fused embedding (kernels::cuda::embeddings) against an unfused host
//! computation in f64 written from the CPU op's math (engine/src/ops/embeddings.rs): three row
//! gathers summed as (word + position) + token_type, LayerNorm(E) with biased variance, dropout
//! keep iff uniform01(seed, r * E + c) >= p scaled by 1 / (1 - p); and its backward (x recomputed
//! from the ids, scatter-add into the three tables skipping padding_idx rows for the word table,
//! dgamma/dbeta accumulated). f32 and bf16 storage. Skips on a machine without a CUDA device.
mod common;

use common::gpu::{round, Buf};

use common::{assert_close, f32v, rand_vec};
use kernels::cuda::embeddings::{embed_ln_bwd, embed_ln_fwd};
use kernels::cuda::{upload_i64, DevPtr, DeviceBuffer, Dt, Gpu};
use std::sync::Arc;

// ---------------------------------------------------------------------- the f64 host reference

/// common.cuh's counter-based generator, bit for bit: splitmix64's finaliser of
/// seed + golden * (i + 1), top 24 bits scaled to [0, 1).
fn uniform01(seed: u64, i: u64) -> f32 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 40) as f32 * (1.0 / 16_777_216.0)
}

/// One problem: tables and ids as the GPU gets them (values already rounded to `dt`).
struct Case {
    dt: Dt,
    rows: usize,
    e: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    ids: Vec<i64>,
    pos_ids: Vec<i64>,
    type_ids: Vec<i64>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

const V: usize = 23;
const P: usize = 16;
const T: usize = 2;

fn make_case(dt: Dt, rows: usize, e: usize, seed: u64) -> Case {
    let ids_of =
        |s: u64, n: usize| rand_vec(s, rows, 0.0, n as f32).iter().map(|&u| (u as i64).min(n as i64 - 1)).collect();
    Case {
        dt,
        rows,
        e,
        word: round(dt, &rand_vec(seed, V * e, -1.0, 1.0)),
        position: round(dt, &rand_vec(seed ^ 1, P * e, -0.5, 0.5)),
        token_type: round(dt, &rand_vec(seed ^ 2, T * e, -0.2, 0.2)),
        // word id 0 (the padding id in some tests) comes up about once in 23 rows
        ids: ids_of(seed ^ 3, V),
        pos_ids: (0..rows).map(|r| (r % P) as i64).collect(),
        type_ids: ids_of(seed ^ 4, T),
        gamma: round(dt, &rand_vec(seed ^ 5, e, 0.5, 1.5)),
        beta: round(dt, &rand_vec(seed ^ 6, e, -0.5, 0.5)),
    }
}

impl Case {
    /// x[r, :] = (word[ids[r]] + position[pos_ids[r]]) + token_type[type_ids[r]], in f64.
    fn x(&self, r: usize) -> Vec<f64> {
        let e = self.e;
        let (w, q, t) = (self.ids[r] as usize, self.pos_ids[r] as usize, self.type_ids[r] as usize);
        (0..e)
            .map(|c| {
                (self.word[w * e + c] as f64 + self.position[q * e + c] as f64) + self.token_type[t * e + c] as f64
            })
            .collect()
    }

    /// The dropout factor of element (r, c): 0, or 1 / (1 - p) where kept (1 without dropout).
    fn keep(&self, r: usize, c: usize, p: f32, seed: u64) -> f64 {
        if p == 0.0 {
            1.0
        } else if uniform01(seed, (r * self.e + c) as u64) >= p {
            1.0 / (1.0 - p as f64)
        } else {
            0.0
        }
    }

    /// (y, mean, rstd): y = dropout(LN(x)), biased variance.
    fn forward(&self, eps: f64, p: f32, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let e = self.e;
        let (mut y, mut mean, mut rstd) = (vec![0f64; self.rows * e], vec![0f64; self.rows], vec![0f64; self.rows]);
        for r in 0..self.rows {
            let x = self.x(r);
            let m = x.iter().sum::<f64>() / e as f64;
            let var = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / e as f64;
            let s = 1.0 / (var + eps).sqrt();
            for c in 0..e {
                let ln = (x[c] - m) * s * self.gamma[c] as f64 + self.beta[c] as f64;
                y[r * e + c] = ln * self.keep(r, c, p, seed);
            }
            (mean[r], rstd[r]) = (m, s);
        }
        (y, mean, rstd)
    }

    /// Increments (dword, dposition, dtype, dgamma, dbeta) from dy, with the saved statistics.
    #[allow(clippy::type_complexity)]
    fn backward(
        &self,
        dy: &[f32],
        mean: &[f32],
        rstd: &[f32],
        p: f32,
        seed: u64,
        padding_idx: i64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let e = self.e;
        let (mut dw, mut dp, mut dt) = (vec![0f64; V * e], vec![0f64; P * e], vec![0f64; T * e]);
        let (mut dg, mut db) = (vec![0f64; e], vec![0f64; e]);
        for r in 0..self.rows {
            let x = self.x(r);
            let (m, s) = (mean[r] as f64, rstd[r] as f64);
            let xh: Vec<f64> = x.iter().map(|v| (v - m) * s).collect();
            let go: Vec<f64> = (0..e).map(|c| dy[r * e + c] as f64 * self.keep(r, c, p, seed)).collect();
            let gg: Vec<f64> = (0..e).map(|c| go[c] * self.gamma[c] as f64).collect();
            let mg = gg.iter().sum::<f64>() / e as f64;
            let mgx = gg.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / e as f64;
            let (w, q, t) = (self.ids[r] as usize, self.pos_ids[r] as usize, self.type_ids[r] as usize);
            for c in 0..e {
                let dx = s * (gg[c] - mg - xh[c] * mgx);
                if self.ids[r] != padding_idx {
                    dw[w * e + c] += dx;
                }
                dp[q * e + c] += dx;
                dt[t * e + c] += dx;
                dg[c] += go[c] * xh[c];
                db[c] += go[c];
            }
        }
        (dw, dp, dt, dg, db)
    }
}

/// Device copies of a case's inputs.
struct DevCase {
    tables: [Buf; 3],
    ids: [DeviceBuffer; 3],
    gamma: Buf,
    beta: Buf,
}

fn upload_case(g: &Arc<Gpu>, c: &Case) -> DevCase {
    DevCase {
        tables: [&c.word, &c.position, &c.token_type].map(|t| Buf::new(g, c.dt, t)),
        ids: [&c.ids, &c.pos_ids, &c.type_ids].map(|v| upload_i64(g, v).unwrap()),
        gamma: Buf::new(g, c.dt, &c.gamma),
        beta: Buf::new(g, c.dt, &c.beta),
    }
}

/// Runs the GPU forward; returns (y, mean, rstd) as read back.
fn gpu_forward(g: &Arc<Gpu>, c: &Case, d: &DevCase, eps: f32, p: f32, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let y = Buf::new(g, c.dt, &vec![f32::NAN; c.rows * c.e]);
    let (mean, rstd) = (Buf::new(g, Dt::F32, &vec![f32::NAN; c.rows]), Buf::new(g, Dt::F32, &vec![f32::NAN; c.rows]));
    let [w, q, t] = d.tables.each_ref().map(|b| b.ptr());
    let [iw, iq, it] = d.ids.each_ref().map(|b| b.ptr(0));
    let (gm, bt) = (d.gamma.ptr(), d.beta.ptr());
    embed_ln_fwd(g, c.dt, y.ptr(), mean.ptr(), rstd.ptr(), w, q, t, iw, iq, it, gm, bt, c.rows, c.e, eps, p, seed)
        .unwrap();
    (y.read("embed_ln_fwd y"), mean.read("embed_ln_fwd mean"), rstd.read("embed_ln_fwd rstd"))
}

fn check(g: &Arc<Gpu>, dt: Dt, rows: usize, e: usize, p: f32, padding_idx: i64, seed: u64) {
    let what = format!("embed_ln {dt:?} R {rows} E {e} p {p} padding {padding_idx}");
    let eps = 1e-12;
    let c = make_case(dt, rows, e, seed);
    let d = upload_case(g, &c);

    // forward
    let (y, mean, rstd) = gpu_forward(g, &c, &d, eps, p, seed ^ 0xd0);
    let (wy, wmean, wrstd) = c.forward(eps as f64, p, seed ^ 0xd0);
    let y_tol = match dt {
        Dt::F32 => (2e-5, 2e-5),
        Dt::BF16 => (2e-3, 8e-3),
    };
    assert_close(&format!("{what}: y"), &y, &f32v(&wy), y_tol.0, y_tol.1);
    assert_close(&format!("{what}: mean"), &mean, &f32v(&wmean), 1e-6, 1e-5);
    assert_close(&format!("{what}: rstd"), &rstd, &f32v(&wrstd), 1e-6, 5e-5);

    // backward from the GPU's own statistics, into gradients that already hold values
    let dy = round(dt, &rand_vec(seed ^ 7, rows * e, -1.0, 1.0));
    let dyb = Buf::new(g, dt, &dy);
    let inits: Vec<Vec<f32>> = [V * e, P * e, T * e, e, e]
        .iter()
        .enumerate()
        .map(|(k, &n)| rand_vec(seed ^ (100 + k as u64), n, -1.0, 1.0))
        .collect();
    let grads: Vec<Buf> = inits.iter().map(|v| Buf::new(g, Dt::F32, v)).collect();
    let (mb, rb) = (Buf::new(g, Dt::F32, &mean), Buf::new(g, Dt::F32, &rstd));
    let [w, q, t] = d.tables.each_ref().map(|b| b.ptr());
    let [iw, iq, it] = d.ids.each_ref().map(|b| b.ptr(0));
    let gp: Vec<DevPtr> = grads.iter().map(|b| b.ptr()).collect();
    embed_ln_bwd(
        g,
        dt,
        gp[0],
        gp[1],
        gp[2],
        gp[3],
        gp[4],
        dyb.ptr(),
        w,
        q,
        t,
        iw,
        iq,
        it,
        d.gamma.ptr(),
        mb.ptr(),
        rb.ptr(),
        rows,
        e,
        p,
        seed ^ 0xd0,
        padding_idx,
    )
    .unwrap();
    let (dw, dp, dtt, dg, db) = c.backward(&dy, &mean, &rstd, p, seed ^ 0xd0, padding_idx);
    // Table rows sum up to ~rows / T contributions of size ~rstd (f32 atomics, any order);
    // dgamma/dbeta sum `rows` terms (f32, blocked). All outputs are f32 for both storage types.
    let names = ["dword", "dposition", "dtype", "dgamma", "dbeta"];
    for (k, inc) in [dw, dp, dtt, dg, db].iter().enumerate() {
        let want: Vec<f32> = inits[k].iter().zip(inc).map(|(&a, &b)| (a as f64 + b) as f32).collect();
        let (abs, rel) = if k < 3 { (3e-4, 1e-4) } else { (1e-3, 1e-4) };
        assert_close(&format!("{what}: {}", names[k]), &grads[k].read(names[k]), &want, abs, rel);
    }
}

const DTS: [Dt; 2] = [Dt::F32, Dt::BF16];
/// One value per thread (E <= 1024, partial warps at 1, 3, 33, 769) and up to four (1025, 4096).
const ES: [usize; 8] = [1, 3, 33, 128, 769, 1024, 1025, 4096];

#[test]
fn forward_and_backward_match_the_unfused_reference() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        for (i, &e) in ES.iter().enumerate() {
            for rows in [1, 7, 300] {
                let seed = i as u64 * 1000 + rows as u64;
                check(&g, dt, rows, e, 0.0, -1, seed);
                check(&g, dt, rows, e, 0.1, 0, seed + 1);
            }
        }
    }
}

#[test]
fn many_rows_split_over_many_blocks() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in DTS {
        check(&g, dt, 20_000, 128, 0.1, 0, 1);
        check(&g, dt, 2_100, 64, 0.0, -1, 2);
    }
}

#[test]
fn dropout_draws_match_the_host_generator_exactly() {
    let Some(g) = kernels::cuda::test_device() else { return };
    // With p = 0.5 about half the outputs are exactly 0, at the positions the host draws.
    let c = make_case(Dt::F32, 50, 128, 3);
    let d = upload_case(&g, &c);
    let (y, _, _) = gpu_forward(&g, &c, &d, 1e-12, 0.5, 42);
    let zeros: Vec<bool> = y.iter().map(|&v| v == 0.0).collect();
    let dropped: Vec<bool> = (0..50 * 128).map(|i| uniform01(42, i as u64) < 0.5).collect();
    assert_eq!(zeros, dropped);
}

#[test]
fn bad_sizes_are_errors() {
    let Some(g) = kernels::cuda::test_device() else { return };
    let b = Buf::new(&g, Dt::F32, &[0.0; 4]);
    let p = b.ptr();
    let fwd = |e: usize, drop: f32| embed_ln_fwd(&g, Dt::F32, p, p, p, p, p, p, p, p, p, p, p, 1, e, 1e-12, drop, 0);
    assert!(fwd(4097, 0.0).unwrap_err().0.contains("embed_ln_fwd"));
    assert!(fwd(0, 0.0).is_err());
    assert!(fwd(4, 1.0).is_err());
    assert!(fwd(4, -0.1).is_err());
    let bwd = embed_ln_bwd(&g, Dt::F32, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, 1, 5000, 0.0, 0, -1);
    assert!(bwd.unwrap_err().0.contains("embed_ln_bwd"));
    assert_eq!(b.read("untouched"), vec![0.0; 4]);
}

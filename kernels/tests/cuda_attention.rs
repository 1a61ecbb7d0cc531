//! Fused attention on the GPU (kernels::cuda::attention) against an f64 host reference:
//! scores = scale * Q K^T + mask, P = softmax (cpu::softmax::softmax_fwd_scalar, the spec), O = P V,
//! and the analytic backward dP = dO V^T, dS = P (dP - rowsum(dP P)), dQ = scale dS K,
//! dK = scale dS^T Q, dV = P^T dO.
//!
//! Covers f32 (SIMT) and bf16 (tensor cores; SIMT for an unaligned view), d in {32, 64, 128},
//! odd lengths, [B,S,N,D], [B,N,S,D] and padded layouts (whose gaps must stay untouched), no mask,
//! partial masks and a fully masked batch row (uniform attention, as the CPU softmax gives).
//! GPU tests print "skipped: no CUDA device" and pass on machines without one. The f64 reference
//! is slow in debug builds: run with --release on the GPU machine.

mod common;

use common::rand_vec;
use kernels::cpu::softmax::softmax_fwd_scalar;
use kernels::cuda::attention::{attention_bwd, attention_fwd, check_shape, AttnLayout, AttnShape};
use kernels::cuda::{download_f32, upload_f32, DeviceBuffer, Dt, Gpu};
use std::sync::Arc;

/// What every output buffer holds before a kernel runs: exact in bf16, never a result by chance.
const SENTINEL: f32 = 768.0;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lay {
    Bsnd,
    Bnsd,
    /// [B, S, N, D] with 8 spare elements after each row and 16 after each batch.
    Padded,
}

/// The layout of a (B, N, S, D) tensor and the buffer length it needs.
fn make_layout(lay: Lay, b: usize, n: usize, s: usize, d: usize) -> (AttnLayout, usize) {
    match lay {
        Lay::Bsnd => (AttnLayout::bsnd(s, n, d), b * s * n * d),
        Lay::Bnsd => (AttnLayout::bnsd(n, s, d), b * n * s * d),
        Lay::Padded => {
            let rs = n * d + 8;
            let bs = s * rs + 16;
            (AttnLayout { batch_stride: bs, head_stride: d, row_stride: rs }, b * bs)
        }
    }
}

fn offset(l: &AttnLayout, bi: usize, h: usize, si: usize, di: usize) -> usize {
    bi * l.batch_stride + h * l.head_stride + si * l.row_stride + di
}

/// Logical [B, N, S, D] values into a strided buffer of `len` elements (the rest `fill`).
#[allow(clippy::too_many_arguments)]
fn pack(x: &[f32], l: &AttnLayout, len: usize, b: usize, n: usize, s: usize, d: usize, fill: f32) -> Vec<f32> {
    let mut buf = vec![fill; len];
    for bi in 0..b {
        for h in 0..n {
            for si in 0..s {
                for di in 0..d {
                    buf[offset(l, bi, h, si, di)] = x[((bi * n + h) * s + si) * d + di];
                }
            }
        }
    }
    buf
}

/// The logical [B, N, S, D] values of a strided buffer; panics if an element outside the tensor
/// changed from `fill` (a write out of place).
#[allow(clippy::too_many_arguments)]
fn unpack(what: &str, buf: &[f32], l: &AttnLayout, b: usize, n: usize, s: usize, d: usize, fill: f32) -> Vec<f32> {
    let mut out = vec![0.0; b * n * s * d];
    let mut covered = vec![false; buf.len()];
    for bi in 0..b {
        for h in 0..n {
            for si in 0..s {
                for di in 0..d {
                    let o = offset(l, bi, h, si, di);
                    out[((bi * n + h) * s + si) * d + di] = buf[o];
                    covered[o] = true;
                }
            }
        }
    }
    for (i, (&v, &c)) in buf.iter().zip(&covered).enumerate() {
        assert!(c || v.to_bits() == fill.to_bits(), "{what}: element {i} outside the tensor was written ({v})");
    }
    out
}

fn round_bf16(x: &mut [f32]) {
    for v in x {
        *v = half::bf16::from_f32(*v).to_f32();
    }
}

/// An additive key mask [B, S_k] as HF builds it (0 or f32::MIN), plus a few mild penalties.
/// With b >= 2 the last batch row is fully masked.
fn make_mask(seed: u64, b: usize, s_k: usize) -> Vec<f32> {
    let r = rand_vec(seed, b * s_k, 0.0, 1.0);
    let mut m: Vec<f32> = r
        .iter()
        .map(|&u| {
            if u < 0.3 {
                f32::MIN
            } else if u < 0.4 {
                -2.5
            } else {
                0.0
            }
        })
        .collect();
    for bi in 0..b {
        m[bi * s_k + (bi * 7 + 3) % s_k] = 0.0; // every row attends to something...
    }
    if b >= 2 {
        m[(b - 1) * s_k..].fill(f32::MIN); // ...except the last, fully padded one
    }
    m
}

struct Reference {
    o: Vec<f64>,
    lse: Vec<f64>,
    dq: Vec<f64>,
    dk: Vec<f64>,
    dv: Vec<f64>,
}

/// f64 reference on logical [B, N, S, D] inputs. lse is the log-sum-exp of z - mu_b with
/// mu_b = max_k mask[b, k] (0 without a mask), as documented in kernels::cuda::attention.
#[allow(clippy::too_many_arguments)]
fn reference(sh: &AttnShape, q: &[f32], k: &[f32], v: &[f32], mask: Option<&[f32]>, dout: &[f32]) -> Reference {
    let AttnShape { b, n, s_q, s_k, d, scale } = *sh;
    let scale = scale as f64;
    let (q, k, v, dout) = (common::f64v(q), common::f64v(k), common::f64v(v), common::f64v(dout));
    let mask = mask.map(common::f64v);
    let mut r = Reference {
        o: vec![0.0; b * n * s_q * d],
        lse: vec![0.0; b * n * s_q],
        dq: vec![0.0; b * n * s_q * d],
        dk: vec![0.0; b * n * s_k * d],
        dv: vec![0.0; b * n * s_k * d],
    };
    let (mut dots, mut p, mut dp) = (vec![0.0f64; s_k], vec![0.0f64; s_k], vec![0.0f64; s_k]);
    for bi in 0..b {
        let mrow = mask.as_ref().map(|m| &m[bi * s_k..(bi + 1) * s_k]);
        let mu = mrow.map_or(0.0, |m| m.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        for h in 0..n {
            let qh = (bi * n + h) * s_q;
            let kh = (bi * n + h) * s_k;
            for i in 0..s_q {
                let qi = &q[(qh + i) * d..(qh + i + 1) * d];
                let gi = &dout[(qh + i) * d..(qh + i + 1) * d];
                for j in 0..s_k {
                    let kj = &k[(kh + j) * d..(kh + j + 1) * d];
                    dots[j] = qi.iter().zip(kj).map(|(a, b)| a * b).sum();
                }
                softmax_fwd_scalar(&mut p, &dots, mrow, 1, s_k, 1, scale);
                // lse of the shifted scores, from the same z the softmax used.
                let z: Vec<f64> = (0..s_k).map(|j| scale * dots[j] + mrow.map_or(0.0, |m| m[j]) - mu).collect();
                let zmax = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                r.lse[qh + i] = zmax + z.iter().map(|&x| (x - zmax).exp()).sum::<f64>().ln();
                let oi = &mut r.o[(qh + i) * d..(qh + i + 1) * d];
                for j in 0..s_k {
                    let vj = &v[(kh + j) * d..(kh + j + 1) * d];
                    for (o, &x) in oi.iter_mut().zip(vj) {
                        *o += p[j] * x;
                    }
                    dp[j] = gi.iter().zip(vj).map(|(a, b)| a * b).sum();
                }
                let rs: f64 = (0..s_k).map(|j| p[j] * dp[j]).sum();
                for j in 0..s_k {
                    let ds = p[j] * (dp[j] - rs);
                    let kj = &k[(kh + j) * d..(kh + j + 1) * d];
                    for c in 0..d {
                        r.dq[(qh + i) * d + c] += scale * ds * kj[c];
                        r.dk[(kh + j) * d + c] += scale * ds * qi[c];
                        r.dv[(kh + j) * d + c] += p[j] * gi[c];
                    }
                }
            }
        }
    }
    r
}

/// Elementwise |got - want| <= tol * (max|want| + |want|), and a relative Frobenius error under
/// tol / 2; failures name the tensor, the index and both values.
fn check(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let max_abs = want.iter().fold(0.0f64, |m, w| m.max(w.abs())).max(1e-30);
    let (mut se, mut sw) = (0.0f64, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            g.is_finite() && err <= tol * (max_abs + w.abs()),
            "{what}: index {i}: got {g}, want {w} (|diff| {err:.3e}, max |want| {max_abs:.3e}, tol {tol})"
        );
        se += err * err;
        sw += w * w;
    }
    if sw > 0.0 {
        let rel = (se / sw).sqrt();
        assert!(rel <= tol / 2.0, "{what}: relative Frobenius error {rel:.3e} > {}", tol / 2.0);
    }
}

fn upload(g: &Arc<Gpu>, data: &[f32], dt: Dt) -> DeviceBuffer {
    upload_f32(g, data, dt).expect("upload")
}

struct Case {
    dt: Dt,
    b: usize,
    n: usize,
    s_q: usize,
    s_k: usize,
    d: usize,
    lay: Lay,
    masked: bool,
    seed: u64,
    /// Elements of slack before every input and output (1 makes bf16 views unaligned).
    shift: usize,
}

/// Runs forward and backward on the GPU and compares everything with the f64 reference.
fn run_case(g: &Arc<Gpu>, c: &Case) {
    let Case { dt, b, n, s_q, s_k, d, lay, masked, seed, shift } = *c;
    let sh = AttnShape { b, n, s_q, s_k, d, scale: 1.0 / (d as f32).sqrt() };
    let name = format!("{dt:?} b={b} n={n} s_q={s_q} s_k={s_k} d={d} {lay:?} mask={masked} shift={shift}");
    let mut q = rand_vec(seed, b * n * s_q * d, -2.0, 2.0);
    let mut k = rand_vec(seed + 1, b * n * s_k * d, -1.0, 1.0);
    let mut v = rand_vec(seed + 2, b * n * s_k * d, -1.0, 1.0);
    let mut dout = rand_vec(seed + 3, b * n * s_q * d, -1.0, 1.0);
    if dt == Dt::BF16 {
        for x in [&mut q, &mut k, &mut v, &mut dout] {
            round_bf16(x);
        }
    }
    let mask = masked.then(|| make_mask(seed + 4, b, s_k));
    let want = reference(&sh, &q, &k, &v, mask.as_deref(), &dout);

    let (lq, len_q) = make_layout(lay, b, n, s_q, d);
    let (lk, len_k) = make_layout(lay, b, n, s_k, d);
    // Inputs and outputs sit `shift` elements into their buffers; the slack holds the sentinel.
    let put = |x: &[f32], l: &AttnLayout, len: usize, s: usize| {
        let mut buf = vec![SENTINEL; shift];
        buf.extend(pack(x, l, len, b, n, s, d, SENTINEL));
        upload(g, &buf, dt)
    };
    let blank = |len: usize| upload(g, &vec![SENTINEL; shift + len], dt);
    let at = |buf: &DeviceBuffer| buf.ptr(shift * dt.size());
    let get = |what: &str, buf: &DeviceBuffer, l: &AttnLayout, len: usize, s: usize| {
        let all = download_f32(buf, dt, 0, shift + len).expect("download");
        assert!(all[..shift].iter().all(|&x| x == SENTINEL), "{name}: {what}: slack before the tensor written");
        unpack(&format!("{name}: {what}"), &all[shift..], l, b, n, s, d, SENTINEL)
    };

    let (qb, kb, vb, dob) =
        (put(&q, &lq, len_q, s_q), put(&k, &lk, len_k, s_k), put(&v, &lk, len_k, s_k), put(&dout, &lq, len_q, s_q));
    let mask_buf = mask.as_ref().map(|m| upload(g, m, Dt::F32));
    let ob = blank(len_q);
    let lse_buf = upload(g, &vec![SENTINEL; b * n * s_q], Dt::F32);
    let mask_ptr = mask_buf.as_ref().map(|m| m.ptr(0));

    attention_fwd(g, dt, &sh, at(&qb), &lq, at(&kb), &lk, at(&vb), &lk, mask_ptr, at(&ob), &lq, lse_buf.ptr(0))
        .unwrap_or_else(|e| panic!("{name}: forward: {e}"));
    let tol = if dt == Dt::F32 { 1e-4 } else { 2e-2 };
    check(&format!("{name}: o"), &get("o", &ob, &lq, len_q, s_q), &want.o, tol);
    let lse = download_f32(&lse_buf, Dt::F32, 0, b * n * s_q).unwrap();
    check(&format!("{name}: lse"), &lse, &want.lse, if dt == Dt::F32 { 1e-5 } else { 1e-3 });

    let (dqb, dkb, dvb) = (blank(len_q), blank(len_k), blank(len_k));
    attention_bwd(
        g,
        dt,
        &sh,
        at(&qb),
        &lq,
        at(&kb),
        &lk,
        at(&vb),
        &lk,
        mask_ptr,
        at(&ob),
        &lq,
        lse_buf.ptr(0),
        at(&dob),
        &lq,
        at(&dqb),
        &lq,
        at(&dkb),
        &lk,
        at(&dvb),
        &lk,
    )
    .unwrap_or_else(|e| panic!("{name}: backward: {e}"));
    check(&format!("{name}: dv"), &get("dv", &dvb, &lk, len_k, s_k), &want.dv, tol);
    check(&format!("{name}: dk"), &get("dk", &dkb, &lk, len_k, s_k), &want.dk, tol);
    check(&format!("{name}: dq"), &get("dq", &dqb, &lq, len_q, s_q), &want.dq, tol);
}

/// Every sequence length and head width, four layout/mask variants each, batch and head counts
/// rotating through {1, 2} x {1, 3}.
fn sweep(dt: Dt) {
    let Some(g) = kernels::cuda::test_device() else { return };
    let variants = [(Lay::Bsnd, false), (Lay::Bnsd, true), (Lay::Padded, true), (Lay::Bnsd, false)];
    let bn = [(1, 1), (2, 3), (1, 3), (2, 1)];
    let mut idx = 0;
    for s in [1, 17, 64, 100, 257] {
        for d in [32, 64, 128] {
            for (vi, &(lay, masked)) in variants.iter().enumerate() {
                let (b, n) = bn[(idx / 4 + vi) % 4];
                let seed = 1000 + 17 * idx as u64;
                run_case(&g, &Case { dt, b, n, s_q: s, s_k: s, d, lay, masked, seed, shift: 0 });
                idx += 1;
            }
        }
    }
}

#[test]
fn attention_f32_matches_reference() {
    sweep(Dt::F32);
}

#[test]
fn attention_bf16_matches_reference() {
    sweep(Dt::BF16);
}

/// Different query and key lengths (cross-attention shapes), both storage types.
#[test]
fn attention_cross_lengths() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in [Dt::F32, Dt::BF16] {
        for (i, &(s_q, s_k)) in [(17, 100), (100, 17), (1, 257), (257, 1), (130, 63)].iter().enumerate() {
            let d = [32, 64, 128][i % 3];
            let lay = [Lay::Bsnd, Lay::Bnsd, Lay::Padded][i % 3];
            run_case(&g, &Case { dt, b: 2, n: 3, s_q, s_k, d, lay, masked: true, seed: 77 + i as u64, shift: 0 });
        }
    }
}

/// A bf16 view one element off 16-byte alignment cannot use the tensor cores; the SIMT fallback
/// must give the same results.
#[test]
fn attention_bf16_unaligned_view_falls_back() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for (i, d) in [32, 64, 128].into_iter().enumerate() {
        let lay = [Lay::Bsnd, Lay::Bnsd, Lay::Padded][i];
        run_case(&g, &Case { dt: Dt::BF16, b: 2, n: 3, s_q: 100, s_k: 100, d, lay, masked: true, seed: 500, shift: 1 });
    }
}

/// The fully masked batch row attends uniformly: O is the mean of V's rows (checked directly, not
/// only through the reference).
#[test]
fn attention_fully_masked_row_is_uniform() {
    let Some(g) = kernels::cuda::test_device() else { return };
    for dt in [Dt::F32, Dt::BF16] {
        for d in [32, 64, 128] {
            let (b, n, s) = (2, 1, 70);
            let sh = AttnShape { b, n, s_q: s, s_k: s, d, scale: 1.0 / (d as f32).sqrt() };
            let mut q = rand_vec(9, b * n * s * d, -2.0, 2.0);
            let mut kv = rand_vec(10, b * n * s * d, -1.0, 1.0);
            round_bf16(&mut q);
            round_bf16(&mut kv);
            let mut mask = vec![0.0f32; b * s];
            mask[s..].fill(f32::MIN);
            let l = AttnLayout::bnsd(n, s, d);
            let (qb, kvb) = (upload(&g, &q, dt), upload(&g, &kv, dt));
            let mb = upload(&g, &mask, Dt::F32);
            let ob = upload(&g, &vec![SENTINEL; q.len()], dt);
            let lse = upload(&g, &vec![SENTINEL; b * n * s], Dt::F32);
            attention_fwd(
                &g,
                dt,
                &sh,
                qb.ptr(0),
                &l,
                kvb.ptr(0),
                &l,
                kvb.ptr(0),
                &l,
                Some(mb.ptr(0)),
                ob.ptr(0),
                &l,
                lse.ptr(0),
            )
            .unwrap();
            let o = download_f32(&ob, dt, 0, q.len()).unwrap();
            let lse = download_f32(&lse, Dt::F32, 0, b * n * s).unwrap();
            let vb1 = &kv[s * d..2 * s * d]; // batch 1's V rows
            let tol = if dt == Dt::F32 { 1e-5 } else { 1e-2 };
            for c in 0..d {
                let mean = (0..s).map(|j| vb1[j * d + c] as f64).sum::<f64>() / s as f64;
                for i in 0..s {
                    let got = o[(s + i) * d + c] as f64;
                    assert!((got - mean).abs() <= tol, "{dt:?} d={d}: o[1, {i}, {c}] = {got}, uniform mean {mean}");
                }
            }
            for i in 0..s {
                let want = (s as f64).ln();
                assert!((lse[s + i] as f64 - want).abs() <= 1e-4, "{dt:?} d={d}: lse {} != ln(s_k) {want}", lse[s + i]);
            }
        }
    }
}

/// Timing at ALBERT-base shapes (B=32, N=12, S=512, D=64, bf16, [B,S,N,D] views, padding mask):
/// `cargo test --release -p kernels --test cuda_attention -- --ignored --nocapture`.
#[test]
#[ignore]
fn attention_albert_base_timing() {
    let Some(g) = kernels::cuda::test_device() else { return };
    let (b, n, s, d) = (32, 12, 512, 64);
    let sh = AttnShape { b, n, s_q: s, s_k: s, d, scale: 1.0 / (d as f32).sqrt() };
    let l = AttnLayout::bsnd(s, n, d);
    let len = b * s * n * d;
    let bufs: Vec<DeviceBuffer> = (0..8).map(|i| upload(&g, &rand_vec(i, len, -1.0, 1.0), Dt::BF16)).collect();
    let [q, k, v, o, dout, dq, dk, dv] = [0, 1, 2, 3, 4, 5, 6, 7].map(|i| bufs[i].ptr(0));
    let mut mask = vec![0.0f32; b * s];
    for bi in 0..b {
        let valid = s - (bi * 37) % (s / 2); // ragged lengths, as a padded batch has
        mask[bi * s + valid..(bi + 1) * s].fill(f32::MIN);
    }
    let mb = upload(&g, &mask, Dt::F32);
    let lse = upload(&g, &vec![0.0; b * n * s], Dt::F32);
    let fwd = || attention_fwd(&g, Dt::BF16, &sh, q, &l, k, &l, v, &l, Some(mb.ptr(0)), o, &l, lse.ptr(0));
    let bwd = || {
        attention_bwd(
            &g,
            Dt::BF16,
            &sh,
            q,
            &l,
            k,
            &l,
            v,
            &l,
            Some(mb.ptr(0)),
            o,
            &l,
            lse.ptr(0),
            dout,
            &l,
            dq,
            &l,
            dk,
            &l,
            dv,
            &l,
        )
    };
    let flops_fwd = 4.0 * (b * n * s * s * d) as f64;
    for (what, f, flops) in [("fwd", &fwd as &dyn Fn() -> _, flops_fwd), ("bwd", &bwd, 2.5 * flops_fwd)] {
        f().unwrap(); // compile and warm up
        let reps = 20;
        let ms = g.time_ms(|| (0..reps).try_for_each(|_| f())).unwrap() / reps as f32;
        eprintln!(
            "attention {what} bf16 B={b} N={n} S={s} D={d}: {ms:.3} ms, {:.1} TFLOP/s",
            flops / (ms as f64 * 1e9)
        );
    }
}

// ------------------------------------------------------------------ host-only (run everywhere)

#[test]
fn unsupported_sizes_are_named() {
    let sh = AttnShape { b: 2, n: 3, s_q: 5, s_k: 5, d: 48, scale: 0.1 };
    let e = check_shape(&sh).unwrap_err();
    assert!(e.0.contains("d=48"), "{e}");
    let e = check_shape(&AttnShape { s_k: 0, d: 64, ..sh }).unwrap_err();
    assert!(e.0.contains("s_k=0"), "{e}");
    for d in [32, 64, 128] {
        check_shape(&AttnShape { d, ..sh }).unwrap();
    }
}

/// The reference's analytic backward against central differences of its own forward (loss =
/// sum(O * dO)), with a partial mask, so the GPU tests compare against a right answer.
#[test]
fn reference_backward_matches_finite_differences() {
    let (b, n, s_q, s_k, d) = (2, 2, 3, 5, 4);
    let sh = AttnShape { b, n, s_q, s_k, d, scale: 0.7 };
    let q = rand_vec(1, b * n * s_q * d, -1.0, 1.0);
    let k = rand_vec(2, b * n * s_k * d, -1.0, 1.0);
    let v = rand_vec(3, b * n * s_k * d, -1.0, 1.0);
    let dout = rand_vec(4, b * n * s_q * d, -1.0, 1.0);
    let mut mask = make_mask(5, b, s_k);
    mask[s_k..].copy_from_slice(&[0.0, -2.5, f32::MIN, 0.0, -1.0]); // no fully masked row here
    let want = reference(&sh, &q, &k, &v, Some(&mask), &dout);
    let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
        let r = reference(&sh, q, k, v, Some(&mask), &dout);
        r.o.iter().zip(&dout).map(|(o, &g)| o * g as f64).sum()
    };
    // Steps are taken in f32 (the inputs' type); the quotient uses the step actually taken.
    let h = 1.0 / 1024.0f32;
    let fd = |which: usize, i: usize| -> f64 {
        let (mut qp, mut kp, mut vp) = (q.clone(), k.clone(), v.clone());
        let (mut qm, mut km, mut vm) = (q.clone(), k.clone(), v.clone());
        let step = match which {
            0 => {
                (qp[i], qm[i]) = (q[i] + h, q[i] - h);
                qp[i] as f64 - qm[i] as f64
            }
            1 => {
                (kp[i], km[i]) = (k[i] + h, k[i] - h);
                kp[i] as f64 - km[i] as f64
            }
            _ => {
                (vp[i], vm[i]) = (v[i] + h, v[i] - h);
                vp[i] as f64 - vm[i] as f64
            }
        };
        (loss(&qp, &kp, &vp) - loss(&qm, &km, &vm)) / step
    };
    for (which, grad) in [(0, &want.dq), (1, &want.dk), (2, &want.dv)] {
        for (i, &gr) in grad.iter().enumerate() {
            let f = fd(which, i);
            assert!((f - gr).abs() <= 1e-4 * (1.0 + gr.abs()), "tensor {which} index {i}: analytic {gr}, numeric {f}");
        }
    }
}

/// The reference attends uniformly to a fully masked batch row (HF's f32::MIN padding).
#[test]
fn reference_fully_masked_row_is_uniform() {
    let (b, n, s, d) = (2, 1, 6, 3);
    let sh = AttnShape { b, n, s_q: s, s_k: s, d, scale: 0.5 };
    let q = rand_vec(1, b * n * s * d, -2.0, 2.0);
    let k = rand_vec(2, b * n * s * d, -1.0, 1.0);
    let v = rand_vec(3, b * n * s * d, -1.0, 1.0);
    let mut mask = vec![0.0; b * s];
    mask[s..].fill(f32::MIN);
    let r = reference(&sh, &q, &k, &v, Some(&mask), &q);
    for c in 0..d {
        let mean = (0..s).map(|j| v[(s + j) * d + c] as f64).sum::<f64>() / s as f64;
        for i in 0..s {
            assert!((r.o[(s + i) * d + c] - mean).abs() < 1e-12);
        }
    }
    for i in 0..s {
        assert!((r.lse[s + i] - (s as f64).ln()).abs() < 1e-12);
    }
}

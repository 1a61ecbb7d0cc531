//! Fused attention: the dispatched f32 kernels against the scalar reference run in f64, on random
//! odd shapes with and without a padding mask, and the fused forward against the unfused
//! composition (gemm, masked softmax, gemm) that the model used before.
mod common;

use common::{assert_close, f32v, f64v, proptest_config, rand_vec};
use kernels::cpu::attention::*;
use kernels::cpu::matmul::{gemm, Gemm};
use kernels::cpu::softmax::softmax_fwd;
use proptest::prelude::*;

// Tolerances. Inputs are in [-1, 1], so |scale * q.k| <= sqrt(D) and every output is a convex
// combination of v (|out| <= 1) summed over S terms: f32 rounding of the D-term dots, the
// softmax and the S-term sums stays under ~1e-6 * (S + D) absolute. Gradients sum S terms of
// products of such values, scaled by up to ~S: 1e-6 * S * (S + D) is still far below a real bug
// (a missing or doubled term moves a gradient by ~1/S of its scale).
fn fwd_tol(a: &Attn) -> f32 {
    2e-6 * (a.seq + a.head_dim) as f32
}
fn bwd_tol(a: &Attn) -> f32 {
    2e-6 * (a.seq + a.head_dim) as f32 * (a.seq as f32).sqrt().max(1.0)
}

/// An additive (B, S) mask: key 0 always attended (no row is fully masked), about a third of the
/// others padding (f32::MIN, as transformers builds it).
fn make_mask(seed: u64, b: usize, s: usize) -> Vec<f32> {
    rand_vec(seed, b * s, 0.0, 1.0)
        .iter()
        .enumerate()
        .map(|(i, &u)| if i % s != 0 && u < 0.33 { f32::MIN } else { 0.0 })
        .collect()
}

struct Inputs {
    a: Attn,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    mask: Option<Vec<f32>>,
    scale: f32,
}

fn inputs(a: Attn, masked: bool, seed: u64) -> Inputs {
    let n = a.len();
    Inputs {
        a,
        q: rand_vec(seed, n, -1.0, 1.0),
        k: rand_vec(seed ^ 0x11, n, -1.0, 1.0),
        v: rand_vec(seed ^ 0x22, n, -1.0, 1.0),
        mask: masked.then(|| make_mask(seed ^ 0x33, a.batch, a.seq)),
        scale: 1.0 / (a.head_dim as f32).sqrt(),
    }
}

fn check_fwd(x: &Inputs) {
    let a = &x.a;
    let mut got = vec![f32::NAN; a.len()];
    attention_fwd(a, &x.q, &x.k, &x.v, x.mask.as_deref(), x.scale, &mut got);
    let mut want = vec![0.0f64; a.len()];
    let mask64 = x.mask.as_deref().map(f64v);
    attention_fwd_scalar(a, &f64v(&x.q), &f64v(&x.k), &f64v(&x.v), mask64.as_deref(), x.scale as f64, &mut want);
    assert_close(&format!("attention fwd {a:?} masked={}", x.mask.is_some()), &got, &f32v(&want), fwd_tol(a), 1e-5);
}

fn check_bwd(x: &Inputs, seed: u64) {
    let a = &x.a;
    let dout = rand_vec(seed ^ 0x44, a.len(), -1.0, 1.0);
    let (mut dq, mut dk, mut dv) = (vec![f32::NAN; a.len()], vec![f32::NAN; a.len()], vec![f32::NAN; a.len()]);
    attention_bwd(a, &x.q, &x.k, &x.v, x.mask.as_deref(), x.scale, &dout, &mut dq, &mut dk, &mut dv);
    let (mut wq, mut wk, mut wv) = (vec![0.0f64; a.len()], vec![0.0f64; a.len()], vec![0.0f64; a.len()]);
    let mask64 = x.mask.as_deref().map(f64v);
    attention_bwd_scalar(
        a,
        &f64v(&x.q),
        &f64v(&x.k),
        &f64v(&x.v),
        mask64.as_deref(),
        x.scale as f64,
        &f64v(&dout),
        &mut wq,
        &mut wk,
        &mut wv,
    );
    let label = |what: &str| format!("attention bwd {what} {a:?} masked={}", x.mask.is_some());
    assert_close(&label("dq"), &dq, &f32v(&wq), bwd_tol(a), 1e-4);
    assert_close(&label("dk"), &dk, &f32v(&wk), bwd_tol(a), 1e-4);
    assert_close(&label("dv"), &dv, &f32v(&wv), bwd_tol(a), 1e-4);
}

fn attn() -> impl Strategy<Value = Attn> {
    let seq = prop::sample::select(vec![1usize, 2, 3, 7, 17, 33, 65]);
    let dim = prop::sample::select(vec![1usize, 3, 8, 13, 16, 33]);
    (1usize..=3, seq, 1usize..=3, dim).prop_map(|(batch, seq, heads, head_dim)| Attn { batch, seq, heads, head_dim })
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn fwd_matches_f64_reference(a in attn(), masked in any::<bool>(), seed in any::<u64>()) {
        check_fwd(&inputs(a, masked, seed));
    }

    #[test]
    fn bwd_matches_f64_reference(a in attn(), masked in any::<bool>(), seed in any::<u64>()) {
        check_bwd(&inputs(a, masked, seed), seed);
    }
}

/// ALBERT-like heads (D = 64) at S = 128, big enough that every head runs the full blocked gemm;
/// and a batch of 9, which takes the one-task-per-batch-entry path (in-place head writes) on
/// machines with up to 4 threads.
#[test]
fn albert_like_shape_and_a_larger_batch() {
    for masked in [false, true] {
        let x = inputs(Attn { batch: 2, seq: 128, heads: 3, head_dim: 64 }, masked, 7);
        check_fwd(&x);
        check_bwd(&x, 7);
        let x = inputs(Attn { batch: 9, seq: 33, heads: 2, head_dim: 16 }, masked, 8);
        check_fwd(&x);
        check_bwd(&x, 8);
    }
}

/// The fused forward against the unfused f32 composition: scores = Q K^T per head through the
/// strided gemm, softmax(scale * scores + mask), context = P V, written back into (B, S, H).
#[test]
fn fwd_matches_the_unfused_composition() {
    for (masked, a) in [
        (true, Attn { batch: 3, seq: 37, heads: 2, head_dim: 24 }),
        (false, Attn { batch: 1, seq: 130, heads: 4, head_dim: 16 }),
    ] {
        let x = inputs(a, masked, 3);
        let (s, d, h) = (a.seq, a.head_dim, a.hidden());
        let mut want = vec![0.0; a.len()];
        for b in 0..a.batch {
            for hd in 0..a.heads {
                let at = b * s * h + hd * d;
                let g = Gemm { lda: h, ldb: h, ..Gemm::new(s, s, d, false, true) };
                let mut scores = vec![0.0; s * s];
                gemm(&g, &x.q[at..], &x.k[at..], &mut scores, None);
                let mut p = vec![0.0; s * s];
                let m = x.mask.as_ref().map(|m| &m[b * s..(b + 1) * s]);
                softmax_fwd(&mut p, &scores, m, s, s, s, x.scale);
                let g = Gemm { ldb: h, ldc: h, ..Gemm::new(s, d, s, false, false) };
                gemm(&g, &p, &x.v[at..], &mut want[at..], None);
            }
        }
        let mut got = vec![f32::NAN; a.len()];
        attention_fwd(&a, &x.q, &x.k, &x.v, x.mask.as_deref(), x.scale, &mut got);
        assert_close(&format!("fused vs unfused {a:?}"), &got, &want, 1e-6, 1e-5);
    }
}

#[test]
#[should_panic(expected = "mask must be (B, S)")]
fn a_wrong_mask_length_is_named() {
    let x = inputs(Attn { batch: 2, seq: 3, heads: 1, head_dim: 2 }, false, 1);
    let mut out = vec![0.0; x.a.len()];
    attention_fwd(&x.a, &x.q, &x.k, &x.v, Some(&[0.0; 5]), 1.0, &mut out);
}

mod common;

// gemm (the dispatched fast path) against the reference `gemm_scalar` run in f64, on random
// shapes, layouts, paddings, batch strides, accumulate and bias; outputs live in canary-guarded
// buffers and every element the gemm must not touch (ldc padding, gaps between batch entries)
// is checked unchanged.
//
// Tolerance: inputs, bias and the initial C are in [-1, 1], so each output sums T = k products
// (+ bias, + old C; times the batch when C is shared) of magnitude <= 1. f32 accumulation of T
// such terms has a worst-case error of about T * eps * sum|terms| and a typical (random-walk)
// error of about sqrt(T) * eps * |partial sums| ~ T * eps / 3 ~ 2e-8 * T. The bound used,
// 2e-6 * T absolute + 1e-5 relative, is about 100x the typical error (a blocked or reordered
// sum passes easily) yet far below any real bug (a dropped or doubled product moves the
// result by ~1/T of its scale, >= 1e-3 here).

use common::{assert_close, rand_vec, Guarded};
use kernels::cpu::matmul::{gemm, gemm_isa, gemm_new, gemm_scalar, Gemm};
use kernels::cpu::Isa;
use proptest::prelude::*;

/// What the padding (never an output of the gemm) is filled with; it must come back unchanged.
const PAD: f32 = 4242.5;

#[derive(Clone, Debug)]
struct Case {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    /// Extra elements per row beyond the tight leading dimension.
    pad: [usize; 3],
    /// Stride 0 for a, b, c (one operand shared by the whole batch).
    share: [bool; 3],
    accumulate: bool,
    bias: bool,
    seed: u64,
}

impl Case {
    fn gemm(&self) -> Gemm {
        let mut g = Gemm::batched(self.batch, self.m, self.n, self.k, self.trans_a, self.trans_b);
        g.lda += self.pad[0];
        g.ldb += self.pad[1];
        g.ldc += self.pad[2];
        let span = |rows: usize, cols: usize, ld: usize| (rows - 1) * ld + cols;
        let (ra, ca) = if g.trans_a { (g.k, g.m) } else { (g.m, g.k) };
        let (rb, cb) = if g.trans_b { (g.n, g.k) } else { (g.k, g.n) };
        // Batch entries separated by a small gap, so a stray write between them shows up.
        let stride = |share: bool, one: usize| if share { 0 } else { one + 5 };
        g.stride_a = stride(self.share[0], span(ra, ca, g.lda));
        g.stride_b = stride(self.share[1], span(rb, cb, g.ldb));
        g.stride_c = stride(self.share[2], span(g.m, g.n, g.ldc));
        g.accumulate = self.accumulate;
        g
    }
}

/// Runs `gemm` on the case and compares with the f64 reference; panics with the case on failure.
fn check(case: &Case) {
    let g = case.gemm();
    let (la, lb, lc) = g.min_lens();
    let a = rand_vec(case.seed, la, -1.0, 1.0);
    let b = rand_vec(case.seed ^ 0x5bd1, lb, -1.0, 1.0);
    let bias = case.bias.then(|| rand_vec(case.seed ^ 0xb1a5, g.n, -1.0, 1.0));

    // Output positions start random (accumulate) or NaN (must be overwritten); the rest is PAD.
    let mut is_out = vec![false; lc];
    for bi in 0..g.batch {
        for i in 0..g.m {
            for j in 0..g.n {
                is_out[bi * g.stride_c + i * g.ldc + j] = true;
            }
        }
    }
    let old = rand_vec(case.seed ^ 0xc0de, lc, -1.0, 1.0);
    let init: Vec<f32> = (0..lc)
        .map(|x| match (is_out[x], g.accumulate) {
            (true, true) => old[x],
            (true, false) => f32::NAN,
            (false, _) => PAD,
        })
        .collect();

    let mut c = Guarded::from(&init);
    gemm(&g, &a, &b, c.inner_mut(), bias.as_deref());
    c.check_canaries(&format!("{case:?}"));

    let wide = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    let mut want = wide(&init);
    gemm_scalar::<f64>(&g, &wide(&a), &wide(&b), &mut want, bias.as_deref().map(wide).as_deref());

    let (mut got_out, mut want_out) = (Vec::new(), Vec::new());
    for x in 0..lc {
        let got = c.inner()[x];
        if is_out[x] {
            got_out.push(got);
            want_out.push(want[x] as f32);
        } else {
            assert!(got.to_bits() == PAD.to_bits(), "{case:?}: padding {x} changed to {got}");
        }
    }
    // Terms summed into one output: k products, bias and old C, once per batch entry if shared.
    let reps = if case.share[2] { g.batch } else { 1 };
    let terms = (reps * (g.k + 2)) as f32;
    assert_close(&format!("{case:?}"), &got_out, &want_out, 2e-6 * terms, 1e-5);
}

fn dim() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 2, 3, 7, 8, 15, 16, 17, 33, 64, 129])
}

fn case() -> impl Strategy<Value = Case> {
    let shape = (1usize..=3, dim(), dim(), dim(), any::<bool>(), any::<bool>());
    let layout = (prop::array::uniform3(0usize..4), prop::array::uniform3(prop::bool::weighted(0.25)));
    (shape, layout, any::<bool>(), any::<bool>(), any::<u64>()).prop_map(
        |((batch, m, n, k, trans_a, trans_b), (pad, share), accumulate, bias, seed)| Case {
            batch,
            m,
            n,
            k,
            trans_a,
            trans_b,
            pad,
            share,
            accumulate,
            bias,
            seed,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gemm_matches_f64_reference(c in case()) {
        check(&c);
    }
}

/// `gemm_new` (a fresh C, never zeroed first on the fast path) against the f64 reference: every
/// element must be written, so a skipped tile would show up as garbage or a wrong value.
#[allow(clippy::too_many_arguments)]
fn check_new(batch: usize, m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool, bias: bool, seed: u64) {
    let g = Gemm::batched(batch, m, n, k, trans_a, trans_b);
    let (la, lb, lc) = g.min_lens();
    let a = rand_vec(seed, la, -1.0, 1.0);
    let b = rand_vec(seed ^ 0x5bd1, lb, -1.0, 1.0);
    let bias = bias.then(|| rand_vec(seed ^ 0xb1a5, n, -1.0, 1.0));
    let got = gemm_new(&g, &a, &b, bias.as_deref());
    assert_eq!(got.len(), lc);
    let wide = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    let mut want = vec![0.0; lc];
    gemm_scalar::<f64>(&g, &wide(&a), &wide(&b), &mut want, bias.as_deref().map(wide).as_deref());
    let want: Vec<f32> = want.iter().map(|&x| x as f32).collect();
    let label = format!("gemm_new b{batch} {m}x{n}x{k} ta={trans_a} tb={trans_b}");
    assert_close(&label, &got, &want, 2e-6 * (k + 2) as f32, 1e-5);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gemm_new_matches_f64_reference(
        batch in 1usize..=3, m in dim(), n in dim(), k in dim(),
        ta in any::<bool>(), tb in any::<bool>(), bias in any::<bool>(), seed in any::<u64>(),
    ) {
        check_new(batch, m, n, k, ta, tb, bias, seed);
    }
}

/// Products big enough to be split over the threads (rows, columns, batch), with odd edges.
#[test]
fn gemm_new_on_split_products() {
    check_new(1, 1031, 130, 77, false, true, true, 1);
    check_new(1, 13, 2051, 300, true, false, false, 2);
    check_new(6, 129, 131, 65, false, true, false, 3);
    check_new(1, 4, 5, 0, false, false, true, 4);
}

fn dense(batch: usize, m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Case {
    Case {
        batch,
        m,
        n,
        k,
        trans_a,
        trans_b,
        pad: [0; 3],
        share: [false; 3],
        accumulate: false,
        bias: false,
        seed: (batch * 1_000_003 + m * 10_007 + n * 101 + k) as u64,
    }
}

/// ALBERT-base at batch 1 x seq 128 (the benches use batch 8): the Linear layers (trans_b, with
/// bias), attention scores and context, and the backward products (dW = dY^T X, dX = dY W).
/// Big enough that each product is split over the threads (by columns when n > m, else rows).
#[test]
fn albert_shapes() {
    let linear = |n, k| Case { bias: true, ..dense(1, 128, n, k, false, true) };
    // Q/K/V/O projections, FFN up, FFN down, embedding E -> H.
    for (n, k) in [(768, 768), (3072, 768), (768, 3072), (768, 128)] {
        check(&linear(n, k));
    }
    // Attention scores Q K^T and context P V, per head (split over the heads).
    check(&dense(12, 128, 128, 64, false, true));
    check(&dense(12, 128, 64, 128, false, false));
    // dW += dY^T X (split by rows), dX = dY W.
    check(&Case { accumulate: true, ..dense(1, 768, 768, 128, true, false) });
    check(&dense(1, 128, 768, 3072, false, false));
    // One weight shared by a batch of 3 (stride 0), rows padded, all summed into one C: runs
    // the batch in order, each product split over the threads, k in 5 blocks.
    let shared = Case {
        pad: [3, 1, 2],
        share: [false, true, true],
        accumulate: true,
        bias: true,
        ..dense(3, 130, 70, 1040, false, true)
    };
    check(&shared);
    // Wider than one NC column block.
    check(&Case { bias: true, ..dense(1, 7, 4100, 3, true, false) });
}

/// k = 0: C becomes (C or 0) + bias, exactly as the reference writes it.
#[test]
fn k_zero_is_exact() {
    for accumulate in [false, true] {
        let g = Gemm { accumulate, ldc: 9, ..Gemm::batched(2, 3, 5, 0, false, true) };
        let (la, lb, lc) = g.min_lens();
        let (a, b) = (vec![0.0; la], vec![0.0; lb]);
        let bias = rand_vec(1, 5, -1.0, 1.0);
        let init = rand_vec(2, lc, -1.0, 1.0);
        let (mut got, mut want) = (Guarded::from(&init), init.clone());
        gemm(&g, &a, &b, got.inner_mut(), Some(&bias));
        gemm_scalar(&g, &a, &b, &mut want, Some(&bias));
        got.check_canaries("k = 0");
        assert!(got.inner().iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()), "k = 0");
    }
}

/// The dispatch pinned to the scalar version is the f32 reference bit for bit.
#[test]
fn scalar_path_is_the_reference() {
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let g = Gemm { accumulate: true, ..Gemm::batched(2, 17, 33, 15, ta, tb) };
        let (la, lb, lc) = g.min_lens();
        let a = rand_vec(3, la, -1.0, 1.0);
        let b = rand_vec(4, lb, -1.0, 1.0);
        let bias = rand_vec(5, g.n, -1.0, 1.0);
        let init = rand_vec(6, lc, -1.0, 1.0);
        let (mut got, mut want) = (Guarded::from(&init), init.clone());
        gemm_isa(Isa::Scalar, &g, &a, &b, got.inner_mut(), Some(&bias));
        gemm_scalar(&g, &a, &b, &mut want, Some(&bias));
        got.check_canaries("scalar");
        assert!(got.inner().iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()), "scalar");
    }
}

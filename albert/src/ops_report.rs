//! `albert ops`: which kernel runs each op on this CPU, and a live check of every fast kernel
//! against its scalar reference (max abs difference on random inputs of odd sizes).

use kernels::cpu::{self, activation as act, binary, cross_entropy as ce, dropout, gather, layernorm as ln};
use kernels::cpu::{matmul, reduce, softmax};

/// Deterministic inputs in [-2, 2).
fn inputs(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = engine::Rng::new(seed);
    (0..n).map(|_| (rng.next_f64() * 4.0 - 2.0) as f32).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

type Check = fn(u64) -> f32;

/// (op, forward, backward, check): the check runs fast and scalar paths and returns the max diff.
fn table() -> Vec<(&'static str, &'static str, &'static str, Check)> {
    vec![
        ("matmul", "gemm (trans_a/trans_b, batched, bias)", "gemm (dA, dB) + sum_axis (dbias)", |s| {
            let (m, n, k) = (37, 29, 131);
            let (a, b, bias) = (inputs(s, m * k), inputs(s + 1, n * k), inputs(s + 2, n));
            let g = matmul::Gemm::new(m, n, k, false, true);
            let (mut c1, mut c2) = (vec![0.0; m * n], vec![0.0; m * n]);
            matmul::gemm(&g, &a, &b, &mut c1, Some(&bias));
            matmul::gemm_scalar(&g, &a, &b, &mut c2, Some(&bias));
            max_diff(&c1, &c2)
        }),
        ("gelu_tanh", "gelu_tanh_fwd", "gelu_tanh_bwd", |s| unary(s, act::gelu_tanh_fwd, act::gelu_tanh_fwd_scalar)),
        ("gelu_erf", "gelu_erf_fwd", "gelu_erf_bwd", |s| unary(s, act::gelu_erf_fwd, act::gelu_erf_fwd_scalar)),
        ("tanh", "tanh_fwd", "tanh_bwd", |s| unary(s, act::tanh_fwd, act::tanh_fwd_scalar)),
        ("relu", "relu_fwd", "relu_bwd", |s| unary(s, act::relu_fwd, act::relu_fwd_scalar)),
        ("add/sub/mul/div", "add_fwd ... div_fwd", "mul_bwd, div_bwd, sum_to_shape", |s| {
            let (a, b) = (inputs(s, 1031), inputs(s + 1, 1031));
            let (mut o1, mut o2) = (vec![0.0; 1031], vec![0.0; 1031]);
            binary::mul_fwd(&mut o1, &a, &b);
            binary::mul_fwd_scalar(&mut o2, &a, &b);
            max_diff(&o1, &o2)
        }),
        ("scale", "scale_fwd", "scale_fwd", |s| {
            let a = inputs(s, 1031);
            let (mut o1, mut o2) = (vec![0.0; 1031], vec![0.0; 1031]);
            binary::scale_fwd(&mut o1, &a, 0.3);
            binary::scale_fwd_scalar(&mut o2, &a, 0.3);
            max_diff(&o1, &o2)
        }),
        ("sum/mean", "sum_axis_fwd", "sum_axis_bwd", |s| {
            let x = inputs(s, 7 * 33 * 9);
            let (mut o1, mut o2) = (vec![0.0; 63], vec![0.0; 63]);
            reduce::sum_axis_fwd(&mut o1, &x, 7, 33, 9);
            reduce::sum_axis_fwd_scalar(&mut o2, &x, 7, 33, 9);
            max_diff(&o1, &o2)
        }),
        ("softmax", "softmax_fwd (scale + mask)", "softmax_bwd", |s| {
            let (r, c) = (24, 129);
            let (x, m) = (inputs(s, r * c), inputs(s + 1, 2 * c));
            let (mut o1, mut o2) = (vec![0.0; r * c], vec![0.0; r * c]);
            softmax::softmax_fwd(&mut o1, &x, Some(&m), r, c, 12, 0.125);
            softmax::softmax_fwd_scalar(&mut o2, &x, Some(&m), r, c, 12, 0.125);
            max_diff(&o1, &o2)
        }),
        ("attention (fused)", "attention_fwd (QK^T, softmax, PV)", "attention_bwd (recomputes P)", |s| {
            use kernels::cpu::attention::{self as att, Attn};
            let a = Attn { batch: 2, seq: 19, heads: 3, head_dim: 8 };
            let (q, k, v) = (inputs(s, a.len()), inputs(s + 1, a.len()), inputs(s + 2, a.len()));
            let m: Vec<f32> = (0..a.batch * a.seq).map(|i| if i % 5 == 4 { f32::MIN } else { 0.0 }).collect();
            let (mut o1, mut o2) = (vec![0.0; a.len()], vec![0.0; a.len()]);
            att::attention_fwd(&a, &q, &k, &v, Some(&m), 0.35, &mut o1);
            att::attention_fwd_scalar(&a, &q, &k, &v, Some(&m), 0.35, &mut o2);
            max_diff(&o1, &o2)
        }),
        ("layer_norm", "layernorm_fwd", "layernorm_bwd", |s| {
            let (r, c) = (17, 771);
            let (x, g, b) = (inputs(s, r * c), inputs(s + 1, c), inputs(s + 2, c));
            let (mut o1, mut o2) = (vec![0.0; r * c], vec![0.0; r * c]);
            let (mut m1, mut m2, mut s1, mut s2) = (vec![0.0; r], vec![0.0; r], vec![0.0; r], vec![0.0; r]);
            ln::layernorm_fwd(&mut o1, &mut m1, &mut s1, &x, &g, &b, r, c, 1e-12);
            ln::layernorm_fwd_scalar(&mut o2, &mut m2, &mut s2, &x, &g, &b, r, c, 1e-12);
            max_diff(&o1, &o2)
        }),
        ("embedding/gather_rows", "gather_rows_fwd", "gather_rows_bwd (scatter-add)", |s| {
            let table = inputs(s, 50 * 33);
            let idx: Vec<usize> = (0..41).map(|i| (i * 7 + s as usize) % 50).collect();
            let (mut d1, mut d2) = (table.clone(), table.clone());
            let dout = inputs(s + 1, 41 * 33);
            gather::gather_rows_bwd(&mut d1, &dout, &idx, 33);
            gather::gather_rows_bwd_scalar(&mut d2, &dout, &idx, 33);
            max_diff(&d1, &d2)
        }),
        ("dropout", "dropout_fwd", "dropout_bwd", |s| {
            let x = inputs(s, 1031);
            let keep: Vec<u8> = engine::Rng::new(s).bernoulli_mask(1031, 0.9);
            let (mut o1, mut o2) = (vec![0.0; 1031], vec![0.0; 1031]);
            dropout::dropout_fwd(&mut o1, &x, &keep, 1.0 / 0.9);
            dropout::dropout_fwd_scalar(&mut o2, &x, &keep, 1.0 / 0.9);
            max_diff(&o1, &o2)
        }),
        ("cross_entropy", "cross_entropy_fwd (log-softmax + NLL)", "cross_entropy_bwd", |s| {
            let (r, c) = (13, 1001);
            let x = inputs(s, r * c);
            let t: Vec<i64> = (0..r as i64).map(|i| if i % 4 == 0 { -100 } else { (i * 37) % c as i64 }).collect();
            let (mut l1, mut l2) = (vec![0.0; r], vec![0.0; r]);
            let (a, _) = ce::cross_entropy_fwd(&mut l1, &x, &t, r, c, -100);
            let (b, _) = ce::cross_entropy_fwd_scalar(&mut l2, &x, &t, r, c, -100);
            (a - b).abs().max(max_diff(&l1, &l2))
        }),
    ]
}

fn unary(seed: u64, fast: fn(&mut [f32], &[f32]), reference: fn(&mut [f32], &[f32])) -> f32 {
    let x = inputs(seed, 1031);
    let (mut a, mut b) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    fast(&mut a, &x);
    reference(&mut b, &x);
    max_diff(&a, &b)
}

pub fn run(seed: u64) -> Result<(), String> {
    let isa = cpu::isa();
    println!("kernel path on this CPU: {} (threads: {})", isa.name(), rayon::current_num_threads());
    println!("set ALBERT_FORCE_SCALAR=1 to run the scalar references everywhere\n");
    println!("{:<22} {:<40} {:<34} {:>14}", "op", "forward kernel", "backward kernel", "|fast-scalar|");
    for (op, fwd, bwd, check) in table() {
        let diff = check(seed);
        println!("{op:<22} {fwd:<40} {bwd:<34} {diff:>14.3e}");
    }
    // Pure data movement: one implementation (row copies), nothing to compare.
    println!("{:<22} {:<40} {:<34} {:>14}", "concat/split/narrow", "concat_fwd (row copies)", "concat_bwd", "-");
    println!("{:<22} {:<40} {:<34} {:>14}", "contiguous", "copy_strided", "(views only)", "-");
    Ok(())
}

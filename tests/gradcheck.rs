//! Every op's backward against f64 central finite differences (the scalar reference kernels run
//! in f64, so the tolerance can be tight: central differences with eps 1e-6 have truncation error
//! ~ eps^2 * f''' ~ 1e-12 and rounding error ~ 1e-16 / eps ~ 1e-10 for O(1) functions).

use autograd::{gradcheck, Tape, Var};
use engine::{DType, Rng, Tensor};

const EPS: f64 = 1e-6;
const ATOL: f64 = 1e-7;
const RTOL: f64 = 1e-6;

fn rand(seed: u64, shape: &[usize]) -> Tensor {
    Rng::new(seed).uniform_tensor(shape, -1.0, 1.0, DType::F64).unwrap()
}

/// Reduces any output to a scalar with random weights, so every output element's gradient matters
/// (a plain sum would hide errors that cancel, e.g. in softmax).
fn weighted<'t>(y: &Var<'t>, seed: u64) -> engine::Result<Var<'t>> {
    let w = y.tape().constant(rand(seed, y.shape()));
    y.mul(&w)?.sum_all()
}

fn check<F>(name: &str, inputs: &[Tensor], f: F)
where
    F: for<'t> Fn(&'t Tape, &[Var<'t>]) -> engine::Result<Var<'t>>,
{
    match gradcheck(f, inputs, EPS, ATOL, RTOL) {
        Ok(r) => assert!(r.checked > 0, "{name}: nothing checked"),
        Err(e) => panic!("{name}: {e}"),
    }
}

#[test]
fn matmul_all_transposes_batched_and_bias() {
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let a = if ta { rand(1, &[2, 4, 3]) } else { rand(1, &[2, 3, 4]) };
        let b = if tb { rand(2, &[5, 4]) } else { rand(2, &[4, 5]) };
        check(&format!("matmul ta={ta} tb={tb} shared rhs"), &[a.clone(), b.clone(), rand(3, &[5])], |_, v| {
            weighted(&v[0].matmul(&v[1], ta, tb, Some(&v[2]))?, 9)
        });
        let b3 = if tb { rand(4, &[2, 5, 4]) } else { rand(4, &[2, 4, 5]) };
        check(&format!("matmul ta={ta} tb={tb} batched"), &[a, b3], |_, v| {
            weighted(&v[0].matmul(&v[1], ta, tb, None)?, 8)
        });
    }
    // A transposed view (no copy) as the rhs, as attention's q k^T does.
    check("matmul of a transposed view", &[rand(5, &[3, 2, 4]), rand(6, &[3, 5, 4])], |_, v| {
        weighted(&v[0].matmul(&v[1].transpose(-1, -2)?, false, false, None)?, 7)
    });
}

#[test]
fn broadcasting_binary_ops() {
    let (a, b) = (rand(1, &[3, 1, 4]), rand(2, &[2, 4]));
    check("add", &[a.clone(), b.clone()], |_, v| weighted(&v[0].add(&v[1])?, 3));
    check("sub", &[a.clone(), b.clone()], |_, v| weighted(&v[0].sub(&v[1])?, 3));
    check("mul", &[a.clone(), b.clone()], |_, v| weighted(&v[0].mul(&v[1])?, 3));
    // keep the divisor away from 0
    let d = Rng::new(4).uniform_tensor(&[2, 4], 0.5, 2.0, DType::F64).unwrap();
    check("div", &[a, d], |_, v| weighted(&v[0].div(&v[1])?, 3));
    check("scale", &[rand(5, &[7])], |_, v| weighted(&v[0].scale(-2.5)?, 3));
    check("broadcast_to", &[rand(6, &[3, 1])], |_, v| weighted(&v[0].broadcast_to(&[2, 3, 4])?, 3));
}

#[test]
fn reductions() {
    let x = rand(1, &[3, 4, 5]);
    for axis in [0isize, 1, -1] {
        for keep in [false, true] {
            check(&format!("sum {axis} {keep}"), std::slice::from_ref(&x), |_, v| weighted(&v[0].sum(axis, keep)?, 2));
            check(&format!("mean {axis} {keep}"), std::slice::from_ref(&x), |_, v| {
                weighted(&v[0].mean(axis, keep)?, 2)
            });
        }
    }
}

#[test]
fn activations() {
    // 3 * rand covers the curved region of each function; relu avoids its kink at 0 by |x| > 0.05
    let x = Rng::new(3).uniform_tensor(&[4, 9], -3.0, 3.0, DType::F64).unwrap();
    check("gelu_tanh", std::slice::from_ref(&x), |_, v| weighted(&v[0].gelu_tanh()?, 1));
    check("gelu_erf", std::slice::from_ref(&x), |_, v| weighted(&v[0].gelu_erf()?, 1));
    check("tanh", std::slice::from_ref(&x), |_, v| weighted(&v[0].tanh()?, 1));
    let r: Vec<f64> = x.to_vec_f64().iter().map(|&v| if v.abs() < 0.05 { 0.5 } else { v }).collect();
    check("relu", &[Tensor::from_vec(r, &[4, 9]).unwrap()], |_, v| weighted(&v[0].relu()?, 1));
}

#[test]
fn softmax_with_scale_and_mask() {
    // scores [B=2, N=3, S=4, S=4], padding mask [B, S] with the last key of batch 1 masked
    let mut m = vec![0.0f64; 8];
    m[7] = -1e4;
    let mask = Tensor::from_vec(m, &[2, 1, 1, 4]).unwrap();
    check("softmax", &[rand(1, &[2, 3, 4, 4])], move |_, v| weighted(&v[0].softmax(Some(&mask), 0.125f64.sqrt())?, 4));
}

#[test]
fn layer_norm_all_inputs() {
    for eps in [1e-12, 1e-5] {
        check(&format!("layer_norm eps {eps}"), &[rand(1, &[5, 7]), rand(2, &[7]), rand(3, &[7])], move |_, v| {
            weighted(&v[0].layer_norm(&v[1], &v[2], eps)?, 5)
        });
    }
}

#[test]
fn linear_gelu_both_forms() {
    for gelu in [engine::ops::Gelu::Tanh, engine::ops::Gelu::Erf] {
        let inputs = [rand(1, &[2, 3, 5]), rand(2, &[4, 5]), rand(3, &[4])];
        check(&format!("linear_gelu {gelu:?}"), &inputs, move |_, v| {
            weighted(&v[0].linear_gelu(&v[1], &v[2], gelu)?, 5)
        });
    }
}

#[test]
fn add_layer_norm_all_inputs() {
    let inputs = [rand(1, &[5, 7]), rand(4, &[5, 7]), rand(2, &[7]), rand(3, &[7])];
    check("add_layer_norm", &inputs, |_, v| weighted(&v[0].add_layer_norm(&v[1], &v[2], &v[3], 1e-12)?, 5));
    // x feeding both terms: its gradient is the sum of both paths.
    check("add_layer_norm of x with itself", &[rand(1, &[3, 4]), rand(2, &[4]), rand(3, &[4])], |_, v| {
        weighted(&v[0].add_layer_norm(&v[0], &v[1], &v[2], 1e-5)?, 6)
    });
}

#[test]
fn embedding_and_gather_with_repeated_ids() {
    let ids = Tensor::from_i64(vec![3, 1, 3, 0, 3, 2], &[2, 3]).unwrap();
    check("embedding", &[rand(1, &[5, 4])], move |_, v| weighted(&v[0].embedding(&ids)?, 6));
    let idx = Tensor::from_i64(vec![2, 2, 0], &[3]).unwrap();
    check("gather_rows", &[rand(2, &[4, 3])], move |_, v| weighted(&v[0].gather_rows(&idx)?, 6));
}

#[test]
fn dropout_with_fixed_seed() {
    check("dropout", &[rand(1, &[6, 5])], |_, v| weighted(&v[0].dropout(0.3, &mut Rng::new(42))?, 2));
}

#[test]
fn cross_entropy_with_ignored_rows() {
    let t = Tensor::from_i64(vec![2, -100, 0, 4, -100], &[5]).unwrap();
    check("cross_entropy", &[rand(1, &[5, 6])], move |_, v| v[0].cross_entropy(&t, -100));
}

#[test]
fn concat_split_narrow_reshape_permute() {
    check("concat", &[rand(1, &[2, 3, 2]), rand(2, &[2, 1, 2]), rand(3, &[2, 4, 2])], |_, v| {
        weighted(&Var::concat(v, 1)?, 2)
    });
    check("split", &[rand(4, &[3, 7])], |_, v| {
        let p = v[0].split(1, &[2, 4, 1])?;
        weighted(&Var::concat(&[p[2].clone(), p[0].clone()], 1)?.gelu_tanh()?, 2)
    });
    check("narrow", &[rand(5, &[4, 5])], |_, v| weighted(&v[0].narrow(0, 1, 2)?, 2));
    check("reshape+permute", &[rand(6, &[2, 3, 4])], |_, v| {
        weighted(&v[0].permute(&[2, 0, 1])?.reshape(&[4, 6])?.tanh()?, 2)
    });
}

#[test]
fn a_small_attention_block_end_to_end() {
    // x [B=2, S=3, H=4], one head pair, through q k^T, masked softmax, v, projection, LN.
    let inputs =
        [rand(1, &[2, 3, 4]), rand(2, &[4, 4]), rand(3, &[4, 4]), rand(4, &[4, 4]), rand(5, &[4]), rand(6, &[4])];
    check("attention", &inputs, |_, v| {
        let (x, wq, wk, wv) = (&v[0], &v[1], &v[2], &v[3]);
        let q = x.linear(wq, None)?.reshape(&[2, 3, 2, 2])?.permute(&[0, 2, 1, 3])?;
        let k = x.linear(wk, None)?.reshape(&[2, 3, 2, 2])?.permute(&[0, 2, 1, 3])?;
        let val = x.linear(wv, None)?.reshape(&[2, 3, 2, 2])?.permute(&[0, 2, 1, 3])?;
        let p = q.matmul(&k, false, true, None)?.softmax(None, 0.5f64.sqrt())?;
        let ctx = p.matmul(&val, false, false, None)?.permute(&[0, 2, 1, 3])?.reshape(&[2, 3, 4])?;
        weighted(&ctx.add(x)?.layer_norm(&v[4], &v[5], 1e-12)?, 11)
    });
}

#[test]
fn fused_albert_embeddings_all_seven_parameters() {
    // V=6, P=5, T=2, E=4, H=3; ids with repeats; dropout on (fixed seed) to cover its backward.
    let ids = Tensor::from_i64(vec![1, 5, 1, 0, 2, 1], &[2, 3]).unwrap();
    let types = Tensor::from_i64(vec![0, 0, 1, 0, 1, 1], &[2, 3]).unwrap();
    let pos = Tensor::from_i64(vec![0, 1, 2, 0, 1, 2], &[2, 3]).unwrap();
    let inputs = [
        rand(1, &[6, 4]),
        rand(2, &[5, 4]),
        rand(3, &[2, 4]),
        rand(4, &[4]),
        rand(5, &[4]),
        rand(6, &[3, 4]),
        rand(7, &[3]),
    ];
    for p in [0.0, 0.25] {
        let (ids, types, pos) = (ids.clone(), types.clone(), pos.clone());
        check(&format!("albert_embeddings dropout {p}"), &inputs, move |_, v| {
            let params = [&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]];
            weighted(&Var::albert_embeddings(params, &ids, &types, &pos, 1e-12, p, None, &mut Rng::new(3))?, 12)
        });
    }
}

/// Activation checkpointing: a two-layer function recomputed in backward, with one weight shared
/// by both layers and an input used again after the checkpoint (fan-out across the boundary).
#[test]
fn checkpoint_recomputes_in_backward() {
    let body: std::sync::Arc<autograd::CheckpointFn> = std::sync::Arc::new(|_, v| {
        let h = v[0].linear(&v[1], Some(&v[2]))?.tanh()?;
        h.linear(&v[1], None)?.gelu_tanh()?.mul(&v[0])
    });
    let inputs = [rand(1, &[3, 4]), rand(2, &[4, 4]), rand(3, &[4])];
    check("checkpoint", &inputs, |_, v| {
        let y = Var::checkpoint(&[&v[0], &v[1], &v[2]], body.clone())?;
        weighted(&y.add(&v[0])?, 4)
    });
}

/// Fused attention on [B, S, H] with odd sizes, with and without a padding mask ([B, 1, 1, S],
/// as the model passes it), including a masked key in every sequence but the first position.
#[test]
fn fused_attention() {
    let (b, s, heads, d) = (2, 5, 3, 2);
    let h = heads * d;
    let inputs = [rand(1, &[b, s, h]), rand(2, &[b, s, h]), rand(3, &[b, s, h])];
    let scale = 1.0 / (d as f64).sqrt();
    check("attention", &inputs, |_, v| weighted(&v[0].attention(&v[1], &v[2], None, heads, scale)?, 4));
    let mask: Vec<f64> = (0..b * s).map(|i| if i % s == 3 || i == 2 * s - 1 { -1e9 } else { 0.0 }).collect();
    let mask = Tensor::from_vec(mask, &[b, 1, 1, s]).unwrap();
    check("attention masked", &inputs, |_, v| weighted(&v[0].attention(&v[1], &v[2], Some(&mask), heads, scale)?, 5));
}

//! What each recorded node keeps for its backward, and the backward itself. One closed enum,
//! matched exhaustively: adding an op means one variant here, one arm in `backward`, and one
//! method on `Var`.

use crate::params::{ParamId, ParamStore};
use crate::profile::{self, Kind};
use crate::tape::Tape;
use crate::var::Var;
use engine::ops::{self, CrossEntropySaved, DropoutMask, EmbeddingParams, EmbeddingSaved, LayerNormSaved};
use engine::{DType, Result, Tensor};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// An input or a parameter: no inputs, gradient delivered to the caller or the store.
    Leaf {
        param: Option<ParamId>,
    },
    MatMul {
        a: Tensor,
        b: Tensor,
        trans_a: bool,
        trans_b: bool,
        bias: bool,
    },
    Add {
        a_shape: Vec<usize>,
        b_shape: Vec<usize>,
    },
    Sub {
        a_shape: Vec<usize>,
        b_shape: Vec<usize>,
    },
    Mul {
        a: Tensor,
        b: Tensor,
    },
    Div {
        a: Tensor,
        b: Tensor,
    },
    Scale {
        s: f64,
    },
    Sum {
        in_shape: Vec<usize>,
        axis: isize,
        keepdim: bool,
    },
    Mean {
        in_shape: Vec<usize>,
        axis: isize,
        keepdim: bool,
    },
    GeluTanh {
        x: Tensor,
    },
    GeluErf {
        x: Tensor,
    },
    Tanh {
        y: Tensor,
    },
    Relu {
        x: Tensor,
    },
    Softmax {
        y: Tensor,
        scale: f64,
    },
    /// Fused multi-head attention; inputs: q, k, v (the mask is a constant).
    Attention {
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Option<Tensor>,
        heads: usize,
        scale: f64,
    },
    /// LayerNorm(x + residual); inputs x, residual, gamma, beta. Keeps the sum it normalised.
    AddLayerNorm {
        sum: Tensor,
        gamma: Tensor,
        saved: LayerNormSaved,
    },
    LayerNorm {
        x: Tensor,
        gamma: Tensor,
        saved: LayerNormSaved,
    },
    Embedding {
        ids: Tensor,
        table_shape: Vec<usize>,
    },
    GatherRows {
        idx: Tensor,
        x_shape: Vec<usize>,
    },
    Dropout {
        mask: DropoutMask,
    },
    CrossEntropy {
        logits: Tensor,
        targets: Tensor,
        ignore_index: i64,
        saved: CrossEntropySaved,
    },
    Concat {
        shapes: Vec<Vec<usize>>,
        axis: isize,
    },
    Narrow {
        full_shape: Vec<usize>,
        axis: isize,
        start: usize,
    },
    Reshape {
        in_shape: Vec<usize>,
    },
    Permute {
        perm: Vec<usize>,
    },
    BroadcastTo {
        in_shape: Vec<usize>,
    },
    /// A dtype conversion (bf16 autocast of f32 master weights); the gradient converts back.
    Cast {
        from: DType,
    },
    /// The fused factorised embedding; inputs: word, position, token_type, ln_gamma, ln_beta,
    /// proj_w, proj_b.
    AlbertEmbeddings {
        params: Box<EmbeddingParams>,
        saved: EmbeddingSaved,
    },
    /// A function recomputed in backward (activation checkpointing): only its inputs are kept.
    Checkpoint {
        inputs: Vec<Tensor>,
        f: Recompute,
    },
}

/// The body of a checkpointed function: builds its output from its inputs on the given tape.
pub type CheckpointFn = dyn for<'t> Fn(&'t Tape, &[Var<'t>]) -> Result<Var<'t>> + Send + Sync;

/// A shared [`CheckpointFn`] (Debug shows only that it is one).
#[derive(Clone)]
pub(crate) struct Recompute(pub(crate) Arc<CheckpointFn>);

impl std::fmt::Debug for Recompute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recompute(..)")
    }
}

/// Gradients of a checkpointed function's inputs: rebuild it on a fresh tape from the saved
/// inputs (as leaves), then back-propagate `g` through that tape alone.
fn checkpoint_bwd(inputs: &[Tensor], f: &CheckpointFn, g: &Tensor) -> Result<Vec<Tensor>> {
    profile::mark(); // the recomputation's laps start now, not at the last forward op
    let tape = Tape::new();
    let leaves: Vec<Var<'_>> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let y = f(&tape, &leaves)?;
    let grads = tape.backward_seeded(&y, g.clone(), &mut ParamStore::new())?;
    Ok(leaves
        .iter()
        .zip(inputs)
        .map(|(v, t)| grads.get(v).cloned().unwrap_or_else(|| Tensor::zeros(t.shape(), t.dtype())))
        .collect())
}

/// Restores a dropped dim so keepdim=false reductions can be broadcast back.
fn unsqueeze(t: &Tensor, axis: usize) -> Result<Tensor> {
    let mut s = t.shape().to_vec();
    s.insert(axis, 1);
    t.reshape(&s)
}

impl Op {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Leaf { .. } => "leaf",
            Op::MatMul { .. } => "matmul",
            Op::Add { .. } => "add",
            Op::Sub { .. } => "sub",
            Op::Mul { .. } => "mul",
            Op::Div { .. } => "div",
            Op::Scale { .. } => "scale",
            Op::Sum { .. } => "sum",
            Op::Mean { .. } => "mean",
            Op::GeluTanh { .. } => "gelu_tanh",
            Op::GeluErf { .. } => "gelu_erf",
            Op::Tanh { .. } => "tanh",
            Op::Relu { .. } => "relu",
            Op::Softmax { .. } => "softmax",
            Op::Attention { .. } => "attention",
            Op::LayerNorm { .. } => "layer_norm",
            Op::AddLayerNorm { .. } => "add_layer_norm",
            Op::Embedding { .. } => "embedding",
            Op::GatherRows { .. } => "gather_rows",
            Op::Dropout { .. } => "dropout",
            Op::CrossEntropy { .. } => "cross_entropy",
            Op::Concat { .. } => "concat",
            Op::Narrow { .. } => "narrow",
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::BroadcastTo { .. } => "broadcast_to",
            Op::Cast { .. } => "cast",
            Op::AlbertEmbeddings { .. } => "albert_embeddings",
            Op::Checkpoint { .. } => "checkpoint",
        }
    }

    /// The `--profile` category this node's time is charged to. A product whose rhs is batched
    /// (not a weight shared by every row) is attention's scores or context.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Op::MatMul { b, .. } if b.rank() > 2 => Kind::Attention,
            Op::MatMul { .. } => Kind::Matmul,
            Op::Softmax { .. } | Op::Attention { .. } => Kind::Attention,
            Op::LayerNorm { .. } | Op::AddLayerNorm { .. } => Kind::LayerNorm,
            Op::GeluTanh { .. } | Op::GeluErf { .. } => Kind::Gelu,
            Op::Embedding { .. } | Op::AlbertEmbeddings { .. } => Kind::Embedding,
            Op::CrossEntropy { .. } => Kind::Loss,
            _ => Kind::Other,
        }
    }

    /// Gradients of the inputs, in input order, given the gradient of the output.
    pub(crate) fn backward(&self, g: &Tensor) -> Result<Vec<Tensor>> {
        Ok(match self {
            Op::Leaf { .. } => vec![],
            Op::MatMul { a, b, trans_a, trans_b, bias } => {
                let (da, db, dbias) = ops::matmul_bwd(g, a, b, *trans_a, *trans_b, *bias)?;
                let mut v = vec![da, db];
                v.extend(dbias);
                v
            }
            Op::Add { a_shape, b_shape } => {
                let (da, db) = ops::add_bwd(g, a_shape, b_shape)?;
                vec![da, db]
            }
            Op::Sub { a_shape, b_shape } => {
                let (da, db) = ops::sub_bwd(g, a_shape, b_shape)?;
                vec![da, db]
            }
            Op::Mul { a, b } => {
                let (da, db) = ops::mul_bwd(g, a, b)?;
                vec![da, db]
            }
            Op::Div { a, b } => {
                let (da, db) = ops::div_bwd(g, a, b)?;
                vec![da, db]
            }
            Op::Scale { s } => vec![ops::scale(g, *s)?],
            Op::Sum { in_shape, axis, keepdim } | Op::Mean { in_shape, axis, keepdim } => {
                let ax = engine::Layout::contiguous(in_shape).axis("sum_bwd", *axis)?;
                let g = if *keepdim { g.clone() } else { unsqueeze(g, ax)? };
                match self {
                    Op::Mean { .. } => vec![ops::mean_bwd(&g, in_shape, *axis)?],
                    _ => vec![ops::sum_bwd(&g, in_shape, *axis)?],
                }
            }
            Op::GeluTanh { x } => vec![ops::gelu_tanh_bwd(x, g)?],
            Op::GeluErf { x } => vec![ops::gelu_erf_bwd(x, g)?],
            Op::Tanh { y } => vec![ops::tanh_bwd(y, g)?],
            Op::Relu { x } => vec![ops::relu_bwd(x, g)?],
            Op::Softmax { y, scale } => vec![ops::softmax_bwd(y, g, *scale)?],
            Op::Attention { q, k, v, mask, heads, scale } => {
                let (dq, dk, dv) = ops::attention_bwd(g, q, k, v, mask.as_ref(), *heads, *scale)?;
                vec![dq, dk, dv]
            }
            Op::LayerNorm { x, gamma, saved } => {
                let (dx, dg, db) = ops::layer_norm_bwd(g, x, gamma, saved)?;
                vec![dx, dg, db]
            }
            Op::AddLayerNorm { sum, gamma, saved } => {
                // The sum's gradient goes to both of its terms (the tape copies before adding
                // into either, since they share one buffer).
                let (dsum, dg, db) = ops::layer_norm_bwd(g, sum, gamma, saved)?;
                vec![dsum.clone(), dsum, dg, db]
            }
            Op::Embedding { ids, table_shape } => vec![ops::embedding_bwd(g, ids, table_shape)?],
            Op::GatherRows { idx, x_shape } => vec![ops::gather_rows_bwd(g, idx, x_shape)?],
            Op::Dropout { mask } => vec![ops::dropout_bwd(g, mask)?],
            Op::CrossEntropy { logits, targets, ignore_index, saved } => {
                vec![ops::cross_entropy_bwd(g.item()?, logits, targets, *ignore_index, saved)?]
            }
            Op::Concat { shapes, axis } => ops::concat_bwd(g, shapes, *axis)?,
            Op::Narrow { full_shape, axis, start } => vec![ops::narrow_bwd(g, full_shape, *axis, *start)?],
            Op::Reshape { in_shape } => vec![g.reshape(in_shape)?],
            Op::Permute { perm } => {
                let mut inv = vec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inv[p] = i;
                }
                vec![g.permute(&inv)?.contiguous()]
            }
            Op::BroadcastTo { in_shape } => vec![ops::sum_to_shape(g, in_shape)?],
            Op::Cast { from } => vec![g.to_dtype(*from)],
            Op::AlbertEmbeddings { params, saved } => {
                let d = ops::albert_embeddings_bwd(g, params, saved)?;
                vec![d.word, d.position, d.token_type, d.ln_gamma, d.ln_beta, d.proj_w, d.proj_b]
            }
            Op::Checkpoint { inputs, f } => checkpoint_bwd(inputs, &*f.0, g)?,
        })
    }
}

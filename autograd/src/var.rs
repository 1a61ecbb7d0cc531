//! `Var`: a value on a tape. Each method runs the engine forward and records the node.

use crate::op::{CheckpointFn, Op, Recompute};
use crate::tape::Tape;
use engine::ops::{EmbeddingDropout, EmbeddingParams};
use engine::{ops, Result, Rng, Tensor};
use std::sync::Arc;

#[derive(Clone)]
pub struct Var<'t> {
    tape: &'t Tape,
    id: Option<usize>,
    value: Tensor,
}

impl std::fmt::Debug for Var<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var(node {:?}, {:?})", self.id, self.value)
    }
}

impl<'t> Var<'t> {
    pub(crate) fn new(tape: &'t Tape, id: Option<usize>, value: Tensor) -> Var<'t> {
        Var { tape, id, value }
    }

    /// The node id on the tape (None for constants and on a no_grad tape).
    pub fn id(&self) -> Option<usize> {
        self.id
    }
    pub fn value(&self) -> &Tensor {
        &self.value
    }
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
    pub fn tape(&self) -> &'t Tape {
        self.tape
    }

    fn rec(&self, op: Op, inputs: &[&Var<'t>], value: Tensor) -> Var<'t> {
        self.tape.record(op, inputs, value)
    }

    /// Keep saved tensors only when a backward can run (no_grad tapes save nothing).
    fn keeps(&self) -> bool {
        self.tape.is_recording()
    }

    // ---------------------------------------------------------------- matmul
    /// op(self) op(other) + bias; see `engine::ops::matmul` for shapes.
    pub fn matmul(&self, other: &Var<'t>, trans_a: bool, trans_b: bool, bias: Option<&Var<'t>>) -> Result<Var<'t>> {
        let y = ops::matmul(&self.value, &other.value, trans_a, trans_b, bias.map(|b| b.value()))?;
        let op = Op::MatMul { a: self.value.clone(), b: other.value.clone(), trans_a, trans_b, bias: bias.is_some() };
        let mut inputs = vec![self, other];
        inputs.extend(bias);
        Ok(self.rec(op, &inputs, y))
    }

    /// A Linear layer: self [.., in] times weight [out, in] transposed, plus bias [out].
    pub fn linear(&self, weight: &Var<'t>, bias: Option<&Var<'t>>) -> Result<Var<'t>> {
        self.matmul(weight, false, true, bias)
    }

    /// GELU(self W^T + bias) computed by one fused kernel where the device has one (the gemm's
    /// epilogue on the GPU), recorded as the two nodes it stands for (a Linear, then the GELU),
    /// so the backward is exactly theirs.
    pub fn linear_gelu(&self, weight: &Var<'t>, bias: &Var<'t>, gelu: ops::Gelu) -> Result<Var<'t>> {
        let (pre, y) = ops::linear_gelu(&self.value, &weight.value, &bias.value, gelu)?;
        let mm =
            Op::MatMul { a: self.value.clone(), b: weight.value.clone(), trans_a: false, trans_b: true, bias: true };
        let pre_var = self.rec(mm, &[self, weight, bias], pre.clone());
        let act = match gelu {
            ops::Gelu::Tanh => Op::GeluTanh { x: pre_var.saved(&pre) },
            ops::Gelu::Erf => Op::GeluErf { x: pre_var.saved(&pre) },
        };
        Ok(pre_var.rec(act, &[&pre_var], y))
    }

    // ---------------------------------------------------------------- elementwise
    pub fn add(&self, other: &Var<'t>) -> Result<Var<'t>> {
        let y = ops::add(&self.value, &other.value)?;
        let op = Op::Add { a_shape: self.shape().to_vec(), b_shape: other.shape().to_vec() };
        Ok(self.rec(op, &[self, other], y))
    }

    pub fn sub(&self, other: &Var<'t>) -> Result<Var<'t>> {
        let y = ops::sub(&self.value, &other.value)?;
        let op = Op::Sub { a_shape: self.shape().to_vec(), b_shape: other.shape().to_vec() };
        Ok(self.rec(op, &[self, other], y))
    }

    pub fn mul(&self, other: &Var<'t>) -> Result<Var<'t>> {
        let y = ops::mul(&self.value, &other.value)?;
        Ok(self.rec(Op::Mul { a: self.value.clone(), b: other.value.clone() }, &[self, other], y))
    }

    pub fn div(&self, other: &Var<'t>) -> Result<Var<'t>> {
        let y = ops::div(&self.value, &other.value)?;
        Ok(self.rec(Op::Div { a: self.value.clone(), b: other.value.clone() }, &[self, other], y))
    }

    pub fn scale(&self, s: f64) -> Result<Var<'t>> {
        let y = ops::scale(&self.value, s)?;
        Ok(self.rec(Op::Scale { s }, &[self], y))
    }

    // ---------------------------------------------------------------- reductions
    pub fn sum(&self, axis: isize, keepdim: bool) -> Result<Var<'t>> {
        let y = ops::sum(&self.value, axis, keepdim)?;
        Ok(self.rec(Op::Sum { in_shape: self.shape().to_vec(), axis, keepdim }, &[self], y))
    }

    pub fn mean(&self, axis: isize, keepdim: bool) -> Result<Var<'t>> {
        let y = ops::mean(&self.value, axis, keepdim)?;
        Ok(self.rec(Op::Mean { in_shape: self.shape().to_vec(), axis, keepdim }, &[self], y))
    }

    /// Sum of every element, as a one-element tensor of shape [].
    pub fn sum_all(&self) -> Result<Var<'t>> {
        self.reshape(&[self.value.numel()])?.sum(0, false)
    }

    // ---------------------------------------------------------------- activations
    pub fn gelu_tanh(&self) -> Result<Var<'t>> {
        let y = ops::gelu_tanh(&self.value)?;
        Ok(self.rec(Op::GeluTanh { x: self.saved(&self.value) }, &[self], y))
    }

    pub fn gelu_erf(&self) -> Result<Var<'t>> {
        let y = ops::gelu_erf(&self.value)?;
        Ok(self.rec(Op::GeluErf { x: self.saved(&self.value) }, &[self], y))
    }

    pub fn tanh(&self) -> Result<Var<'t>> {
        let y = ops::tanh(&self.value)?;
        Ok(self.rec(Op::Tanh { y: self.saved(&y) }, &[self], y))
    }

    pub fn relu(&self) -> Result<Var<'t>> {
        let y = ops::relu(&self.value)?;
        Ok(self.rec(Op::Relu { x: self.saved(&self.value) }, &[self], y))
    }

    fn saved(&self, t: &Tensor) -> Tensor {
        if self.keeps() {
            t.clone()
        } else {
            Tensor::zeros(&[0], t.dtype())
        }
    }

    /// softmax(scale * self + mask) over the last axis; the mask is a constant.
    pub fn softmax(&self, mask: Option<&Tensor>, scale: f64) -> Result<Var<'t>> {
        let y = ops::softmax(&self.value, mask, scale)?;
        Ok(self.rec(Op::Softmax { y: self.saved(&y), scale }, &[self], y))
    }

    /// Fused multi-head attention with self as the queries: softmax(scale * Q K^T + mask) V per
    /// batch entry and head, on [B, S, H] tensors (see `engine::ops::attention`); the mask is a
    /// constant. Saves only q, k, v: backward recomputes the probabilities.
    pub fn attention(
        &self,
        k: &Var<'t>,
        v: &Var<'t>,
        mask: Option<&Tensor>,
        heads: usize,
        scale: f64,
    ) -> Result<Var<'t>> {
        let y = ops::attention(&self.value, &k.value, &v.value, mask, heads, scale)?;
        let op = Op::Attention {
            q: self.saved(&self.value),
            k: self.saved(&k.value),
            v: self.saved(&v.value),
            mask: mask.cloned(),
            heads,
            scale,
        };
        Ok(self.rec(op, &[self, k, v], y))
    }

    pub fn layer_norm(&self, gamma: &Var<'t>, beta: &Var<'t>, eps: f64) -> Result<Var<'t>> {
        let (y, saved) = ops::layer_norm(&self.value, gamma.value(), beta.value(), eps)?;
        let op = Op::LayerNorm { x: self.saved(&self.value), gamma: gamma.value.clone(), saved };
        Ok(self.rec(op, &[self, gamma, beta], y))
    }

    /// LayerNorm(self + residual) as one op (the post-LN block's add & norm).
    pub fn add_layer_norm(&self, residual: &Var<'t>, gamma: &Var<'t>, beta: &Var<'t>, eps: f64) -> Result<Var<'t>> {
        let (y, sum, saved) = ops::add_layer_norm(&self.value, residual.value(), gamma.value(), beta.value(), eps)?;
        let op = Op::AddLayerNorm { sum: self.saved(&sum), gamma: gamma.value.clone(), saved };
        Ok(self.rec(op, &[self, residual, gamma, beta], y))
    }

    // ---------------------------------------------------------------- indexing
    /// Rows of this table [V, C] selected by i64 `ids` of any shape: [ids.., C].
    pub fn embedding(&self, ids: &Tensor) -> Result<Var<'t>> {
        let y = ops::embedding(&self.value, ids)?;
        Ok(self.rec(Op::Embedding { ids: ids.clone(), table_shape: self.shape().to_vec() }, &[self], y))
    }

    /// Rows of this [R, C] tensor at `idx` (e.g. masked positions).
    pub fn gather_rows(&self, idx: &Tensor) -> Result<Var<'t>> {
        let y = ops::gather_rows(&self.value, idx)?;
        Ok(self.rec(Op::GatherRows { idx: idx.clone(), x_shape: self.shape().to_vec() }, &[self], y))
    }

    // ---------------------------------------------------------------- regularisation and loss
    /// Inverted dropout with probability p, mask drawn from `rng`. p = 0 is the identity.
    pub fn dropout(&self, p: f64, rng: &mut Rng) -> Result<Var<'t>> {
        if p == 0.0 {
            return Ok(self.clone());
        }
        let (y, mask) = ops::dropout(&self.value, p, rng)?;
        Ok(self.rec(Op::Dropout { mask }, &[self], y))
    }

    /// Mean cross-entropy of these logits [R, C] against i64 targets [R], skipping ignore_index.
    pub fn cross_entropy(&self, targets: &Tensor, ignore_index: i64) -> Result<Var<'t>> {
        let (loss, saved) = ops::cross_entropy(&self.value, targets, ignore_index)?;
        let op = Op::CrossEntropy { logits: self.saved(&self.value), targets: targets.clone(), ignore_index, saved };
        Ok(self.rec(op, &[self], loss))
    }

    // ---------------------------------------------------------------- shape
    pub fn concat(vars: &[Var<'t>], axis: isize) -> Result<Var<'t>> {
        let first = vars.first().ok_or_else(|| engine::Error::Invalid("concat: no vars given".into()))?;
        let values: Vec<Tensor> = vars.iter().map(|v| v.value.clone()).collect();
        let y = ops::concat(&values, axis)?;
        let shapes = vars.iter().map(|v| v.shape().to_vec()).collect();
        let inputs: Vec<&Var<'t>> = vars.iter().collect();
        Ok(first.rec(Op::Concat { shapes, axis }, &inputs, y))
    }

    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Var<'t>> {
        let y = self.value.narrow(axis, start, len)?;
        Ok(self.rec(Op::Narrow { full_shape: self.shape().to_vec(), axis, start }, &[self], y))
    }

    /// Splits along `axis` into parts of the given sizes.
    pub fn split(&self, axis: isize, sizes: &[usize]) -> Result<Vec<Var<'t>>> {
        let parts = ops::split(&self.value, axis, sizes)?; // validates the sizes
        let mut start = 0;
        parts
            .iter()
            .map(|p| {
                let ax = self.value.layout().axis("split", axis)?;
                let v = self.narrow(axis, start, p.shape()[ax]);
                start += p.shape()[ax];
                v
            })
            .collect()
    }

    pub fn reshape(&self, shape: &[usize]) -> Result<Var<'t>> {
        let y = self.value.reshape(shape)?;
        Ok(self.rec(Op::Reshape { in_shape: self.shape().to_vec() }, &[self], y))
    }

    pub fn permute(&self, perm: &[usize]) -> Result<Var<'t>> {
        let y = self.value.permute(perm)?;
        Ok(self.rec(Op::Permute { perm: perm.to_vec() }, &[self], y))
    }

    pub fn transpose(&self, a: isize, b: isize) -> Result<Var<'t>> {
        let (a, b) = (self.value.layout().axis("transpose", a)?, self.value.layout().axis("transpose", b)?);
        let mut perm: Vec<usize> = (0..self.value.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Var<'t>> {
        let y = self.value.broadcast_to(shape)?;
        Ok(self.rec(Op::BroadcastTo { in_shape: self.shape().to_vec() }, &[self], y))
    }

    /// The same values in another dtype (bf16 autocast); the gradient flows back converted.
    pub fn to_dtype(&self, dtype: engine::DType) -> Result<Var<'t>> {
        if dtype == self.value.dtype() {
            return Ok(self.clone());
        }
        let y = self.value.to_dtype(dtype);
        Ok(self.rec(Op::Cast { from: self.value.dtype() }, &[self], y))
    }

    // ---------------------------------------------------------------- fused model ops
    /// ALBERT's fused factorised embedding (see `engine::ops::embeddings`):
    /// dropout(LN(word[ids] + position[positions] + token_type[types])) W^T + b.
    /// `params` = [word, position, token_type, ln_gamma, ln_beta, proj_w, proj_b].
    #[allow(clippy::too_many_arguments)]
    pub fn albert_embeddings(
        params: [&Var<'t>; 7],
        ids: &Tensor,
        types: &Tensor,
        positions: &Tensor,
        eps: f64,
        dropout_p: f64,
        padding_idx: Option<usize>,
        rng: &mut Rng,
    ) -> Result<Var<'t>> {
        let v = |i: usize| params[i].value.clone();
        let p = EmbeddingParams {
            word: v(0),
            position: v(1),
            token_type: v(2),
            ln_gamma: v(3),
            ln_beta: v(4),
            proj_w: v(5),
            proj_b: v(6),
        };
        let dropout = if dropout_p > 0.0 {
            if dropout_p >= 1.0 {
                return Err(engine::Error::Invalid(format!("albert_embeddings: dropout {dropout_p} must be < 1")));
            }
            let n = ids.numel() * p.word.shape()[1];
            Some(EmbeddingDropout::draw(rng, n, dropout_p, p.word.device())?)
        } else {
            None
        };
        let (y, saved) = ops::albert_embeddings(&p, ids, types, positions, eps, dropout, padding_idx)?;
        Ok(params[0].rec(Op::AlbertEmbeddings { params: Box::new(p), saved }, &params, y))
    }

    /// Activation checkpointing: `f(inputs)` computed without recording its inside; only the
    /// inputs are kept, and backward runs `f` again on a fresh tape to get their gradients.
    /// `f` must be a pure function of its inputs (draw any randomness from a seed it owns, so
    /// the recomputation sees the same dropout masks). Parameters it uses must be among
    /// `inputs` (not fetched from the store inside), so their gradients reach the store.
    pub fn checkpoint(inputs: &[&Var<'t>], f: Arc<CheckpointFn>) -> Result<Var<'t>> {
        let first = inputs.first().ok_or_else(|| engine::Error::Invalid("checkpoint: no inputs given".into()))?;
        let values: Vec<Tensor> = inputs.iter().map(|v| v.value.clone()).collect();
        let y = {
            let inner = Tape::no_grad();
            let vars: Vec<Var<'_>> = values.iter().map(|t| inner.constant(t.clone())).collect();
            f(&inner, &vars)?.value.clone()
        };
        let op = Op::Checkpoint { inputs: if first.keeps() { values } else { vec![] }, f: Recompute(f) };
        Ok(first.rec(op, inputs, y))
    }
}

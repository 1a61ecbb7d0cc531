//! One post-LN transformer block, as in HF's AlbertLayer:
//!   x = LN(x + Dropout(Dense(Attention(x))))
//!   x = LN(x + FFN_out(act(FFN(x))))
//! Heads use HF's [B, S, N, D] split of the hidden width (head h = columns h*D..(h+1)*D).

use super::params::BlockIds;
use super::{check_companion, Mode, Weights};
use crate::config::{Activation, AlbertConfig};
use autograd::{CheckpointFn, ParamId, Var};
use engine::{Result, Rng, Tensor};
use std::sync::Arc;

/// The additive attention mask [B, 1, 1, S] (0 to attend, the compute dtype's most negative
/// finite value for padding, as transformers builds it: f32::MIN, or bf16's -3.39e38, which stays
/// finite when the mask is converted to bf16), or None when there is no padding.
pub(crate) fn additive_mask(mask: Option<&Tensor>, b: usize, s: usize, dtype: engine::DType) -> Result<Option<Tensor>> {
    let Some(m) = mask else { return Ok(None) };
    check_companion("attention_mask", m, b, s)?;
    let v = m.ids("attention_mask")?;
    if v.iter().all(|&x| x != 0) {
        return Ok(None);
    }
    let min = if dtype == engine::DType::BF16 { half::bf16::MIN.to_f32() } else { f32::MIN };
    let add: Vec<f32> = v.iter().map(|&x| if x != 0 { 0.0 } else { min }).collect();
    Ok(Some(Tensor::from_vec(add, &[b, 1, 1, s])?))
}

pub(crate) fn activation<'t>(a: Activation, x: &Var<'t>) -> Result<Var<'t>> {
    match a {
        Activation::GeluTanh => x.gelu_tanh(),
        Activation::GeluErf => x.gelu_erf(),
        Activation::Relu => x.relu(),
    }
}

fn dropout<'t>(x: Var<'t>, p: f64, mode: &mut Mode) -> Result<Var<'t>> {
    match mode {
        Mode::Train(rng) if p > 0.0 => x.dropout(p, rng),
        _ => Ok(x),
    }
}

/// One block, with its parameters fetched by `p` (from the forward's [`Weights`], or the inputs of
/// a checkpoint).
pub(crate) fn block<'t>(
    c: &AlbertConfig,
    p: &dyn Fn(ParamId) -> Result<Var<'t>>,
    ids: &BlockIds,
    x: &Var<'t>,
    mask: Option<&Tensor>,
    mode: &mut Mode,
) -> Result<Var<'t>> {
    let (b, s, h) = (x.shape()[0], x.shape()[1], c.hidden_size);
    let (n, d) = (c.num_attention_heads, c.head_dim());
    let a = &ids.attention;
    let proj = |lin: super::params::Linear| x.linear(&p(lin.weight)?, Some(&p(lin.bias)?));
    let (q, k, v) = (proj(a.query)?, proj(a.key)?, proj(a.value)?); // [B, S, H] each
    let mask = match mask {
        Some(m) => Some(m.to_device(x.value().device())?.to_dtype(x.value().dtype())),
        None => None,
    };
    let scale = 1.0 / (d as f64).sqrt();
    let dropout_on = c.attention_probs_dropout_prob > 0.0 && matches!(mode, Mode::Train(_));
    let fused = !dropout_on && engine::ops::attention_supported(x.value().device(), d);
    let ctx = if !fused {
        // Dropout on the probabilities needs them materialised (and the GPU's fused kernels
        // take head widths 32, 64 and 128 only): the unfused composition.
        let heads = |t: Var<'t>| t.reshape(&[b, s, n, d])?.permute(&[0, 2, 1, 3]);
        let (q, k, v) = (heads(q)?, heads(k)?, heads(v)?);
        let scores = q.matmul(&k, false, true, None)?; // [B, N, S, S]
        let probs = dropout(scores.softmax(mask.as_ref(), scale)?, c.attention_probs_dropout_prob, mode)?;
        probs.matmul(&v, false, false, None)?.permute(&[0, 2, 1, 3])?.reshape(&[b, s, h])?
    } else {
        q.attention(&k, &v, mask.as_ref(), n, scale)?
    };
    let attn = dropout(ctx.linear(&p(a.dense.weight)?, Some(&p(a.dense.bias)?))?, c.hidden_dropout_prob, mode)?;
    let x = attn.add_layer_norm(x, &p(a.norm.weight)?, &p(a.norm.bias)?, c.layer_norm_eps)?;
    let f = &ids.ffn;
    let (fw, fb) = (p(f.ffn.weight)?, p(f.ffn.bias)?);
    let inner = match c.hidden_act {
        Activation::GeluTanh => x.linear_gelu(&fw, &fb, engine::ops::Gelu::Tanh)?,
        Activation::GeluErf => x.linear_gelu(&fw, &fb, engine::ops::Gelu::Erf)?,
        Activation::Relu => activation(c.hidden_act, &x.linear(&fw, Some(&fb))?)?,
    };
    let out = inner.linear(&p(f.ffn_output.weight)?, Some(&p(f.ffn_output.bias)?))?;
    out.add_layer_norm(&x, &p(f.norm.weight)?, &p(f.norm.bias)?, c.layer_norm_eps)
}

/// Every parameter a block reads, in a fixed order (the inputs of its checkpoint after x).
fn block_params(ids: &BlockIds) -> Vec<ParamId> {
    let (a, f) = (&ids.attention, &ids.ffn);
    let mut v = Vec::new();
    for lin in [a.query, a.key, a.value, a.dense, f.ffn, f.ffn_output] {
        v.extend([lin.weight, lin.bias]);
    }
    for norm in [a.norm, f.norm] {
        v.extend([norm.weight, norm.bias]);
    }
    v
}

/// [`block`] under activation checkpointing: the tape keeps only x and the parameters, and
/// backward recomputes the block. Dropout draws its masks from a seed taken here, so the
/// recomputation replays them exactly (the masks differ from a run without recomputation,
/// which draws from `mode`'s generator directly).
pub(crate) fn block_recomputed<'t>(
    c: &AlbertConfig,
    w: &Weights<'t, '_>,
    ids: &BlockIds,
    x: &Var<'t>,
    mask: Option<&Tensor>,
    mode: &mut Mode,
) -> Result<Var<'t>> {
    let order = block_params(ids);
    let params: Vec<Var<'t>> = order.iter().map(|&id| w.get(id)).collect::<Result<_>>()?;
    let seed = match mode {
        Mode::Train(rng) => Some(rng.next_u64()),
        Mode::Eval => None,
    };
    let (c, ids, mask) = (c.clone(), *ids, mask.cloned());
    let f: Arc<CheckpointFn> = Arc::new(move |_tape, vars| {
        let p = |id: ParamId| {
            let i = order.iter().position(|&o| o == id).expect("block parameter listed in block_params");
            Ok(vars[1 + i].clone())
        };
        let mut rng = seed.map(Rng::new);
        let mut mode = match &mut rng {
            Some(r) => Mode::Train(r),
            None => Mode::Eval,
        };
        block(&c, &p, &ids, &vars[0], mask.as_ref(), &mut mode)
    });
    let mut inputs = vec![x];
    inputs.extend(params.iter());
    Var::checkpoint(&inputs, f)
}

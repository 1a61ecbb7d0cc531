//! One post-LN transformer block, as in HF's AlbertLayer:
//!   x = LN(x + Dropout(Dense(Attention(x))))
//!   x = LN(x + FFN_out(act(FFN(x))))
//! Heads use HF's [B, S, N, D] split of the hidden width (head h = columns h*D..(h+1)*D).

use super::params::BlockIds;
use super::{check_companion, Albert, Mode, Weights};
use crate::config::Activation;
use autograd::Var;
use engine::{Result, Tensor};

/// The additive attention mask [B, 1, 1, S] (0 to attend, f32::MIN for padding, as transformers
/// builds it), or None when there is no padding.
pub(crate) fn additive_mask(mask: Option<&Tensor>, b: usize, s: usize) -> Result<Option<Tensor>> {
    let Some(m) = mask else { return Ok(None) };
    check_companion("attention_mask", m, b, s)?;
    let v = m.ids("attention_mask")?;
    if v.iter().all(|&x| x != 0) {
        return Ok(None);
    }
    let add: Vec<f32> = v.iter().map(|&x| if x != 0 { 0.0 } else { f32::MIN }).collect();
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

pub(crate) fn block<'t>(
    m: &Albert,
    w: &Weights<'t, '_>,
    ids: &BlockIds,
    x: &Var<'t>,
    mask: Option<&Tensor>,
    mode: &mut Mode,
) -> Result<Var<'t>> {
    let c = &m.config;
    let (b, s, h) = (x.shape()[0], x.shape()[1], c.hidden_size);
    let (n, d) = (c.num_attention_heads, c.head_dim());
    let p = |id| w.get(id);
    let a = &ids.attention;
    let heads = |lin: super::params::Linear| -> Result<Var<'t>> {
        x.linear(&p(lin.weight)?, Some(&p(lin.bias)?))?.reshape(&[b, s, n, d])?.permute(&[0, 2, 1, 3])
    };
    let (q, k, v) = (heads(a.query)?, heads(a.key)?, heads(a.value)?);
    let mask = match mask {
        Some(m) => Some(m.to_device(x.value().device())?.to_dtype(x.value().dtype())),
        None => None,
    };
    let scores = q.matmul(&k, false, true, None)?; // [B, N, S, S]
    let probs = dropout(scores.softmax(mask.as_ref(), 1.0 / (d as f64).sqrt())?, c.attention_probs_dropout_prob, mode)?;
    let ctx = probs.matmul(&v, false, false, None)?.permute(&[0, 2, 1, 3])?.reshape(&[b, s, h])?;
    let attn = dropout(ctx.linear(&p(a.dense.weight)?, Some(&p(a.dense.bias)?))?, c.hidden_dropout_prob, mode)?;
    let x = attn.add(x)?.layer_norm(&p(a.norm.weight)?, &p(a.norm.bias)?, c.layer_norm_eps)?;
    let f = &ids.ffn;
    let inner = activation(c.hidden_act, &x.linear(&p(f.ffn.weight)?, Some(&p(f.ffn.bias)?))?)?;
    let out = inner.linear(&p(f.ffn_output.weight)?, Some(&p(f.ffn_output.bias)?))?;
    out.add(&x)?.layer_norm(&p(f.norm.weight)?, &p(f.norm.bias)?, c.layer_norm_eps)
}

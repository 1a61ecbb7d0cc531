//! Fused multi-head attention over the projections' [B, S, H] layout (see
//! `kernels::cpu::attention`): out = softmax(scale * Q K^T + mask) V per batch and head, without
//! permuting the heads out or materialising [B, N, S, S]. The backward recomputes the
//! probabilities from q and k, so nothing beyond the inputs is saved.

use super::{float_dispatch, same_kind};
use crate::elem::k;
use crate::{Error, Result, Tensor};
use kernels::cpu::attention::Attn;
use num_traits::Zero as _;

/// Checks q, k, v (and dout) and the mask; returns the sizes and the contiguous mask.
fn sizes(
    op: &str,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    heads: usize,
) -> Result<(Attn, Option<Tensor>)> {
    same_kind(op, &[q, k, v])?;
    let names = || format!("q {}, k {}, v {}", q.dims(), k.dims(), v.dims());
    if q.rank() != 3 || k.shape() != q.shape() || v.shape() != q.shape() {
        return Err(Error::Shape(format!("{op}: {}: need three [batch, seq, hidden] tensors of one shape", names())));
    }
    let (batch, seq, hidden) = (q.shape()[0], q.shape()[1], q.shape()[2]);
    if heads == 0 || hidden % heads != 0 {
        return Err(Error::Shape(format!("{op}: {}: hidden {hidden} is not a multiple of {heads} heads", names())));
    }
    let mask = match mask {
        Some(m) => {
            same_kind(op, &[q, m])?;
            if m.numel() != batch * seq || m.shape().last() != Some(&seq) || m.shape().first() != Some(&batch) {
                return Err(Error::Shape(format!(
                    "{op}: mask {} does not fit {}: need [{batch}, {seq}] (or [{batch}, 1, 1, {seq}])",
                    m.dims(),
                    names()
                )));
            }
            Some(m.contiguous())
        }
        None => None,
    };
    Ok((Attn { batch, seq, heads, head_dim: hidden / heads }, mask))
}

/// softmax(scale * Q K^T + mask) V for every batch entry and head.
/// q, k, v: [B, S, H] with H = heads * D (head h = columns h*D .. (h+1)*D, as transformers splits
/// them); mask (optional, additive, over key positions): [B, S] or [B, 1, 1, S]. Returns [B, S, H].
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    heads: usize,
    scale: f64,
) -> Result<Tensor> {
    let (a, mask) = sizes("attention", q, k, v, mask, heads)?;
    let (q, k, v) = (q.contiguous(), k.contiguous(), v.contiguous());
    float_dispatch!("attention", q.dtype(), |T| {
        let mut out = vec![T::zero(); a.len()];
        let m = match &mask {
            Some(m) => Some(m.data::<T>("attention mask")?),
            None => None,
        };
        let (qd, kd, vd) = (q.data::<T>("attention")?, k.data::<T>("attention")?, v.data::<T>("attention")?);
        k::attention_fwd(&a, qd, kd, vd, m, <T as kernels::Real>::c(scale), &mut out);
        Tensor::from_vec(out, q.shape())
    })
}

/// Gradients (dq, dk, dv) of [`attention`] given dout [B, S, H]; the mask gets none.
pub fn attention_bwd(
    dout: &Tensor,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    heads: usize,
    scale: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (a, mask) = sizes("attention_bwd", q, k, v, mask, heads)?;
    same_kind("attention_bwd", &[q, dout])?;
    if dout.shape() != q.shape() {
        return Err(Error::Shape(format!("attention_bwd: dout {} vs q {}", dout.dims(), q.dims())));
    }
    let (q, k, v, g) = (q.contiguous(), k.contiguous(), v.contiguous(), dout.contiguous());
    float_dispatch!("attention_bwd", q.dtype(), |T| {
        let (mut dq, mut dk, mut dv) = (vec![T::zero(); a.len()], vec![T::zero(); a.len()], vec![T::zero(); a.len()]);
        let m = match &mask {
            Some(m) => Some(m.data::<T>("attention mask")?),
            None => None,
        };
        k::attention_bwd(
            &a,
            q.data::<T>("attention_bwd")?,
            k.data::<T>("attention_bwd")?,
            v.data::<T>("attention_bwd")?,
            m,
            <T as kernels::Real>::c(scale),
            g.data::<T>("attention_bwd")?,
            &mut dq,
            &mut dk,
            &mut dv,
        );
        Ok((Tensor::from_vec(dq, q.shape())?, Tensor::from_vec(dk, q.shape())?, Tensor::from_vec(dv, q.shape())?))
    })
}

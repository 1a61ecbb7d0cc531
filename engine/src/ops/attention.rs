//! Fused multi-head attention over the projections' [B, S, H] layout (see
//! `kernels::cpu::attention`): out = softmax(scale * Q K^T + mask) V per batch and head, without
//! permuting the heads out or materialising [B, N, S, S]. The backward recomputes the
//! probabilities from q and k, so nothing beyond the inputs is saved.

use super::{float_dispatch, same_kind};
use crate::cuda::{dt_of, empty, op_gpu, ptr};
use crate::elem::k;
use crate::{DType, Device, Error, Result, Tensor};
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

/// Whether the fused op runs for this head width on `device` (the CPU kernel takes any; the
/// CUDA kernels are specialised for 32, 64 and 128). Callers fall back to the unfused composition.
pub fn attention_supported(device: Device, head_dim: usize) -> bool {
    match device {
        Device::Cpu => true,
        Device::Cuda(_) => matches!(head_dim, 32 | 64 | 128),
    }
}

/// The CUDA kernels' view of [B, S, H] tensors: head h of row s at s*H + h*D.
fn cuda_shape(a: &Attn, scale: f64) -> (kernels::cuda::attention::AttnShape, kernels::cuda::attention::AttnLayout) {
    let h = a.heads * a.head_dim;
    (
        kernels::cuda::attention::AttnShape {
            b: a.batch,
            n: a.heads,
            s_q: a.seq,
            s_k: a.seq,
            d: a.head_dim,
            scale: scale as f32,
        },
        kernels::cuda::attention::AttnLayout { batch_stride: a.seq * h, head_stride: a.head_dim, row_stride: h },
    )
}

/// The flash-attention forward on the device: (out, per-row log-sum-exp [B, N, S] in f32).
fn forward_cuda(
    g: &std::sync::Arc<kernels::cuda::Gpu>,
    a: &Attn,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Option<Tensor>,
    scale: f64,
) -> Result<(Tensor, Tensor)> {
    let dt = dt_of("attention", q)?;
    let (shape, l) = cuda_shape(a, scale);
    let out = empty(g, q.dtype(), q.shape())?;
    let lse = empty(g, DType::F32, &[a.batch, a.heads, a.seq])?;
    // The kernels read an f32 additive key mask.
    let mask = mask.as_ref().map(|m| m.to_dtype(DType::F32));
    kernels::cuda::attention::attention_fwd(
        g,
        dt,
        &shape,
        ptr(q),
        &l,
        ptr(k),
        &l,
        ptr(v),
        &l,
        mask.as_ref().map(ptr),
        ptr(&out),
        &l,
        ptr(&lse),
    )?;
    Ok((out, lse))
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
    if let Some(g) = op_gpu("attention", &[&q, &k, &v])? {
        return Ok(forward_cuda(&g, &a, &q, &k, &v, &mask, scale)?.0);
    }
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
    if let Some(gpu) = op_gpu("attention_bwd", &[&q, &k, &v, &g])? {
        // The flash backward needs O and the log-sum-exps: recomputed here (one more forward)
        // so the op keeps nothing but its inputs, on either device.
        let (o, lse) = forward_cuda(&gpu, &a, &q, &k, &v, &mask, scale)?;
        let dt = dt_of("attention_bwd", &q)?;
        let (shape, l) = cuda_shape(&a, scale);
        let (dq, dk, dv) = (
            empty(&gpu, q.dtype(), q.shape())?,
            empty(&gpu, q.dtype(), q.shape())?,
            empty(&gpu, q.dtype(), q.shape())?,
        );
        let mask = mask.as_ref().map(|m| m.to_dtype(DType::F32));
        kernels::cuda::attention::attention_bwd(
            &gpu,
            dt,
            &shape,
            ptr(&q),
            &l,
            ptr(&k),
            &l,
            ptr(&v),
            &l,
            mask.as_ref().map(ptr),
            ptr(&o),
            &l,
            ptr(&lse),
            ptr(&g),
            &l,
            ptr(&dq),
            &l,
            ptr(&dk),
            &l,
            ptr(&dv),
            &l,
        )?;
        return Ok((dq, dk, dv));
    }
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

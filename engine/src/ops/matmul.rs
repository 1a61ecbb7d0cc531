//! matmul and batched matmul: out[..., m, n] = op(a)[..., m, k] * op(b)[..., k, n] (+ bias[n]).
//!
//! `trans_a` / `trans_b` say the operand is stored transposed (a Linear weight W[out, in] is used
//! with trans_b = true). Transposed *views* (e.g. `x.transpose(-1, -2)`) are also handled without
//! a copy: the gemm reads them through their strides. Leading (batch) dimensions broadcast; a
//! rank-2 operand is shared by every batch entry, and x[B, S, H] * W^T runs as one big gemm.

use super::{float_dispatch, reduce::sum_to_shape, same_kind};
use crate::elem::k;
use crate::{broadcast_shapes, Error, Result, Tensor};
use kernels::cpu::matmul::Gemm;

/// How one operand is read by the gemm.
struct Operand {
    t: Tensor,
    trans: bool,
    ld: usize,
    batch_stride: usize,
}

/// One stride that walks all batch dims in order, if they collapse to one (else None).
fn collapse(shape: &[usize], strides: &[usize]) -> Option<usize> {
    let dims: Vec<(usize, usize)> = shape.iter().zip(strides).filter(|(&n, _)| n > 1).map(|(&n, &s)| (n, s)).collect();
    for w in dims.windows(2) {
        if w[0].1 != w[1].1 * w[1].0 {
            return None;
        }
    }
    Some(dims.last().map_or(0, |d| d.1))
}

/// Views `x` (matrix dims last) as a gemm operand over the broadcast `batch` dims, copying only if
/// its strides cannot be expressed as (trans, ld, batch stride).
fn operand(x: &Tensor, trans: bool, batch: &[usize]) -> Result<Operand> {
    let r = x.rank();
    let (d0, d1) = (x.shape()[r - 2], x.shape()[r - 1]);
    let mut full = batch.to_vec();
    full.extend([d0, d1]);
    for attempt in 0..2 {
        let v = if attempt == 0 { x.broadcast_to(&full)? } else { x.contiguous().broadcast_to(&full)? };
        let st = v.layout().strides();
        let nb = batch.len();
        let (s0, s1) = (st[nb], st[nb + 1]);
        let Some(bs) = collapse(&v.shape()[..nb], &st[..nb]) else { continue };
        // Row-major with leading dimension s0.
        if (d1 == 1 || s1 == 1) && (d0 == 1 || s0 >= d1) {
            let ld = if d0 == 1 { d1 } else { s0 };
            return Ok(Operand { t: v, trans, ld, batch_stride: bs });
        }
        // Column-major: it is the transpose of a row-major [d1, d0] matrix with leading dim s1.
        if (d0 == 1 || s0 == 1) && (d1 == 1 || s1 >= d0) {
            let ld = if d1 == 1 { d0 } else { s1 };
            return Ok(Operand { t: v, trans: !trans, ld, batch_stride: bs });
        }
    }
    Err(Error::Invalid(format!("matmul: cannot address operand {} as a matrix", x.dims())))
}

fn mat_dims(shape: &[usize], trans: bool) -> (usize, usize) {
    let r = shape.len();
    if trans {
        (shape[r - 1], shape[r - 2])
    } else {
        (shape[r - 2], shape[r - 1])
    }
}

/// out = op(a) op(b) + bias. a: [..., m, k] ([..., k, m] if trans_a); b: [..., k, n] ([..., n, k]
/// if trans_b); bias: [n]; out: [broadcast(batch dims), m, n].
pub fn matmul(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool, bias: Option<&Tensor>) -> Result<Tensor> {
    same_kind("matmul", &[a, b])?;
    if a.rank() < 2 || b.rank() < 2 {
        return Err(Error::Shape(format!(
            "matmul: lhs {} and rhs {}: both operands need at least 2 dimensions",
            a.dims(),
            b.dims()
        )));
    }
    let (m, ka) = mat_dims(a.shape(), trans_a);
    let (kb, n) = mat_dims(b.shape(), trans_b);
    if ka != kb {
        return Err(Error::Shape(format!(
            "matmul: lhs {} and rhs {}: inner dimensions {ka} vs {kb}",
            a.dims(),
            b.dims()
        )));
    }
    if let Some(bias) = bias {
        same_kind("matmul", &[a, bias])?;
        if bias.shape() != [n] {
            return Err(Error::Shape(format!("matmul: bias {} must be [{n}] for output width {n}", bias.dims())));
        }
    }
    let batch = broadcast_shapes("matmul (batch dims)", &a.shape()[..a.rank() - 2], &b.shape()[..b.rank() - 2])?;
    let nbatch: usize = batch.iter().product();
    let (oa, ob) = (operand(a, trans_a, &batch)?, operand(b, trans_b, &batch)?);
    let mut g = Gemm {
        batch: nbatch,
        m,
        n,
        k: ka,
        trans_a: oa.trans,
        trans_b: ob.trans,
        lda: oa.ld,
        ldb: ob.ld,
        ldc: n,
        stride_a: oa.batch_stride,
        stride_b: ob.batch_stride,
        stride_c: m * n,
        accumulate: false,
    };
    // A shared rhs and row-major lhs whose batches follow each other: one tall gemm.
    if nbatch > 1 && ob.batch_stride == 0 && !oa.trans && oa.batch_stride == m * oa.ld {
        g = Gemm { batch: 1, m: nbatch * m, stride_a: 0, stride_c: 0, ..g };
    }
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    let bias = bias.map(|b| b.contiguous());
    if let Some(gpu) = crate::cuda::op_gpu("matmul", &[&oa.t, &ob.t])? {
        use kernels::cuda::gemm::{gemm, Epilogue};
        let out = crate::cuda::empty(&gpu, a.dtype(), &out_shape)?;
        if out.numel() == 0 {
            return Ok(out);
        }
        if g.k == 0 {
            // An empty sum: the gemm kernels are never asked for k = 0.
            return match &bias {
                Some(b) => super::add(&Tensor::zeros_on(&out_shape, a.dtype(), a.device())?, b),
                None => Tensor::zeros_on(&out_shape, a.dtype(), a.device()),
            };
        }
        let dt = crate::cuda::dt_of("matmul", a)?;
        let (bp, ep) = match &bias {
            Some(b) => (Some(crate::cuda::ptr(b)), Epilogue::Bias),
            None => (None, Epilogue::None),
        };
        use crate::cuda::ptr;
        gemm(&gpu, dt, &g, ptr(&oa.t), ptr(&ob.t), ptr(&out), bp, ep, None)?;
        return Ok(out);
    }
    float_dispatch!("matmul", a.dtype(), |T| {
        let (sa, oa_off) = oa.t.storage_slice::<T>("matmul")?;
        let (sb, ob_off) = ob.t.storage_slice::<T>("matmul")?;
        let bias = match &bias {
            Some(t) => Some(t.data::<T>("matmul bias")?),
            None => None,
        };
        let out = if nbatch * m * n == 0 { Vec::new() } else { k::gemm_new(&g, &sa[oa_off..], &sb[ob_off..], bias) };
        Tensor::from_vec(out, &out_shape)
    })
}

/// Gradients of `matmul(a, b, trans_a, trans_b, bias)`: (da, db, dbias if `has_bias`).
pub fn matmul_bwd(
    dout: &Tensor,
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
    has_bias: bool,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    // dA = dC op(B)^T, stored transposed if A was; dB = op(A)^T dC, likewise.
    let da = if trans_a { matmul(b, dout, trans_b, true, None)? } else { matmul(dout, b, false, !trans_b, None)? };
    let db = if b.rank() == 2 && a.rank() > 2 && !trans_a {
        // Shared weight: fold all batch rows into one gemm instead of a per-batch sum.
        let (r, kk, n) = (a.numel() / a.shape()[a.rank() - 1], a.shape()[a.rank() - 1], dout.shape()[dout.rank() - 1]);
        let (a2, g2) = (a.reshape(&[r, kk])?, dout.reshape(&[r, n])?);
        if trans_b {
            matmul(&g2, &a2, true, false, None)?
        } else {
            matmul(&a2, &g2, true, false, None)?
        }
    } else if trans_b {
        matmul(dout, a, true, trans_a, None)?
    } else {
        matmul(a, dout, !trans_a, false, None)?
    };
    let dbias = if has_bias {
        let n = dout.shape()[dout.rank() - 1];
        Some(super::sum(&dout.reshape(&[dout.numel() / n.max(1), n])?, 0, false)?)
    } else {
        None
    };
    Ok((sum_to_shape(&da, a.shape())?, sum_to_shape(&db, b.shape())?, dbias))
}

/// [`matmul_bwd`] for a weight whose gradient already holds contributions (ALBERT applies one
/// weight at every layer): on the GPU the weight's gradient is added into `db_acc` by the gemm
/// itself (beta = 1 in the epilogue), instead of being formed in a fresh buffer and summed in a
/// second pass. Returns (da, dbias). On the CPU, and when `db_acc` is shared, strided, or of
/// another kind, it forms the gradient and adds it: measured on the tiny training step, the CPU
/// gemm with beta = 1 was slower (matmul backward 80.8 vs 74.8 ms) than a fresh, unzeroed output
/// plus the add.
pub fn matmul_bwd_accumulate(
    dout: &Tensor,
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
    has_bias: bool,
    db_acc: &mut Tensor,
) -> Result<(Tensor, Option<Tensor>)> {
    let direct = b.device().is_cuda()
        && b.rank() == 2
        && a.rank() >= 2
        && !trans_a
        && db_acc.shape() == b.shape()
        && db_acc.dtype() == b.dtype()
        && db_acc.device() == b.device()
        && dout.device() == b.device()
        && a.device() == b.device();
    if !direct {
        let (da, db, dbias) = matmul_bwd(dout, a, b, trans_a, trans_b, has_bias)?;
        db_acc.add_assign(&db)?;
        return Ok((da, dbias));
    }
    let da = matmul(dout, b, false, !trans_b, None)?;
    let da = sum_to_shape(&da, a.shape())?;
    let (r, kk, n) = (a.numel() / a.shape()[a.rank() - 1], a.shape()[a.rank() - 1], dout.shape()[dout.rank() - 1]);
    let (a2, g2) = (a.reshape(&[r, kk])?.contiguous(), dout.reshape(&[r, n])?.contiguous());
    // Linear weight W[n, k] (y = a W^T): dW = g^T a. Plain B[k, n] (y = a B): dB = a^T g.
    let (lhs, rhs, m_out, n_out) = if trans_b { (&g2, &a2, n, kk) } else { (&a2, &g2, kk, n) };
    let g = Gemm { accumulate: true, ..Gemm::new(m_out, n_out, r, true, false) };
    if !accumulate_into(db_acc, lhs, rhs, &g)? {
        let db = matmul(lhs, rhs, true, false, None)?;
        db_acc.add_assign(&db)?;
    }
    let dbias = if has_bias { Some(super::sum(&g2, 0, false)?) } else { None };
    Ok((da, dbias))
}

/// out += lhs^T rhs by one accumulating gemm on the device, if `out` can be written in place
/// (only device tensors reach here: on the host, `matmul_bwd_accumulate` forms and adds).
fn accumulate_into(out: &mut Tensor, lhs: &Tensor, rhs: &Tensor, g: &Gemm) -> Result<bool> {
    if g.k == 0 || out.numel() == 0 {
        return Ok(true);
    }
    let dtype = out.dtype();
    let Some(crate::Storage::Cuda(s)) = out.exclusive_storage() else { return Ok(false) };
    let Some(dt) = crate::storage::cuda_dt(dtype) else { return Ok(false) };
    let gpu = s.buf.gpu().clone();
    let (pa, pb, c) = (crate::cuda::ptr(lhs), crate::cuda::ptr(rhs), s.buf.ptr(0));
    kernels::cuda::gemm::gemm(&gpu, dt, g, pa, pb, c, None, kernels::cuda::gemm::Epilogue::None, None)?;
    Ok(true)
}

/// The GELU a fused Linear applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gelu {
    Tanh,
    Erf,
}

/// (pre, gelu(pre)) for pre = x W^T + bias: a Linear layer [.., in] x [out, in] followed by GELU.
/// On the GPU the gemm's epilogue adds the bias and applies the GELU while the tile is still in
/// registers, writing `pre` beside it for the backward (no separate bias or activation pass); on
/// the CPU the matmul and the activation kernels run back to back (bit-identical to the two ops).
pub fn linear_gelu(x: &Tensor, w: &Tensor, bias: &Tensor, gelu: Gelu) -> Result<(Tensor, Tensor)> {
    same_kind("linear_gelu", &[x, w, bias])?;
    let (rows, k) = super::rows_cols("linear_gelu", x)?;
    if w.rank() != 2 || w.shape()[1] != k {
        return Err(Error::Shape(format!(
            "linear_gelu: input {} and weight {}: need weight [out, {k}]",
            x.dims(),
            w.dims()
        )));
    }
    let n = w.shape()[0];
    super::expect_shape("linear_gelu", "bias", bias, &[n])?;
    let mut out_shape = x.shape().to_vec();
    *out_shape.last_mut().expect("rank >= 1") = n;
    if let Some(gpu) = crate::cuda::op_gpu("linear_gelu", &[x, w, bias])? {
        use crate::cuda::{empty, ptr};
        use kernels::cuda::gemm::{gemm, Epilogue};
        let (xc, wc, bc) = (x.contiguous(), w.contiguous(), bias.contiguous());
        let (pre, y) = (empty(&gpu, x.dtype(), &out_shape)?, empty(&gpu, x.dtype(), &out_shape)?);
        if rows * n == 0 {
            return Ok((pre, y));
        }
        if k == 0 {
            let pre = super::add(&Tensor::zeros_on(&out_shape, x.dtype(), x.device())?, bias)?;
            let y = match gelu {
                Gelu::Tanh => super::gelu_tanh(&pre)?,
                Gelu::Erf => super::gelu_erf(&pre)?,
            };
            return Ok((pre, y));
        }
        let ep = match gelu {
            Gelu::Tanh => Epilogue::BiasGeluTanh,
            Gelu::Erf => Epilogue::BiasGeluErf,
        };
        let dt = crate::cuda::dt_of("linear_gelu", x)?;
        let g = Gemm::new(rows, n, k, false, true);
        gemm(&gpu, dt, &g, ptr(&xc), ptr(&wc), ptr(&y), Some(ptr(&bc)), ep, Some(ptr(&pre)))?;
        return Ok((pre, y));
    }
    let pre = matmul(x, w, false, true, Some(bias))?;
    let y = match gelu {
        Gelu::Tanh => super::gelu_tanh(&pre)?,
        Gelu::Erf => super::gelu_erf(&pre)?,
    };
    Ok((pre, y))
}

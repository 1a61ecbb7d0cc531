//! LayerNorm over the last axis (biased variance, configurable eps; ALBERT uses 1e-12).

use super::{expect_shape, float_dispatch, rows_cols, same_kind};
use crate::cuda::{dt_of, empty, expect_saved_f32, op_gpu, ptr};
use crate::elem::k;
use crate::DType;
use crate::{Result, Tensor};
use num_traits::Zero as _;

/// What the forward keeps for the backward: per-row mean and 1/sqrt(var + eps) (f32 on the GPU,
/// whatever the activations' dtype).
#[derive(Clone, Debug)]
pub struct LayerNormSaved {
    pub mean: Tensor,
    pub rstd: Tensor,
}

/// y = (x - mean) / sqrt(var + eps) * gamma + beta. x: [..., C]; gamma, beta: [C].
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<(Tensor, LayerNormSaved)> {
    same_kind("layer_norm", &[x, gamma, beta])?;
    let (rows, cols) = rows_cols("layer_norm", x)?;
    expect_shape("layer_norm", "gamma", gamma, &[cols])?;
    expect_shape("layer_norm", "beta", beta, &[cols])?;
    let (x, g, b) = (x.contiguous(), gamma.contiguous(), beta.contiguous());
    if let Some(gpu) = op_gpu("layer_norm", &[&x, &g, &b])? {
        let out = empty(&gpu, x.dtype(), x.shape())?;
        let (mean, rstd) = (empty(&gpu, DType::F32, &[rows])?, empty(&gpu, DType::F32, &[rows])?);
        let dt = dt_of("layer_norm", &x)?;
        kernels::cuda::layernorm::layernorm_fwd(
            &gpu,
            dt,
            ptr(&out),
            ptr(&mean),
            ptr(&rstd),
            ptr(&x),
            ptr(&g),
            ptr(&b),
            rows,
            cols,
            eps as f32,
        )?;
        return Ok((out, LayerNormSaved { mean, rstd }));
    }
    float_dispatch!("layer_norm", x.dtype(), |T| {
        let (mut out, mut mean, mut rstd) =
            (vec![T::zero(); rows * cols], vec![T::zero(); rows], vec![T::zero(); rows]);
        let op = "layer_norm";
        let e = <T as kernels::Real>::c(eps);
        k::layernorm_fwd(
            &mut out,
            &mut mean,
            &mut rstd,
            x.data::<T>(op)?,
            g.data::<T>(op)?,
            b.data::<T>(op)?,
            rows,
            cols,
            e,
        );
        let saved = LayerNormSaved { mean: Tensor::from_vec(mean, &[rows])?, rstd: Tensor::from_vec(rstd, &[rows])? };
        Ok((Tensor::from_vec(out, x.shape())?, saved))
    })
}

/// (dx, dgamma, dbeta) for `layer_norm`.
pub fn layer_norm_bwd(
    dout: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    saved: &LayerNormSaved,
) -> Result<(Tensor, Tensor, Tensor)> {
    same_kind("layer_norm_bwd", &[dout, x, gamma])?;
    expect_shape("layer_norm_bwd", "dout", dout, x.shape())?;
    let (rows, cols) = rows_cols("layer_norm_bwd", x)?;
    let (x, g, dy) = (x.contiguous(), gamma.contiguous(), dout.contiguous());
    if let Some(gpu) = op_gpu("layer_norm_bwd", &[&x, &g, &dy])? {
        expect_saved_f32("layer_norm_bwd", "mean", &saved.mean, rows, x.device())?;
        expect_saved_f32("layer_norm_bwd", "rstd", &saved.rstd, rows, x.device())?;
        let dx = empty(&gpu, x.dtype(), x.shape())?;
        let (dg, db) = (empty(&gpu, g.dtype(), &[cols])?, empty(&gpu, g.dtype(), &[cols])?);
        let dt = dt_of("layer_norm_bwd", &x)?;
        kernels::cuda::layernorm::layernorm_bwd(
            &gpu,
            dt,
            ptr(&dx),
            ptr(&dg),
            ptr(&db),
            ptr(&dy),
            ptr(&x),
            ptr(&g),
            ptr(&saved.mean),
            ptr(&saved.rstd),
            rows,
            cols,
        )?;
        return Ok((dx, dg, db));
    }
    float_dispatch!("layer_norm_bwd", x.dtype(), |T| {
        let op = "layer_norm_bwd";
        let mut dx = vec![T::zero(); rows * cols];
        let (mut dg, mut db) = (vec![T::zero(); cols], vec![T::zero(); cols]);
        k::layernorm_bwd(
            &mut dx,
            &mut dg,
            &mut db,
            dy.data::<T>(op)?,
            x.data::<T>(op)?,
            g.data::<T>(op)?,
            saved.mean.data::<T>(op)?,
            saved.rstd.data::<T>(op)?,
            rows,
            cols,
        );
        Ok((Tensor::from_vec(dx, x.shape())?, Tensor::from_vec(dg, &[cols])?, Tensor::from_vec(db, &[cols])?))
    })
}

/// y = LayerNorm(x + residual) over the last axis, the post-LN block's "add & norm" as one op.
/// Returns (y, sum, saved): `sum` = x + residual is what the backward normalises again. On the GPU
/// one kernel forms the sum, stores it and normalises it (no separate add pass); on the CPU the
/// add and the LayerNorm kernels run back to back, bit for bit as `add` then `layer_norm`.
pub fn add_layer_norm(
    x: &Tensor,
    residual: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, LayerNormSaved)> {
    same_kind("add_layer_norm", &[x, residual, gamma, beta])?;
    expect_shape("add_layer_norm", "residual", residual, x.shape())?;
    let (rows, cols) = rows_cols("add_layer_norm", x)?;
    expect_shape("add_layer_norm", "gamma", gamma, &[cols])?;
    expect_shape("add_layer_norm", "beta", beta, &[cols])?;
    let (xc, rc, g, b) = (x.contiguous(), residual.contiguous(), gamma.contiguous(), beta.contiguous());
    if let Some(gpu) = op_gpu("add_layer_norm", &[&xc, &rc, &g, &b])? {
        let (out, sum) = (empty(&gpu, x.dtype(), x.shape())?, empty(&gpu, x.dtype(), x.shape())?);
        let (mean, rstd) = (empty(&gpu, DType::F32, &[rows])?, empty(&gpu, DType::F32, &[rows])?);
        kernels::cuda::layernorm::layernorm_residual_fwd(
            &gpu,
            dt_of("add_layer_norm", &xc)?,
            ptr(&out),
            ptr(&sum),
            ptr(&mean),
            ptr(&rstd),
            ptr(&xc),
            ptr(&rc),
            ptr(&g),
            ptr(&b),
            rows,
            cols,
            eps as f32,
        )?;
        return Ok((out, sum, LayerNormSaved { mean, rstd }));
    }
    let sum = super::add(&xc, &rc)?;
    let (y, saved) = layer_norm(&sum, &g, &b, eps)?;
    Ok((y, sum, saved))
}

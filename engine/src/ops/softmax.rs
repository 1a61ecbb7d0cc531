//! Softmax over the last axis fused with a scale and an additive mask (attention probabilities).

use super::{float_dispatch, rows_cols, same_kind};
use crate::cuda::{dt_of, empty, op_gpu, ptr};
use crate::elem::k;
use crate::error::dims;
use crate::{Error, Result, Tensor};
use num_traits::Zero as _;

/// y = softmax(scale * x + mask) over the last axis.
/// x: [..., C] with R rows; mask (optional): any shape with last dim C and M rows, M dividing R;
/// mask row i applies to the R/M consecutive rows i*R/M .. (i+1)*R/M. For attention scores
/// [B, N, S, S] a padding mask [B, 1, 1, S] (or [B, S]) therefore covers every head and query.
pub fn softmax(x: &Tensor, mask: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let (rows, cols) = rows_cols("softmax", x)?;
    let mask = match mask {
        Some(m) => {
            same_kind("softmax", &[x, m])?;
            let mrows = m.numel() / cols.max(1);
            let bad = m.shape().last() != Some(&cols) || mrows == 0 || rows % mrows != 0;
            if bad {
                return Err(Error::Shape(format!(
                    "softmax: mask {} does not fit scores {}: need last dim {cols} and a row count dividing {rows}",
                    m.dims(),
                    x.dims()
                )));
            }
            Some((m.contiguous(), rows / mrows))
        }
        None => None,
    };
    let x = x.contiguous();
    if let Some(g) = op_gpu("softmax", &[&x])? {
        let out = empty(&g, x.dtype(), x.shape())?;
        let (m, rpm) = match &mask {
            Some((m, rpm)) => (Some(ptr(m)), *rpm),
            None => (None, 1),
        };
        let dt = dt_of("softmax", &x)?;
        kernels::cuda::softmax::softmax_fwd(&g, dt, ptr(&out), ptr(&x), m, rows, cols, rpm, scale as f32)?;
        return Ok(out);
    }
    float_dispatch!("softmax", x.dtype(), |T| {
        let mut out = vec![T::zero(); rows * cols];
        let (m, rpm) = match &mask {
            Some((m, rpm)) => (Some(m.data::<T>("softmax mask")?), *rpm),
            None => (None, 1),
        };
        k::softmax_fwd(&mut out, x.data::<T>("softmax")?, m, rows, cols, rpm, <T as kernels::Real>::c(scale));
        Tensor::from_vec(out, x.shape())
    })
}

/// dx from the saved output y: scale * y * (dout - sum(dout * y)).
pub fn softmax_bwd(y: &Tensor, dout: &Tensor, scale: f64) -> Result<Tensor> {
    same_kind("softmax_bwd", &[y, dout])?;
    if y.shape() != dout.shape() {
        return Err(Error::Shape(format!("softmax_bwd: y {} vs dout {}", y.dims(), dims(dout.shape()))));
    }
    let (rows, cols) = rows_cols("softmax_bwd", y)?;
    let (y, g) = (y.contiguous(), dout.contiguous());
    if let Some(gpu) = op_gpu("softmax_bwd", &[&y, &g])? {
        let dx = empty(&gpu, y.dtype(), y.shape())?;
        let dt = dt_of("softmax_bwd", &y)?;
        kernels::cuda::softmax::softmax_bwd(&gpu, dt, ptr(&dx), ptr(&y), ptr(&g), rows, cols, scale as f32)?;
        return Ok(dx);
    }
    float_dispatch!("softmax_bwd", y.dtype(), |T| {
        let mut dx = vec![T::zero(); rows * cols];
        k::softmax_bwd(
            &mut dx,
            y.data::<T>("softmax_bwd")?,
            g.data::<T>("softmax_bwd")?,
            rows,
            cols,
            <T as kernels::Real>::c(scale),
        );
        Tensor::from_vec(dx, y.shape())
    })
}

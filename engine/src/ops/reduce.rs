//! sum and mean over one axis, and `sum_to_shape` (the backward of broadcasting).

use super::float_dispatch;
use crate::cuda::{dt_of, empty, op_gpu, ptr};
use crate::elem::k;
use crate::error::dims;
use crate::{Error, Result, Tensor};
use num_traits::Zero as _;

/// (outer, len, inner) around `axis`.
fn split3(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

fn out_shape(shape: &[usize], axis: usize, keepdim: bool) -> Vec<usize> {
    let mut s = shape.to_vec();
    if keepdim {
        s[axis] = 1;
    } else {
        s.remove(axis);
    }
    s
}

/// Sum over `axis` (negative counts from the end).
pub fn sum(x: &Tensor, axis: isize, keepdim: bool) -> Result<Tensor> {
    let axis = x.layout().axis("sum", axis)?;
    let x = x.contiguous();
    let (outer, len, inner) = split3(x.shape(), axis);
    if let Some(g) = op_gpu("sum", &[&x])? {
        let out = empty(&g, x.dtype(), &out_shape(x.shape(), axis, keepdim))?;
        kernels::cuda::reduce::sum_axis_fwd(&g, dt_of("sum", &x)?, ptr(&out), ptr(&x), outer, len, inner)?;
        return Ok(out);
    }
    float_dispatch!("sum", x.dtype(), |T| {
        let mut out = vec![T::zero(); outer * inner];
        k::sum_axis_fwd(&mut out, x.data::<T>("sum")?, outer, len, inner);
        Tensor::from_vec(out, &out_shape(x.shape(), axis, keepdim))
    })
}

/// Backward of `sum`: dout broadcast back along the reduced axis of `in_shape`.
pub fn sum_bwd(dout: &Tensor, in_shape: &[usize], axis: isize) -> Result<Tensor> {
    let l = crate::Layout::contiguous(in_shape);
    let axis = l.axis("sum_bwd", axis)?;
    let (outer, len, inner) = split3(in_shape, axis);
    if dout.numel() != outer * inner {
        return Err(Error::Shape(format!(
            "sum_bwd: dout {} does not match input {} reduced over axis {axis}",
            dout.dims(),
            dims(in_shape)
        )));
    }
    let g = dout.contiguous();
    if let Some(gpu) = op_gpu("sum_bwd", &[&g])? {
        let dinp = empty(&gpu, g.dtype(), in_shape)?;
        kernels::cuda::reduce::sum_axis_bwd(&gpu, dt_of("sum_bwd", &g)?, ptr(&dinp), ptr(&g), outer, len, inner)?;
        return Ok(dinp);
    }
    float_dispatch!("sum_bwd", g.dtype(), |T| {
        let mut dinp = vec![T::zero(); outer * len * inner];
        k::sum_axis_bwd(&mut dinp, g.data::<T>("sum_bwd")?, outer, len, inner);
        Tensor::from_vec(dinp, in_shape)
    })
}

/// Mean over `axis`.
pub fn mean(x: &Tensor, axis: isize, keepdim: bool) -> Result<Tensor> {
    let a = x.layout().axis("mean", axis)?;
    let len = x.shape()[a];
    super::scale(&sum(x, axis, keepdim)?, 1.0 / len as f64)
}

/// Backward of `mean`.
pub fn mean_bwd(dout: &Tensor, in_shape: &[usize], axis: isize) -> Result<Tensor> {
    let a = crate::Layout::contiguous(in_shape).axis("mean_bwd", axis)?;
    super::scale(&sum_bwd(dout, in_shape, axis)?, 1.0 / in_shape[a] as f64)
}

/// Sums `g` down to `shape`, undoing a broadcast from `shape` to `g.shape()`.
pub fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    if shape.len() > g.rank() || crate::broadcast_shapes("sum_to_shape", shape, g.shape())? != g.shape() {
        return Err(Error::Shape(format!("sum_to_shape: {} is not a broadcast of {}", g.dims(), dims(shape))));
    }
    let lead = g.rank() - shape.len();
    let mut t = g.clone();
    if lead > 0 {
        let outer: usize = g.shape()[..lead].iter().product();
        let mut flat = vec![outer];
        flat.extend_from_slice(shape_tail(g.shape(), lead));
        t = sum(&t.reshape(&flat)?, 0, false)?;
    }
    for (i, &want) in shape.iter().enumerate() {
        if want == 1 && t.shape()[i] != 1 {
            t = sum(&t, i as isize, true)?;
        }
    }
    Ok(t)
}

fn shape_tail(s: &[usize], from: usize) -> &[usize] {
    &s[from..]
}

/// sum(x^2) over every element, accumulated in f64 on the host and in f32 on the GPU (one value
/// comes back). For global-norm gradient clipping.
pub fn sum_squares(x: &Tensor) -> Result<f64> {
    let x = x.contiguous();
    if let Some(g) = op_gpu("sum_squares", &[&x])? {
        let out = crate::cuda::zeros(&g, crate::DType::F32, &[])?;
        kernels::cuda::reduce::sum_squares(&g, dt_of("sum_squares", &x)?, ptr(&out), ptr(&x), x.numel())?;
        return out.item();
    }
    Ok(x.f32_values().iter().map(|&v| f64::from(v) * f64::from(v)).sum())
}

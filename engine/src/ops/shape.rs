//! concat along an axis, split into parts (views), and the zero-padding backward of narrow.

use super::{float_dispatch, same_kind};
use crate::cuda::{empty, op_gpu, ptr};
use crate::elem::k;
use crate::error::dims;
use crate::{Error, Result, Tensor};
use num_traits::Zero as _;

/// Joins tensors along `axis`; every other dimension must match.
pub fn concat(ts: &[Tensor], axis: isize) -> Result<Tensor> {
    let first = ts.first().ok_or_else(|| Error::Invalid("concat: no tensors given".into()))?;
    let ax = first.layout().axis("concat", axis)?;
    let refs: Vec<&Tensor> = ts.iter().collect();
    same_kind("concat", &refs)?;
    for t in ts {
        let ok = t.rank() == first.rank() && (0..t.rank()).all(|d| d == ax || t.shape()[d] == first.shape()[d]);
        if !ok {
            return Err(Error::Shape(format!("concat: {} and {} differ outside axis {ax}", first.dims(), t.dims())));
        }
    }
    let outer: usize = first.shape()[..ax].iter().product();
    let mut shape = first.shape().to_vec();
    shape[ax] = ts.iter().map(|t| t.shape()[ax]).sum();
    let parts: Vec<Tensor> = ts.iter().map(|t| t.contiguous()).collect();
    if let Some(g) = op_gpu("concat", &refs)? {
        // Each part is an [outer, inner_i] block of the [outer, sum inner_i] output.
        let out = empty(&g, first.dtype(), &shape)?;
        let (sz, total) = (first.dtype().size_in_bytes(), shape[ax..].iter().product::<usize>());
        let mut col = 0;
        for p in &parts {
            let inner = p.numel() / outer.max(1);
            let dst = ptr(&out).add_bytes(col * sz);
            kernels::cuda::copy::copy_2d(&g, sz, dst, total, ptr(p), inner, outer, inner)?;
            col += inner;
        }
        return Ok(out);
    }
    float_dispatch!("concat", first.dtype(), |T| {
        let slices = parts.iter().map(|p| p.data::<T>("concat")).collect::<Result<Vec<_>>>()?;
        let mut out = vec![T::zero(); shape.iter().product()];
        k::concat_fwd(&mut out, &slices, outer);
        Tensor::from_vec(out, &shape)
    })
}

/// Gradients of `concat`: dout split back into the parts' shapes.
pub fn concat_bwd(dout: &Tensor, shapes: &[Vec<usize>], axis: isize) -> Result<Vec<Tensor>> {
    let ax = dout.layout().axis("concat_bwd", axis)?;
    let outer: usize = dout.shape()[..ax].iter().product();
    let total: usize = shapes.iter().map(|s| s[ax]).sum();
    if total != dout.shape()[ax] {
        return Err(Error::Shape(format!("concat_bwd: parts sum to {total} along axis {ax}, dout is {}", dout.dims())));
    }
    let g = dout.contiguous();
    if let Some(gpu) = op_gpu("concat_bwd", &[&g])? {
        let (sz, total) = (g.dtype().size_in_bytes(), g.shape()[ax..].iter().product::<usize>());
        let mut col = 0;
        let mut parts = Vec::with_capacity(shapes.len());
        for s in shapes {
            let part = empty(&gpu, g.dtype(), s)?;
            let inner = part.numel() / outer.max(1);
            let src = ptr(&g).add_bytes(col * sz);
            kernels::cuda::copy::copy_2d(&gpu, sz, ptr(&part), inner, src, total, outer, inner)?;
            col += inner;
            parts.push(part);
        }
        return Ok(parts);
    }
    float_dispatch!("concat_bwd", g.dtype(), |T| {
        let mut bufs: Vec<Vec<T>> = shapes.iter().map(|s| vec![T::zero(); s.iter().product()]).collect();
        let mut views: Vec<&mut [T]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        k::concat_bwd(&mut views, g.data::<T>("concat_bwd")?, outer);
        bufs.into_iter().zip(shapes).map(|(b, s)| Tensor::from_vec(b, s)).collect()
    })
}

/// Splits along `axis` into parts of the given sizes (views, no copies).
pub fn split(x: &Tensor, axis: isize, sizes: &[usize]) -> Result<Vec<Tensor>> {
    let ax = x.layout().axis("split", axis)?;
    if sizes.iter().sum::<usize>() != x.shape()[ax] {
        return Err(Error::Shape(format!(
            "split: sizes {sizes:?} do not add up to {} (axis {ax} of {})",
            x.shape()[ax],
            x.dims()
        )));
    }
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            let part = x.narrow(ax as isize, start, n);
            start += n;
            part
        })
        .collect()
}

/// Backward of `narrow(axis, start, len)`: dout placed in zeros of the full shape.
pub fn narrow_bwd(dout: &Tensor, full_shape: &[usize], axis: isize, start: usize) -> Result<Tensor> {
    let ax = dout.layout().axis("narrow_bwd", axis)?;
    let len = dout.shape()[ax];
    if full_shape.len() != dout.rank() || start + len > full_shape[ax] {
        return Err(Error::Shape(format!(
            "narrow_bwd: dout {} at {start} does not fit {}",
            dout.dims(),
            dims(full_shape)
        )));
    }
    let mut parts = Vec::new();
    let piece = |n: usize| {
        let mut s = full_shape.to_vec();
        s[ax] = n;
        Tensor::zeros_on(&s, dout.dtype(), dout.device())
    };
    if start > 0 {
        parts.push(piece(start)?);
    }
    parts.push(dout.clone());
    let rest = full_shape[ax] - start - len;
    if rest > 0 {
        parts.push(piece(rest)?);
    }
    concat(&parts, ax as isize)
}

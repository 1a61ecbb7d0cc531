//! add / sub / mul / div with NumPy broadcasting. Broadcast operands are materialised to the
//! output shape before the kernel; in backward, gradients are summed back to each input's shape.

use super::{float_dispatch, reduce::sum_to_shape, same_kind};
use crate::cuda::{dims6, dt_of, empty, op_gpu, ptr};
use crate::elem::k;
use crate::{broadcast_shapes, Result, Tensor};
use kernels::cuda::elementwise::{self as cu, BinaryOp};
use num_traits::Zero as _;

/// Both operands expanded (as dense tensors) to the broadcast shape.
fn expand(op: &str, a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
    same_kind(op, &[a, b])?;
    let shape = broadcast_shapes(op, a.shape(), b.shape())?;
    Ok((a.broadcast_to(&shape)?.contiguous(), b.broadcast_to(&shape)?.contiguous()))
}

macro_rules! binary_fwd {
    ($name:ident, $kernel:ident, $op:ident, $doc:literal) => {
        #[doc = $doc]
        pub fn $name(a: &Tensor, b: &Tensor) -> Result<Tensor> {
            if let Some(g) = op_gpu(stringify!($name), &[a, b])? {
                // The kernel reads broadcast operands through zero strides: nothing is expanded.
                same_kind(stringify!($name), &[a, b])?;
                let shape = broadcast_shapes(stringify!($name), a.shape(), b.shape())?;
                let (va, vb) = (a.broadcast_to(&shape)?, b.broadcast_to(&shape)?);
                let out = empty(&g, a.dtype(), &shape)?;
                let (da, db) = (dims6(stringify!($name), &va)?, dims6(stringify!($name), &vb)?);
                let dt = dt_of(stringify!($name), a)?;
                cu::binary_fwd(&g, BinaryOp::$op, dt, ptr(&out), ptr(&va), &da, ptr(&vb), &db)?;
                return Ok(out);
            }
            let (a, b) = expand(stringify!($name), a, b)?;
            float_dispatch!(stringify!($name), a.dtype(), |T| {
                let mut out = vec![T::zero(); a.numel()];
                k::$kernel(&mut out, a.data::<T>(stringify!($name))?, b.data::<T>(stringify!($name))?);
                Tensor::from_vec(out, a.shape())
            })
        }
    };
}

binary_fwd!(add, add_fwd, Add, "a + b (broadcasting)");
binary_fwd!(sub, sub_fwd, Sub, "a - b (broadcasting)");
binary_fwd!(mul, mul_fwd, Mul, "a * b (broadcasting)");
binary_fwd!(div, div_fwd, Div, "a / b (broadcasting)");

/// (da, db) for out = a + b.
pub fn add_bwd(dout: &Tensor, a_shape: &[usize], b_shape: &[usize]) -> Result<(Tensor, Tensor)> {
    Ok((sum_to_shape(dout, a_shape)?, sum_to_shape(dout, b_shape)?))
}

/// (da, db) for out = a - b.
pub fn sub_bwd(dout: &Tensor, a_shape: &[usize], b_shape: &[usize]) -> Result<(Tensor, Tensor)> {
    let db = super::scale(&sum_to_shape(dout, b_shape)?, -1.0)?;
    Ok((sum_to_shape(dout, a_shape)?, db))
}

macro_rules! binary_bwd {
    ($name:ident, $kernel:ident, $doc:literal) => {
        #[doc = $doc]
        pub fn $name(dout: &Tensor, a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
            let (ea, eb) = expand(stringify!($name), a, b)?;
            super::expect_shape(stringify!($name), "dout", dout, ea.shape())?;
            let g = dout.contiguous();
            if let Some(gpu) = op_gpu(stringify!($name), &[&ea, &eb, &g])? {
                let (da, db) = (empty(&gpu, ea.dtype(), ea.shape())?, empty(&gpu, ea.dtype(), ea.shape())?);
                let dt = dt_of(stringify!($name), &ea)?;
                cu::$kernel(&gpu, dt, ptr(&da), ptr(&db), ptr(&ea), ptr(&eb), ptr(&g), ea.numel())?;
                return Ok((sum_to_shape(&da, a.shape())?, sum_to_shape(&db, b.shape())?));
            }
            let (da, db) = float_dispatch!(stringify!($name), ea.dtype(), |T| {
                let n = ea.numel();
                let (mut da, mut db) = (vec![T::zero(); n], vec![T::zero(); n]);
                let op = stringify!($name);
                k::$kernel(&mut da, &mut db, ea.data::<T>(op)?, eb.data::<T>(op)?, g.data::<T>(op)?);
                Ok((Tensor::from_vec(da, ea.shape())?, Tensor::from_vec(db, ea.shape())?))
            })?;
            Ok((sum_to_shape(&da, a.shape())?, sum_to_shape(&db, b.shape())?))
        }
    };
}

binary_bwd!(mul_bwd, mul_bwd, "(da, db) for out = a * b: (dout * b, dout * a), reduced to the input shapes.");
binary_bwd!(div_bwd, div_bwd, "(da, db) for out = a / b: (dout / b, -dout * a / b^2), reduced to the input shapes.");

//! Tensor-level ops, forward and backward, one module per op family (mirroring `kernels::cpu`).
//! Each op validates shapes and dtypes (errors name the op and the shapes), makes its inputs
//! contiguous where the kernel needs it, and calls the kernel through [`crate::elem::k`].
//! Backward functions return fresh gradient tensors; accumulation is the autograd tape's job.

pub mod activation;
pub mod attention;
pub mod binary;
pub mod cross_entropy;
pub mod dropout;
pub mod embeddings;
pub mod gather;
pub mod layernorm;
pub mod matmul;
pub mod reduce;
pub mod shape;
pub mod softmax;

pub use activation::*;
pub use attention::*;
pub use binary::*;
pub use cross_entropy::*;
pub use dropout::*;
pub use embeddings::*;
pub use gather::*;
pub use layernorm::*;
pub use matmul::*;
pub use reduce::*;
pub use shape::*;
pub use softmax::*;

use crate::error::dims;
use crate::{Error, Result, Tensor};

/// Runs `$body` with `$T` bound to the Rust type of a compute dtype (f32 or f64); other dtypes
/// are an error naming the op.
macro_rules! float_dispatch {
    ($op:expr, $dtype:expr, |$T:ident| $body:block) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            d @ ($crate::DType::BF16 | $crate::DType::F16 | $crate::DType::I64) => Err($crate::Error::DType(format!(
                "{}: dtype {} is not a compute type (convert with to_dtype(DType::F32))",
                $op, d
            ))),
        }
    };
}
pub(crate) use float_dispatch;

/// All tensors must share one dtype and one device.
pub(crate) fn same_kind(op: &str, ts: &[&Tensor]) -> Result<()> {
    let first = ts[0];
    for t in &ts[1..] {
        if t.dtype() != first.dtype() {
            return Err(Error::DType(format!(
                "{op}: dtypes differ: {} {} vs {} {}",
                first.dtype(),
                first.dims(),
                t.dtype(),
                t.dims()
            )));
        }
        if t.device() != first.device() {
            return Err(Error::Device(format!("{op}: devices differ: {} vs {}", first.device(), t.device())));
        }
    }
    Ok(())
}

/// Errors unless `t` has exactly `shape`.
pub(crate) fn expect_shape(op: &str, name: &str, t: &Tensor, shape: &[usize]) -> Result<()> {
    if t.shape() != shape {
        return Err(Error::Shape(format!("{op}: {name} has shape {}, expected {}", t.dims(), dims(shape))));
    }
    Ok(())
}

/// Splits a shape into (rows, cols) = (product of leading dims, last dim).
pub(crate) fn rows_cols(op: &str, t: &Tensor) -> Result<(usize, usize)> {
    match t.shape().split_last() {
        Some((&c, lead)) => Ok((lead.iter().product(), c)),
        None => Err(Error::Shape(format!("{op}: needs at least one dimension, got a scalar"))),
    }
}

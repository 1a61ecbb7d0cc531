//! Pointwise activations and scaling: `gelu_tanh`, `gelu_erf`, `tanh`, `relu`, `scale`.

use super::float_dispatch;
use crate::cuda::{dt_of, empty, op_gpu, ptr};
use crate::elem::k;
use crate::{Result, Tensor};
use kernels::cuda::elementwise::{self as cu, Unary};
use num_traits::Zero as _;

macro_rules! pointwise {
    ($fwd:ident, $bwd:ident, $kfwd:ident, $kbwd:ident, $unary:ident, $saved:literal) => {
        /// Forward; the output has the input's shape.
        pub fn $fwd(x: &Tensor) -> Result<Tensor> {
            let x = x.contiguous();
            if let Some(g) = op_gpu(stringify!($fwd), &[&x])? {
                let out = empty(&g, x.dtype(), x.shape())?;
                cu::unary_fwd(&g, Unary::$unary, dt_of(stringify!($fwd), &x)?, ptr(&out), ptr(&x), x.numel())?;
                return Ok(out);
            }
            float_dispatch!(stringify!($fwd), x.dtype(), |T| {
                let inp = x.data::<T>(stringify!($fwd))?;
                let mut out = vec![T::zero(); inp.len()];
                k::$kfwd(&mut out, inp);
                Tensor::from_vec(out, x.shape())
            })
        }

        #[doc = concat!("Backward from the saved ", $saved, ": returns dinp.")]
        pub fn $bwd(saved: &Tensor, dout: &Tensor) -> Result<Tensor> {
            super::same_kind(stringify!($bwd), &[saved, dout])?;
            super::expect_shape(stringify!($bwd), "dout", dout, saved.shape())?;
            let (s, g) = (saved.contiguous(), dout.contiguous());
            if let Some(gpu) = op_gpu(stringify!($bwd), &[&s, &g])? {
                let dinp = empty(&gpu, s.dtype(), s.shape())?;
                let dt = dt_of(stringify!($bwd), &s)?;
                cu::unary_bwd(&gpu, Unary::$unary, dt, ptr(&dinp), ptr(&s), ptr(&g), s.numel())?;
                return Ok(dinp);
            }
            float_dispatch!(stringify!($bwd), s.dtype(), |T| {
                let mut dinp = vec![T::zero(); s.numel()];
                k::$kbwd(&mut dinp, s.data::<T>(stringify!($bwd))?, g.data::<T>(stringify!($bwd))?);
                Tensor::from_vec(dinp, s.shape())
            })
        }
    };
}

pointwise!(gelu_tanh, gelu_tanh_bwd, gelu_tanh_fwd, gelu_tanh_bwd, GeluTanh, "input");
pointwise!(gelu_erf, gelu_erf_bwd, gelu_erf_fwd, gelu_erf_bwd, GeluErf, "input");
pointwise!(tanh, tanh_bwd, tanh_fwd, tanh_bwd, Tanh, "output");
pointwise!(relu, relu_bwd, relu_fwd, relu_bwd, Relu, "input");

/// out = s * x (its backward is `scale(dout, s)`).
pub fn scale(x: &Tensor, s: f64) -> Result<Tensor> {
    let x = x.contiguous();
    if let Some(g) = op_gpu("scale", &[&x])? {
        let out = empty(&g, x.dtype(), x.shape())?;
        cu::scale(&g, dt_of("scale", &x)?, ptr(&out), ptr(&x), s as f32, x.numel())?;
        return Ok(out);
    }
    float_dispatch!("scale", x.dtype(), |T| {
        let inp = x.data::<T>("scale")?;
        let mut out = vec![T::zero(); inp.len()];
        k::scale(&mut out, inp, <T as kernels::Real>::c(s));
        Tensor::from_vec(out, x.shape())
    })
}

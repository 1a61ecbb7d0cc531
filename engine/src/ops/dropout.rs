//! Inverted dropout. On the host the keep mask is drawn from the seeded RNG and kept; on the GPU
//! only a seed is drawn from it, and the kernels regenerate the mask from (seed, element index)
//! in the backward instead of storing it. Same seed, same mask, on either device.

use super::float_dispatch;
use crate::cuda::{dt_of, empty, op_gpu, ptr};
use crate::elem::k;
use crate::{Device, Error, Result, Rng, Tensor};
use num_traits::Zero as _;
use std::sync::Arc;

/// What the backward reuses: the host keep mask with its 1/(1-p) scale, or the device seed.
#[derive(Clone, Debug)]
pub enum DropoutMask {
    Host { keep: Arc<Vec<u8>>, scale: f64 },
    Device { seed: u64, p: f64 },
}

impl DropoutMask {
    /// A fresh mask over `n` elements for a tensor on `device`.
    pub fn draw(rng: &mut Rng, n: usize, p: f64, device: Device) -> Result<DropoutMask> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Invalid(format!("dropout: probability {p} must be in [0, 1)")));
        }
        Ok(match device {
            Device::Cpu => DropoutMask::Host { keep: Arc::new(rng.bernoulli_mask(n, 1.0 - p)), scale: 1.0 / (1.0 - p) },
            Device::Cuda(_) => DropoutMask::Device { seed: rng.next_u64(), p },
        })
    }

    /// The host mask, if this is one.
    pub fn keep(&self) -> Option<&Arc<Vec<u8>>> {
        match self {
            DropoutMask::Host { keep, .. } => Some(keep),
            DropoutMask::Device { .. } => None,
        }
    }
}

/// y = x * keep / (1 - p), keep ~ Bernoulli(1 - p). p in [0, 1); p = 0 still draws no numbers and
/// returns x unchanged with an all-ones mask.
pub fn dropout(x: &Tensor, p: f64, rng: &mut Rng) -> Result<(Tensor, DropoutMask)> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Invalid(format!("dropout: probability {p} must be in [0, 1)")));
    }
    let n = x.numel();
    if p == 0.0 {
        return Ok((x.clone(), DropoutMask::Host { keep: Arc::new(vec![1; n]), scale: 1.0 }));
    }
    let mask = DropoutMask::draw(rng, n, p, x.device())?;
    let y = apply(x, &mask, "dropout", false)?;
    Ok((y, mask))
}

/// dx = dout * keep * scale.
pub fn dropout_bwd(dout: &Tensor, mask: &DropoutMask) -> Result<Tensor> {
    apply(dout, mask, "dropout_bwd", true)
}

fn apply(x: &Tensor, mask: &DropoutMask, op: &str, backward: bool) -> Result<Tensor> {
    let x = x.contiguous();
    let (keep, scale) = match mask {
        DropoutMask::Host { keep, scale } => (keep, *scale),
        DropoutMask::Device { seed, p } => {
            let g = op_gpu(op, &[&x])?
                .ok_or_else(|| Error::Device(format!("{op}: a device dropout mask for a host tensor {}", x.dims())))?;
            let out = empty(&g, x.dtype(), x.shape())?;
            let dt = dt_of(op, &x)?;
            let f = if backward { kernels::cuda::dropout::dropout_bwd } else { kernels::cuda::dropout::dropout_fwd };
            f(&g, dt, ptr(&out), ptr(&x), x.numel(), *p as f32, *seed)?;
            return Ok(out);
        }
    };
    if keep.len() != x.numel() {
        return Err(Error::Shape(format!("{op}: mask of {} for tensor {}", keep.len(), x.dims())));
    }
    if x.device().is_cuda() {
        // A host mask (p = 0's all-ones mask) applied to a device tensor: dropout is the identity.
        if keep.iter().all(|&k| k == 1) && scale == 1.0 {
            return Ok(x);
        }
        return Err(Error::Device(format!("{op}: a host dropout mask for a device tensor {}", x.dims())));
    }
    float_dispatch!(op, x.dtype(), |T| {
        let mut out = vec![T::zero(); x.numel()];
        let (inp, scale) = (x.data::<T>(op)?, <T as kernels::Real>::c(scale));
        if backward {
            k::dropout_bwd(&mut out, inp, keep, scale);
        } else {
            k::dropout_fwd(&mut out, inp, keep, scale);
        }
        Tensor::from_vec(out, x.shape())
    })
}

//! Inverted dropout with a keep mask drawn from the seeded RNG (same seed, same mask).

use super::float_dispatch;
use crate::elem::k;
use crate::{Error, Result, Rng, Tensor};
use num_traits::Zero as _;
use std::sync::Arc;

/// The mask and scale the backward reuses.
#[derive(Clone, Debug)]
pub struct DropoutMask {
    pub keep: Arc<Vec<u8>>,
    pub scale: f64,
}

/// y = x * keep / (1 - p), keep ~ Bernoulli(1 - p). p in [0, 1); p = 0 still draws no numbers and
/// returns x unchanged with an all-ones mask.
pub fn dropout(x: &Tensor, p: f64, rng: &mut Rng) -> Result<(Tensor, DropoutMask)> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Invalid(format!("dropout: probability {p} must be in [0, 1)")));
    }
    let n = x.numel();
    if p == 0.0 {
        return Ok((x.clone(), DropoutMask { keep: Arc::new(vec![1; n]), scale: 1.0 }));
    }
    let mask = DropoutMask { keep: Arc::new(rng.bernoulli_mask(n, 1.0 - p)), scale: 1.0 / (1.0 - p) };
    let y = apply(x, &mask, "dropout", false)?;
    Ok((y, mask))
}

/// dx = dout * keep * scale.
pub fn dropout_bwd(dout: &Tensor, mask: &DropoutMask) -> Result<Tensor> {
    apply(dout, mask, "dropout_bwd", true)
}

fn apply(x: &Tensor, mask: &DropoutMask, op: &str, backward: bool) -> Result<Tensor> {
    if mask.keep.len() != x.numel() {
        return Err(Error::Shape(format!("{op}: mask of {} for tensor {}", mask.keep.len(), x.dims())));
    }
    let x = x.contiguous();
    float_dispatch!(op, x.dtype(), |T| {
        let mut out = vec![T::zero(); x.numel()];
        let (inp, scale) = (x.data::<T>(op)?, <T as kernels::Real>::c(mask.scale));
        if backward {
            k::dropout_bwd(&mut out, inp, &mask.keep, scale);
        } else {
            k::dropout_fwd(&mut out, inp, &mask.keep, scale);
        }
        Tensor::from_vec(out, x.shape())
    })
}

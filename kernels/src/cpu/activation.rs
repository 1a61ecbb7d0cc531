//! Pointwise activations: `gelu_tanh` (HF "gelu_new", and what the official ALBERT code calls
//! "gelu"), `gelu_erf` (HF "gelu", PyTorch's default), `tanh`, `relu`.
//!
//! Shapes: every slice is the same length n (any flattened shape).
//! Backward kernels overwrite `dinp` (activation gradients are never accumulated here).

use crate::Real;

/// sqrt(2/pi), the constant inside the tanh approximation of GELU.
pub const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient of the tanh approximation.
pub const GELU_TANH_C: f64 = 0.044_715;

// ---------------------------------------------------------------- gelu_tanh
/// out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
pub fn gelu_tanh_fwd_scalar<T: Real>(out: &mut [T], inp: &[T]) {
    assert_eq!(out.len(), inp.len(), "gelu_tanh_fwd: out and inp lengths");
    let (k, c, half) = (T::c(SQRT_2_OVER_PI), T::c(GELU_TANH_C), T::c(0.5));
    for (o, &x) in out.iter_mut().zip(inp) {
        *o = half * x * (T::one() + (k * (x + c * x * x * x)).tanh());
    }
}

/// dinp = dout * d/dx gelu_tanh(x)
///      = dout * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)),  t = tanh(u)
pub fn gelu_tanh_bwd_scalar<T: Real>(dinp: &mut [T], inp: &[T], dout: &[T]) {
    assert!(dinp.len() == inp.len() && inp.len() == dout.len(), "gelu_tanh_bwd: lengths");
    let (k, c, half) = (T::c(SQRT_2_OVER_PI), T::c(GELU_TANH_C), T::c(0.5));
    for ((d, &x), &g) in dinp.iter_mut().zip(inp).zip(dout) {
        let t = (k * (x + c * x * x * x)).tanh();
        let du = k * (T::one() + T::c(3.0) * c * x * x);
        *d = g * (half * (T::one() + t) + half * x * (T::one() - t * t) * du);
    }
}

pub fn gelu_tanh_fwd(out: &mut [f32], inp: &[f32]) {
    gelu_tanh_fwd_scalar(out, inp)
}

pub fn gelu_tanh_bwd(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
    gelu_tanh_bwd_scalar(dinp, inp, dout)
}

// ---------------------------------------------------------------- gelu_erf
/// out = 0.5 x (1 + erf(x / sqrt 2))
pub fn gelu_erf_fwd_scalar<T: Real>(out: &mut [T], inp: &[T]) {
    assert_eq!(out.len(), inp.len(), "gelu_erf_fwd: out and inp lengths");
    let (half, r2) = (T::c(0.5), T::c(std::f64::consts::FRAC_1_SQRT_2));
    for (o, &x) in out.iter_mut().zip(inp) {
        *o = half * x * (T::one() + (x * r2).erf());
    }
}

/// dinp = dout * (Phi(x) + x phi(x)),  Phi the normal CDF, phi the normal density.
pub fn gelu_erf_bwd_scalar<T: Real>(dinp: &mut [T], inp: &[T], dout: &[T]) {
    assert!(dinp.len() == inp.len() && inp.len() == dout.len(), "gelu_erf_bwd: lengths");
    let (half, r2) = (T::c(0.5), T::c(std::f64::consts::FRAC_1_SQRT_2));
    let inv_sqrt_2pi = T::c(0.398_942_280_401_432_7);
    for ((d, &x), &g) in dinp.iter_mut().zip(inp).zip(dout) {
        let cdf = half * (T::one() + (x * r2).erf());
        let pdf = inv_sqrt_2pi * (-half * x * x).exp();
        *d = g * (cdf + x * pdf);
    }
}

pub fn gelu_erf_fwd(out: &mut [f32], inp: &[f32]) {
    gelu_erf_fwd_scalar(out, inp)
}

pub fn gelu_erf_bwd(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
    gelu_erf_bwd_scalar(dinp, inp, dout)
}

// ---------------------------------------------------------------- tanh
pub fn tanh_fwd_scalar<T: Real>(out: &mut [T], inp: &[T]) {
    assert_eq!(out.len(), inp.len(), "tanh_fwd: out and inp lengths");
    for (o, &x) in out.iter_mut().zip(inp) {
        *o = x.tanh();
    }
}

/// dinp = dout * (1 - y^2), from the saved OUTPUT y (no need to keep the input).
pub fn tanh_bwd_scalar<T: Real>(dinp: &mut [T], out: &[T], dout: &[T]) {
    assert!(dinp.len() == out.len() && out.len() == dout.len(), "tanh_bwd: lengths");
    for ((d, &y), &g) in dinp.iter_mut().zip(out).zip(dout) {
        *d = g * (T::one() - y * y);
    }
}

pub fn tanh_fwd(out: &mut [f32], inp: &[f32]) {
    tanh_fwd_scalar(out, inp)
}

pub fn tanh_bwd(dinp: &mut [f32], out: &[f32], dout: &[f32]) {
    tanh_bwd_scalar(dinp, out, dout)
}

// ---------------------------------------------------------------- relu
pub fn relu_fwd_scalar<T: Real>(out: &mut [T], inp: &[T]) {
    assert_eq!(out.len(), inp.len(), "relu_fwd: out and inp lengths");
    for (o, &x) in out.iter_mut().zip(inp) {
        *o = if x > T::zero() { x } else { T::zero() };
    }
}

/// dinp = dout where x > 0, else 0 (the subgradient at 0 is taken as 0, as PyTorch does).
pub fn relu_bwd_scalar<T: Real>(dinp: &mut [T], inp: &[T], dout: &[T]) {
    assert!(dinp.len() == inp.len() && inp.len() == dout.len(), "relu_bwd: lengths");
    for ((d, &x), &g) in dinp.iter_mut().zip(inp).zip(dout) {
        *d = if x > T::zero() { g } else { T::zero() };
    }
}

pub fn relu_fwd(out: &mut [f32], inp: &[f32]) {
    relu_fwd_scalar(out, inp)
}

pub fn relu_bwd(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
    relu_bwd_scalar(dinp, inp, dout)
}

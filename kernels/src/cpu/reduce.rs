//! Sum over one axis. The tensor is viewed as (outer, len, inner) with the reduced axis in the
//! middle; `mean` is this followed by a scale of 1/len (done by the engine).

use crate::Real;

/// out: (outer, inner) = sum over l of inp: (outer, len, inner)
pub fn sum_axis_fwd_scalar<T: Real>(out: &mut [T], inp: &[T], outer: usize, len: usize, inner: usize) {
    assert_eq!(inp.len(), outer * len * inner, "sum_axis_fwd: inp length");
    assert_eq!(out.len(), outer * inner, "sum_axis_fwd: out length");
    for o in 0..outer {
        let dst = &mut out[o * inner..(o + 1) * inner];
        dst.fill(T::zero());
        for l in 0..len {
            let src = &inp[(o * len + l) * inner..(o * len + l + 1) * inner];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        }
    }
}

/// dinp: (outer, len, inner) = dout: (outer, inner) broadcast along the reduced axis.
pub fn sum_axis_bwd_scalar<T: Real>(dinp: &mut [T], dout: &[T], outer: usize, len: usize, inner: usize) {
    assert_eq!(dinp.len(), outer * len * inner, "sum_axis_bwd: dinp length");
    assert_eq!(dout.len(), outer * inner, "sum_axis_bwd: dout length");
    for o in 0..outer {
        let src = &dout[o * inner..(o + 1) * inner];
        for l in 0..len {
            dinp[(o * len + l) * inner..(o * len + l + 1) * inner].copy_from_slice(src);
        }
    }
}

pub fn sum_axis_fwd(out: &mut [f32], inp: &[f32], outer: usize, len: usize, inner: usize) {
    sum_axis_fwd_scalar(out, inp, outer, len, inner)
}

pub fn sum_axis_bwd(dinp: &mut [f32], dout: &[f32], outer: usize, len: usize, inner: usize) {
    sum_axis_bwd_scalar(dinp, dout, outer, len, inner)
}

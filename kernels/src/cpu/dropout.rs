//! Inverted dropout: out = inp * keep * 1/(1-p). The keep mask (1 = kept) is drawn by the engine's
//! seeded RNG, so the same seed gives the same mask; the backward applies the same mask.
//!
//! Shapes: out, inp, dout, dinp, keep: (n).

use crate::Real;

/// out = keep ? inp * scale : 0,  scale = 1/(1-p)
pub fn dropout_fwd_scalar<T: Real>(out: &mut [T], inp: &[T], keep: &[u8], scale: T) {
    assert!(out.len() == inp.len() && keep.len() == inp.len(), "dropout_fwd: lengths");
    for ((o, &x), &k) in out.iter_mut().zip(inp).zip(keep) {
        *o = if k != 0 { x * scale } else { T::zero() };
    }
}

/// dinp = keep ? dout * scale : 0   (overwritten)
pub fn dropout_bwd_scalar<T: Real>(dinp: &mut [T], dout: &[T], keep: &[u8], scale: T) {
    dropout_fwd_scalar(dinp, dout, keep, scale)
}

pub fn dropout_fwd(out: &mut [f32], inp: &[f32], keep: &[u8], scale: f32) {
    dropout_fwd_scalar(out, inp, keep, scale)
}

pub fn dropout_bwd(dinp: &mut [f32], dout: &[f32], keep: &[u8], scale: f32) {
    dropout_bwd_scalar(dinp, dout, keep, scale)
}

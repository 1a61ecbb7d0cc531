//! Elementwise binary ops on equal-length slices (the engine materialises broadcasts and reduces
//! their gradients back), scaling, and the `+=` used to accumulate gradients.
//!
//! Shapes: out, a, b, dout, da, db: (n).

use crate::Real;

macro_rules! binary_scalar {
    ($name:ident, $op:tt, $doc:literal) => {
        #[doc = $doc]
        pub fn $name<T: Real>(out: &mut [T], a: &[T], b: &[T]) {
            assert!(out.len() == a.len() && a.len() == b.len(), concat!(stringify!($name), ": lengths"));
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = x $op y;
            }
        }
    };
}

binary_scalar!(add_fwd_scalar, +, "out = a + b");
binary_scalar!(sub_fwd_scalar, -, "out = a - b");
binary_scalar!(mul_fwd_scalar, *, "out = a * b");
binary_scalar!(div_fwd_scalar, /, "out = a / b");

/// da = dout * b,  db = dout * a   (both overwritten)
pub fn mul_bwd_scalar<T: Real>(da: &mut [T], db: &mut [T], a: &[T], b: &[T], dout: &[T]) {
    assert!(da.len() == a.len() && db.len() == a.len() && b.len() == a.len() && dout.len() == a.len());
    for i in 0..a.len() {
        da[i] = dout[i] * b[i];
        db[i] = dout[i] * a[i];
    }
}

/// da = dout / b,  db = -dout * a / b^2   (both overwritten)
pub fn div_bwd_scalar<T: Real>(da: &mut [T], db: &mut [T], a: &[T], b: &[T], dout: &[T]) {
    assert!(da.len() == a.len() && db.len() == a.len() && b.len() == a.len() && dout.len() == a.len());
    for i in 0..a.len() {
        let inv = T::one() / b[i];
        da[i] = dout[i] * inv;
        db[i] = -dout[i] * a[i] * inv * inv;
    }
}

/// out = s * a   (also the backward of scale: dinp = s * dout)
pub fn scale_fwd_scalar<T: Real>(out: &mut [T], a: &[T], s: T) {
    assert_eq!(out.len(), a.len(), "scale: lengths");
    for (o, &x) in out.iter_mut().zip(a) {
        *o = s * x;
    }
}

/// acc += x   (gradient accumulation)
pub fn add_assign_scalar<T: Real>(acc: &mut [T], x: &[T]) {
    assert_eq!(acc.len(), x.len(), "add_assign: lengths");
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += v;
    }
}

pub fn add_fwd(out: &mut [f32], a: &[f32], b: &[f32]) {
    add_fwd_scalar(out, a, b)
}
pub fn sub_fwd(out: &mut [f32], a: &[f32], b: &[f32]) {
    sub_fwd_scalar(out, a, b)
}
pub fn mul_fwd(out: &mut [f32], a: &[f32], b: &[f32]) {
    mul_fwd_scalar(out, a, b)
}
pub fn div_fwd(out: &mut [f32], a: &[f32], b: &[f32]) {
    div_fwd_scalar(out, a, b)
}
pub fn mul_bwd(da: &mut [f32], db: &mut [f32], a: &[f32], b: &[f32], dout: &[f32]) {
    mul_bwd_scalar(da, db, a, b, dout)
}
pub fn div_bwd(da: &mut [f32], db: &mut [f32], a: &[f32], b: &[f32], dout: &[f32]) {
    div_bwd_scalar(da, db, a, b, dout)
}
pub fn scale_fwd(out: &mut [f32], a: &[f32], s: f32) {
    scale_fwd_scalar(out, a, s)
}
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    add_assign_scalar(acc, x)
}

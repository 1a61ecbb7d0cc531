//! GPU elementwise ops (kernels::cuda::elementwise) against the CPU scalar references:
//! binary ops dense and broadcast (cpu::binary, exact: the same f32 operations), their backward,
//! scale and add_assign (exact), and the activations vs the f64 references of cpu::activation.
//! Storage f32 and bf16 (inputs rounded to bf16 on the host first; bf16 outputs compared with
//! the reference rounded the same way, or within one bf16 rounding). Outputs are guarded by
//! canaries; shift 1 puts every pointer off its 16-byte boundary (the scalar path).
//! Skips (passes) when there is no CUDA device.
mod common;

use common::{assert_close, f32v, f64v, rand_vec};
use kernels::cpu::activation::*;
use kernels::cpu::binary::*;
use kernels::cpu::copy::copy_strided_scalar;
use kernels::cuda::elementwise::{
    add_assign, binary_fwd, div_bwd, mul_bwd, scale, unary_bwd, unary_fwd, BinaryOp, Unary,
};
use kernels::cuda::{download_f32, test_device, upload_f32, DevPtr, DeviceBuffer, Dims6, Dt, Gpu};
use std::sync::Arc;

const SIZES: [usize; 9] = [1, 3, 17, 33, 127, 1000, 1031, 4099, 100_003];
const CANARY: f32 = -7.5e29;
/// Guard elements each side of an output (16 bytes or more for both dtypes, so shift 0 is aligned).
const GUARD: usize = 8;

/// x as `dt` stores it.
fn stored(x: &[f32], dt: Dt) -> Vec<f32> {
    match dt {
        Dt::F32 => x.to_vec(),
        Dt::BF16 => x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect(),
    }
}

/// A device copy of x (as `dt`) starting `shift` elements after a 16-byte boundary.
struct In {
    buf: DeviceBuffer,
    ptr: DevPtr,
}

fn dev_in(g: &Arc<Gpu>, x: &[f32], dt: Dt, shift: usize) -> In {
    let buf = upload_f32(g, &[vec![0.0; shift], x.to_vec()].concat(), dt).unwrap();
    let ptr = buf.ptr(shift * dt.size());
    In { buf, ptr }
}

/// An output of n elements between canaries, `shift` elements after a 16-byte boundary.
struct Out {
    buf: DeviceBuffer,
    dt: Dt,
    front: usize,
    n: usize,
}

impl Out {
    fn new(g: &Arc<Gpu>, n: usize, dt: Dt, shift: usize) -> Out {
        let front = GUARD + shift;
        let buf = upload_f32(g, &vec![CANARY; front + n + GUARD], dt).unwrap();
        Out { buf, dt, front, n }
    }
    fn ptr(&self) -> DevPtr {
        self.buf.ptr(self.front * self.dt.size())
    }
    /// The output region; panics if a canary changed.
    fn get(&self, what: &str) -> Vec<f32> {
        let all = download_f32(&self.buf, self.dt, 0, self.front + self.n + GUARD).unwrap();
        let canary = stored(&[CANARY], self.dt)[0];
        let guards = all[..self.front].iter().chain(&all[self.front + self.n..]);
        assert!(guards.into_iter().all(|&v| v == canary), "{what}: wrote outside its output");
        all[self.front..self.front + self.n].to_vec()
    }
}

fn dims(shape: &[usize], strides: &[usize]) -> Dims6 {
    let mut d = Dims6 { rank: shape.len() as i32, ..Dims6::default() };
    for k in 0..shape.len() {
        d.shape[k] = shape[k] as i64;
        d.stride[k] = strides[k] as i64;
    }
    d
}

fn dense_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

const OPS: [BinaryOp; 4] = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];

/// The f32 reference of `op` on dense inputs.
fn binary_ref(op: BinaryOp, a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    match op {
        BinaryOp::Add => add_fwd_scalar(&mut out, a, b),
        BinaryOp::Sub => sub_fwd_scalar(&mut out, a, b),
        BinaryOp::Mul => mul_fwd_scalar(&mut out, a, b),
        BinaryOp::Div => div_fwd_scalar(&mut out, a, b),
    }
    out
}

/// Divisors of magnitude about 1 to 2 and either sign: no overflow.
fn divisors(seed: u64, n: usize) -> Vec<f32> {
    rand_vec(seed, n, -1.0, 1.0)
        .iter()
        .map(|&u| if u < 0.0 { u - 1.0 } else { u + 1.0 })
        .map(|v| v * 0.99 + 0.01)
        .collect()
}

#[test]
fn binary_dense_matches_cpu() {
    let Some(g) = test_device() else { return };
    for dt in [Dt::F32, Dt::BF16] {
        for &n in &SIZES {
            for shift in [0usize, 1] {
                let a = stored(&rand_vec(n as u64, n, -2.0, 2.0), dt);
                let b = stored(&divisors(n as u64 + 7, n), dt);
                let (da, db) = (dev_in(&g, &a, dt, shift), dev_in(&g, &b, dt, shift));
                let d = dims(&[n], &[1]);
                for op in OPS {
                    let what = format!("{op:?} dense {dt:?} n {n} shift {shift}");
                    let out = Out::new(&g, n, dt, shift);
                    binary_fwd(&g, op, dt, out.ptr(), da.ptr, &d, db.ptr, &d).unwrap();
                    // the same f32 operation, then the same rounding: exact
                    assert_close(&what, &out.get(&what), &stored(&binary_ref(op, &a, &b), dt), 0.0, 0.0);
                }
                // in place: out is a
                let what = format!("add in place {dt:?} n {n} shift {shift}");
                binary_fwd(&g, BinaryOp::Add, dt, da.ptr, da.ptr, &d, db.ptr, &d).unwrap();
                let got = download_f32(&da.buf, dt, shift, n).unwrap();
                assert_close(&what, &got, &stored(&binary_ref(BinaryOp::Add, &a, &b), dt), 0.0, 0.0);
            }
        }
    }
}

/// Checks `op` on the views (shape, a_strides over a buffer of a_len) and (shape, b_strides).
fn check_broadcast(
    g: &Arc<Gpu>,
    dt: Dt,
    shape: &[usize],
    a_strides: &[usize],
    a_len: usize,
    b_strides: &[usize],
    b_len: usize,
) {
    let n: usize = shape.iter().product();
    let a = stored(&rand_vec(n as u64 + a_len as u64, a_len, -2.0, 2.0), dt);
    let b = stored(&divisors(b_len as u64 + 3, b_len), dt);
    // the views materialised on the host
    let (mut av, mut bv) = (vec![0f32; n], vec![0f32; n]);
    copy_strided_scalar(&mut av, &a, shape, a_strides, 0);
    copy_strided_scalar(&mut bv, &b, shape, b_strides, 0);
    let (da, db) = (dev_in(g, &a, dt, 0), dev_in(g, &b, dt, 0));
    for op in OPS {
        let what = format!("{op:?} {dt:?} shape {shape:?} a strides {a_strides:?} b strides {b_strides:?}");
        let out = Out::new(g, n, dt, 0);
        binary_fwd(g, op, dt, out.ptr(), da.ptr, &dims(shape, a_strides), db.ptr, &dims(shape, b_strides)).unwrap();
        assert_close(&what, &out.get(&what), &stored(&binary_ref(op, &av, &bv), dt), 0.0, 0.0);
    }
}

#[test]
fn binary_broadcast_matches_cpu() {
    let Some(g) = test_device() else { return };
    for dt in [Dt::F32, Dt::BF16] {
        // bias add: (R, C) + (C)
        check_broadcast(&g, dt, &[127, 768], &[768, 1], 127 * 768, &[0, 1], 768);
        check_broadcast(&g, dt, &[3, 17], &[17, 1], 51, &[0, 1], 17);
        // (B, T, C) + (B, 1, C)
        check_broadcast(&g, dt, &[2, 33, 5], &[165, 5, 1], 330, &[5, 0, 1], 10);
        // a scalar
        check_broadcast(&g, dt, &[1000], &[1], 1000, &[0], 1);
        // a transposed view (stored (33, 17)) with a dense b
        check_broadcast(&g, dt, &[17, 33], &[1, 17], 561, &[33, 1], 561);
        // outer product shape: a column and a row, both broadcast
        check_broadcast(&g, dt, &[5, 7], &[1, 0], 5, &[0, 1], 7);
        // rank 6, mixed
        let shape = [2, 3, 1, 4, 2, 3];
        let a_strides = dense_strides(&shape);
        check_broadcast(&g, dt, &shape, &a_strides, 144, &[0, 3, 0, 0, 0, 1], 9);
        // rank 0
        check_broadcast(&g, dt, &[], &[], 1, &[], 1);
        // large: (4, 1000, 768) + (768)
        check_broadcast(&g, dt, &[4, 1000, 768], &[768_000, 768, 1], 3_072_000, &[0, 0, 1], 768);
    }
}

#[test]
fn binary_bwd_scale_add_assign_match_cpu() {
    let Some(g) = test_device() else { return };
    for dt in [Dt::F32, Dt::BF16] {
        for &n in &SIZES {
            for shift in [0usize, 1] {
                let a = stored(&rand_vec(n as u64, n, -2.0, 2.0), dt);
                let b = stored(&divisors(n as u64 + 1, n), dt);
                let dout = stored(&rand_vec(n as u64 + 2, n, -1.0, 1.0), dt);
                let (dva, dvb, dvg) =
                    (dev_in(&g, &a, dt, shift), dev_in(&g, &b, dt, shift), dev_in(&g, &dout, dt, shift));
                for is_div in [false, true] {
                    let what = format!("{} {dt:?} n {n} shift {shift}", if is_div { "div_bwd" } else { "mul_bwd" });
                    let (oa, ob) = (Out::new(&g, n, dt, shift), Out::new(&g, n, dt, shift));
                    let (mut wa, mut wb) = (vec![0f32; n], vec![0f32; n]);
                    if is_div {
                        div_bwd(&g, dt, oa.ptr(), ob.ptr(), dva.ptr, dvb.ptr, dvg.ptr, n).unwrap();
                        div_bwd_scalar(&mut wa, &mut wb, &a, &b, &dout);
                    } else {
                        mul_bwd(&g, dt, oa.ptr(), ob.ptr(), dva.ptr, dvb.ptr, dvg.ptr, n).unwrap();
                        mul_bwd_scalar(&mut wa, &mut wb, &a, &b, &dout);
                    }
                    assert_close(&format!("{what} da"), &oa.get(&what), &stored(&wa, dt), 0.0, 0.0);
                    assert_close(&format!("{what} db"), &ob.get(&what), &stored(&wb, dt), 0.0, 0.0);
                }
                let what = format!("scale {dt:?} n {n} shift {shift}");
                let out = Out::new(&g, n, dt, shift);
                scale(&g, dt, out.ptr(), dva.ptr, -0.37, n).unwrap();
                let mut want = vec![0f32; n];
                scale_fwd_scalar(&mut want, &a, -0.37);
                assert_close(&what, &out.get(&what), &stored(&want, dt), 0.0, 0.0);

                let what = format!("add_assign {dt:?} n {n} shift {shift}");
                add_assign(&g, dt, dva.ptr, dvb.ptr, n).unwrap();
                let mut want = a.clone();
                add_assign_scalar(&mut want, &b);
                assert_close(&what, &download_f32(&dva.buf, dt, shift, n).unwrap(), &stored(&want, dt), 0.0, 0.0);
            }
        }
    }
}

const UNARY: [Unary; 4] = [Unary::GeluTanh, Unary::GeluErf, Unary::Tanh, Unary::Relu];

fn unary_ref_fwd(op: Unary, x: &[f64]) -> Vec<f64> {
    let mut out = vec![0f64; x.len()];
    match op {
        Unary::GeluTanh => gelu_tanh_fwd_scalar(&mut out, x),
        Unary::GeluErf => gelu_erf_fwd_scalar(&mut out, x),
        Unary::Tanh => tanh_fwd_scalar(&mut out, x),
        Unary::Relu => relu_fwd_scalar(&mut out, x),
    }
    out
}

fn unary_ref_bwd(op: Unary, saved: &[f64], dout: &[f64]) -> Vec<f64> {
    let mut out = vec![0f64; saved.len()];
    match op {
        Unary::GeluTanh => gelu_tanh_bwd_scalar(&mut out, saved, dout),
        Unary::GeluErf => gelu_erf_bwd_scalar(&mut out, saved, dout),
        Unary::Tanh => tanh_bwd_scalar(&mut out, saved, dout),
        Unary::Relu => relu_bwd_scalar(&mut out, saved, dout),
    }
    out
}

#[test]
fn activations_match_f64_reference() {
    let Some(g) = test_device() else { return };
    let specials = [-20.0f32, -10.0, -5.0, -3.0, -1e-3, -0.0, 0.0, 1e-3, 3.0, 5.0, 10.0, 20.0];
    for dt in [Dt::F32, Dt::BF16] {
        // f32: a few ulp of the f32 math functions (erfcf 4 ulp, expf / tanhf 2) plus the
        // rounding of the inputs to the formulas; bf16: one rounding of the output (2^-8
        // relative) on top
        let (abs, rel) = match dt {
            Dt::F32 => (1e-6, 1e-5),
            Dt::BF16 => (1e-6, 4.5e-3),
        };
        for &n in &SIZES {
            for shift in [0usize, 1] {
                let mut x = rand_vec(n as u64 + 11, n, -8.0, 8.0);
                for (v, &s) in x.iter_mut().zip(&specials) {
                    *v = s;
                }
                let x = stored(&x, dt);
                let dout = stored(&rand_vec(n as u64 + 12, n, -1.0, 1.0), dt);
                let (dx_in, dg_in) = (dev_in(&g, &x, dt, shift), dev_in(&g, &dout, dt, shift));
                for op in UNARY {
                    let what = format!("{op:?} fwd {dt:?} n {n} shift {shift}");
                    let out = Out::new(&g, n, dt, shift);
                    unary_fwd(&g, op, dt, out.ptr(), dx_in.ptr, n).unwrap();
                    let y_ref = unary_ref_fwd(op, &f64v(&x));
                    assert_close(&what, &out.get(&what), &f32v(&y_ref), abs, rel);

                    // tanh's backward takes the forward's output (as stored), the others its input
                    let saved = if op == Unary::Tanh { stored(&f32v(&y_ref), dt) } else { x.clone() };
                    let ds = dev_in(&g, &saved, dt, shift);
                    let what = format!("{op:?} bwd {dt:?} n {n} shift {shift}");
                    let out = Out::new(&g, n, dt, shift);
                    unary_bwd(&g, op, dt, out.ptr(), ds.ptr, dg_in.ptr, n).unwrap();
                    let want = unary_ref_bwd(op, &f64v(&saved), &f64v(&dout));
                    assert_close(&what, &out.get(&what), &f32v(&want), abs, rel);
                }
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let Some(g) = test_device() else { return };
    let buf = upload_f32(&g, &[0.0; 16], Dt::F32).unwrap();
    let p = buf.ptr(0);
    let e = binary_fwd(&g, BinaryOp::Add, Dt::F32, p, p, &dims(&[2, 3], &[3, 1]), p, &dims(&[3, 2], &[2, 1]));
    assert!(e.unwrap_err().0.contains("add_fwd"));
    let bad_rank = Dims6 { rank: 7, ..Dims6::default() };
    assert!(binary_fwd(&g, BinaryOp::Mul, Dt::F32, p, p, &bad_rank, p, &bad_rank).is_err());
    assert!(scale(&g, Dt::F32, DevPtr(0), p, 1.0, 4).is_err());
}

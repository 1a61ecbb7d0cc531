//! Elementwise ops on the GPU: binary add/sub/mul/div with broadcasting through strides, the
//! backward of mul/div, scale, gradient accumulation, and the pointwise activations. The CUDA twin
//! of `cpu::binary` and `cpu::activation` (same formulas; storage f32 or bf16, arithmetic f32).
//!
//! Dense kernels read and write 16-byte vectors when every pointer is 16-byte aligned (the
//! check runs on the device, so any sub-buffer works; unaligned ones take the scalar path) in a
//! grid-stride loop. Each element is read and written by one thread, so an output may be the same
//! buffer as an input (in place), except for [`binary_fwd`]'s strided path with a broadcast input.
//!
//! Bytes moved per element (read + write, s = element size: 4 f32, 2 bf16):
//! binary_fwd 3s, mul_bwd / div_bwd 5s, scale 2s, add_assign 3s, unary_fwd 2s, unary_bwd 3s.
//! (A broadcast input is mostly served from cache, so count it once per distinct element.)

use super::copy::{check_ptrs, collapse, dense_strides, dims_parts, grid_stride, index_arg, make_dims, numel};
use super::sources::Source;
use super::{kernel_name, Arg, CudaError, CudaResult, DevPtr, Dims6, Dt, Gpu};

pub static SOURCE: Source =
    Source { name: "elementwise", code: include_str!("../../cuda/elementwise.cu"), sm90a: false };

/// The four binary arithmetic ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
        }
    }
}

/// The pointwise activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unary {
    /// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (HF "gelu_new")
    GeluTanh,
    /// 0.5 x (1 + erf(x / sqrt 2)) (HF "gelu")
    GeluErf,
    Tanh,
    Relu,
}

impl Unary {
    fn name(self) -> &'static str {
        match self {
            Unary::GeluTanh => "gelu_tanh",
            Unary::GeluErf => "gelu_erf",
            Unary::Tanh => "tanh",
            Unary::Relu => "relu",
        }
    }
}

/// Elements per 16-byte vector of `dt`.
fn per_vec(dt: Dt) -> usize {
    16 / dt.size()
}

/// out: (prod shape), dense row-major = a op b, where a and b are read through their views
/// (`a_dims.shape == b_dims.shape`, the output shape; strides in elements, 0 = broadcast; each
/// pointer at its view's first element). When both views are dense this is one vectorised pass;
/// otherwise each element's offsets are computed from its index (32-bit arithmetic below 2^31
/// elements). out must not overlap a strided or broadcast input (a dense one may be out itself).
#[allow(clippy::too_many_arguments)]
pub fn binary_fwd(
    g: &Gpu,
    op: BinaryOp,
    dt: Dt,
    out: DevPtr,
    a: DevPtr,
    a_dims: &Dims6,
    b: DevPtr,
    b_dims: &Dims6,
) -> CudaResult<()> {
    let what = format!("{}_fwd", op.name());
    let (a_shape, a_strides) = dims_parts(&what, a_dims)?;
    let (b_shape, b_strides) = dims_parts(&what, b_dims)?;
    if a_shape != b_shape {
        return Err(CudaError(format!("{what}: shapes differ: a {a_shape:?}, b {b_shape:?} (broadcast b first)")));
    }
    let n = numel(&what, &a_shape)?;
    if n == 0 {
        return Ok(());
    }
    check_ptrs(&what, &[out, a, b])?;
    let out_strides = dense_strides(&a_shape);
    let (shape, [_, a_strides, b_strides]) = collapse(&a_shape, [&out_strides, &a_strides, &b_strides]);
    let dense = shape.len() <= 1 && a_strides.iter().chain(&b_strides).all(|&s| s == 1);
    if dense {
        let args = [Arg::Ptr(out), Arg::Ptr(a), Arg::Ptr(b), Arg::I64(n as i64)];
        return g.launch(&SOURCE, &kernel_name(&what, dt), grid_stride(g, n.div_ceil(per_vec(dt))), &args);
    }
    let (index, n_arg) = index_arg(n);
    let args = [
        Arg::Ptr(out),
        Arg::Ptr(a),
        Arg::Dims(make_dims(&shape, &a_strides)),
        Arg::Ptr(b),
        Arg::Dims(make_dims(&shape, &b_strides)),
        n_arg,
    ];
    g.launch(&SOURCE, &kernel_name(&format!("{what}_strided_{index}"), dt), grid_stride(g, n), &args)
}

/// da = dout * b, db = dout * a (both overwritten); da, db, a, b, dout: (n), dense.
#[allow(clippy::too_many_arguments)]
pub fn mul_bwd(
    g: &Gpu,
    dt: Dt,
    da: DevPtr,
    db: DevPtr,
    a: DevPtr,
    b: DevPtr,
    dout: DevPtr,
    n: usize,
) -> CudaResult<()> {
    binary_bwd(g, "mul_bwd", dt, [da, db, a, b, dout], n)
}

/// da = dout / b, db = -dout * a / b^2 (both overwritten); da, db, a, b, dout: (n), dense.
#[allow(clippy::too_many_arguments)]
pub fn div_bwd(
    g: &Gpu,
    dt: Dt,
    da: DevPtr,
    db: DevPtr,
    a: DevPtr,
    b: DevPtr,
    dout: DevPtr,
    n: usize,
) -> CudaResult<()> {
    binary_bwd(g, "div_bwd", dt, [da, db, a, b, dout], n)
}

fn binary_bwd(g: &Gpu, what: &str, dt: Dt, ptrs: [DevPtr; 5], n: usize) -> CudaResult<()> {
    if n == 0 {
        return Ok(());
    }
    check_ptrs(what, &ptrs)?;
    let mut args: Vec<Arg> = ptrs.iter().map(|&p| Arg::Ptr(p)).collect();
    args.push(Arg::I64(n as i64));
    g.launch(&SOURCE, &kernel_name(what, dt), grid_stride(g, n.div_ceil(per_vec(dt))), &args)
}

/// out = k * x;  out, x: (n). Also the backward of scale (dx = k * dout).
pub fn scale(g: &Gpu, dt: Dt, out: DevPtr, x: DevPtr, k: f32, n: usize) -> CudaResult<()> {
    if n == 0 {
        return Ok(());
    }
    check_ptrs("scale", &[out, x])?;
    let args = [Arg::Ptr(out), Arg::Ptr(x), Arg::F32(k), Arg::I64(n as i64)];
    g.launch(&SOURCE, &kernel_name("scale", dt), grid_stride(g, n.div_ceil(per_vec(dt))), &args)
}

/// acc += x;  acc, x: (n) (gradient accumulation).
pub fn add_assign(g: &Gpu, dt: Dt, acc: DevPtr, x: DevPtr, n: usize) -> CudaResult<()> {
    if n == 0 {
        return Ok(());
    }
    check_ptrs("add_assign", &[acc, x])?;
    let args = [Arg::Ptr(acc), Arg::Ptr(x), Arg::I64(n as i64)];
    g.launch(&SOURCE, &kernel_name("add_assign", dt), grid_stride(g, n.div_ceil(per_vec(dt))), &args)
}

/// out = op(x);  out, x: (n).
pub fn unary_fwd(g: &Gpu, op: Unary, dt: Dt, out: DevPtr, x: DevPtr, n: usize) -> CudaResult<()> {
    let what = format!("{}_fwd", op.name());
    if n == 0 {
        return Ok(());
    }
    check_ptrs(&what, &[out, x])?;
    let args = [Arg::Ptr(out), Arg::Ptr(x), Arg::I64(n as i64)];
    g.launch(&SOURCE, &kernel_name(&what, dt), grid_stride(g, n.div_ceil(per_vec(dt))), &args)
}

/// dx = dout * op'(..) (overwritten);  dx, saved, dout: (n). `saved` is the forward's INPUT for
/// GeluTanh, GeluErf and Relu, and its OUTPUT for Tanh (dx = dout * (1 - y^2)), as the CPU
/// kernels and `engine::ops::activation`.
#[allow(clippy::too_many_arguments)]
pub fn unary_bwd(g: &Gpu, op: Unary, dt: Dt, dx: DevPtr, saved: DevPtr, dout: DevPtr, n: usize) -> CudaResult<()> {
    let what = format!("{}_bwd", op.name());
    if n == 0 {
        return Ok(());
    }
    check_ptrs(&what, &[dx, saved, dout])?;
    let args = [Arg::Ptr(dx), Arg::Ptr(saved), Arg::Ptr(dout), Arg::I64(n as i64)];
    g.launch(&SOURCE, &kernel_name(&what, dt), grid_stride(g, n.div_ceil(per_vec(dt))), &args)
}

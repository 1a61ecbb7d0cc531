//! Routing from a generic element type to the kernels: f32 goes to the dispatched fast kernels
//! (AVX2 when the CPU has it), f64 goes to the scalar references. Engine ops are written once,
//! generic over [`Elem`], and call the wrappers in [`k`].

use crate::storage::CpuStorage;
use crate::DType;
use kernels::Real;

/// A compute element type: f32 (fast kernels) or f64 (scalar references, gradient checks).
pub trait Elem: Real + bytemuck::Pod {
    const DTYPE: DType;
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
    fn wrap(v: Vec<Self>) -> CpuStorage;
}

impl Elem for f32 {
    const DTYPE: DType = DType::F32;
    fn slice(s: &CpuStorage) -> Option<&[f32]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            CpuStorage::F64(_) | CpuStorage::BF16(_) | CpuStorage::F16(_) | CpuStorage::I64(_) => None,
        }
    }
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [f32]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            CpuStorage::F64(_) | CpuStorage::BF16(_) | CpuStorage::F16(_) | CpuStorage::I64(_) => None,
        }
    }
    fn wrap(v: Vec<f32>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl Elem for f64 {
    const DTYPE: DType = DType::F64;
    fn slice(s: &CpuStorage) -> Option<&[f64]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            CpuStorage::F32(_) | CpuStorage::BF16(_) | CpuStorage::F16(_) | CpuStorage::I64(_) => None,
        }
    }
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [f64]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            CpuStorage::F32(_) | CpuStorage::BF16(_) | CpuStorage::F16(_) | CpuStorage::I64(_) => None,
        }
    }
    fn wrap(v: Vec<f64>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

/// Kernel wrappers: one line of routing per kernel.
#[allow(clippy::too_many_arguments)]
pub mod k {
    use super::Elem;
    use crate::DType;
    use kernels::cpu::{activation as act, binary, copy, cross_entropy as ce, dropout, gather, layernorm as ln};
    use kernels::cpu::{attention as att, matmul, reduce, softmax};

    // The casts are identities: they only run when T::DTYPE says T is f32.
    fn r<T: Elem>(x: &[T]) -> &[f32] {
        bytemuck::cast_slice(x)
    }
    fn w<T: Elem>(x: &mut [T]) -> &mut [f32] {
        bytemuck::cast_slice_mut(x)
    }
    fn s<T: Elem>(x: T) -> f32 {
        x.to_f32().unwrap()
    }
    fn fast<T: Elem>() -> bool {
        T::DTYPE == DType::F32
    }

    /// A new dense C = op(A) op(B) (+ bias); f32 skips zeroing C first (see `matmul::gemm_new`).
    pub fn gemm_new<T: Elem>(g: &matmul::Gemm, a: &[T], b: &[T], bias: Option<&[T]>) -> Vec<T> {
        if fast::<T>() {
            let c = matmul::gemm_new(g, r(a), r(b), bias.map(r));
            bytemuck::allocation::cast_vec::<f32, T>(c)
        } else {
            let mut c = vec![T::zero(); g.batch * g.m * g.n];
            matmul::gemm_scalar(g, a, b, &mut c, bias);
            c
        }
    }

    pub fn gemm<T: Elem>(g: &matmul::Gemm, a: &[T], b: &[T], c: &mut [T], bias: Option<&[T]>) {
        if fast::<T>() {
            matmul::gemm(g, r(a), r(b), w(c), bias.map(r))
        } else {
            matmul::gemm_scalar(g, a, b, c, bias)
        }
    }

    macro_rules! unary_route {
        ($($name:ident),*) => {$(
            pub fn $name<T: Elem>(out: &mut [T], inp: &[T]) {
                if fast::<T>() { act::$name(w(out), r(inp)) } else { paste_scalar!(act, $name)(out, inp) }
            }
        )*};
    }
    macro_rules! unary_bwd_route {
        ($($name:ident),*) => {$(
            pub fn $name<T: Elem>(dinp: &mut [T], x: &[T], dout: &[T]) {
                if fast::<T>() { act::$name(w(dinp), r(x), r(dout)) } else { paste_scalar!(act, $name)(dinp, x, dout) }
            }
        )*};
    }
    macro_rules! binary_route {
        ($($name:ident),*) => {$(
            pub fn $name<T: Elem>(out: &mut [T], a: &[T], b: &[T]) {
                if fast::<T>() { binary::$name(w(out), r(a), r(b)) } else { paste_scalar!(binary, $name)(out, a, b) }
            }
        )*};
    }
    // Maps `module, name` to the scalar reference `module::name_scalar`.
    macro_rules! paste_scalar {
        (act, gelu_tanh_fwd) => {
            act::gelu_tanh_fwd_scalar
        };
        (act, gelu_tanh_bwd) => {
            act::gelu_tanh_bwd_scalar
        };
        (act, gelu_erf_fwd) => {
            act::gelu_erf_fwd_scalar
        };
        (act, gelu_erf_bwd) => {
            act::gelu_erf_bwd_scalar
        };
        (act, tanh_fwd) => {
            act::tanh_fwd_scalar
        };
        (act, tanh_bwd) => {
            act::tanh_bwd_scalar
        };
        (act, relu_fwd) => {
            act::relu_fwd_scalar
        };
        (act, relu_bwd) => {
            act::relu_bwd_scalar
        };
        (binary, add_fwd) => {
            binary::add_fwd_scalar
        };
        (binary, sub_fwd) => {
            binary::sub_fwd_scalar
        };
        (binary, mul_fwd) => {
            binary::mul_fwd_scalar
        };
        (binary, div_fwd) => {
            binary::div_fwd_scalar
        };
    }
    unary_route!(gelu_tanh_fwd, gelu_erf_fwd, tanh_fwd, relu_fwd);
    unary_bwd_route!(gelu_tanh_bwd, gelu_erf_bwd, tanh_bwd, relu_bwd);
    binary_route!(add_fwd, sub_fwd, mul_fwd, div_fwd);

    pub fn mul_bwd<T: Elem>(da: &mut [T], db: &mut [T], a: &[T], b: &[T], dout: &[T]) {
        if fast::<T>() {
            binary::mul_bwd(w(da), w(db), r(a), r(b), r(dout))
        } else {
            binary::mul_bwd_scalar(da, db, a, b, dout)
        }
    }
    pub fn div_bwd<T: Elem>(da: &mut [T], db: &mut [T], a: &[T], b: &[T], dout: &[T]) {
        if fast::<T>() {
            binary::div_bwd(w(da), w(db), r(a), r(b), r(dout))
        } else {
            binary::div_bwd_scalar(da, db, a, b, dout)
        }
    }
    pub fn scale<T: Elem>(out: &mut [T], a: &[T], k: T) {
        if fast::<T>() {
            binary::scale_fwd(w(out), r(a), s(k))
        } else {
            binary::scale_fwd_scalar(out, a, k)
        }
    }
    pub fn add_assign<T: Elem>(acc: &mut [T], x: &[T]) {
        if fast::<T>() {
            binary::add_assign(w(acc), r(x))
        } else {
            binary::add_assign_scalar(acc, x)
        }
    }
    pub fn sum_axis_fwd<T: Elem>(out: &mut [T], inp: &[T], outer: usize, len: usize, inner: usize) {
        if fast::<T>() {
            reduce::sum_axis_fwd(w(out), r(inp), outer, len, inner)
        } else {
            reduce::sum_axis_fwd_scalar(out, inp, outer, len, inner)
        }
    }
    pub fn sum_axis_bwd<T: Elem>(dinp: &mut [T], dout: &[T], outer: usize, len: usize, inner: usize) {
        if fast::<T>() {
            reduce::sum_axis_bwd(w(dinp), r(dout), outer, len, inner)
        } else {
            reduce::sum_axis_bwd_scalar(dinp, dout, outer, len, inner)
        }
    }
    pub fn softmax_fwd<T: Elem>(
        out: &mut [T],
        x: &[T],
        mask: Option<&[T]>,
        rows: usize,
        cols: usize,
        rpm: usize,
        k: T,
    ) {
        if fast::<T>() {
            softmax::softmax_fwd(w(out), r(x), mask.map(r), rows, cols, rpm, s(k))
        } else {
            softmax::softmax_fwd_scalar(out, x, mask, rows, cols, rpm, k)
        }
    }
    #[allow(clippy::too_many_arguments)]
    pub fn attention_fwd<T: Elem>(
        a: &att::Attn,
        q: &[T],
        k: &[T],
        v: &[T],
        mask: Option<&[T]>,
        scale: T,
        out: &mut [T],
    ) {
        if fast::<T>() {
            att::attention_fwd(a, r(q), r(k), r(v), mask.map(r), s(scale), w(out))
        } else {
            att::attention_fwd_scalar(a, q, k, v, mask, scale, out)
        }
    }
    #[allow(clippy::too_many_arguments)]
    pub fn attention_bwd<T: Elem>(
        a: &att::Attn,
        q: &[T],
        k: &[T],
        v: &[T],
        mask: Option<&[T]>,
        scale: T,
        dout: &[T],
        dq: &mut [T],
        dk: &mut [T],
        dv: &mut [T],
    ) {
        if fast::<T>() {
            att::attention_bwd(a, r(q), r(k), r(v), mask.map(r), s(scale), r(dout), w(dq), w(dk), w(dv))
        } else {
            att::attention_bwd_scalar(a, q, k, v, mask, scale, dout, dq, dk, dv)
        }
    }
    pub fn softmax_bwd<T: Elem>(dinp: &mut [T], y: &[T], dout: &[T], rows: usize, cols: usize, k: T) {
        if fast::<T>() {
            softmax::softmax_bwd(w(dinp), r(y), r(dout), rows, cols, s(k))
        } else {
            softmax::softmax_bwd_scalar(dinp, y, dout, rows, cols, k)
        }
    }
    pub fn layernorm_fwd<T: Elem>(
        out: &mut [T],
        mean: &mut [T],
        rstd: &mut [T],
        x: &[T],
        gamma: &[T],
        beta: &[T],
        rows: usize,
        cols: usize,
        eps: T,
    ) {
        if fast::<T>() {
            ln::layernorm_fwd(w(out), w(mean), w(rstd), r(x), r(gamma), r(beta), rows, cols, s(eps))
        } else {
            ln::layernorm_fwd_scalar(out, mean, rstd, x, gamma, beta, rows, cols, eps)
        }
    }
    pub fn layernorm_bwd<T: Elem>(
        dinp: &mut [T],
        dgamma: &mut [T],
        dbeta: &mut [T],
        dout: &[T],
        x: &[T],
        gamma: &[T],
        mean: &[T],
        rstd: &[T],
        rows: usize,
        cols: usize,
    ) {
        if fast::<T>() {
            ln::layernorm_bwd(w(dinp), w(dgamma), w(dbeta), r(dout), r(x), r(gamma), r(mean), r(rstd), rows, cols)
        } else {
            ln::layernorm_bwd_scalar(dinp, dgamma, dbeta, dout, x, gamma, mean, rstd, rows, cols)
        }
    }
    pub fn cross_entropy_fwd<T: Elem>(
        lse: &mut [T],
        logits: &[T],
        targets: &[i64],
        rows: usize,
        cols: usize,
        ignore: i64,
    ) -> (f64, usize) {
        if fast::<T>() {
            let (l, n) = ce::cross_entropy_fwd(w(lse), r(logits), targets, rows, cols, ignore);
            (l as f64, n)
        } else {
            let (l, n) = ce::cross_entropy_fwd_scalar(lse, logits, targets, rows, cols, ignore);
            (l.to_f64().unwrap(), n)
        }
    }
    pub fn cross_entropy_bwd<T: Elem>(
        dlogits: &mut [T],
        logits: &[T],
        lse: &[T],
        targets: &[i64],
        rows: usize,
        cols: usize,
        ignore: i64,
        k: T,
    ) {
        if fast::<T>() {
            ce::cross_entropy_bwd(w(dlogits), r(logits), r(lse), targets, rows, cols, ignore, s(k))
        } else {
            ce::cross_entropy_bwd_scalar(dlogits, logits, lse, targets, rows, cols, ignore, k)
        }
    }
    pub fn dropout_fwd<T: Elem>(out: &mut [T], x: &[T], keep: &[u8], k: T) {
        if fast::<T>() {
            dropout::dropout_fwd(w(out), r(x), keep, s(k))
        } else {
            dropout::dropout_fwd_scalar(out, x, keep, k)
        }
    }
    pub fn dropout_bwd<T: Elem>(dinp: &mut [T], dout: &[T], keep: &[u8], k: T) {
        if fast::<T>() {
            dropout::dropout_bwd(w(dinp), r(dout), keep, s(k))
        } else {
            dropout::dropout_bwd_scalar(dinp, dout, keep, k)
        }
    }
    pub fn gather_rows_fwd<T: Elem>(out: &mut [T], table: &[T], idx: &[usize], cols: usize) {
        if fast::<T>() {
            gather::gather_rows_fwd(w(out), r(table), idx, cols)
        } else {
            gather::gather_rows_fwd_scalar(out, table, idx, cols)
        }
    }
    pub fn gather_rows_bwd<T: Elem>(dtable: &mut [T], dout: &[T], idx: &[usize], cols: usize) {
        if fast::<T>() {
            gather::gather_rows_bwd(w(dtable), r(dout), idx, cols)
        } else {
            gather::gather_rows_bwd_scalar(dtable, dout, idx, cols)
        }
    }
    pub fn concat_fwd<T: Elem>(out: &mut [T], parts: &[&[T]], outer: usize) {
        copy::concat_fwd_scalar(out, parts, outer)
    }
    pub fn concat_bwd<T: Elem>(dparts: &mut [&mut [T]], dout: &[T], outer: usize) {
        copy::concat_bwd_scalar(dparts, dout, outer)
    }
}

//! General matrix multiply, batched, with either operand transposed in place (no transpose
//! copies) and an optional fused bias epilogue.
//!
//! For each batch index b:
//!   C_b[i, j] = (accumulate ? C_b[i, j] : 0) + sum_p op(A_b)[i, p] * op(B_b)[p, j] + bias[j]
//! op(A): (m, k); stored (m, k) with row stride lda, or, if trans_a, stored (k, m).
//! op(B): (k, n); stored (k, n) with row stride ldb, or, if trans_b, stored (n, k).
//! C: (m, n) with row stride ldc. Batch b starts at b * stride_{a,b,c}; a stride of 0 shares
//! one operand across the batch (x[B,S,H] times one weight W).
//! Linear layers use trans_b: y = x W^T + b with W stored (out, in) as PyTorch does.

use crate::Real;

/// Sizes, layouts and strides of one (batched) gemm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gemm {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub lda: usize,
    pub ldb: usize,
    pub ldc: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
    /// C += A B instead of C = A B (beta = 1 instead of 0).
    pub accumulate: bool,
}

impl Gemm {
    /// One dense row-major product with the tightest leading dimensions.
    pub fn new(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Gemm {
        Gemm {
            batch: 1,
            m,
            n,
            k,
            trans_a,
            trans_b,
            lda: if trans_a { m } else { k },
            ldb: if trans_b { k } else { n },
            ldc: n,
            stride_a: m * k,
            stride_b: k * n,
            stride_c: m * n,
            accumulate: false,
        }
    }

    /// `batch` dense products laid out back to back.
    pub fn batched(batch: usize, m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Gemm {
        Gemm { batch, ..Gemm::new(m, n, k, trans_a, trans_b) }
    }

    /// Multiply-adds times two.
    pub fn flops(&self) -> u64 {
        2 * (self.batch * self.m * self.n * self.k) as u64
    }

    /// Smallest slice lengths (a, b, c) this gemm touches; callers' slices must be at least this.
    pub fn min_lens(&self) -> (usize, usize, usize) {
        let span = |rows: usize, cols: usize, ld: usize| if rows == 0 || cols == 0 { 0 } else { (rows - 1) * ld + cols };
        let last = |stride: usize, one: usize| if self.batch == 0 || one == 0 { 0 } else { (self.batch - 1) * stride + one };
        let a1 = if self.trans_a { span(self.k, self.m, self.lda) } else { span(self.m, self.k, self.lda) };
        let b1 = if self.trans_b { span(self.n, self.k, self.ldb) } else { span(self.k, self.n, self.ldb) };
        let c1 = span(self.m, self.n, self.ldc);
        (last(self.stride_a, a1), last(self.stride_b, b1), last(self.stride_c, c1))
    }

    /// Panics with a clear message if a slice is too short or a leading dimension too small.
    pub fn check(&self, a: usize, b: usize, c: usize, bias: Option<usize>) {
        let (ra, rb, rc) = self.min_lens();
        assert!(a >= ra && b >= rb && c >= rc, "gemm {self:?}: slices a={a} b={b} c={c}, need {ra} {rb} {rc}");
        assert!(self.lda >= if self.trans_a { self.m } else { self.k }, "gemm: lda too small");
        assert!(self.ldb >= if self.trans_b { self.k } else { self.n }, "gemm: ldb too small");
        assert!(self.ldc >= self.n, "gemm: ldc too small");
        if let Some(len) = bias {
            assert_eq!(len, self.n, "gemm: bias length must be n");
        }
    }

    #[inline]
    pub fn a_at(&self, i: usize, p: usize) -> usize {
        if self.trans_a { p * self.lda + i } else { i * self.lda + p }
    }

    #[inline]
    pub fn b_at(&self, p: usize, j: usize) -> usize {
        if self.trans_b { j * self.ldb + p } else { p * self.ldb + j }
    }
}

/// The reference: three loops, accumulating in T. Readable, slow, always correct.
pub fn gemm_scalar<T: Real>(g: &Gemm, a: &[T], b: &[T], c: &mut [T], bias: Option<&[T]>) {
    g.check(a.len(), b.len(), c.len(), bias.map(|x| x.len()));
    for bi in 0..g.batch {
        let (a, b) = (&a[bi * g.stride_a..], &b[bi * g.stride_b..]);
        let c = &mut c[bi * g.stride_c..];
        for i in 0..g.m {
            for j in 0..g.n {
                let mut acc = T::zero();
                for p in 0..g.k {
                    acc += a[g.a_at(i, p)] * b[g.b_at(p, j)];
                }
                if let Some(bias) = bias {
                    acc += bias[j];
                }
                let dst = &mut c[i * g.ldc + j];
                *dst = if g.accumulate { *dst + acc } else { acc };
            }
        }
    }
}

/// The f32 entry point.
pub fn gemm(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32], bias: Option<&[f32]>) {
    gemm_scalar(g, a, b, c, bias)
}

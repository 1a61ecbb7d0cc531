//! Fused multi-head scaled dot-product attention, forward and backward, reading the heads
//! straight out of the projections' [B, S, H] layout (no [B, N, S, D] permute copies) and never
//! holding more than one head's S x S scores per thread (no [B, N, S, S] tensor).
//!
//! Shapes (H = N * D; head h of token (b, i) is columns h*D .. (h+1)*D of row b*S + i):
//!   q, k, v, out, dout, dq, dk, dv: (B, S, H).   mask: (B, S), additive, over key positions.
//! For each batch b and head h, with Q, K, V the (S, D) slices of that head:
//!   P = softmax(scale * Q K^T + mask[b])  (row-wise),   out = P V.
//! Backward (P recomputed from Q, K, not saved):
//!   dV = P^T dO,  dP = dO V^T,  dS = scale * P * (dP - rowsum(dP * P)),  dQ = dS K,  dK = dS^T Q.
//! dq, dk, dv are overwritten (activation gradients).
//!
//! Versions:
//! - [`attention_fwd_scalar`] / [`attention_bwd_scalar`]: loops over (b, h, i, j), generic over
//!   [`Real`]; the spec.
//! - [`attention_fwd_avx2`] / [`attention_bwd_avx2`]: one rayon task per (b, h); inside, the
//!   AVX2 gemm (single-threaded, strided views of q/k/v as operands) and the AVX2 softmax
//!   kernels on that head's S x S block, which stays in L2 (64 KiB at S = 128, 1 MiB at 512);
//!   With at least two batch entries per thread, one task per batch entry instead runs its
//!   heads in turn and the gemm writes each head's result straight into its (B, S, H) columns;
//!   otherwise the per-head results are scattered into (B, S, H) afterwards.
//!   Same arithmetic as the unfused composition (gemm, softmax, gemm), so the results agree
//!   with it to rounding of the summation order only.

use crate::cpu::matmul::{gemm_new_one_thread, gemm_one_thread, Gemm};
use crate::cpu::softmax::{softmax_bwd, softmax_fwd};
use crate::Real;
use rayon::prelude::*;

/// Sizes of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attn {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl Attn {
    /// The hidden width H = heads * head_dim (the row stride of q, k, v).
    pub fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Elements of one (B, S, H) tensor.
    pub fn len(&self) -> usize {
        self.batch * self.seq * self.hidden()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Panics with a message naming the sizes if a slice has the wrong length.
    fn check(&self, tensors: &[usize], mask: Option<usize>) {
        for &len in tensors {
            assert_eq!(len, self.len(), "attention {self:?}: a (B, S, H) slice has {len} elements");
        }
        if let Some(m) = mask {
            assert_eq!(m, self.batch * self.seq, "attention {self:?}: mask must be (B, S)");
        }
    }

    /// Index of element d of head h of token (b, i).
    fn at(&self, b: usize, i: usize, h: usize, d: usize) -> usize {
        (b * self.seq + i) * self.hidden() + h * self.head_dim + d
    }
}

/// One head's probabilities, row i: P[i, j] = softmax_j(scale * q_i . k_j + mask[b, j]).
#[allow(clippy::too_many_arguments)]
fn probs_row<T: Real>(
    a: &Attn,
    q: &[T],
    k: &[T],
    mask: Option<&[T]>,
    scale: T,
    b: usize,
    h: usize,
    i: usize,
) -> Vec<T> {
    let s = a.seq;
    let mut p: Vec<T> = (0..s)
        .map(|j| {
            let dot: T = (0..a.head_dim).map(|d| q[a.at(b, i, h, d)] * k[a.at(b, j, h, d)]).sum();
            scale * dot + mask.map_or(T::zero(), |m| m[b * s + j])
        })
        .collect();
    let max = p.iter().copied().fold(T::neg_infinity(), T::max);
    let mut sum = T::zero();
    for x in p.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in p.iter_mut() {
        *x /= sum;
    }
    p
}

/// The reference forward: out = softmax(scale * Q K^T + mask) V per batch and head.
pub fn attention_fwd_scalar<T: Real>(a: &Attn, q: &[T], k: &[T], v: &[T], mask: Option<&[T]>, scale: T, out: &mut [T]) {
    a.check(&[q.len(), k.len(), v.len(), out.len()], mask.map(|m| m.len()));
    for b in 0..a.batch {
        for h in 0..a.heads {
            for i in 0..a.seq {
                let p = probs_row(a, q, k, mask, scale, b, h, i);
                for d in 0..a.head_dim {
                    out[a.at(b, i, h, d)] = (0..a.seq).map(|j| p[j] * v[a.at(b, j, h, d)]).sum();
                }
            }
        }
    }
}

/// The reference backward: dq, dk, dv (overwritten) from dout, recomputing P.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd_scalar<T: Real>(
    a: &Attn,
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
    a.check(&[q.len(), k.len(), v.len(), dout.len(), dq.len(), dk.len(), dv.len()], mask.map(|m| m.len()));
    dq.fill(T::zero());
    dk.fill(T::zero());
    dv.fill(T::zero());
    let dh = a.head_dim;
    for b in 0..a.batch {
        for h in 0..a.heads {
            for i in 0..a.seq {
                let p = probs_row(a, q, k, mask, scale, b, h, i);
                // dP[i, j] = dO_i . v_j;  dS[i, j] = scale * P[i, j] (dP[i, j] - sum_j' P dP)
                let dp: Vec<T> =
                    (0..a.seq).map(|j| (0..dh).map(|d| dout[a.at(b, i, h, d)] * v[a.at(b, j, h, d)]).sum()).collect();
                let dot: T = p.iter().zip(&dp).map(|(&x, &y)| x * y).sum();
                for j in 0..a.seq {
                    let ds = scale * p[j] * (dp[j] - dot);
                    for d in 0..dh {
                        dv[a.at(b, j, h, d)] += p[j] * dout[a.at(b, i, h, d)];
                        dq[a.at(b, i, h, d)] += ds * k[a.at(b, j, h, d)];
                        dk[a.at(b, j, h, d)] += ds * q[a.at(b, i, h, d)];
                    }
                }
            }
        }
    }
}

/// The f32 forward: the fast path when the CPU has AVX2+FMA, else the reference.
pub fn attention_fwd(a: &Attn, q: &[f32], k: &[f32], v: &[f32], mask: Option<&[f32]>, scale: f32, out: &mut [f32]) {
    if super::has_avx2() {
        attention_fwd_avx2(a, q, k, v, mask, scale, out)
    } else {
        attention_fwd_scalar(a, q, k, v, mask, scale, out)
    }
}

/// The f32 backward: the fast path when the CPU has AVX2+FMA, else the reference.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd(
    a: &Attn,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    scale: f32,
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    if super::has_avx2() {
        attention_bwd_avx2(a, q, k, v, mask, scale, dout, dq, dk, dv)
    } else {
        attention_bwd_scalar(a, q, k, v, mask, scale, dout, dq, dk, dv)
    }
}

/// A head's (S, D) slice of a (B, S, H) tensor as a gemm operand: where it starts, and H as its
/// leading dimension.
fn head_operand(a: &Attn, b: usize, h: usize) -> usize {
    a.at(b, 0, h, 0)
}

/// C (m, n) = op(A) op(B), dense, on this thread.
#[allow(clippy::too_many_arguments)]
fn product(m: usize, n: usize, k: usize, ta: bool, tb: bool, lda: usize, ldb: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
    let g = Gemm { lda, ldb, ..Gemm::new(m, n, k, ta, tb) };
    gemm_new_one_thread(&g, a, b, None)
}

/// The probabilities of head (b, h): P = softmax(scale * Q K^T + mask[b]), (S, S).
fn head_probs(a: &Attn, q: &[f32], k: &[f32], mask: Option<&[f32]>, scale: f32, b: usize, h: usize) -> Vec<f32> {
    let (s, d, hid) = (a.seq, a.head_dim, a.hidden());
    let at = head_operand(a, b, h);
    let scores = product(s, s, d, false, true, hid, hid, &q[at..], &k[at..]);
    let mut p = vec![0.0; s * s];
    softmax_fwd(&mut p, &scores, mask.map(|m| &m[b * s..(b + 1) * s]), s, s, s, scale);
    p
}

/// Writes per-head (S, D) blocks (index b * N + h) into a (B, S, H) tensor, in parallel over b.
fn scatter_heads(a: &Attn, blocks: &[Vec<f32>], out: &mut [f32]) {
    let (s, d, hid) = (a.seq, a.head_dim, a.hidden());
    out.par_chunks_mut(s * hid).enumerate().for_each(|(b, ob)| {
        for h in 0..a.heads {
            let blk = &blocks[b * a.heads + h];
            for (row, src) in ob.chunks_exact_mut(hid).zip(blk.chunks_exact(d)) {
                row[h * d..(h + 1) * d].copy_from_slice(src);
            }
        }
    });
}

/// The fast forward (see the module docs). Falls back to the reference without AVX2+FMA.
pub fn attention_fwd_avx2(
    a: &Attn,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    scale: f32,
    out: &mut [f32],
) {
    a.check(&[q.len(), k.len(), v.len(), out.len()], mask.map(|m| m.len()));
    if a.is_empty() {
        return;
    }
    let (s, d, hid) = (a.seq, a.head_dim, a.hidden());
    // out[b, :, h] (S x D, row stride H) = P V, written in place.
    let ctx = |b: usize, h: usize, dst: &mut [f32]| {
        let p = head_probs(a, q, k, mask, scale, b, h);
        let g = Gemm { ldb: hid, ldc: hid, ..Gemm::new(s, d, s, false, false) };
        gemm_one_thread(&g, &p, &v[head_operand(a, b, h)..], dst, None);
    };
    if per_batch(a) {
        out.par_chunks_mut(s * hid).enumerate().for_each(|(b, ob)| {
            for h in 0..a.heads {
                ctx(b, h, &mut ob[h * d..]);
            }
        });
        return;
    }
    let blocks: Vec<Vec<f32>> = (0..a.batch * a.heads)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / a.heads, bh % a.heads);
            let p = head_probs(a, q, k, mask, scale, b, h);
            product(s, d, s, false, false, s, hid, &p, &v[head_operand(a, b, h)..])
        })
        .collect();
    scatter_heads(a, &blocks, out);
}

/// Whether to give each thread whole batch entries (at least two per thread, for balance).
fn per_batch(a: &Attn) -> bool {
    a.batch >= 2 * rayon::current_num_threads()
}

/// The fast backward (see the module docs). Falls back to the reference without AVX2+FMA.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd_avx2(
    a: &Attn,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    scale: f32,
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    a.check(&[q.len(), k.len(), v.len(), dout.len(), dq.len(), dk.len(), dv.len()], mask.map(|m| m.len()));
    if a.is_empty() {
        return;
    }
    let (s, d, hid) = (a.seq, a.head_dim, a.hidden());
    // dq, dk, dv of head (b, h) into three S x D destinations with row stride `ld`.
    let head = |b: usize, h: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32], ld: usize| {
        let at = head_operand(a, b, h);
        let p = head_probs(a, q, k, mask, scale, b, h);
        let into = |ta: bool, x: &[f32], y: &[f32], dst: &mut [f32]| {
            let g = Gemm { ldb: hid, ldc: ld, ..Gemm::new(s, d, s, ta, false) };
            gemm_one_thread(&g, x, y, dst, None);
        };
        into(true, &p, &dout[at..], dv); // dV = P^T dO
        let dp = product(s, s, d, false, true, hid, hid, &dout[at..], &v[at..]); // dP = dO V^T
        let mut ds = vec![0.0; s * s];
        softmax_bwd(&mut ds, &p, &dp, s, s, scale);
        into(false, &ds, &k[at..], dq); // dQ = dS K
        into(true, &ds, &q[at..], dk); // dK = dS^T Q
    };
    if per_batch(a) {
        let (cq, ck, cv) = (dq.par_chunks_mut(s * hid), dk.par_chunks_mut(s * hid), dv.par_chunks_mut(s * hid));
        cq.zip(ck).zip(cv).enumerate().for_each(|(b, ((gq, gk), gv))| {
            for h in 0..a.heads {
                let o = h * d;
                head(b, h, &mut gq[o..], &mut gk[o..], &mut gv[o..], hid);
            }
        });
        return;
    }
    let grads: Vec<[Vec<f32>; 3]> = (0..a.batch * a.heads)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / a.heads, bh % a.heads);
            let mut g = [vec![0.0; s * d], vec![0.0; s * d], vec![0.0; s * d]];
            let [gq, gk, gv] = &mut g;
            head(b, h, gq, gk, gv, d);
            g
        })
        .collect();
    let n = grads.len();
    let (mut gq, mut gk, mut gv) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for [x, y, z] in grads {
        gq.push(x);
        gk.push(y);
        gv.push(z);
    }
    scatter_heads(a, &gq, dq);
    scatter_heads(a, &gk, dk);
    scatter_heads(a, &gv, dv);
}

//! ALBERT's factorised embedding as ONE fused op, forward and backward:
//!
//!   x = word[ids] + position[pos] + token_type[types]        [R, E]  (R = B*S rows)
//!   y = dropout(LayerNorm(x; gamma, beta, eps))               [R, E]
//!   out = y W^T + b                                            [R, H]  (embedding_hidden_mapping_in)
//!
//! The forward keeps only the per-row LayerNorm statistics (mean, rstd) and the dropout mask: the
//! backward recomputes y from the ids (three row gathers, cheap at width E) instead of saving the
//! [R, E] intermediates. The backward scatter-adds into the three tables and accumulates every
//! parameter gradient in one pass. The unfused composition of engine ops is the test reference.

use super::float_dispatch;
use super::DropoutMask;
use crate::cuda::{dt_of, empty, expect_saved_f32, op_gpu, ptr, zeros};
use crate::elem::k;
use crate::{DType, Error, Result, Tensor};
use kernels::cpu::matmul::Gemm;
use num_traits::Zero as _;
use std::sync::Arc;

/// The seven parameters, as tensors.
#[derive(Clone, Debug)]
pub struct EmbeddingParams {
    /// [V, E]
    pub word: Tensor,
    /// [P, E]
    pub position: Tensor,
    /// [T, E]
    pub token_type: Tensor,
    /// [E]
    pub ln_gamma: Tensor,
    /// [E]
    pub ln_beta: Tensor,
    /// [H, E] (a Linear weight)
    pub proj_w: Tensor,
    /// [H]
    pub proj_b: Tensor,
}

/// Gradients of the seven parameters: the same fields and shapes as the parameters.
pub type EmbeddingGrads = EmbeddingParams;

/// What the backward needs besides the parameters.
#[derive(Clone, Debug)]
pub struct EmbeddingSaved {
    ids: Arc<Vec<[usize; 3]>>,
    mean: Tensor,
    rstd: Tensor,
    dropout: Option<DropoutMask>,
    eps: f64,
    padding_idx: Option<usize>,
}

/// The dropout applied after the LayerNorm, over [R, E] (a host mask, or a device seed).
pub type EmbeddingDropout = DropoutMask;

struct Dims {
    rows: usize,
    e: usize,
    h: usize,
}

fn check(p: &EmbeddingParams, ids: &Tensor, types: &Tensor, positions: &Tensor) -> Result<(Dims, Vec<[usize; 3]>)> {
    let op = "albert_embeddings";
    let tables = [("word", &p.word), ("position", &p.position), ("token_type", &p.token_type)];
    let e = p.word.shape().get(1).copied().unwrap_or(0);
    for (name, t) in tables {
        if t.rank() != 2 || t.shape()[1] != e {
            return Err(Error::Shape(format!("{op}: {name} table {} must be [rows, {e}]", t.dims())));
        }
    }
    let h = p.proj_w.shape().first().copied().unwrap_or(0);
    for (name, t, want) in [
        ("ln_gamma", &p.ln_gamma, vec![e]),
        ("ln_beta", &p.ln_beta, vec![e]),
        ("proj_w", &p.proj_w, vec![h, e]),
        ("proj_b", &p.proj_b, vec![h]),
    ] {
        super::expect_shape(op, name, t, &want)?;
    }
    if ids.shape() != types.shape() || ids.shape() != positions.shape() {
        return Err(Error::Shape(format!(
            "{op}: ids {}, token types {} and positions {} must have one shape",
            ids.dims(),
            types.dims(),
            positions.dims()
        )));
    }
    let (w, t, q) = (ids.ids(op)?, types.ids(op)?, positions.ids(op)?);
    let limits =
        [("input id", p.word.shape()[0]), ("token type", p.token_type.shape()[0]), ("position", p.position.shape()[0])];
    let mut out = Vec::with_capacity(w.len());
    for i in 0..w.len() {
        let mut triple = [0usize; 3];
        for (j, v) in [w[i], q[i], t[i]].into_iter().enumerate() {
            let (what, n) = match j {
                0 => limits[0],
                1 => limits[2],
                _ => limits[1],
            };
            if v < 0 || v as usize >= n {
                return Err(Error::Index(format!("{op}: {what} {v} at position {i} is out of range for {n} rows")));
            }
            triple[j] = v as usize;
        }
        out.push(triple);
    }
    Ok((Dims { rows: w.len(), e, h }, out))
}

/// y = dropout(LN(word + position + type)) for every row, into `y` [R, E]; fills mean/rstd [R]
/// unless `stats_known` (the backward recomputes y from the saved statistics).
#[allow(clippy::too_many_arguments)]
fn ln_rows<T: crate::Elem>(
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
    stats_known: bool,
    tables: [&[T]; 3],
    ids: &[[usize; 3]],
    gamma: &[T],
    beta: &[T],
    e: usize,
    eps: T,
) {
    for (r, triple) in ids.iter().enumerate() {
        let row = &mut y[r * e..(r + 1) * e];
        row.copy_from_slice(&tables[0][triple[0] * e..(triple[0] + 1) * e]);
        k::add_assign(row, &tables[1][triple[1] * e..(triple[1] + 1) * e]);
        k::add_assign(row, &tables[2][triple[2] * e..(triple[2] + 1) * e]);
    }
    let rows = ids.len();
    if stats_known {
        // xhat = (x - mean) * rstd, then the affine part: the forward's arithmetic, minus the stats.
        for r in 0..rows {
            for (c, v) in y[r * e..(r + 1) * e].iter_mut().enumerate() {
                *v = (*v - mean[r]) * rstd[r] * gamma[c] + beta[c];
            }
        }
    } else {
        let x = y.to_vec();
        k::layernorm_fwd(y, mean, rstd, &x, gamma, beta, rows, e, eps);
    }
}

/// The host keep mask and scale of an optional dropout (a device mask on host tensors is an error).
fn host_keep(op: &str, d: &Option<DropoutMask>) -> Result<(Option<Arc<Vec<u8>>>, f64)> {
    match d {
        None => Ok((None, 1.0)),
        Some(DropoutMask::Host { keep, scale }) => Ok((Some(keep.clone()), *scale)),
        Some(DropoutMask::Device { .. }) => Err(Error::Device(format!("{op}: a device dropout mask for host tensors"))),
    }
}

fn apply_keep<T: crate::Elem>(y: &mut [T], keep: &Option<Arc<Vec<u8>>>, scale: f64) {
    if let Some(keep) = keep {
        let x = y.to_vec();
        k::dropout_fwd(y, &x, keep, <T as kernels::Real>::c(scale));
    }
}

/// Forward. ids, token types, positions: i64 tensors of one shape [..]; output [.., H].
/// `padding_idx`: a word id whose table row gets no gradient from lookups (PyTorch's
/// `nn.Embedding(padding_idx=..)`, which transformers uses with pad_token_id); None for TF's rule.
pub fn albert_embeddings(
    p: &EmbeddingParams,
    ids: &Tensor,
    types: &Tensor,
    positions: &Tensor,
    eps: f64,
    dropout: Option<EmbeddingDropout>,
    padding_idx: Option<usize>,
) -> Result<(Tensor, EmbeddingSaved)> {
    let (d, triples) = check(p, ids, types, positions)?;
    if let Some(keep) = dropout.as_ref().and_then(|dr| dr.keep()) {
        if keep.len() != d.rows * d.e {
            return Err(Error::Shape(format!(
                "albert_embeddings: dropout mask of {} for [{}, {}]",
                keep.len(),
                d.rows,
                d.e
            )));
        }
    }
    let mut out_shape = ids.shape().to_vec();
    out_shape.push(d.h);
    let ps =
        [&p.word, &p.position, &p.token_type, &p.ln_gamma, &p.ln_beta, &p.proj_w, &p.proj_b].map(|t| t.contiguous());
    let refs: Vec<&Tensor> = ps.iter().collect();
    if let Some(g) = op_gpu("albert_embeddings", &refs)? {
        // One kernel reads the tables, gamma and beta with the word table's element type.
        super::same_kind("albert_embeddings", &refs)?;
        return forward_cuda(&g, &ps, triples, d, &out_shape, eps, dropout, padding_idx);
    }
    let (keep, keep_scale) = host_keep("albert_embeddings", &dropout)?;
    float_dispatch!("albert_embeddings", p.word.dtype(), |T| {
        let op = "albert_embeddings";
        let s: Vec<&[T]> = ps.iter().map(|t| t.data::<T>(op)).collect::<Result<_>>()?;
        let (mut y, mut mean, mut rstd) =
            (vec![T::zero(); d.rows * d.e], vec![T::zero(); d.rows], vec![T::zero(); d.rows]);
        let eps_t = <T as kernels::Real>::c(eps);
        ln_rows(&mut y, &mut mean, &mut rstd, false, [s[0], s[1], s[2]], &triples, s[3], s[4], d.e, eps_t);
        apply_keep(&mut y, &keep, keep_scale);
        let mut out = vec![T::zero(); d.rows * d.h];
        if d.rows > 0 {
            k::gemm(&Gemm::new(d.rows, d.h, d.e, false, true), &y, s[5], &mut out, Some(s[6]));
        }
        let saved = EmbeddingSaved {
            ids: Arc::new(triples.clone()),
            mean: Tensor::from_vec(mean, &[d.rows])?,
            rstd: Tensor::from_vec(rstd, &[d.rows])?,
            dropout: dropout.clone(),
            eps,
            padding_idx,
        };
        Ok((Tensor::from_vec(out, &out_shape)?, saved))
    })
}

/// Backward: gradients of all seven parameters from dout [.., H].
pub fn albert_embeddings_bwd(dout: &Tensor, p: &EmbeddingParams, saved: &EmbeddingSaved) -> Result<EmbeddingGrads> {
    let op = "albert_embeddings_bwd";
    let (rows, e, h) = (saved.ids.len(), p.word.shape()[1], p.proj_w.shape()[0]);
    if dout.numel() != rows * h {
        return Err(Error::Shape(format!("{op}: dout {} for {rows} rows of width {h}", dout.dims())));
    }
    let g = dout.contiguous();
    let ps =
        [&p.word, &p.position, &p.token_type, &p.ln_gamma, &p.ln_beta, &p.proj_w, &p.proj_b].map(|t| t.contiguous());
    let mut refs: Vec<&Tensor> = vec![&g];
    refs.extend(ps.iter());
    if let Some(gpu) = op_gpu(op, &refs)? {
        // The kernels read dout, the tables and gamma with one element type, on one device.
        super::same_kind(op, &refs)?;
        expect_saved_f32(op, "mean", &saved.mean, rows, g.device())?;
        expect_saved_f32(op, "rstd", &saved.rstd, rows, g.device())?;
        return backward_cuda(&gpu, &g, &ps, saved);
    }
    let (keep, keep_scale) = host_keep(op, &saved.dropout)?;
    float_dispatch!(op, g.dtype(), |T| {
        let s: Vec<&[T]> = ps.iter().map(|t| t.data::<T>(op)).collect::<Result<_>>()?;
        let dy_out = g.data::<T>(op)?;
        let (mut mean, mut rstd) = (saved.mean.data::<T>(op)?.to_vec(), saved.rstd.data::<T>(op)?.to_vec());
        // 1. recompute y (post-dropout) from the ids and the saved statistics
        let mut y = vec![T::zero(); rows * e];
        let eps_t = <T as kernels::Real>::c(saved.eps);
        ln_rows(&mut y, &mut mean, &mut rstd, true, [s[0], s[1], s[2]], &saved.ids, s[3], s[4], e, eps_t);
        apply_keep(&mut y, &keep, keep_scale);
        // 2. projection: dW = dout^T y, db = column sums, dy = dout W
        let mut dw = vec![T::zero(); h * e];
        let mut db = vec![T::zero(); h];
        let mut dy = vec![T::zero(); rows * e];
        if rows > 0 {
            k::gemm(&Gemm::new(h, e, rows, true, false), dy_out, &y, &mut dw, None);
            k::sum_axis_fwd(&mut db, dy_out, 1, rows, h);
            k::gemm(&Gemm::new(rows, e, h, false, false), dy_out, s[5], &mut dy, None);
        }
        // 3. dropout and LayerNorm backward (x recomputed once more, pre-LN)
        if let Some(keep) = &keep {
            let d = dy.clone();
            k::dropout_bwd(&mut dy, &d, keep, <T as kernels::Real>::c(keep_scale));
        }
        let mut x = vec![T::zero(); rows * e];
        for (r, t) in saved.ids.iter().enumerate() {
            let row = &mut x[r * e..(r + 1) * e];
            row.copy_from_slice(&s[0][t[0] * e..(t[0] + 1) * e]);
            k::add_assign(row, &s[1][t[1] * e..(t[1] + 1) * e]);
            k::add_assign(row, &s[2][t[2] * e..(t[2] + 1) * e]);
        }
        let (mut dx, mut dg, mut dbeta) = (vec![T::zero(); rows * e], vec![T::zero(); e], vec![T::zero(); e]);
        k::layernorm_bwd(&mut dx, &mut dg, &mut dbeta, &dy, &x, s[3], &mean, &rstd, rows, e);
        // 4. scatter-add into the three tables (repeated ids accumulate)
        let mut dtables: Vec<Vec<T>> =
            [&p.word, &p.position, &p.token_type].iter().map(|t| vec![T::zero(); t.numel()]).collect();
        for (j, dt) in dtables.iter_mut().enumerate() {
            let skip = if j == 0 { saved.padding_idx } else { None };
            let (rows_kept, idx): (Vec<usize>, Vec<usize>) =
                saved.ids.iter().enumerate().filter(|(_, t)| Some(t[j]) != skip).map(|(r, t)| (r, t[j])).unzip();
            if rows_kept.len() == rows {
                k::gather_rows_bwd(dt, &dx, &idx, e);
            } else {
                let mut kept = vec![T::zero(); rows_kept.len() * e];
                k::gather_rows_fwd(&mut kept, &dx, &rows_kept, e);
                k::gather_rows_bwd(dt, &kept, &idx, e);
            }
        }
        let mut it = dtables.into_iter();
        Ok(EmbeddingGrads {
            word: Tensor::from_vec(it.next().unwrap(), p.word.shape())?,
            position: Tensor::from_vec(it.next().unwrap(), p.position.shape())?,
            token_type: Tensor::from_vec(it.next().unwrap(), p.token_type.shape())?,
            ln_gamma: Tensor::from_vec(dg, &[e])?,
            ln_beta: Tensor::from_vec(dbeta, &[e])?,
            proj_w: Tensor::from_vec(dw, &[h, e])?,
            proj_b: Tensor::from_vec(db, &[h])?,
        })
    })
}

// ------------------------------------------------------------------------------------ CUDA
// The same op on the GPU: one kernel gathers the three rows, sums them, applies LayerNorm(E)
// and dropout (mask regenerated from a seed), then the projection is one gemm with the bias
// fused. The backward recomputes y with the same kernel, runs the projection's two gemms and
// bias reduction, and one kernel does dropout + LayerNorm backward + the scatter-adds.

/// (dropout p, seed) of an optional device mask.
fn device_dropout(op: &str, d: &Option<DropoutMask>) -> Result<(f32, u64)> {
    match d {
        None => Ok((0.0, 0)),
        Some(DropoutMask::Device { seed, p }) => Ok((*p as f32, *seed)),
        Some(DropoutMask::Host { keep, .. }) if keep.iter().all(|&k| k == 1) => Ok((0.0, 0)),
        Some(DropoutMask::Host { .. }) => Err(Error::Device(format!("{op}: a host dropout mask for device tensors"))),
    }
}

/// The three id columns (word, position, type) as i64 device buffers.
fn upload_triples(g: &Arc<kernels::cuda::Gpu>, triples: &[[usize; 3]]) -> Result<[kernels::cuda::DeviceBuffer; 3]> {
    let col = |j: usize| -> Result<kernels::cuda::DeviceBuffer> {
        let v: Vec<i64> = triples.iter().map(|t| t[j] as i64).collect();
        Ok(kernels::cuda::upload_i64(g, &v)?)
    };
    Ok([col(0)?, col(1)?, col(2)?])
}

/// y = dropout(LN(word + position + type)) [R, E] on the device, with its row statistics.
fn embed_ln_cuda(
    g: &Arc<kernels::cuda::Gpu>,
    ps: &[Tensor; 7],
    triples: &[[usize; 3]],
    eps: f64,
    dropout: (f32, u64),
) -> Result<(Tensor, Tensor, Tensor)> {
    let (rows, e) = (triples.len(), ps[0].shape()[1]);
    let dt = dt_of("albert_embeddings", &ps[0])?;
    let y = empty(g, ps[0].dtype(), &[rows, e])?;
    let (mean, rstd) = (empty(g, DType::F32, &[rows])?, empty(g, DType::F32, &[rows])?);
    let [w, q, t] = upload_triples(g, triples)?;
    kernels::cuda::embeddings::embed_ln_fwd(
        g,
        dt,
        ptr(&y),
        ptr(&mean),
        ptr(&rstd),
        ptr(&ps[0]),
        ptr(&ps[1]),
        ptr(&ps[2]),
        w.ptr(0),
        q.ptr(0),
        t.ptr(0),
        ptr(&ps[3]),
        ptr(&ps[4]),
        rows,
        e,
        eps as f32,
        dropout.0,
        dropout.1,
    )?;
    Ok((y, mean, rstd))
}

#[allow(clippy::too_many_arguments)]
fn forward_cuda(
    g: &Arc<kernels::cuda::Gpu>,
    ps: &[Tensor; 7],
    triples: Vec<[usize; 3]>,
    d: Dims,
    out_shape: &[usize],
    eps: f64,
    dropout: Option<DropoutMask>,
    padding_idx: Option<usize>,
) -> Result<(Tensor, EmbeddingSaved)> {
    let (y, mean, rstd) = embed_ln_cuda(g, ps, &triples, eps, device_dropout("albert_embeddings", &dropout)?)?;
    // out = y W^T + b: [R, E] x [H, E]^T, bias fused in the gemm's epilogue.
    let out = super::matmul(&y, &ps[5], false, true, Some(&ps[6]))?.reshape(out_shape)?;
    debug_assert_eq!(out.numel(), d.rows * d.h);
    let saved = EmbeddingSaved { ids: Arc::new(triples), mean, rstd, dropout, eps, padding_idx };
    Ok((out, saved))
}

fn backward_cuda(
    g: &Arc<kernels::cuda::Gpu>,
    dout: &Tensor,
    ps: &[Tensor; 7],
    saved: &EmbeddingSaved,
) -> Result<EmbeddingGrads> {
    let op = "albert_embeddings_bwd";
    let (rows, e, h) = (saved.ids.len(), ps[0].shape()[1], ps[5].shape()[0]);
    let dropout = device_dropout(op, &saved.dropout)?;
    let (y, _, _) = embed_ln_cuda(g, ps, &saved.ids, saved.eps, dropout)?;
    let dout2 = dout.reshape(&[rows, h])?;
    // Projection: dW = dout^T y [H, E]; db = column sums of dout; dy = dout W [R, E].
    let dw = super::matmul(&dout2, &y, true, false, None)?;
    let db = super::sum(&dout2, 0, false)?;
    let dy = super::matmul(&dout2, &ps[5], false, false, None)?;
    // Dropout + LayerNorm backward and the scatter-adds, accumulated in f32.
    let f32z = |t: &Tensor| zeros(g, DType::F32, t.shape());
    let (dword, dpos, dtype) = (f32z(&ps[0])?, f32z(&ps[1])?, f32z(&ps[2])?);
    let (dgamma, dbeta) = (f32z(&ps[3])?, f32z(&ps[4])?);
    let [w, q, t] = upload_triples(g, &saved.ids)?;
    let dt = dt_of(op, dout)?;
    kernels::cuda::embeddings::embed_ln_bwd(
        g,
        dt,
        ptr(&dword),
        ptr(&dpos),
        ptr(&dtype),
        ptr(&dgamma),
        ptr(&dbeta),
        ptr(&dy),
        ptr(&ps[0]),
        ptr(&ps[1]),
        ptr(&ps[2]),
        w.ptr(0),
        q.ptr(0),
        t.ptr(0),
        ptr(&ps[3]),
        ptr(&saved.mean),
        ptr(&saved.rstd),
        rows,
        e,
        dropout.0,
        dropout.1,
        saved.padding_idx.map_or(-1, |p| p as i64),
    )?;
    let to = |t: Tensor| t.to_dtype(ps[0].dtype());
    Ok(EmbeddingGrads {
        word: to(dword),
        position: to(dpos),
        token_type: to(dtype),
        ln_gamma: to(dgamma),
        ln_beta: to(dbeta),
        proj_w: dw,
        proj_b: db,
    })
}

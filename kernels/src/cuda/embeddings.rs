//! The GPU front of ALBERT's fused factorised embedding (`engine/src/ops/embeddings.rs`): gathers
//! of the word, position and token-type rows, their sum, LayerNorm(E) and dropout, and the backward
//! of all of it (kernels in `kernels/cuda/embeddings.cu`). The E x H projection is a separate GEMM.
//!
//! Shapes: y, dy: (R, E) of `dt`; word: (V, E), position: (P, E), token_type: (T, E) of `dt`;
//! gamma, beta: (E) of `dt`; mean, rstd: (R) f32; ids, pos_ids, type_ids: (R) i64;
//! dword, dposition, dtype: f32 tables of the same shapes; dgamma, dbeta: (E) f32. E <= 4096.
//!
//! Dropout draws element (r, c)'s number as `uniform01(seed, r * E + c)` (common.cuh) and keeps it
//! iff the number is >= p, scaling kept values by 1 / (1 - p); forward and backward draw the same.
//!
//! Ids are validated by the engine before these calls (the launchers are not given the table
//! sizes); the kernels skip a row with a NEGATIVE id (the forward writes NaN statistics and a NaN,
//! or dropped 0, output row; the backward adds nothing for it).

use super::sources::Source;
use super::{kernel_name, Arg, CudaError, CudaResult, DevPtr, Dt, Gpu, Launch};
use std::sync::Arc;

pub static SOURCE: Source = Source { name: "embeddings", code: include_str!("../../cuda/embeddings.cu"), sm90a: false };

/// The widest E: a block of at most 1024 threads holds the row, 4 values per thread (`EMB_VPT`).
pub const MAX_E: usize = 4096;

fn int(op: &str, what: &str, v: usize) -> CudaResult<i32> {
    i32::try_from(v).map_err(|_| CudaError(format!("{op}: {what} = {v} exceeds i32::MAX")))
}

/// Threads per row block: one per column (rounded up to whole warps), at most 1024.
fn row_threads(e: usize) -> u32 {
    e.next_multiple_of(32).min(1024) as u32
}

/// Checks E and p; returns (E as i32, keep_scale = 1 / (1 - p)).
fn check(op: &str, rows: usize, e: usize, p: f32) -> CudaResult<(i32, f32)> {
    if e == 0 || e > MAX_E {
        return Err(CudaError(format!("{op}: E = {e} must be in 1..={MAX_E} (R {rows}, E {e})")));
    }
    if !(0.0..1.0).contains(&p) {
        return Err(CudaError(format!("{op}: dropout probability {p} must be in [0, 1)")));
    }
    Ok((e as i32, (1.0 / (1.0 - p as f64)) as f32))
}

/// How the backward splits rows into per-block chunks: (blocks, rows per block). Shape-only, so
/// the dgamma/dbeta summation order is the same on every device. rows >= 1.
fn bwd_plan(rows: usize, e: usize) -> (usize, usize) {
    // At most ~2M floats (8 MB) of partials.
    let cap = ((1usize << 20) / e).clamp(64, 2048);
    let chunk = rows.div_ceil(rows.min(cap));
    (rows.div_ceil(chunk), chunk)
}

/// y = dropout(LayerNorm((word[ids] + position[pos_ids]) + token_type[type_ids]; gamma, beta, eps));
/// writes mean and rstd of every row (the backward recomputes the rest from the ids).
/// y: (R, E) of `dt`; mean, rstd: (R) f32; dropout_p in [0, 1) (0: none) with `seed`.
#[allow(clippy::too_many_arguments)]
pub fn embed_ln_fwd(
    g: &Gpu,
    dt: Dt,
    y: DevPtr,
    mean: DevPtr,
    rstd: DevPtr,
    word: DevPtr,
    position: DevPtr,
    token_type: DevPtr,
    ids: DevPtr,
    pos_ids: DevPtr,
    type_ids: DevPtr,
    gamma: DevPtr,
    beta: DevPtr,
    rows: usize,
    e: usize,
    eps: f32,
    dropout_p: f32,
    seed: u64,
) -> CudaResult<()> {
    let op = "embed_ln_fwd";
    let r = int(op, "rows", rows)?;
    let (e32, keep_scale) = check(op, rows, e, dropout_p)?;
    if rows == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(y),
        Arg::Ptr(mean),
        Arg::Ptr(rstd),
        Arg::Ptr(word),
        Arg::Ptr(position),
        Arg::Ptr(token_type),
        Arg::Ptr(ids),
        Arg::Ptr(pos_ids),
        Arg::Ptr(type_ids),
        Arg::Ptr(gamma),
        Arg::Ptr(beta),
        Arg::I32(r),
        Arg::I32(e32),
        // table sizes: not given to the launcher (see the module doc), so only negative ids are caught
        Arg::I32(i32::MAX),
        Arg::I32(i32::MAX),
        Arg::I32(i32::MAX),
        Arg::F32(eps),
        Arg::F32(dropout_p),
        Arg::F32(keep_scale),
        Arg::U64(seed),
    ];
    g.launch(&SOURCE, &kernel_name("embed_ln_fwd", dt), Launch::rows(rows, row_threads(e)), &args)
}

/// Backward of [`embed_ln_fwd`] from dy, the gradient with respect to its output y:
/// dln = dropout mask * dy / (1 - p); dx = LayerNorm backward of dln with xhat recomputed from the
/// ids, mean and rstd; then, ACCUMULATING:
/// - dword[ids[r]] += dx[r] (skipped where ids[r] == padding_idx; -1 = no padding index),
///   dposition[pos_ids[r]] += dx[r], dtype[type_ids[r]] += dx[r]: f32 atomicAdd, so when ids
///   repeat the rows are added in an unspecified order (not bitwise reproducible);
/// - dgamma += sum_r dln * xhat, dbeta += sum_r dln: deterministic (per-block partials, then one
///   kernel adds them in block order).
///
/// dy: (R, E) of `dt`; dropout_p and seed as given to the forward. Allocates a scratch of
/// blocks x 2 x E f32 (at most 8 MB).
#[allow(clippy::too_many_arguments)]
pub fn embed_ln_bwd(
    g: &Arc<Gpu>,
    dt: Dt,
    dword: DevPtr,
    dposition: DevPtr,
    dtype: DevPtr,
    dgamma: DevPtr,
    dbeta: DevPtr,
    dy: DevPtr,
    word: DevPtr,
    position: DevPtr,
    token_type: DevPtr,
    ids: DevPtr,
    pos_ids: DevPtr,
    type_ids: DevPtr,
    gamma: DevPtr,
    mean: DevPtr,
    rstd: DevPtr,
    rows: usize,
    e: usize,
    dropout_p: f32,
    seed: u64,
    padding_idx: i64,
) -> CudaResult<()> {
    let op = "embed_ln_bwd";
    let r = int(op, "rows", rows)?;
    let (e32, keep_scale) = check(op, rows, e, dropout_p)?;
    if rows == 0 {
        return Ok(()); // every gradient accumulates: nothing to add
    }
    let (blocks, chunk) = bwd_plan(rows, e);
    // Freed (stream-ordered, after the kernels below) when this function returns.
    let scratch = g.alloc_uninit(blocks * 2 * e * 4)?;
    let args = [
        Arg::Ptr(dword),
        Arg::Ptr(dposition),
        Arg::Ptr(dtype),
        Arg::Ptr(scratch.ptr(0)),
        Arg::Ptr(dy),
        Arg::Ptr(word),
        Arg::Ptr(position),
        Arg::Ptr(token_type),
        Arg::Ptr(ids),
        Arg::Ptr(pos_ids),
        Arg::Ptr(type_ids),
        Arg::Ptr(gamma),
        Arg::Ptr(mean),
        Arg::Ptr(rstd),
        Arg::I32(r),
        Arg::I32(e32),
        Arg::I32(i32::MAX),
        Arg::I32(i32::MAX),
        Arg::I32(i32::MAX),
        Arg::I32(int(op, "chunk", chunk)?),
        Arg::F32(dropout_p),
        Arg::F32(keep_scale),
        Arg::U64(seed),
        Arg::I64(padding_idx),
    ];
    let cfg = Launch { grid: (blocks as u32, 1, 1), block: (row_threads(e), 1, 1), shared_bytes: 0 };
    g.launch(&SOURCE, &kernel_name("embed_ln_bwd", dt), cfg, &args)?;
    let cfg = Launch { grid: (e.div_ceil(32) as u32, 1, 1), block: (32, 8, 1), shared_bytes: 0 };
    let args = [
        Arg::Ptr(dgamma),
        Arg::Ptr(dbeta),
        Arg::Ptr(scratch.ptr(0)),
        Arg::I32(int(op, "blocks", blocks)?),
        Arg::I32(e32),
    ];
    // Not templated: partials and parameter gradients are f32 whatever `dt` is.
    g.launch(&SOURCE, "embed_ln_dparams", cfg, &args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_plans() {
        assert_eq!(row_threads(128), 128);
        assert_eq!(row_threads(1), 32);
        assert_eq!(row_threads(4096), 1024);
        assert!(check("t", 1, 4097, 0.0).is_err());
        assert!(check("t", 1, 0, 0.0).is_err());
        assert!(check("t", 1, 8, 1.0).is_err());
        assert!(check("t", 1, 8, f32::NAN).is_err());
        assert_eq!(check("t", 1, 8, 0.5).unwrap(), (8, 2.0));
        for rows in [1usize, 3, 64, 65, 2049, 65536] {
            for e in [1usize, 128, 4096] {
                let (blocks, chunk) = bwd_plan(rows, e);
                assert!((blocks - 1) * chunk < rows && blocks * chunk >= rows, "{rows}x{e}");
            }
        }
    }
}

//! LayerNorm over the last axis on the GPU (biased variance, eps): the twin of
//! [`crate::cpu::layernorm`], plus a residual-fused forward (kernels in `kernels/cuda/layernorm.cu`).
//!
//! Shapes: x, residual, sum, out, dout, dx: (R, C) of `dt`; gamma, beta, dgamma, dbeta: (C) of `dt`;
//! mean, rstd: (R) f32. Rows of up to 1024 columns run one warp per row with the row in registers;
//! longer rows run one block per row (forward) or per chunk of rows (backward).
//!
//! Unlike the CPU kernel, the backward OVERWRITES dgamma/dbeta. It reduces them over rows with no
//! atomics: each block writes its chunk's column sums to a scratch buffer, and a second kernel adds
//! them in block order. The chunks depend only on the shape, so the result is bitwise reproducible.

use super::sources::Source;
use super::{kernel_name, Arg, CudaError, CudaResult, DevPtr, Dt, Gpu, Launch};
use std::sync::Arc;

pub static SOURCE: Source = Source { name: "layernorm", code: include_str!("../../cuda/layernorm.cu"), sm90a: false };

/// Rows per block in the forward warp versions (`LN_WARPS` in layernorm.cu).
const FWD_WARPS: u32 = 4;
/// Warps per block in the backward warp versions (`LN_BWD_WARPS`).
const BWD_WARPS: u32 = 8;
/// Threads per block in the block versions.
const BLOCK_THREADS: u32 = 256;

/// Values per lane of the warp version that holds a row of `cols`, or None (block version).
fn warp_vpt(cols: usize) -> Option<usize> {
    [4, 8, 16, 24, 32].into_iter().find(|&v| cols <= 32 * v)
}

fn int(op: &str, what: &str, v: usize) -> CudaResult<i32> {
    i32::try_from(v).map_err(|_| CudaError(format!("{op}: {what} = {v} exceeds i32::MAX")))
}

fn fwd_plan(op: &str, rows: usize, cols: usize) -> (String, Launch) {
    match warp_vpt(cols) {
        Some(v) => (format!("{op}_w{v}"), Launch::rows(rows.div_ceil(FWD_WARPS as usize), 32 * FWD_WARPS)),
        None => (format!("{op}_blk"), Launch::rows(rows, BLOCK_THREADS)),
    }
}

/// How the backward splits rows into per-block chunks: (kernel base name, blocks, rows per block).
/// Depends on the shape only (never on the device), so the dgamma/dbeta summation order, and so the
/// bits of the result, are the same everywhere. rows, cols >= 1.
fn bwd_plan(rows: usize, cols: usize) -> (String, usize, usize) {
    // At most ~2M floats of partials (8 MB), and no more blocks than give each one some rows.
    let cap = ((1usize << 20) / cols).clamp(64, 2048);
    let (base, want) = match warp_vpt(cols) {
        Some(v) => (format!("layernorm_bwd_w{v}"), rows.div_ceil(BWD_WARPS as usize)),
        None => ("layernorm_bwd_blk".to_string(), rows),
    };
    let chunk = rows.div_ceil(want.min(cap));
    (base, rows.div_ceil(chunk), chunk)
}

/// out = (x - mean) * rstd * gamma + beta per row; writes mean and rstd = 1 / sqrt(var + eps).
/// out, x: (R, C); gamma, beta: (C) of `dt`; mean, rstd: (R) f32. C = 0 gives NaN statistics, as
/// the CPU reference does.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_fwd(
    g: &Gpu,
    dt: Dt,
    out: DevPtr,
    mean: DevPtr,
    rstd: DevPtr,
    x: DevPtr,
    gamma: DevPtr,
    beta: DevPtr,
    rows: usize,
    cols: usize,
    eps: f32,
) -> CudaResult<()> {
    let op = "layernorm_fwd";
    let (r, c) = (int(op, "rows", rows)?, int(op, "cols", cols)?);
    if rows == 0 {
        return Ok(());
    }
    let (base, cfg) = fwd_plan(op, rows, cols);
    let args = [
        Arg::Ptr(out),
        Arg::Ptr(mean),
        Arg::Ptr(rstd),
        Arg::Ptr(x),
        Arg::Ptr(gamma),
        Arg::Ptr(beta),
        Arg::I32(r),
        Arg::I32(c),
        Arg::F32(eps),
    ];
    g.launch(&SOURCE, &kernel_name(&base, dt), cfg, &args)
}

/// LayerNorm of x + residual, fused: sum = x + residual (rounded to `dt`, saved for the backward,
/// which takes it as its `x`), then out = LN(sum) exactly as [`layernorm_fwd`] on `sum`.
/// out, sum, x, residual: (R, C); gamma, beta: (C) of `dt`; mean, rstd: (R) f32.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_residual_fwd(
    g: &Gpu,
    dt: Dt,
    out: DevPtr,
    sum: DevPtr,
    mean: DevPtr,
    rstd: DevPtr,
    x: DevPtr,
    residual: DevPtr,
    gamma: DevPtr,
    beta: DevPtr,
    rows: usize,
    cols: usize,
    eps: f32,
) -> CudaResult<()> {
    let op = "layernorm_residual_fwd";
    let (r, c) = (int(op, "rows", rows)?, int(op, "cols", cols)?);
    if rows == 0 {
        return Ok(());
    }
    let (base, cfg) = fwd_plan(op, rows, cols);
    let args = [
        Arg::Ptr(out),
        Arg::Ptr(sum),
        Arg::Ptr(mean),
        Arg::Ptr(rstd),
        Arg::Ptr(x),
        Arg::Ptr(residual),
        Arg::Ptr(gamma),
        Arg::Ptr(beta),
        Arg::I32(r),
        Arg::I32(c),
        Arg::F32(eps),
    ];
    g.launch(&SOURCE, &kernel_name(&base, dt), cfg, &args)
}

/// dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)), g = dout * gamma (overwritten);
/// dgamma = sum_r dout * xhat, dbeta = sum_r dout (OVERWRITTEN, rounded to `dt` once).
/// dx, dout, x: (R, C); gamma, dgamma, dbeta: (C) of `dt`; mean, rstd: (R) f32 from the forward.
/// R = 0 writes zero dgamma/dbeta. Allocates a scratch of blocks x 2 x C f32 (at most 8 MB).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_bwd(
    g: &Arc<Gpu>,
    dt: Dt,
    dx: DevPtr,
    dgamma: DevPtr,
    dbeta: DevPtr,
    dout: DevPtr,
    x: DevPtr,
    gamma: DevPtr,
    mean: DevPtr,
    rstd: DevPtr,
    rows: usize,
    cols: usize,
) -> CudaResult<()> {
    let op = "layernorm_bwd";
    let (r, c) = (int(op, "rows", rows)?, int(op, "cols", cols)?);
    if cols == 0 {
        return Ok(());
    }
    // The scratch lives until the end of this function; its free is stream-ordered after the
    // kernels that use it.
    let (scratch, nparts) = if rows == 0 {
        (None, 0)
    } else {
        let (base, blocks, chunk) = bwd_plan(rows, cols);
        let scratch = g.alloc_uninit(blocks * 2 * cols * 4)?;
        let warp = base.contains("_w");
        let cfg = Launch {
            grid: (blocks as u32, 1, 1),
            block: (if warp { 32 * BWD_WARPS } else { BLOCK_THREADS }, 1, 1),
            // the warp version adds its warps' column sums in shared memory: 2 x C f32
            shared_bytes: if warp { (2 * cols * 4) as u32 } else { 0 },
        };
        let args = [
            Arg::Ptr(dx),
            Arg::Ptr(scratch.ptr(0)),
            Arg::Ptr(dout),
            Arg::Ptr(x),
            Arg::Ptr(gamma),
            Arg::Ptr(mean),
            Arg::Ptr(rstd),
            Arg::I32(r),
            Arg::I32(c),
            Arg::I32(int(op, "chunk", chunk)?),
        ];
        g.launch(&SOURCE, &kernel_name(&base, dt), cfg, &args)?;
        (Some(scratch), blocks)
    };
    let partial = scratch.as_ref().map_or(DevPtr(0), |s| s.ptr(0));
    let cfg = Launch { grid: (cols.div_ceil(32) as u32, 1, 1), block: (32, 8, 1), shared_bytes: 0 };
    let args =
        [Arg::Ptr(dgamma), Arg::Ptr(dbeta), Arg::Ptr(partial), Arg::I32(int(op, "blocks", nparts)?), Arg::I32(c)];
    g.launch(&SOURCE, &kernel_name("layernorm_dparams", dt), cfg, &args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_chunks_cover_every_row_once_and_no_block_is_empty() {
        for rows in [1usize, 2, 7, 8, 9, 100, 1000, 16385, 65536, 65537] {
            for cols in [1usize, 33, 768, 1024, 1025, 4096, 30001] {
                let (base, blocks, chunk) = bwd_plan(rows, cols);
                assert!(blocks >= 1 && chunk >= 1, "{rows}x{cols}");
                assert!((blocks - 1) * chunk < rows && blocks * chunk >= rows, "{rows}x{cols}: {blocks} x {chunk}");
                assert!(blocks <= 2048 && blocks * 2 * cols <= (1 << 21).max(64 * 2 * cols), "{rows}x{cols}");
                assert_eq!(base.ends_with("_blk"), cols > 1024);
            }
        }
        assert_eq!(bwd_plan(65536, 768), ("layernorm_bwd_w24".to_string(), 1338, 49));
    }
}

//! Masked, scaled softmax over the last axis on the GPU: the twin of [`crate::cpu::softmax`]
//! (kernels in `kernels/cuda/softmax.cu`).
//!
//! Shapes: x, out, y, dout, dx: (R, C); mask: (R / rows_per_mask, C), one mask row shared by
//! `rows_per_mask` consecutive rows. Storage `dt`, math in f32. Rows of up to 1024 columns run one
//! warp per row with the row in registers; longer rows run one block per row.

use super::sources::Source;
use super::{kernel_name, Arg, CudaError, CudaResult, DevPtr, Dt, Gpu, Launch};

pub static SOURCE: Source = Source { name: "softmax", code: include_str!("../../cuda/softmax.cu"), sm90a: false };

/// Rows per block in the warp versions (`SM_WARPS` in softmax.cu).
const WARPS: u32 = 4;
/// Threads per row in the block versions.
const BLOCK_THREADS: u32 = 256;

/// Values per lane of the warp version that holds a row of `cols`, or None (block version).
fn warp_vpt(cols: usize) -> Option<usize> {
    [4, 8, 16, 24, 32].into_iter().find(|&v| cols <= 32 * v)
}

fn int(op: &str, what: &str, v: usize) -> CudaResult<i32> {
    i32::try_from(v).map_err(|_| CudaError(format!("{op}: {what} = {v} exceeds i32::MAX")))
}

/// The grid and kernel base name for `rows` x `cols` (rows, cols >= 1).
fn plan(op: &str, rows: usize, cols: usize) -> (String, Launch) {
    match warp_vpt(cols) {
        Some(v) => (format!("{op}_w{v}"), Launch::rows(rows.div_ceil(WARPS as usize), 32 * WARPS)),
        None => (format!("{op}_blk"), Launch::rows(rows, BLOCK_THREADS)),
    }
}

/// out = softmax(scale * x + mask) over each row.
/// out, x: (R, C); mask (optional, storage `dt`): (R / rows_per_mask, C), mask row r / rows_per_mask
/// for row r. A row whose every z is -inf gives NaN (as the CPU reference); a row masked with the
/// dtype's minimum is ordinary finite arithmetic. `out` must not overlap the inputs.
#[allow(clippy::too_many_arguments)]
pub fn softmax_fwd(
    g: &Gpu,
    dt: Dt,
    out: DevPtr,
    x: DevPtr,
    mask: Option<DevPtr>,
    rows: usize,
    cols: usize,
    rows_per_mask: usize,
    scale: f32,
) -> CudaResult<()> {
    let op = "softmax_fwd";
    let (r, c) = (int(op, "rows", rows)?, int(op, "cols", cols)?);
    if mask.is_some() && (rows_per_mask == 0 || !rows.is_multiple_of(rows_per_mask)) {
        return Err(CudaError(format!(
            "{op}: rows_per_mask {rows_per_mask} must divide rows {rows} (R {rows}, C {cols})"
        )));
    }
    // Unused without a mask; 1 keeps the kernel's division defined.
    let rpm = if mask.is_some() { int(op, "rows_per_mask", rows_per_mask)? } else { 1 };
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let (base, cfg) = plan(op, rows, cols);
    let mask = mask.unwrap_or(DevPtr(0));
    g.launch(
        &SOURCE,
        &kernel_name(&base, dt),
        cfg,
        &[Arg::Ptr(out), Arg::Ptr(x), Arg::Ptr(mask), Arg::I32(r), Arg::I32(c), Arg::I32(rpm), Arg::F32(scale)],
    )
}

/// dx = scale * y * (dout - sum_c(dout * y)) per row (overwritten).
/// dx, y (the forward's output), dout: (R, C). `dx` must not overlap the inputs.
#[allow(clippy::too_many_arguments)]
pub fn softmax_bwd(
    g: &Gpu,
    dt: Dt,
    dx: DevPtr,
    y: DevPtr,
    dout: DevPtr,
    rows: usize,
    cols: usize,
    scale: f32,
) -> CudaResult<()> {
    let op = "softmax_bwd";
    let (r, c) = (int(op, "rows", rows)?, int(op, "cols", cols)?);
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let (base, cfg) = plan(op, rows, cols);
    g.launch(
        &SOURCE,
        &kernel_name(&base, dt),
        cfg,
        &[Arg::Ptr(dx), Arg::Ptr(y), Arg::Ptr(dout), Arg::I32(r), Arg::I32(c), Arg::F32(scale)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warp_buckets_cover_up_to_1024_columns() {
        assert_eq!(warp_vpt(1), Some(4));
        assert_eq!(warp_vpt(128), Some(4));
        assert_eq!(warp_vpt(129), Some(8));
        assert_eq!(warp_vpt(768), Some(24));
        assert_eq!(warp_vpt(1024), Some(32));
        assert_eq!(warp_vpt(1025), None);
        let (name, cfg) = plan("softmax_fwd", 9, 3);
        assert_eq!(name, "softmax_fwd_w4");
        assert_eq!(cfg.grid.0, 3);
        assert_eq!(cfg.block.0, 128);
        let (name, cfg) = plan("softmax_bwd", 5, 30001);
        assert_eq!(name, "softmax_bwd_blk");
        assert_eq!(cfg.grid.0, 5);
    }
}

//! Row gather and its scatter-add backward on the GPU: the twin of [`crate::cpu::gather`]
//! (kernels in `kernels/cuda/gather.cu`).
//!
//! Shapes: table: (V, C) of `dt`; idx: (R) i64; out, dout: (R, C) of `dt`; dtable: (V, C) f32.
//! The engine validates ids before calling. The kernels still never read or write outside the
//! table: the forward writes a row of ZEROS for an id outside [0, V), the backward SKIPS that row.

use super::sources::Source;
use super::{kernel_name, Arg, CudaError, CudaResult, DevPtr, Dt, Gpu, Launch};

pub static SOURCE: Source = Source { name: "gather", code: include_str!("../../cuda/gather.cu"), sm90a: false };

const THREADS: u32 = 256;
/// Grid-stride kernels: enough blocks to fill any current GPU, no more.
const MAX_BLOCKS: usize = 1 << 16;

fn int(op: &str, what: &str, v: usize) -> CudaResult<i32> {
    i32::try_from(v).map_err(|_| CudaError(format!("{op}: {what} = {v} exceeds i32::MAX")))
}

fn grid(items: usize) -> Launch {
    let blocks = items.div_ceil(THREADS as usize).clamp(1, MAX_BLOCKS) as u32;
    Launch { grid: (blocks, 1, 1), block: (THREADS, 1, 1), shared_bytes: 0 }
}

/// out[r, :] = table[idx[r], :] (a row of zeros where idx[r] is outside [0, V)).
/// out: (R, C); table: (V = table_rows, C), both of `dt`; idx: (R) i64. Copies 16 bytes at a time
/// when rows are whole 16-byte units and both buffers are 16-byte aligned.
#[allow(clippy::too_many_arguments)]
pub fn gather_rows_fwd(
    g: &Gpu,
    dt: Dt,
    out: DevPtr,
    table: DevPtr,
    idx: DevPtr,
    rows: usize,
    cols: usize,
    table_rows: usize,
) -> CudaResult<()> {
    let op = "gather_rows_fwd";
    let (r, c, v) = (int(op, "rows", rows)?, int(op, "cols", cols)?, int(op, "table_rows", table_rows)?);
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let row_bytes = cols * dt.size();
    let vec = row_bytes.is_multiple_of(16) && out.0.is_multiple_of(16) && table.0.is_multiple_of(16);
    let units = if vec { rows * (row_bytes / 16) } else { rows * cols };
    let args =
        [Arg::Ptr(out), Arg::Ptr(table), Arg::Ptr(idx), Arg::I32(r), Arg::I32(c), Arg::I32(v), Arg::I32(vec as i32)];
    g.launch(&SOURCE, &kernel_name("gather_rows_fwd", dt), grid(units), &args)
}

/// dtable[idx[r], :] += dout[r, :] (ACCUMULATES; rows with idx[r] outside [0, V) are skipped).
/// dtable: (V = table_rows, C) f32; dout: (R, C) of `dt`; idx: (R) i64.
///
/// Uses f32 `atomicAdd`, one thread per element: when ids repeat, their rows are added in an
/// unspecified order, so the result may differ in the last bits from run to run (the CPU kernel
/// adds in id order).
#[allow(clippy::too_many_arguments)]
pub fn gather_rows_bwd(
    g: &Gpu,
    dt: Dt,
    dtable: DevPtr,
    dout: DevPtr,
    idx: DevPtr,
    rows: usize,
    cols: usize,
    table_rows: usize,
) -> CudaResult<()> {
    let op = "gather_rows_bwd";
    let (r, c, v) = (int(op, "rows", rows)?, int(op, "cols", cols)?, int(op, "table_rows", table_rows)?);
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let args = [Arg::Ptr(dtable), Arg::Ptr(dout), Arg::Ptr(idx), Arg::I32(r), Arg::I32(c), Arg::I32(v)];
    g.launch(&SOURCE, &kernel_name("gather_rows_bwd", dt), grid(rows * cols), &args)
}

//! Sums on the GPU: over one axis of a tensor viewed as (outer, len, inner) (the CUDA twin of
//! `cpu::reduce`), its backward (a broadcast), and the sum of squares used by global-norm
//! clipping. Sums accumulate in f32 and are deterministic: how the work is split (segments of
//! `len`, 64-column tiles) depends only on the sizes, never on the device, and every reduction
//! tree is fixed (no atomics), so repeated runs agree bit for bit, on any card.
//!
//! Paths of [`sum_axis_fwd`]:
//! - inner == 1, len <= 1024: one warp per row.
//! - inner == 1, longer rows: a 256-thread block per row; when there are too few rows to fill
//!   the device, each row is split into segments whose f32 partials a second kernel adds in order.
//! - inner > 1 (column sums, e.g. a bias gradient over 65536 rows x 768): a block of 32 x 8
//!   threads sums a 64-column tile over a segment of rows (each warp reads 32 consecutive
//!   elements of a row), with enough segments to give about 1024 blocks; partials added in order
//!   by a second kernel.
//!
//! Bytes moved per element of the input: one read (s = 2 or 4 bytes) for the sums (the outputs
//! and partials are small); [`sum_axis_bwd`] reads dout once per distinct element and writes s
//! bytes per element of dinp.

use super::copy::{self, check_ptrs, grid_stride, to_i64, THREADS};
use super::sources::Source;
use super::{kernel_name, Arg, CudaError, CudaResult, DevPtr, Dims6, Dt, Gpu, Launch};

pub static SOURCE: Source = Source { name: "reduce", code: include_str!("../../cuda/reduce.cu"), sm90a: false };

/// Rows up to this length are summed by one warp each.
const WARP_ROW_MAX: usize = 1024;
/// About this many blocks are aimed for when rows or columns are too few to fill the device (a
/// constant, not a function of the SM count, so that results do not depend on the card).
const TARGET_BLOCKS: usize = 1024;
/// Shortest segment of a long row that gets its own block.
const MIN_ROW_SEG: usize = 2048;
/// Fewest rows of a column tile that get their own block.
const MIN_COL_SEG: usize = 64;
/// Columns per block of `sum_cols` and rows of threads (see reduce.cu).
const COL_TILE: usize = 64;
const COL_ROWS: u32 = 8;
/// Elements per block of the first stage of [`sum_squares`] (before capping at TARGET_BLOCKS).
const SQ_CHUNK: usize = 16384;

/// Splits `len` into segments of at least `min_seg` (rounded up to a multiple of 8) so that
/// `base * splits` is about TARGET_BLOCKS. Returns (segment length, number of segments).
fn split_len(len: usize, base: usize, min_seg: usize) -> (usize, usize) {
    let want = TARGET_BLOCKS.div_ceil(base.max(1)).clamp(1, len.div_ceil(min_seg).max(1));
    let seg = len.div_ceil(want).next_multiple_of(8);
    (seg, len.div_ceil(seg))
}

/// out: (outer, inner) = sum over l of inp: (outer, len, inner). out has inp's dtype. len == 0
/// gives zeros.
#[allow(clippy::too_many_arguments)]
pub fn sum_axis_fwd(
    g: &Gpu,
    dt: Dt,
    out: DevPtr,
    inp: DevPtr,
    outer: usize,
    len: usize,
    inner: usize,
) -> CudaResult<()> {
    let what = "sum_axis_fwd";
    let n_out = outer
        .checked_mul(inner)
        .filter(|&n| n.checked_mul(len).is_some_and(|t| t <= i64::MAX as usize))
        .ok_or_else(|| CudaError(format!("{what}: ({outer}, {len}, {inner}) overflows")))?;
    if n_out == 0 {
        return Ok(());
    }
    if len == 0 {
        return copy::fill(g, dt, out, n_out, 0.0);
    }
    check_ptrs(what, &[out, inp])?;
    let (outer_i, len_i, inner_i) = (outer as i64, len as i64, inner as i64);
    if inner == 1 && len <= WARP_ROW_MAX {
        let warps_per_block = (THREADS / 32) as usize;
        let launch = grid_stride(g, outer.div_ceil(warps_per_block) * THREADS as usize);
        let args = [Arg::Ptr(out), Arg::Ptr(inp), Arg::I64(outer_i), Arg::I64(len_i)];
        return g.launch(&SOURCE, &kernel_name("sum_rows_warp", dt), launch, &args);
    }
    let (seg, splits, base, kernel) = if inner == 1 {
        let (seg, splits) = split_len(len, outer, MIN_ROW_SEG);
        (seg, splits, outer, "sum_rows_block")
    } else {
        let tiles = inner.div_ceil(COL_TILE);
        let (seg, splits) = split_len(len, outer * tiles, MIN_COL_SEG);
        (seg, splits, outer * tiles, "sum_cols")
    };
    // With one segment the kernel writes `out` and never touches the partials.
    let partial = if splits > 1 { Some(copy::scratch(g, n_out * splits * 4)?) } else { None };
    let partial_ptr = partial.as_ref().map_or(out, |p| p.ptr(0));
    let grid_x = base.min(i32::MAX as usize) as u32;
    if inner == 1 {
        let launch = Launch { grid: (grid_x, splits as u32, 1), block: (THREADS, 1, 1), shared_bytes: 0 };
        let args = [
            Arg::Ptr(out),
            Arg::Ptr(partial_ptr),
            Arg::Ptr(inp),
            Arg::I64(outer_i),
            Arg::I64(len_i),
            Arg::I64(seg as i64),
            Arg::I32(splits as i32),
        ];
        g.launch(&SOURCE, &kernel_name(kernel, dt), launch, &args)?;
    } else {
        let launch = Launch { grid: (grid_x, splits as u32, 1), block: (32, COL_ROWS, 1), shared_bytes: 0 };
        let args = [
            Arg::Ptr(out),
            Arg::Ptr(partial_ptr),
            Arg::Ptr(inp),
            Arg::I64(outer_i),
            Arg::I64(len_i),
            Arg::I64(inner_i),
            Arg::I64(seg as i64),
            Arg::I32(splits as i32),
            Arg::I64(inner.div_ceil(COL_TILE) as i64),
        ];
        g.launch(&SOURCE, &kernel_name(kernel, dt), launch, &args)?;
    }
    if splits > 1 {
        let args =
            [Arg::Ptr(out), Arg::Ptr(partial_ptr), Arg::I64(outer_i), Arg::I64(inner_i), Arg::I32(splits as i32)];
        g.launch(&SOURCE, &kernel_name("sum_partials", dt), grid_stride(g, n_out), &args)?;
    }
    Ok(())
}

/// dinp: (outer, len, inner) = dout: (outer, inner) broadcast along the reduced axis
/// (overwritten). A strided copy with stride 0 over len (16-byte words when inner allows).
#[allow(clippy::too_many_arguments)]
pub fn sum_axis_bwd(
    g: &Gpu,
    dt: Dt,
    dinp: DevPtr,
    dout: DevPtr,
    outer: usize,
    len: usize,
    inner: usize,
) -> CudaResult<()> {
    let what = "sum_axis_bwd";
    let dims = Dims6 {
        rank: 3,
        pad: 0,
        shape: [to_i64(what, outer)?, to_i64(what, len)?, to_i64(what, inner)?, 0, 0, 0],
        stride: [to_i64(what, inner)?, 0, 1, 0, 0, 0],
    };
    copy::copy_strided(g, dt.size(), dinp, dout, &dims)
}

/// out_f32[0] = sum of x^2 over x: (n), accumulated in f32 (out is one f32 whatever `dt` is).
/// Two stages: up to 1024 blocks each sum a fixed segment, then one block adds the partials in
/// order: deterministic, and independent of the device. Reads n * s bytes.
pub fn sum_squares(g: &Gpu, dt: Dt, out_f32: DevPtr, x: DevPtr, n: usize) -> CudaResult<()> {
    let what = "sum_squares";
    if n == 0 {
        return copy::fill(g, Dt::F32, out_f32, 1, 0.0);
    }
    check_ptrs(what, &[out_f32, x])?;
    let blocks = n.div_ceil(SQ_CHUNK).clamp(1, TARGET_BLOCKS);
    let seg = n.div_ceil(blocks).next_multiple_of(8);
    let blocks = n.div_ceil(seg);
    let partial = if blocks > 1 { Some(copy::scratch(g, blocks * 4)?) } else { None };
    // One block: its sum is the answer.
    let partial_ptr = partial.as_ref().map_or(out_f32, |p| p.ptr(0));
    let launch = Launch { grid: (blocks as u32, 1, 1), block: (THREADS, 1, 1), shared_bytes: 0 };
    let args = [Arg::Ptr(partial_ptr), Arg::Ptr(x), Arg::I64(n as i64), Arg::I64(seg as i64)];
    g.launch(&SOURCE, &kernel_name("sum_squares_partial", dt), launch, &args)?;
    if blocks > 1 {
        let launch = Launch { grid: (1, 1, 1), block: (1024, 1, 1), shared_bytes: 0 };
        let args = [Arg::Ptr(out_f32), Arg::Ptr(partial_ptr), Arg::I32(blocks as i32)];
        g.launch(&SOURCE, "sum_final_f32", launch, &args)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_len_and_aim_at_the_target() {
        // bias gradient: 65536 rows x 768 columns = 12 tiles
        let (seg, splits) = split_len(65536, 12, MIN_COL_SEG);
        assert!(seg % 8 == 0 && seg * splits >= 65536 && seg * (splits - 1) < 65536);
        assert!((12 * splits).abs_diff(TARGET_BLOCKS) < 64, "{splits}");
        // plenty of tiles already: one segment
        assert_eq!(split_len(100, 5000, MIN_COL_SEG), (104, 1));
        // short rows never split below the minimum segment
        let (seg, splits) = split_len(3000, 1, MIN_ROW_SEG);
        assert_eq!((seg, splits), (1504, 2));
        for len in [1usize, 7, 64, 65, 1000, 123457] {
            for base in [1usize, 3, 1000, 5000] {
                let (seg, splits) = split_len(len, base, MIN_COL_SEG);
                assert!(seg * splits >= len && seg * (splits - 1) < len, "{len} {base}");
            }
        }
    }
}

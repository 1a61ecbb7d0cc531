//! Cross-entropy over logits with integer targets on the GPU (fused log-softmax + NLL): the twin
//! of [`crate::cpu::cross_entropy`] (kernels in `kernels/cuda/cross_entropy.cu`).
//!
//! Shapes: logits, dlogits: (R, C) of `dt`; targets: (R) i64; lse: (R) f32; loss_sum, count,
//! dloss: (1) f32. Rows whose target equals `ignore` (HF: -100) count for nothing; the loss is the
//! mean over the other rows, which the caller forms as loss_sum / count. Both stay on the device,
//! and the backward reads dloss and count from there, so a training step needs no host sync.
//!
//! One block per row; the forward reads each row once (16-byte loads when the row allows, a running
//! max and sum of exp per thread). The loss is summed deterministically: per-row losses go to a
//! scratch buffer, and one block adds them in a fixed order (in f64).

use super::sources::Source;
use super::{kernel_name, Arg, CudaError, CudaResult, DevPtr, Dt, Gpu, Launch};
use std::sync::Arc;

pub static SOURCE: Source =
    Source { name: "cross_entropy", code: include_str!("../../cuda/cross_entropy.cu"), sm90a: false };

/// Threads of the one-block loss reduction (`CE_REDUCE_THREADS` in cross_entropy.cu).
const REDUCE_THREADS: u32 = 1024;

fn int(op: &str, what: &str, v: usize) -> CudaResult<i32> {
    i32::try_from(v).map_err(|_| CudaError(format!("{op}: {what} = {v} exceeds i32::MAX")))
}

/// Whether rows of `cols` elements at these addresses can be read (and written) 16 bytes at a
/// time: whole 16-byte units per row, every pointer 16-byte aligned.
fn vec16(dt: Dt, cols: usize, ptrs: &[DevPtr]) -> bool {
    (cols * dt.size()).is_multiple_of(16) && ptrs.iter().all(|p| p.0.is_multiple_of(16))
}

/// Threads per row block: about 4 loads per thread, 32 to 512.
fn row_threads(dt: Dt, cols: usize, vec: bool) -> u32 {
    let units = if vec { cols * dt.size() / 16 } else { cols };
    units.div_ceil(4).next_multiple_of(32).clamp(32, 512) as u32
}

/// lse[r] = log sum_c exp(logits[r, c]); loss_sum = sum over rows with targets[r] != ignore of
/// (lse[r] - logits[r, targets[r]]); count = the number of those rows (as f32). Both scalars are
/// written (not accumulated) by this call. A non-ignored target outside [0, C) is never read: it
/// makes the loss NaN. lse of a row of all -inf (or with a NaN) is NaN, as in the CPU reference.
/// loss_sum, count: (1) f32; lse: (R) f32; logits: (R, C) of `dt`; targets: (R) i64. C must be
/// >= 1 unless R = 0. Allocates a scratch of R f32.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_fwd(
    g: &Arc<Gpu>,
    dt: Dt,
    loss_sum: DevPtr,
    count: DevPtr,
    lse: DevPtr,
    logits: DevPtr,
    targets: DevPtr,
    rows: usize,
    cols: usize,
    ignore: i64,
) -> CudaResult<()> {
    let op = "cross_entropy_fwd";
    let (r, c) = (int(op, "rows", rows)?, int(op, "cols", cols)?);
    if cols == 0 && rows > 0 {
        return Err(CudaError(format!("{op}: {rows} rows of 0 classes (R {rows}, C {cols})")));
    }
    let scratch = if rows > 0 { Some(g.alloc_uninit(rows * 4)?) } else { None };
    let row_loss = scratch.as_ref().map_or(DevPtr(0), |s| s.ptr(0));
    if rows > 0 {
        let vec = vec16(dt, cols, &[logits]);
        let cfg = Launch::rows(rows, row_threads(dt, cols, vec));
        let args = [
            Arg::Ptr(lse),
            Arg::Ptr(row_loss),
            Arg::Ptr(logits),
            Arg::Ptr(targets),
            Arg::I32(r),
            Arg::I32(c),
            Arg::I64(ignore),
            Arg::I32(vec as i32),
        ];
        g.launch(&SOURCE, &kernel_name("cross_entropy_fwd", dt), cfg, &args)?;
    }
    // Not templated: it reads only f32 and i64.
    let cfg = Launch { grid: (1, 1, 1), block: (REDUCE_THREADS, 1, 1), shared_bytes: 0 };
    let args =
        [Arg::Ptr(loss_sum), Arg::Ptr(count), Arg::Ptr(row_loss), Arg::Ptr(targets), Arg::I32(r), Arg::I64(ignore)];
    g.launch(&SOURCE, "cross_entropy_reduce", cfg, &args)
}

/// dlogits[r, c] = (exp(logits[r, c] - lse[r]) - [c == targets[r]]) * dloss / count for rows with
/// targets[r] != ignore, 0 for ignored rows (overwritten). dloss is the gradient of the MEAN loss
/// (so dloss / count is the per-row weight); dloss, count: (1) f32 on the device (count as written
/// by [`cross_entropy_fwd`]). dlogits, logits: (R, C) of `dt`; lse: (R) f32; targets: (R) i64.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_bwd(
    g: &Gpu,
    dt: Dt,
    dlogits: DevPtr,
    logits: DevPtr,
    lse: DevPtr,
    targets: DevPtr,
    rows: usize,
    cols: usize,
    ignore: i64,
    dloss: DevPtr,
    count: DevPtr,
) -> CudaResult<()> {
    let op = "cross_entropy_bwd";
    let (r, c) = (int(op, "rows", rows)?, int(op, "cols", cols)?);
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let vec = vec16(dt, cols, &[logits, dlogits]);
    let cfg = Launch::rows(rows, row_threads(dt, cols, vec));
    let args = [
        Arg::Ptr(dlogits),
        Arg::Ptr(logits),
        Arg::Ptr(lse),
        Arg::Ptr(targets),
        Arg::I32(r),
        Arg::I32(c),
        Arg::I64(ignore),
        Arg::Ptr(dloss),
        Arg::Ptr(count),
        Arg::I32(vec as i32),
    ];
    g.launch(&SOURCE, &kernel_name("cross_entropy_bwd", dt), cfg, &args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_path_needs_whole_aligned_units() {
        assert!(vec16(Dt::F32, 30000, &[DevPtr(4096)]));
        assert!(vec16(Dt::BF16, 30000, &[DevPtr(4096)]));
        assert!(!vec16(Dt::F32, 30001, &[DevPtr(4096)]));
        assert!(!vec16(Dt::BF16, 12, &[DevPtr(4096)]));
        assert!(vec16(Dt::F32, 12, &[DevPtr(4096)]));
        assert!(!vec16(Dt::F32, 12, &[DevPtr(4096), DevPtr(4100)]));
        assert_eq!(row_threads(Dt::BF16, 30000, true), 512);
        assert_eq!(row_threads(Dt::F32, 3, false), 32);
    }
}

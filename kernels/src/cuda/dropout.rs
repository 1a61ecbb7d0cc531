//! Inverted dropout on the GPU with a mask that is never stored: element i is kept iff
//! `uniform01(seed, i) >= p` (the counter-based generator of common.cuh), so the forward, the
//! backward and fused consumers recompute the same mask from (seed, element index). Kept elements
//! are scaled by [`dropout_scale`]`(p)` = 1/(1-p), as the CPU kernels (`cpu::dropout`) do with
//! their stored mask; [`dropout_keep_mask`] writes the mask out as bytes (for tests, and for CPU
//! cross-checks through `cpu::dropout::*_scalar`).
//!
//! The mask is a function of the element index within the buffer given, so a caller that splits
//! one logical tensor across several calls must offset the seed or the pointers consistently.
//!
//! Bytes moved per element: 2s (read + write, s = 4 f32 / 2 bf16); the mask: 1 byte written.

use super::copy::{check_ptrs, grid_stride};
use super::sources::Source;
use super::{kernel_name, Arg, CudaError, CudaResult, DevPtr, Dt, Gpu};

pub static SOURCE: Source = Source { name: "dropout", code: include_str!("../../cuda/dropout.cu"), sm90a: false };

/// The factor kept elements are multiplied by: 1/(1-p), formed in f64 and rounded once (as the
/// engine's CPU path does).
pub fn dropout_scale(p: f32) -> f32 {
    (1.0 / (1.0 - f64::from(p))) as f32
}

fn check_p(what: &str, p: f32) -> CudaResult<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(CudaError(format!("{what}: drop probability {p} outside [0, 1)")))
    }
}

/// out = keep(i) ? x * 1/(1-p) : 0;  out, x: (n). out may be x.
#[allow(clippy::too_many_arguments)]
pub fn dropout_fwd(g: &Gpu, dt: Dt, out: DevPtr, x: DevPtr, n: usize, p: f32, seed: u64) -> CudaResult<()> {
    apply(g, "dropout_fwd", dt, out, x, n, p, seed)
}

/// dx = keep(i) ? dout * 1/(1-p) : 0 (overwritten), the mask of [`dropout_fwd`] with the same
/// (p, seed);  dx, dout: (n). dx may be dout.
#[allow(clippy::too_many_arguments)]
pub fn dropout_bwd(g: &Gpu, dt: Dt, dx: DevPtr, dout: DevPtr, n: usize, p: f32, seed: u64) -> CudaResult<()> {
    apply(g, "dropout_bwd", dt, dx, dout, n, p, seed)
}

#[allow(clippy::too_many_arguments)]
fn apply(g: &Gpu, what: &str, dt: Dt, out: DevPtr, x: DevPtr, n: usize, p: f32, seed: u64) -> CudaResult<()> {
    check_p(what, p)?;
    if n == 0 {
        return Ok(());
    }
    check_ptrs(what, &[out, x])?;
    let args =
        [Arg::Ptr(out), Arg::Ptr(x), Arg::I64(n as i64), Arg::F32(p), Arg::F32(dropout_scale(p)), Arg::U64(seed)];
    g.launch(&SOURCE, &kernel_name("dropout_apply", dt), grid_stride(g, n.div_ceil(16 / dt.size())), &args)
}

/// out_u8: (n) bytes = 1 where element i is kept by (p, seed), else 0.
pub fn dropout_keep_mask(g: &Gpu, out_u8: DevPtr, n: usize, p: f32, seed: u64) -> CudaResult<()> {
    let what = "dropout_keep_mask";
    check_p(what, p)?;
    if n == 0 {
        return Ok(());
    }
    check_ptrs(what, &[out_u8])?;
    let args = [Arg::Ptr(out_u8), Arg::I64(n as i64), Arg::F32(p), Arg::U64(seed)];
    g.launch(&SOURCE, "dropout_keep_mask", grid_stride(g, n.div_ceil(16)), &args)
}

//! Fused attention (FlashAttention-2 style): `O = softmax(scale * Q K^T + mask) V` and its
//! backward, without materialising the [B, N, S_q, S_k] scores. Kernels in `kernels/cuda/attention.cu`.
//!
//! Tensors are read and written through strides, so the engine passes [B, S, N, D] projections or
//! [B, N, S, D] tensors without copies: element (b, h, s, d) is at
//! `ptr + b*batch_stride + h*head_stride + s*row_stride + d` (elements; d contiguous).
//!
//! Two versions, chosen per call:
//! - tensor cores (bf16 only): `mma.sync.m16n8k16` bf16 with f32 accumulators, ldmatrix from
//!   swizzled shared tiles, cp.async double buffering. Needs every pointer 16-byte aligned, every
//!   stride a multiple of 8 elements and the tile's shared memory within the device's opt-in limit.
//! - SIMT (f32, and bf16 views that fail the conditions above): f32 FMAs, one warp per row.
//!
//! The softmax follows `cpu::softmax` (scale, additive key mask, max-subtracted exp): a batch row
//! whose keys are all masked with the dtype's minimum attends uniformly, as the reference does.
//! `lse` holds the log-sum-exp of `z - mu_b`, with z the scaled, masked scores and
//! `mu_b = max_k mask[b, k]` (0 without a mask, and 0 whenever batch row b has an unmasked key
//! with mask 0): that shift keeps a fully masked row's statistics finite. Only the backward reads it.
//!
//! Backward: a preprocessing kernel computes `Dd = rowsum(dO * O)`. The tensor-core path then runs
//! one kernel over (key tile, head, batch) holding dK, dV in registers and adding dQ into an f32
//! scratch with atomics (so dQ's rounding depends on the order of those adds: not bit-for-bit
//! deterministic), then converts it to dq. The SIMT path runs a dQ kernel (over query rows) and a
//! dK/dV kernel (over key rows): deterministic. dq, dk, dv are overwritten.

use super::sources::Source;
use super::{kernel_name, Arg, CudaError, CudaResult, DevPtr, Dt, Gpu, Launch};
use std::sync::Arc;

pub static SOURCE: Source = Source { name: "attention", code: include_str!("../../cuda/attention.cu"), sm90a: false };

/// Strides (in elements) of one [B, N, S, D]-indexed tensor; d is contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnLayout {
    pub batch_stride: usize,
    pub head_stride: usize,
    pub row_stride: usize,
}

impl AttnLayout {
    /// A contiguous [B, S, N, D] tensor (the Linear projections' output split into heads).
    pub fn bsnd(s: usize, n: usize, d: usize) -> AttnLayout {
        AttnLayout { batch_stride: s * n * d, head_stride: d, row_stride: n * d }
    }
    /// A contiguous [B, N, S, D] tensor.
    pub fn bnsd(n: usize, s: usize, d: usize) -> AttnLayout {
        AttnLayout { batch_stride: n * s * d, head_stride: s * d, row_stride: d }
    }
    fn strides(&self) -> [usize; 3] {
        [self.batch_stride, self.head_stride, self.row_stride]
    }
}

/// Sizes of one attention call: B batch, N heads, S_q queries, S_k keys, D head width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnShape {
    pub b: usize,
    pub n: usize,
    pub s_q: usize,
    pub s_k: usize,
    pub d: usize,
    /// Multiplies Q K^T before the mask is added (usually 1/sqrt(D)).
    pub scale: f32,
}

/// Head widths with a kernel instantiation.
pub const SUPPORTED_D: [usize; 3] = [32, 64, 128];

/// Checks the sizes the kernels can take; the error names the op and the offending sizes.
pub fn check_shape(shape: &AttnShape) -> CudaResult<()> {
    let AttnShape { b, n, s_q, s_k, d, scale } = *shape;
    let fail = |why: &str| Err(CudaError(format!("attention (b={b}, n={n}, s_q={s_q}, s_k={s_k}, d={d}): {why}")));
    if !SUPPORTED_D.contains(&d) {
        return fail(&format!("head width d={d} is not supported (kernels exist for d in {SUPPORTED_D:?})"));
    }
    if s_k == 0 {
        return fail("no keys (s_k = 0): the softmax is undefined");
    }
    if b > 65535 || n > 65535 {
        return fail("b and n must be at most 65535 (grid dimensions)");
    }
    if s_q > i32::MAX as usize || s_k > i32::MAX as usize {
        return fail("sequence lengths must fit in i32");
    }
    let rows = b.checked_mul(n).and_then(|x| x.checked_mul(s_q)).and_then(|x| x.checked_mul(d));
    if rows.is_none_or(|r| r > i64::MAX as usize) {
        return fail("b*n*s_q*d overflows");
    }
    if !scale.is_finite() {
        return fail(&format!("scale {scale} is not finite"));
    }
    Ok(())
}

fn check_layouts(shape: &AttnShape, layouts: &[(&str, &AttnLayout)]) -> CudaResult<()> {
    for (name, l) in layouts {
        if l.strides().iter().any(|&s| s > i64::MAX as usize / 2) {
            return Err(CudaError(format!(
                "attention: {name} strides {l:?} too large for i64 offsets (shape {shape:?})"
            )));
        }
    }
    Ok(())
}

// Every kernel keeps its block reduction's 32 floats at the end of its dynamic shared memory (no
// static shared memory, so the launch size below is the block's whole footprint).
const SCRATCH_BYTES: usize = 32 * 4;

// Tile configurations; must match FwdMmaCfg / BwdMmaCfg in attention.cu.
struct FwdMma {
    rows: usize, // BM = 16 * MT * NW query rows per block
    keys: usize, // BN keys per tile
    warps: usize,
}
fn fwd_mma_config(d: usize) -> FwdMma {
    match d {
        32 | 64 => FwdMma { rows: 128, keys: 64, warps: 4 },
        _ => FwdMma { rows: 128, keys: 64, warps: 8 },
    }
}
impl FwdMma {
    /// Q [BM][D] + K, V [2][BN][D] (bf16) + the reduction scratch.
    fn shared_bytes(&self, d: usize) -> usize {
        (self.rows * d + 4 * self.keys * d) * 2 + SCRATCH_BYTES
    }
}

struct BwdMma {
    q_rows: usize, // BMQ query rows per tile
    warps: usize,  // 16 keys per warp
}
fn bwd_mma_config(d: usize) -> BwdMma {
    BwdMma { q_rows: if d == 128 { 32 } else { 64 }, warps: 8 }
}
impl BwdMma {
    fn keys(&self) -> usize {
        16 * self.warps
    }
    /// K, V [BN][D] + Q, dO [2][BMQ][D] + dS^T [BN][BMQ] (bf16) + lse, Dd [2][BMQ] (f32) + scratch.
    fn shared_bytes(&self, d: usize) -> usize {
        let bn = self.keys();
        (2 * bn * d + 4 * self.q_rows * d + bn * self.q_rows) * 2 + 4 * self.q_rows * 4 + SCRATCH_BYTES
    }
}

// SIMT: 4 warps, 16 rows per block, tiles of 32 rows of the other side (SIMT_* in attention.cu).
const SIMT_THREADS: u32 = 128;
const SIMT_ROWS: usize = 16;
const SIMT_TILE: usize = 32;

/// Whether the tensor-core path can read and write these tensors.
fn mma_usable(g: &Gpu, dt: Dt, tensors: &[(DevPtr, &AttnLayout)], shared_bytes: usize) -> bool {
    dt == Dt::BF16
        && shared_bytes <= g.max_shared_memory_optin()
        && tensors.iter().all(|(p, l)| p.0 % 16 == 0 && l.strides().iter().all(|s| s % 8 == 0))
}

fn tensor_args(p: DevPtr, l: &AttnLayout) -> [Arg; 4] {
    [Arg::Ptr(p), Arg::I64(l.batch_stride as i64), Arg::I64(l.head_stride as i64), Arg::I64(l.row_stride as i64)]
}

fn grid(tiles: usize, shape: &AttnShape) -> (u32, u32, u32) {
    (tiles.min(u32::MAX as usize) as u32, shape.n as u32, shape.b as u32)
}

/// Attention forward.
///
/// q: (B, N, S_q, D), k, v: (B, N, S_k, D), o: (B, N, S_q, D), each addressed through its layout;
/// mask: optional f32 (B, S_k) additive key mask (0 = attend, a large negative value = padding);
/// lse: f32 (B, N, S_q) contiguous, written for [`attention_bwd`] (see the module doc).
/// o and lse are overwritten. D must be 32, 64 or 128.
#[allow(clippy::too_many_arguments)]
pub fn attention_fwd(
    g: &Gpu,
    dt: Dt,
    shape: &AttnShape,
    q: DevPtr,
    lq: &AttnLayout,
    k: DevPtr,
    lk: &AttnLayout,
    v: DevPtr,
    lv: &AttnLayout,
    mask: Option<DevPtr>,
    o: DevPtr,
    lo: &AttnLayout,
    lse: DevPtr,
) -> CudaResult<()> {
    check_shape(shape)?;
    check_layouts(shape, &[("q", lq), ("k", lk), ("v", lv), ("o", lo)])?;
    let s = *shape;
    if s.b == 0 || s.n == 0 || s.s_q == 0 {
        return Ok(());
    }
    let mut args = Vec::with_capacity(24);
    args.extend(tensor_args(q, lq));
    args.extend(tensor_args(k, lk));
    args.extend(tensor_args(v, lv));
    args.push(Arg::Ptr(mask.unwrap_or(DevPtr(0))));
    args.extend(tensor_args(o, lo));
    args.extend([
        Arg::Ptr(lse),
        Arg::I32(s.n as i32),
        Arg::I32(s.s_q as i32),
        Arg::I32(s.s_k as i32),
        Arg::F32(s.scale),
    ]);

    let cfg = fwd_mma_config(s.d);
    let smem = cfg.shared_bytes(s.d);
    if mma_usable(g, dt, &[(q, lq), (k, lk), (v, lv), (o, lo)], smem) {
        let launch = Launch {
            grid: grid(s.s_q.div_ceil(cfg.rows), &s),
            block: (32 * cfg.warps as u32, 1, 1),
            shared_bytes: smem as u32,
        };
        return g.launch(&SOURCE, &format!("attention_fwd_mma_d{}_bf16", s.d), launch, &args);
    }
    let smem = (SIMT_ROWS * s.d + SIMT_TILE * (s.d + 1) + SIMT_TILE * s.d) * 4 + SCRATCH_BYTES;
    let launch =
        Launch { grid: grid(s.s_q.div_ceil(SIMT_ROWS), &s), block: (SIMT_THREADS, 1, 1), shared_bytes: smem as u32 };
    g.launch(&SOURCE, &kernel_name(&format!("attention_fwd_simt_d{}", s.d), dt), launch, &args)
}

/// Attention backward (FlashAttention-2: P is recomputed from q, k, the mask and lse).
///
/// q, o, dout, dq: (B, N, S_q, D); k, v, dk, dv: (B, N, S_k, D), each through its layout;
/// mask: optional f32 (B, S_k) as in the forward; lse: f32 (B, N, S_q) from [`attention_fwd`] with
/// the same inputs. dq, dk, dv are overwritten. Allocates f32 scratch: Dd (B, N, S_q), and on the
/// tensor-core path the dQ accumulator (B, N, S_q, D); both are freed stream-ordered.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd(
    g: &Arc<Gpu>,
    dt: Dt,
    shape: &AttnShape,
    q: DevPtr,
    lq: &AttnLayout,
    k: DevPtr,
    lk: &AttnLayout,
    v: DevPtr,
    lv: &AttnLayout,
    mask: Option<DevPtr>,
    o: DevPtr,
    lo: &AttnLayout,
    lse: DevPtr,
    dout: DevPtr,
    ldo: &AttnLayout,
    dq: DevPtr,
    ldq: &AttnLayout,
    dk: DevPtr,
    ldk: &AttnLayout,
    dv: DevPtr,
    ldv: &AttnLayout,
) -> CudaResult<()> {
    check_shape(shape)?;
    check_layouts(
        shape,
        &[("q", lq), ("k", lk), ("v", lv), ("o", lo), ("dout", ldo), ("dq", ldq), ("dk", ldk), ("dv", ldv)],
    )?;
    let s = *shape;
    if s.b == 0 || s.n == 0 {
        return Ok(());
    }
    let rows = s.b * s.n * s.s_q;
    let cfg = bwd_mma_config(s.d);
    let smem = cfg.shared_bytes(s.d);
    let tensors = [(q, lq), (k, lk), (v, lv), (dout, ldo), (dq, ldq), (dk, ldk), (dv, ldv)];
    let mma = mma_usable(g, dt, &tensors, smem);

    let dd = g.alloc_uninit(rows * 4)?;
    let dq_acc = if mma { Some(g.alloc_uninit(rows * s.d * 4)?) } else { None };
    let dq_acc_ptr = dq_acc.as_ref().map_or(DevPtr(0), |b| b.ptr(0));
    if rows > 0 {
        // One warp per row, 8 rows per block.
        let blocks = rows.div_ceil(8);
        if blocks > i32::MAX as usize {
            return Err(CudaError(format!("attention_bwd: {rows} rows exceed the grid (shape {shape:?})")));
        }
        let mut args = Vec::with_capacity(14);
        args.extend(tensor_args(o, lo));
        args.extend(tensor_args(dout, ldo));
        args.extend([
            Arg::Ptr(dd.ptr(0)),
            Arg::Ptr(dq_acc_ptr),
            Arg::I32(s.n as i32),
            Arg::I32(s.s_q as i32),
            Arg::I32(s.d as i32),
            Arg::I64(rows as i64),
        ]);
        let launch = Launch { grid: (blocks as u32, 1, 1), block: (256, 1, 1), shared_bytes: 0 };
        g.launch(&SOURCE, &kernel_name("attention_bwd_pre", dt), launch, &args)?;
    }

    // Arguments every backward kernel starts with.
    let mut common = Vec::with_capacity(32);
    common.extend(tensor_args(q, lq));
    common.extend(tensor_args(k, lk));
    common.extend(tensor_args(v, lv));
    common.extend(tensor_args(dout, ldo));
    common.extend([Arg::Ptr(mask.unwrap_or(DevPtr(0))), Arg::Ptr(lse), Arg::Ptr(dd.ptr(0))]);
    let tail = [Arg::I32(s.n as i32), Arg::I32(s.s_q as i32), Arg::I32(s.s_k as i32), Arg::F32(s.scale)];

    if mma {
        let mut args = common.clone();
        args.push(Arg::Ptr(dq_acc_ptr));
        args.extend(tensor_args(dk, ldk));
        args.extend(tensor_args(dv, ldv));
        args.extend(tail);
        let launch = Launch {
            grid: grid(s.s_k.div_ceil(cfg.keys()), &s),
            block: (32 * cfg.warps as u32, 1, 1),
            shared_bytes: smem as u32,
        };
        g.launch(&SOURCE, &format!("attention_bwd_mma_d{}_bf16", s.d), launch, &args)?;
        let total = rows * s.d;
        if total > 0 {
            let mut args = vec![Arg::Ptr(dq_acc_ptr)];
            args.extend(tensor_args(dq, ldq));
            args.extend([
                Arg::I32(s.n as i32),
                Arg::I32(s.s_q as i32),
                Arg::I32(s.d as i32),
                Arg::I64(total as i64),
                Arg::F32(s.scale),
            ]);
            g.launch(&SOURCE, &kernel_name("attention_dq_convert", dt), Launch::linear(total, 256), &args)?;
        }
        return Ok(());
    }

    if s.s_q > 0 {
        let mut args = common.clone();
        args.extend(tensor_args(dq, ldq));
        args.extend(tail);
        let smem = (2 * SIMT_ROWS * s.d + 2 * SIMT_TILE * (s.d + 1)) * 4 + SCRATCH_BYTES;
        let launch = Launch {
            grid: grid(s.s_q.div_ceil(SIMT_ROWS), &s),
            block: (SIMT_THREADS, 1, 1),
            shared_bytes: smem as u32,
        };
        g.launch(&SOURCE, &kernel_name(&format!("attention_bwd_dq_simt_d{}", s.d), dt), launch, &args)?;
    }
    let mut args = common;
    args.extend(tensor_args(dk, ldk));
    args.extend(tensor_args(dv, ldv));
    args.extend(tail);
    let smem = (2 * SIMT_ROWS * s.d + 2 * SIMT_TILE * (s.d + 1) + 2 * SIMT_TILE) * 4 + SCRATCH_BYTES;
    let launch =
        Launch { grid: grid(s.s_k.div_ceil(SIMT_ROWS), &s), block: (SIMT_THREADS, 1, 1), shared_bytes: smem as u32 };
    g.launch(&SOURCE, &kernel_name(&format!("attention_bwd_dkdv_simt_d{}", s.d), dt), launch, &args)
}

//! General matrix multiply on the GPU: the CUDA twin of [`crate::cpu::matmul`], with the same
//! descriptor ([`Gemm`]: batch, sizes, transposes, leading dimensions, batch strides,
//! accumulate) and a fused epilogue ([`Epilogue`]: + bias (length n), then GELU, optionally saving the
//! pre-GELU values for the backward).
//!
//! For each batch entry b (C entries must not overlap):
//!   C_b = (accumulate ? C_b : 0) + op(A_b) op(B_b)            (Epilogue::None)
//!   C_b = op(A_b) op(B_b) + bias                              (Epilogue::Bias)
//!   pre_b = op(A_b) op(B_b) + bias, C_b = gelu(pre_b)         (Epilogue::BiasGelu*)
//! A, B, C, bias and pre-activations are all of storage type `dt`; products accumulate in f32.
//! f32 operands go through TF32 tensor cores unless [`set_f32_precision`] asks for IEEE.
//!
//! Versions (kernels/cuda/gemm.cu has the details):
//! - [`Kernel::Simt`]: `gemm_simt_<dt>`, plain FMAs; exact IEEE f32. Used for the IEEE mode,
//!   for operands cp.async cannot copy (addresses / leading dimensions / batch strides that are
//!   not 16-byte multiples), and for k = 0. [`gemm_reference_ieee`] always takes it.
//! - [`Kernel::Mma`]: `gemm_mma_<tile>_<ab>_<dt>`, mma.sync tensor cores, 3 tile sizes; with
//!   `split_k > 1` the k range is cut into slices whose f32 partial sums a second kernel adds in
//!   slice order (deterministic) before the epilogue.
//! - [`Kernel::Wgmma`]: Hopper's wgmma + TMA (gemm_sm90a.cu), bf16 only, opt-in with
//!   `ALBERT_GEMM_WGMMA=1` on sm_90, not yet run on a GPU.
//!
//! Choice ([`plan`]): SIMT when it must; wgmma when enabled and it fits; otherwise the mma.sync
//! tile and split with the lowest [`estimate_seconds`] (waves of blocks over the SMs, with a
//! guessed per-tile efficiency): 128x256 for the big token-major products, 64x64 or split-K when
//! m x n is too small to give every SM a block (the weight gradients, K = tokens).
//!
//! Every path is deterministic: the same inputs give the same bits, run after run.

use super::sources::Source;
use super::{kernel_name, Arg, CudaError, CudaResult, DevPtr, DeviceBuffer, Dt, Gpu, Launch};
use crate::cpu::matmul::Gemm;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

pub static SOURCE: Source = Source { name: "gemm", code: include_str!("../../cuda/gemm.cu"), sm90a: false };
/// The Hopper-only kernels (wgmma + TMA), compiled for sm_90a.
pub static SOURCE_SM90A: Source =
    Source { name: "gemm_sm90a", code: include_str!("../../cuda/gemm_sm90a.cu"), sm90a: true };

/// What the store of C adds after the product (bias and GELU forms as in `cpu::activation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epilogue {
    None,
    Bias,
    BiasGeluTanh,
    BiasGeluErf,
}

impl Epilogue {
    /// The kernels' `epi` argument (EPI_* in gemm.cu).
    fn code(self) -> i32 {
        match self {
            Epilogue::None => 0,
            Epilogue::Bias => 1,
            Epilogue::BiasGeluTanh => 2,
            Epilogue::BiasGeluErf => 3,
        }
    }
    fn has_gelu(self) -> bool {
        matches!(self, Epilogue::BiasGeluTanh | Epilogue::BiasGeluErf)
    }
}

/// How f32 products are computed: TF32 tensor cores (10-bit mantissas, f32 accumulation; like
/// `torch.set_float32_matmul_precision("high")`), or exact IEEE f32 FMAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F32Precision {
    Tf32,
    Ieee,
}

static F32_PRECISION: AtomicU8 = AtomicU8::new(0);

/// Selects the f32 path for every later [`gemm`] call in this process (default: TF32).
pub fn set_f32_precision(p: F32Precision) {
    F32_PRECISION.store(if p == F32Precision::Ieee { 1 } else { 0 }, Ordering::Relaxed);
}

/// The f32 path [`gemm`] uses now.
pub fn f32_precision() -> F32Precision {
    if F32_PRECISION.load(Ordering::Relaxed) == 1 {
        F32Precision::Ieee
    } else {
        F32Precision::Tf32
    }
}

/// Block tile of the mma.sync kernels (see gemm.cu).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tile {
    /// 128 x 256, 8 warps of 64 x 64; one block per SM.
    Large,
    /// 128 x 128, 4 warps of 64 x 64; two blocks per SM.
    Medium,
    /// 64 x 64, 4 warps of 32 x 32; four blocks per SM.
    Small,
}

impl Tile {
    pub const ALL: [Tile; 3] = [Tile::Large, Tile::Medium, Tile::Small];
    fn letter(self) -> &'static str {
        match self {
            Tile::Large => "l",
            Tile::Medium => "m",
            Tile::Small => "s",
        }
    }
    /// (rows of C, columns of C) per block.
    pub fn shape(self) -> (usize, usize) {
        match self {
            Tile::Large => (128, 256),
            Tile::Medium => (128, 128),
            Tile::Small => (64, 64),
        }
    }
    fn threads(self) -> u32 {
        match self {
            Tile::Large => 256,
            _ => 128,
        }
    }
    /// Blocks per SM the kernel is built for (`__launch_bounds__`).
    fn blocks_per_sm(self) -> usize {
        match self {
            Tile::Large => 1,
            Tile::Medium => 2,
            Tile::Small => 4,
        }
    }
    /// Guessed fraction of the SM's mma rate a full SM of these blocks reaches (bigger warp
    /// tiles need fewer shared-memory loads per mma). Only ranks plans; measured on the GPU later.
    fn efficiency(self) -> f64 {
        match self {
            Tile::Large => 1.0,
            Tile::Medium => 0.9,
            Tile::Small => 0.6,
        }
    }
}

/// Pipeline depth of the mma.sync kernels (GEMM_STAGES in gemm.cu).
const STAGES: usize = 4;

/// k per pipeline stage: 64 bytes of each k-major operand row (BK in gemm.cu).
fn bk(dt: Dt) -> usize {
    64 / dt.size()
}

/// Dynamic shared memory of one mma.sync block: STAGES x (A tile + B tile). A tile is 64 bytes
/// per row of m (or n) except an f32 operand stored with m (or n) contiguous, whose 16 k-rows
/// are padded by 8 floats (MnTile in gemm.cu).
pub fn mma_shared_bytes(dt: Dt, tile: Tile, trans_a: bool, trans_b: bool) -> usize {
    let (bm, bn) = tile.shape();
    let bytes = |rows: usize, kmajor: bool| match (kmajor, dt) {
        (false, Dt::F32) => bk(dt) * (rows + 8) * 4,
        _ => rows * 64,
    };
    STAGES * (bytes(bm, !trans_a) + bytes(bn, trans_b))
}

/// Which kernel runs a gemm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Simt,
    Mma(Tile),
    Wgmma,
}

/// A kernel and the number of k slices (`split_k`, 1 = no split; only [`Kernel::Mma`] splits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub kernel: Kernel,
    pub split_k: usize,
}

/// Whether `gemm` may pick the wgmma path (ALBERT_GEMM_WGMMA=1; it also needs sm_90).
pub fn wgmma_enabled() -> bool {
    sm90a::enabled()
}

/// Multiply-adds times two (batch x m x n x k x 2).
pub fn gemm_flops(p: &Gemm) -> f64 {
    2.0 * p.batch as f64 * p.m as f64 * p.n as f64 * p.k as f64
}

/// C = op(A) op(B) (+ see the module docs) on the device.
/// a: op(A) per [`Gemm`] (dt); b: op(B) (dt); c: (batch, m, ldc-strided n) (dt);
/// bias: n values (dt), required by the Bias* epilogues and not allowed otherwise;
/// pre_act: laid out like c (same ldc and stride_c), written with the pre-GELU values when the
/// epilogue has GELU (and only then allowed). accumulate cannot combine with an epilogue.
/// Queues the work and returns; errors name the gemm and its sizes.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    g: &Gpu,
    dt: Dt,
    p: &Gemm,
    a: DevPtr,
    b: DevPtr,
    c: DevPtr,
    bias: Option<DevPtr>,
    epilogue: Epilogue,
    pre_act: Option<DevPtr>,
) -> CudaResult<()> {
    validate(dt, p, bias, epilogue, pre_act)?;
    let plan = plan(g, dt, p, a, b);
    run(g, dt, p, plan, a, b, c, bias, epilogue, pre_act)
}

/// [`gemm`] on the exact-IEEE SIMT kernel whatever the precision setting (the parity reference;
/// for bf16 the same kernel with bf16 loads and stores).
#[allow(clippy::too_many_arguments)]
pub fn gemm_reference_ieee(
    g: &Gpu,
    dt: Dt,
    p: &Gemm,
    a: DevPtr,
    b: DevPtr,
    c: DevPtr,
    bias: Option<DevPtr>,
    epilogue: Epilogue,
    pre_act: Option<DevPtr>,
) -> CudaResult<()> {
    gemm_with_plan(g, dt, p, Plan { kernel: Kernel::Simt, split_k: 1 }, a, b, c, bias, epilogue, pre_act)
}

/// [`gemm`] on a caller-chosen plan (tests run every kernel on every shape with it). Errors if
/// the plan cannot run this gemm (alignment, dtype, device).
#[allow(clippy::too_many_arguments)]
pub fn gemm_with_plan(
    g: &Gpu,
    dt: Dt,
    p: &Gemm,
    plan: Plan,
    a: DevPtr,
    b: DevPtr,
    c: DevPtr,
    bias: Option<DevPtr>,
    epilogue: Epilogue,
    pre_act: Option<DevPtr>,
) -> CudaResult<()> {
    validate(dt, p, bias, epilogue, pre_act)?;
    if !plan_fits(g, dt, p, plan, a, b) {
        return Err(CudaError(format!("gemm {}: plan {plan:?} cannot run it ({dt:?}, a {a:?}, b {b:?})", sizes(p))));
    }
    run(g, dt, p, plan, a, b, c, bias, epilogue, pre_act)
}

/// Whether `plan` can run this gemm on `g` with these operand addresses.
pub fn plan_fits(g: &Gpu, dt: Dt, p: &Gemm, plan: Plan, a: DevPtr, b: DevPtr) -> bool {
    if plan.split_k == 0 {
        return false;
    }
    match plan.kernel {
        Kernel::Simt => plan.split_k == 1,
        Kernel::Mma(tile) => {
            cp_async_ok(dt, p, a, b)
                && plan.split_k <= p.k.div_ceil(bk(dt)).max(1)
                && mma_shared_bytes(dt, tile, p.trans_a, p.trans_b) <= g.max_shared_memory_optin()
        }
        Kernel::Wgmma => plan.split_k == 1 && sm90a::fits(g, dt, p, a, b),
    }
}

/// The plan [`gemm`] runs: SIMT for the IEEE mode, unaligned operands and k = 0; the opt-in
/// wgmma path where it applies; otherwise the mma.sync tile and k split with the lowest
/// estimated time (see [`estimate_seconds`]).
pub fn plan(g: &Gpu, dt: Dt, p: &Gemm, a: DevPtr, b: DevPtr) -> Plan {
    let simt = Plan { kernel: Kernel::Simt, split_k: 1 };
    if (dt == Dt::F32 && f32_precision() == F32Precision::Ieee) || p.k == 0 || !cp_async_ok(dt, p, a, b) {
        return simt;
    }
    let wgmma = Plan { kernel: Kernel::Wgmma, split_k: 1 };
    if sm90a::enabled() && plan_fits(g, dt, p, wgmma, a, b) {
        return wgmma;
    }
    choose_mma(g.sm_count(), g.max_shared_memory_optin(), dt, p)
}

/// The mma.sync tile and k split with the lowest [`estimate_seconds`] on a device with
/// `sm_count` SMs and `max_shared` bytes of shared memory per block (what [`plan`] picks for
/// aligned operands when wgmma is off; no GPU needed).
pub fn choose_mma(sm_count: usize, max_shared: usize, dt: Dt, p: &Gemm) -> Plan {
    let mut best = (f64::INFINITY, Plan { kernel: Kernel::Simt, split_k: 1 });
    for tile in Tile::ALL {
        if mma_shared_bytes(dt, tile, p.trans_a, p.trans_b) > max_shared {
            continue;
        }
        for splits in 1..=16 {
            let Some(t) = estimate_seconds(sm_count, dt, p, tile, splits) else { continue };
            if t < best.0 {
                best = (t, Plan { kernel: Kernel::Mma(tile), split_k: splits });
            }
        }
    }
    best.1
}

/// Most bytes of f32 partial sums a split-K plan may use.
const WORKSPACE_MAX: usize = 256 << 20;

/// A rough time model used only to rank plans: waves of blocks x the time one block of the tile
/// takes with its SM shared by `blocks_per_sm` blocks, plus, for split-K, streaming the partial
/// sums once more and a second launch. None for splits that do not apply (each slice keeps at
/// least 256 of k, the workspace stays under WORKSPACE_MAX).
pub fn estimate_seconds(sm_count: usize, dt: Dt, p: &Gemm, tile: Tile, splits: usize) -> Option<f64> {
    const MACS_PER_SM: f64 = 2.5e12; // bf16 mma.sync per SM per second, H100 ballpark
    const BYTES_PER_S: f64 = 2.5e12;
    const LAUNCH_S: f64 = 4e-6;
    let k_split = p.k.div_ceil(splits).div_ceil(bk(dt)) * bk(dt);
    let splits_used = p.k.div_ceil(k_split.max(1)).max(1);
    let work_bytes = splits * p.batch * p.m * p.n * 4;
    if splits > 1 && (splits_used != splits || k_split < 256 || work_bytes > WORKSPACE_MAX) {
        return None;
    }
    let (bm, bn) = tile.shape();
    let blocks = p.m.div_ceil(bm) * p.n.div_ceil(bn) * p.batch * splits;
    let slots = sm_count.max(1) * tile.blocks_per_sm();
    let waves = blocks.div_ceil(slots) as f64;
    let rate = MACS_PER_SM * tile.efficiency() * if dt == Dt::F32 { 0.5 } else { 1.0 };
    let main = waves * tile.blocks_per_sm() as f64 * (bm * bn * k_split) as f64 / rate;
    let reduce =
        if splits > 1 { LAUNCH_S + ((splits + 2) * p.batch * p.m * p.n * 4) as f64 / BYTES_PER_S } else { 0.0 };
    Some(main + reduce)
}

fn sizes(p: &Gemm) -> String {
    format!(
        "batch {} m {} n {} k {} trans_a {} trans_b {} lda {} ldb {} ldc {} strides {}/{}/{} accumulate {}",
        p.batch,
        p.m,
        p.n,
        p.k,
        p.trans_a,
        p.trans_b,
        p.lda,
        p.ldb,
        p.ldc,
        p.stride_a,
        p.stride_b,
        p.stride_c,
        p.accumulate
    )
}

fn validate(dt: Dt, p: &Gemm, bias: Option<DevPtr>, epilogue: Epilogue, pre_act: Option<DevPtr>) -> CudaResult<()> {
    let fail = |why: &str| Err(CudaError(format!("gemm ({dt:?}, {}): {why}", sizes(p))));
    if p.lda < if p.trans_a { p.m } else { p.k } || p.ldb < if p.trans_b { p.k } else { p.n } || p.ldc < p.n {
        return fail("a leading dimension is below its row length");
    }
    let max = i32::MAX as usize;
    if p.m > max || p.n > max || p.k > max {
        return fail("m, n and k must fit in 31 bits");
    }
    if p.m.div_ceil(64) > 65535 {
        return fail("m above 4194240 (the SIMT kernel's grid)");
    }
    if p.batch > 1 && p.m > 0 && p.n > 0 && p.stride_c < (p.m - 1) * p.ldc + p.n {
        return fail("batch entries of C overlap (stride_c below one entry's span); batches run concurrently");
    }
    if p.accumulate && epilogue != Epilogue::None {
        return fail("accumulate cannot combine with a bias / GELU epilogue");
    }
    if (epilogue != Epilogue::None) != bias.is_some() {
        return fail("a bias is given exactly when the epilogue adds one");
    }
    if pre_act.is_some() && !epilogue.has_gelu() {
        return fail("pre_act is only written by the GELU epilogues");
    }
    let span = |rows: usize, cols: usize, ld: usize| if rows == 0 || cols == 0 { 0 } else { (rows - 1) * ld + cols };
    let (ra, rb) = if p.trans_a { (p.k, p.m) } else { (p.m, p.k) };
    let (rb0, rb1) = if p.trans_b { (p.n, p.k) } else { (p.k, p.n) };
    for (what, stride, one) in [
        ("A", p.stride_a, span(ra, rb, p.lda)),
        ("B", p.stride_b, span(rb0, rb1, p.ldb)),
        ("C", p.stride_c, span(p.m, p.n, p.ldc)),
    ] {
        let last = (p.batch.saturating_sub(1) as u128) * stride as u128 + one as u128;
        if last * dt.size() as u128 > i64::MAX as u128 {
            return fail(&format!("{what} spans more than 2^63 bytes"));
        }
    }
    Ok(())
}

/// cp.async moves 16-byte chunks, so each operand's start, leading dimension and (batched)
/// batch stride must be 16-byte multiples. (k or m, n need not be: edge chunks are zero-filled.)
fn cp_async_ok(dt: Dt, p: &Gemm, a: DevPtr, b: DevPtr) -> bool {
    let es = dt.size();
    let ok = |ptr: DevPtr, ld: usize, stride: usize| {
        ptr.0.is_multiple_of(16) && (ld * es).is_multiple_of(16) && (p.batch <= 1 || (stride * es).is_multiple_of(16))
    };
    ok(a, p.lda, p.stride_a) && ok(b, p.ldb, p.stride_b)
}

#[allow(clippy::too_many_arguments)]
fn run(
    g: &Gpu,
    dt: Dt,
    p: &Gemm,
    plan: Plan,
    a: DevPtr,
    b: DevPtr,
    c: DevPtr,
    bias: Option<DevPtr>,
    epilogue: Epilogue,
    pre_act: Option<DevPtr>,
) -> CudaResult<()> {
    if p.batch == 0 || p.m == 0 || p.n == 0 {
        return Ok(());
    }
    let null = DevPtr(0);
    let (bias, pre) = (bias.unwrap_or(null), pre_act.unwrap_or(null));
    let i64v = |v: usize| Arg::I64(v as i64);
    let z = p.batch.min(65535) as u32;
    match plan.kernel {
        Kernel::Simt => {
            let grid = (p.n.div_ceil(64) as u32, p.m.div_ceil(64) as u32, z);
            let cfg = Launch { grid, block: (256, 1, 1), shared_bytes: 0 };
            let args = [
                Arg::Ptr(a),
                Arg::Ptr(b),
                Arg::Ptr(c),
                Arg::Ptr(bias),
                Arg::Ptr(pre),
                Arg::I32(p.m as i32),
                Arg::I32(p.n as i32),
                Arg::I32(p.k as i32),
                i64v(p.lda),
                i64v(p.ldb),
                i64v(p.ldc),
                i64v(p.stride_a),
                i64v(p.stride_b),
                i64v(p.stride_c),
                Arg::I32(p.batch.min(i32::MAX as usize) as i32),
                Arg::I32(p.trans_a as i32),
                Arg::I32(p.trans_b as i32),
                Arg::I32(p.accumulate as i32),
                Arg::I32(epilogue.code()),
            ];
            g.launch(&SOURCE, &kernel_name("gemm_simt", dt), cfg, &args)
        }
        Kernel::Wgmma => sm90a::run(g, p, a, b, c, bias, epilogue.code(), pre),
        Kernel::Mma(tile) => {
            let (bm, bn) = tile.shape();
            let k_split = if plan.split_k <= 1 { p.k } else { p.k.div_ceil(plan.split_k).div_ceil(bk(dt)) * bk(dt) };
            let splits = p.k.div_ceil(k_split.max(1)).max(1);
            let tiles = p.m.div_ceil(bm) * p.n.div_ceil(bn);
            if tiles > i32::MAX as usize {
                return Err(CudaError(format!("gemm ({}): {tiles} tiles of {bm}x{bn} exceed the grid", sizes(p))));
            }
            let ab = format!("{}{}", if p.trans_a { "t" } else { "n" }, if p.trans_b { "t" } else { "n" });
            let name = kernel_name(&format!("gemm_mma_{}_{ab}", tile.letter()), dt);
            let cfg = Launch {
                grid: (tiles as u32, splits as u32, z),
                block: (tile.threads(), 1, 1),
                shared_bytes: mma_shared_bytes(dt, tile, p.trans_a, p.trans_b) as u32,
            };
            let launch = |work: DevPtr| {
                let args = [
                    Arg::Ptr(a),
                    Arg::Ptr(b),
                    Arg::Ptr(c),
                    Arg::Ptr(bias),
                    Arg::Ptr(pre),
                    Arg::Ptr(work),
                    Arg::I32(p.m as i32),
                    Arg::I32(p.n as i32),
                    Arg::I32(p.k as i32),
                    i64v(p.lda),
                    i64v(p.ldb),
                    i64v(p.ldc),
                    i64v(p.stride_a),
                    i64v(p.stride_b),
                    i64v(p.stride_c),
                    Arg::I32(p.batch.min(i32::MAX as usize) as i32),
                    Arg::I32(p.accumulate as i32),
                    Arg::I32(epilogue.code()),
                    Arg::I32(k_split.min(i32::MAX as usize) as i32),
                ];
                g.launch(&SOURCE, &name, cfg, &args)
            };
            if splits == 1 {
                return launch(null);
            }
            let per_split = p.batch * p.m * p.n;
            with_workspace(g, splits * per_split * 4, |work| {
                launch(work)?;
                let threads = 256usize;
                let blocks = per_split.div_ceil(threads).min(g.sm_count().max(1) * 32);
                let cfg = Launch { grid: (blocks as u32, 1, 1), block: (threads as u32, 1, 1), shared_bytes: 0 };
                let args = [
                    Arg::Ptr(work),
                    Arg::Ptr(c),
                    Arg::Ptr(bias),
                    Arg::Ptr(pre),
                    Arg::I32(p.m as i32),
                    Arg::I32(p.n as i32),
                    Arg::I32(p.batch.min(i32::MAX as usize) as i32),
                    i64v(p.ldc),
                    i64v(p.stride_c),
                    Arg::I32(splits as i32),
                    Arg::I32(p.accumulate as i32),
                    Arg::I32(epilogue.code()),
                ];
                g.launch(&SOURCE, &kernel_name("gemm_splitk_reduce", dt), cfg, &args)
            })
        }
    }
}

/// Runs `f` with a device scratch buffer of at least `bytes`, one per device, grown on demand
/// and kept. All work is ordered on the device's one stream, so a buffer reused by the next
/// gemm (or freed when replaced: stream-ordered) is never touched while a queued kernel uses it;
/// the lock only keeps two host threads from swapping it mid-launch.
fn with_workspace(g: &Gpu, bytes: usize, f: impl FnOnce(DevPtr) -> CudaResult<()>) -> CudaResult<()> {
    static WORKSPACES: OnceLock<Mutex<HashMap<usize, DeviceBuffer>>> = OnceLock::new();
    let mut map = WORKSPACES
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| CudaError("gemm workspace lock poisoned".into()))?;
    if map.get(&g.ordinal()).is_none_or(|w| w.len_bytes() < bytes) {
        map.remove(&g.ordinal());
        // `gpu(ordinal)` is the process-wide handle `g` came from (devices are opened once).
        let buf = super::gpu(g.ordinal())?.alloc_uninit(bytes.next_power_of_two())?;
        map.insert(g.ordinal(), buf);
    }
    f(map[&g.ordinal()].ptr(0))
}

/// Hopper's wgmma + TMA path (kernels/cuda/gemm_sm90a.cu): bf16, A not transposed, B either
/// way; 128 x 256 blocks of 2 warpgroups, 4 TMA stages of 48 KiB. Unproven until run on a GPU,
/// hence opt-in.
mod sm90a {
    use super::*;
    use crate::cuda::driver::{tensor_map_bf16, TensorMap};

    const BM: usize = 128;
    const BN: usize = 256;
    /// 4 stages x (A 128 x 64 + B 256 x 64) bf16, plus 1 KiB to align the ring to 1024 bytes.
    const SHARED_BYTES: usize = 4 * (BM + BN) * 64 * 2 + 1024;

    /// ALBERT_GEMM_WGMMA=1 (read once).
    pub(super) fn enabled() -> bool {
        static ON: OnceLock<bool> = OnceLock::new();
        *ON.get_or_init(|| std::env::var("ALBERT_GEMM_WGMMA").is_ok_and(|v| v == "1"))
    }

    /// sm_90, bf16, A stored [m, k], TMA-compatible operands (16-byte aligned starts, leading
    /// dimensions and batch strides, as for cp.async), batch entries that do not overlap.
    pub(super) fn fits(g: &Gpu, dt: Dt, p: &Gemm, a: DevPtr, b: DevPtr) -> bool {
        let rows_b = if p.trans_b { p.n } else { p.k };
        let stride_ok = |stride: usize, span: usize| p.batch <= 1 || stride == 0 || stride >= span;
        g.has_sm90a()
            && dt == Dt::BF16
            && !p.trans_a
            && p.k > 0
            && p.batch <= 65535
            && cp_async_ok(dt, p, a, b)
            && stride_ok(p.stride_a, p.m * p.lda)
            && stride_ok(p.stride_b, rows_b * p.ldb)
            && p.m.div_ceil(BM) * p.n.div_ceil(BN) <= i32::MAX as usize
            && SHARED_BYTES <= g.max_shared_memory_optin()
    }

    /// A 3-D map (x innermost, y rows, batch) of a row-major operand; a batch dimension of 1
    /// when the operand is shared by the whole batch.
    fn map(
        base: DevPtr,
        x: usize,
        y: usize,
        ld: usize,
        batch: Option<(usize, usize)>,
        box_xy: [u32; 2],
    ) -> CudaResult<TensorMap> {
        let (entries, stride) = batch.unwrap_or((1, y * ld));
        tensor_map_bf16(
            base,
            &[x as u64, y as u64, entries as u64],
            &[ld as u64 * 2, stride as u64 * 2],
            &[box_xy[0], box_xy[1], 1],
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        g: &Gpu,
        p: &Gemm,
        a: DevPtr,
        b: DevPtr,
        c: DevPtr,
        bias: DevPtr,
        epi: i32,
        pre: DevPtr,
    ) -> CudaResult<()> {
        let batched = |stride: usize| (p.batch > 1 && stride != 0).then_some((p.batch, stride));
        let (ba, bb) = (batched(p.stride_a), batched(p.stride_b));
        let map_a = map(a, p.k, p.m, p.lda, ba, [64, BM as u32])?;
        let (map_b, name) = if p.trans_b {
            (map(b, p.k, p.n, p.ldb, bb, [64, BN as u32])?, "gemm_wgmma_nt_bf16")
        } else {
            (map(b, p.n, p.k, p.ldb, bb, [64, 64])?, "gemm_wgmma_nn_bf16")
        };
        let tiles = p.m.div_ceil(BM) * p.n.div_ceil(BN);
        let cfg =
            Launch { grid: (tiles as u32, 1, p.batch as u32), block: (256, 1, 1), shared_bytes: SHARED_BYTES as u32 };
        let args = [
            Arg::TensorMap(map_a),
            Arg::TensorMap(map_b),
            Arg::Ptr(c),
            Arg::Ptr(bias),
            Arg::Ptr(pre),
            Arg::I32(p.m as i32),
            Arg::I32(p.n as i32),
            Arg::I32(p.k as i32),
            Arg::I64(p.ldc as i64),
            Arg::I64(p.stride_c as i64),
            Arg::I32(ba.is_some() as i32),
            Arg::I32(bb.is_some() as i32),
            Arg::I32(p.accumulate as i32),
            Arg::I32(epi),
        ];
        g.launch(&SOURCE_SM90A, name, cfg, &args)
    }
}

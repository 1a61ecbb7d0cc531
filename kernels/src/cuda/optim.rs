//! Multi-tensor optimizer steps on the GPU: all parameters in one launch (AdamW) or three (LAMB),
//! whatever the number of tensors, plus the global gradient norm for clipping in two.
//!
//! The host builds a small table per call and uploads it: one 64-byte descriptor per tensor
//! (param, grad, m, v pointers, numel, first chunk, per-tensor constants) followed by one i32 per
//! chunk of [`CHUNK`] elements naming its tensor; block c updates chunk c. Parameters, gradients
//! and moments are f32 (master weights), each a dense buffer of `numel` elements.
//!
//! The arithmetic is that of `albert/src/optim.rs`, operation for operation (the kernels use
//! `__fmul_rn` / `__fadd_rn` / ... so nothing is fused into an FMA, and the hyper-parameter
//! constants are derived here in f64 exactly as there). Hence the hyper-parameters are f64:
//! with the same inputs, [`adamw_step`] reproduces the CPU `AdamW` bit for bit, and [`lamb_step`]
//! the CPU `Lamb` up to the summation order of its f64 norms (the final f32 rounding almost always
//! absorbs that).
//!
//! Exclusions (the CPU optimizers decide by parameter name, see `optim::DEFAULT_EXCLUDE`): the
//! caller maps them to per-tensor fields. AdamW: `weight_decay: 0.0` for excluded tensors. LAMB:
//! excluded tensors (LayerNorm, biases) get `weight_decay: 0.0` AND `use_trust_ratio: false`,
//! which is exactly `Lamb`'s `adapt == false`.
//!
//! Bytes moved per parameter element: AdamW 28 (reads w, g, m, v; writes w, m, v); LAMB 48
//! (launch 1 reads w, g, m, v and writes u, m, v: 28; launch 3 reads w, u and writes w: 12;
//! plus 8 more if counted as two passes over w); [`global_grad_sq`] 4.

use super::copy::{scratch, upload_bytes};
use super::sources::Source;
use super::{Arg, CudaError, CudaResult, DevPtr, DeviceBuffer, Gpu, Launch};

pub static SOURCE: Source = Source { name: "optim", code: include_str!("../../cuda/optim.cu"), sm90a: false };

/// Elements per block (one chunk of one tensor).
pub const CHUNK: usize = 8192;
const THREADS: u32 = 256;
/// Bytes of one `OptDesc` (optim.cu).
const DESC_BYTES: usize = 64;

/// One parameter tensor and its optimizer state, all f32 and dense, `numel` elements each.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptTensor {
    pub param: DevPtr,
    /// The gradient; LAMB overwrites it with its update (the gradient is consumed by the step).
    pub grad: DevPtr,
    pub m: DevPtr,
    pub v: DevPtr,
    pub numel: usize,
    /// 0 for tensors excluded from weight decay.
    pub weight_decay: f64,
    /// LAMB only: false for tensors excluded from layer adaptation (trust ratio 1).
    pub use_trust_ratio: bool,
}

/// AdamW hyper-parameters (`albert::optim::AdamW`); weight decay is per tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWHp {
    /// The learning rate of this step (from the schedule).
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// 1-based index of this step (bias corrections use beta^step).
    pub step: i32,
    /// Gradients are multiplied by this first (global-norm clipping; 1.0 when not clipping).
    pub grad_scale: f32,
}

/// LAMB hyper-parameters (`albert::optim::Lamb`); weight decay is per tensor. LAMB has no bias
/// correction, hence no step count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LambHp {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub grad_scale: f32,
}

/// The uploaded table: descriptors, then the chunk -> tensor map.
struct Table {
    buf: DeviceBuffer,
    n_tensors: usize,
    n_chunks: usize,
}

impl Table {
    fn descs(&self) -> DevPtr {
        self.buf.ptr(0)
    }
    fn chunk_map(&self) -> DevPtr {
        self.buf.ptr(self.n_tensors * DESC_BYTES)
    }
}

/// Builds and uploads the table; `decay(t)` and `wd(t)` give each tensor's AdamW decay factor and
/// LAMB weight decay (f32, as the kernels use them). `with_state`: m and v are used.
fn build_table(
    g: &Gpu,
    what: &str,
    tensors: &[OptTensor],
    with_state: bool,
    decay: impl Fn(&OptTensor) -> f32,
    wd: impl Fn(&OptTensor) -> f32,
) -> CudaResult<Table> {
    let mut bytes = Vec::with_capacity(tensors.len() * DESC_BYTES);
    let mut chunk_map: Vec<i32> = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        if t.numel > 0 {
            let ptrs: &[DevPtr] = if with_state { &[t.param, t.grad, t.m, t.v] } else { &[t.grad] };
            if let Some(p) = ptrs.iter().find(|p| p.0 == 0 || !p.0.is_multiple_of(4)) {
                return Err(CudaError(format!(
                    "{what}: tensor {i} ({} elements): pointer {:#x} null or not f32-aligned",
                    t.numel, p.0
                )));
            }
        }
        let first_chunk = chunk_map.len();
        let chunks = t.numel.div_ceil(CHUNK);
        if first_chunk + chunks > i32::MAX as usize {
            return Err(CudaError(format!("{what}: more than 2^31 chunks of {CHUNK} elements")));
        }
        chunk_map.extend(std::iter::repeat_n(i as i32, chunks));
        bytes.extend_from_slice(&t.param.0.to_le_bytes());
        bytes.extend_from_slice(&t.grad.0.to_le_bytes());
        bytes.extend_from_slice(&t.m.0.to_le_bytes());
        bytes.extend_from_slice(&t.v.0.to_le_bytes());
        bytes.extend_from_slice(&(t.numel as i64).to_le_bytes());
        bytes.extend_from_slice(&(first_chunk as i64).to_le_bytes());
        bytes.extend_from_slice(&decay(t).to_le_bytes());
        bytes.extend_from_slice(&wd(t).to_le_bytes());
        bytes.extend_from_slice(&i32::from(t.use_trust_ratio).to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
    }
    debug_assert_eq!(bytes.len(), tensors.len() * DESC_BYTES);
    for c in &chunk_map {
        bytes.extend_from_slice(&c.to_le_bytes());
    }
    let n_chunks = chunk_map.len();
    let buf = upload_bytes(g, &bytes)?;
    Ok(Table { buf, n_tensors: tensors.len(), n_chunks })
}

fn blocks(n: usize) -> Launch {
    Launch { grid: (n as u32, 1, 1), block: (THREADS, 1, 1), shared_bytes: 0 }
}

/// One AdamW step (torch's arithmetic, as `albert::optim::AdamW::step_with_lr`) over every tensor:
/// with g = grad * grad_scale, t = hp.step,
/// ```text
/// w *= 1 - lr * wd
/// m += (1 - b1) (g - m)
/// v  = b2 v + (1 - b2) g^2
/// w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
/// ```
/// param, m, v updated in place; grad read only. One launch.
pub fn adamw_step(g: &Gpu, tensors: &[OptTensor], hp: &AdamWHp) -> CudaResult<()> {
    let what = "adamw_step";
    if hp.step < 1 {
        return Err(CudaError(format!("{what}: step {} (1-based)", hp.step)));
    }
    // Constants exactly as AdamW::step_with_lr forms them.
    let t = hp.step;
    let (b2, c1, c2) = (hp.beta2 as f32, (1.0 - hp.beta1) as f32, (1.0 - hp.beta2) as f32);
    let bc1 = 1.0 - hp.beta1.powi(t);
    let bc2_sqrt = ((1.0 - hp.beta2.powi(t)).sqrt()) as f32;
    let step_size = (hp.lr / bc1) as f32;
    let eps = hp.eps as f32;
    let lr = hp.lr;
    let table = build_table(g, what, tensors, true, |t| (1.0 - lr * t.weight_decay) as f32, |_| 0.0)?;
    if table.n_chunks == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(table.descs()),
        Arg::Ptr(table.chunk_map()),
        Arg::I64(CHUNK as i64),
        Arg::F32(step_size),
        Arg::F32(b2),
        Arg::F32(c1),
        Arg::F32(c2),
        Arg::F32(bc2_sqrt),
        Arg::F32(eps),
        Arg::F32(hp.grad_scale),
    ];
    g.launch(&SOURCE, "adamw_step", blocks(table.n_chunks), &args)
}

/// One LAMB step (the official ALBERT/TF LAMB, as `albert::optim::Lamb::step`) over every tensor:
/// with g = grad * grad_scale,
/// ```text
/// m = b1 m + (1 - b1) g
/// v = b2 v + (1 - b2) g^2
/// u = m / (sqrt(v) + eps)           (no bias correction)
/// u += wd * w                       (when the tensor's weight_decay != 0)
/// r = ||w|| / ||u||                 (1 when !use_trust_ratio or a norm is 0)
/// w -= r * lr * u                   (in f64, rounded once)
/// ```
/// param, m, v updated in place; grad is overwritten with u. Three launches.
pub fn lamb_step(g: &Gpu, tensors: &[OptTensor], hp: &LambHp) -> CudaResult<()> {
    lamb_step_with_ratios(g, tensors, hp, None)
}

/// [`lamb_step`], also writing each tensor's trust ratio to `ratios_f64` (one f64 per tensor, in
/// the order of `tensors`) when given, as `Lamb::trust_ratios` reports them.
pub fn lamb_step_with_ratios(
    g: &Gpu,
    tensors: &[OptTensor],
    hp: &LambHp,
    ratios_f64: Option<DevPtr>,
) -> CudaResult<()> {
    let what = "lamb_step";
    if tensors.is_empty() {
        return Ok(());
    }
    // Constants exactly as Lamb::step forms them.
    let (b1, b2) = (hp.beta1 as f32, hp.beta2 as f32);
    let (c1, c2) = ((1.0 - hp.beta1) as f32, (1.0 - hp.beta2) as f32);
    let eps = hp.eps as f32;
    let table = build_table(g, what, tensors, true, |_| 1.0, |t| t.weight_decay as f32)?;
    // partials: 2 f64 per chunk; then the ratios (unless the caller gives a place for them)
    let partial_bytes = 16 * table.n_chunks.max(1);
    let work = scratch(g, partial_bytes + 8 * tensors.len())?;
    let partials = work.ptr(0);
    let ratios = match ratios_f64 {
        Some(p) if p.0 == 0 || !p.0.is_multiple_of(8) => {
            return Err(CudaError(format!("{what}: ratios pointer {:#x} null or not f64-aligned", p.0)))
        }
        Some(p) => p,
        None => work.ptr(partial_bytes),
    };
    if table.n_chunks > 0 {
        let args = [
            Arg::Ptr(table.descs()),
            Arg::Ptr(table.chunk_map()),
            Arg::I64(CHUNK as i64),
            Arg::F32(b1),
            Arg::F32(b2),
            Arg::F32(c1),
            Arg::F32(c2),
            Arg::F32(eps),
            Arg::F32(hp.grad_scale),
            Arg::Ptr(partials),
        ];
        g.launch(&SOURCE, "lamb_update", blocks(table.n_chunks), &args)?;
    }
    let args = [Arg::Ptr(table.descs()), Arg::Ptr(partials), Arg::Ptr(ratios), Arg::I64(CHUNK as i64)];
    g.launch(&SOURCE, "lamb_ratio", blocks(table.n_tensors), &args)?;
    if table.n_chunks > 0 {
        let args = [
            Arg::Ptr(table.descs()),
            Arg::Ptr(table.chunk_map()),
            Arg::I64(CHUNK as i64),
            Arg::Ptr(ratios),
            // f64 travels as its bits (Arg has no f64); the kernel reinterprets them
            Arg::U64(hp.lr.to_bits()),
        ];
        g.launch(&SOURCE, "lamb_apply", blocks(table.n_chunks), &args)?;
    }
    Ok(())
}

/// out_f64[0] = sum over every tensor's gradient of g^2, accumulated in f64 (as
/// `albert::optim::clip_grad_norm`, whose norm is its square root); only `grad` and `numel` of
/// each [`OptTensor`] are read. Per-chunk partials then one block in a fixed order: deterministic.
/// Two launches.
pub fn global_grad_sq(g: &Gpu, out_f64: DevPtr, tensors: &[OptTensor]) -> CudaResult<()> {
    let what = "global_grad_sq";
    if out_f64.0 == 0 || !out_f64.0.is_multiple_of(8) {
        return Err(CudaError(format!("{what}: output pointer {:#x} null or not f64-aligned", out_f64.0)));
    }
    let table = build_table(g, what, tensors, false, |_| 1.0, |_| 0.0)?;
    let partials = scratch(g, 8 * table.n_chunks.max(1))?;
    if table.n_chunks > 0 {
        let args =
            [Arg::Ptr(table.descs()), Arg::Ptr(table.chunk_map()), Arg::I64(CHUNK as i64), Arg::Ptr(partials.ptr(0))];
        g.launch(&SOURCE, "grad_sq_partial", blocks(table.n_chunks), &args)?;
    }
    let launch = Launch { grid: (1, 1, 1), block: (1024, 1, 1), shared_bytes: 0 };
    let args = [Arg::Ptr(out_f64), Arg::Ptr(partials.ptr(0)), Arg::I32(table.n_chunks as i32)];
    g.launch(&SOURCE, "sum_final_f64", launch, &args)
}

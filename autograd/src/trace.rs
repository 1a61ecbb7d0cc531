//! An off-by-default recorder of every op a forward pass runs (`albert explain`): op name, input
//! and output shapes, which inputs are parameters (by id, so a weight reused by every layer shows
//! up as the same id), estimated FLOPs and bytes, and the time since the previous op.
//!
//! When off (the default) each recorded op costs one relaxed atomic load. The model marks where
//! it is with [`scope`] ("embeddings", "layer 3", ...). Like [`crate::profile`], timings are laps:
//! the time since the previous recorded op is charged to the op being recorded, so it includes
//! the model's glue code before it. Per thread: trace from the thread that runs the forward.

use crate::op::Op;
use crate::params::ParamId;
use engine::Tensor;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// One recorded op.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The model's scope when the op ran (see [`scope`]).
    pub scope: String,
    pub op: &'static str,
    pub inputs: Vec<Vec<usize>>,
    /// For each input, the parameter it is (None for activations and constants).
    pub params: Vec<Option<ParamId>>,
    pub output: Vec<usize>,
    /// Estimated floating-point operations (a multiply-add counts 2; see [`flops`]).
    pub flops: u64,
    /// Bytes read and written: every input and the output once (0 for views: reshape, permute,
    /// narrow, broadcast).
    pub bytes: u64,
    pub time: Duration,
    /// For `attention`: its inputs (q, k) and the additive mask; for `softmax`: its output (the
    /// attention probabilities on the unfused path). Kept so attention maps can be drawn.
    pub saved: Vec<Tensor>,
}

struct State {
    scope: String,
    last: Instant,
    entries: Vec<Entry>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State { scope: String::new(), last: Instant::now(), entries: Vec::new() });
}

/// Starts recording on this thread (clears earlier entries; the scope becomes "").
pub fn start() {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.entries.clear();
        s.scope.clear();
        s.last = Instant::now();
    });
    ENABLED.store(true, Ordering::Relaxed);
}

/// Stops recording and returns this thread's entries.
pub fn finish() -> Vec<Entry> {
    ENABLED.store(false, Ordering::Relaxed);
    STATE.with(|s| std::mem::take(&mut s.borrow_mut().entries))
}

#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Names the part of the model that the following ops belong to.
pub fn scope(name: &str) {
    if enabled() {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.scope.clear();
            s.scope.push_str(name);
        });
    }
}

fn numel(s: &[usize]) -> u64 {
    s.iter().product::<usize>() as u64
}

/// Estimated FLOPs of `op` given its input and output shapes: 2 per multiply-add in products;
/// per element: 1 for adds, scales, ReLU and dropout, about 8 for LayerNorm (mean, variance,
/// normalise, affine), 5 for softmax, 10 for GELU and tanh; views cost 0.
pub(crate) fn flops(op: &Op, inputs: &[&[usize]], out: &[usize]) -> u64 {
    let n = numel(out);
    match op {
        Op::MatMul { trans_a, bias, .. } => {
            let a = inputs[0];
            let k = if *trans_a { a[a.len() - 2] } else { a[a.len() - 1] } as u64;
            2 * n * k + if *bias { n } else { 0 }
        }
        Op::Attention { heads, .. } => {
            // q [B, S, H], k [B, Sk, H]: scores and context are 2 * B * S * Sk * H each
            let (q, k) = (inputs[0], inputs[1]);
            let (b, s, h, sk) = (q[0] as u64, q[1] as u64, q[2] as u64, k[1] as u64);
            4 * b * s * sk * h + 5 * b * *heads as u64 * s * sk
        }
        Op::AlbertEmbeddings { .. } => {
            // 3 lookups summed, LayerNorm(E), then the E -> H projection
            let e = inputs[0][1] as u64;
            let rows = n / inputs[5][0] as u64;
            rows * (2 * e + 8 * e) + 2 * n * e + n
        }
        Op::LayerNorm { .. } => 8 * n,
        Op::Softmax { .. } => 5 * n,
        Op::GeluTanh { .. } | Op::GeluErf { .. } | Op::Tanh { .. } => 10 * n,
        Op::CrossEntropy { .. } => 4 * numel(inputs[0]),
        Op::Add { .. } | Op::Sub { .. } | Op::Mul { .. } | Op::Div { .. } | Op::Scale { .. } | Op::Relu { .. } => n,
        Op::Dropout { .. } => n,
        Op::Sum { .. } | Op::Mean { .. } => numel(inputs[0]),
        _ => 0,
    }
}

fn is_view(op: &Op) -> bool {
    matches!(op, Op::Reshape { .. } | Op::Permute { .. } | Op::Narrow { .. } | Op::BroadcastTo { .. } | Op::Leaf { .. })
}

/// Records `op` (called by the tape for every op when tracing is on).
pub(crate) fn record(op: &Op, inputs: &[(&Tensor, Option<ParamId>)], out: &Tensor) {
    let shapes: Vec<&[usize]> = inputs.iter().map(|(t, _)| t.shape()).collect();
    let f = flops(op, &shapes, out.shape());
    let bytes = if is_view(op) {
        0
    } else {
        inputs.iter().map(|(t, _)| (t.numel() * t.dtype().size_in_bytes()) as u64).sum::<u64>()
            + (out.numel() * out.dtype().size_in_bytes()) as u64
    };
    let saved = match op {
        Op::Attention { mask, .. } => {
            let mut v = vec![inputs[0].0.clone(), inputs[1].0.clone()];
            v.extend(mask.clone());
            v
        }
        Op::Softmax { .. } => vec![out.clone()],
        _ => vec![],
    };
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let now = Instant::now();
        let time = now - s.last;
        s.last = now;
        let entry = Entry {
            scope: s.scope.clone(),
            op: op.name(),
            inputs: shapes.iter().map(|s| s.to_vec()).collect(),
            params: inputs.iter().map(|(_, p)| *p).collect(),
            output: out.shape().to_vec(),
            flops: f,
            bytes,
            time,
            saved,
        };
        s.entries.push(entry);
    });
}

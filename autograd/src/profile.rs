//! An off-by-default timer of where a step's time goes, per op kind (`albert bench --profile`).
//!
//! When off (the default), each recorded op and each backward node costs one relaxed atomic
//! load. When on, the forward pass is timed lap by lap: the time since the previous recorded op
//! is charged to the op being recorded (its forward has just run, so the lap is its compute plus
//! the model's glue code before it). Each backward node is timed around its `Op::backward` and
//! the gradient accumulation that follows. Code outside the tape (the optimizer) charges itself
//! with [`time`]. Timings are per thread: profile one step from the thread that drives it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// The categories a step's time is split into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Dense products: linear layers, the MLM decoder.
    Matmul,
    /// Scores, softmax and context products of attention (batched over heads).
    Attention,
    LayerNorm,
    Gelu,
    Embedding,
    Loss,
    Optimizer,
    /// Everything else: adds, reshapes, dropout, tanh, parameter leaves, gradient sums.
    Other,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Matmul,
        Kind::Attention,
        Kind::LayerNorm,
        Kind::Gelu,
        Kind::Embedding,
        Kind::Loss,
        Kind::Optimizer,
        Kind::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Matmul => "matmul",
            Kind::Attention => "attention",
            Kind::LayerNorm => "layer_norm",
            Kind::Gelu => "gelu",
            Kind::Embedding => "embedding",
            Kind::Loss => "loss",
            Kind::Optimizer => "optimizer",
            Kind::Other => "other",
        }
    }
}

/// Forward and backward time of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Split {
    pub forward: Duration,
    pub backward: Duration,
}

struct State {
    last: Instant,
    totals: [Split; 8],
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State { last: Instant::now(), totals: [Split::default(); 8] });
}

/// Turns the timer on or off for every thread.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Clears this thread's totals and starts the forward lap clock now.
pub fn reset() {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.totals = [Split::default(); 8];
        s.last = Instant::now();
    });
}

/// Restarts the forward lap clock (call before a forward pass, so idle time is not charged).
pub fn mark() {
    if enabled() {
        STATE.with(|s| s.borrow_mut().last = Instant::now());
    }
}

/// This thread's totals since [`reset`], one entry per kind in [`Kind::ALL`] order.
pub fn totals() -> Vec<(Kind, Split)> {
    STATE.with(|s| Kind::ALL.iter().map(|&k| (k, s.borrow().totals[k as usize])).collect())
}

/// Charges the forward lap that ends now to `kind`.
pub(crate) fn lap(kind: Kind) {
    if !enabled() {
        return;
    }
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let now = Instant::now();
        let dt = now - s.last;
        s.totals[kind as usize].forward += dt;
        s.last = now;
    });
}

/// Adds `dt` of backward time to `kind`.
pub(crate) fn add_backward(kind: Kind, dt: Duration) {
    STATE.with(|s| s.borrow_mut().totals[kind as usize].backward += dt);
}

/// Runs `f`, charging its time to `kind` when profiling is on (in the backward column: code
/// outside the tape, like the optimizer, runs after the forward pass).
pub fn time<R>(kind: Kind, f: impl FnOnce() -> R) -> R {
    if !enabled() {
        return f();
    }
    let t0 = Instant::now();
    let r = f();
    add_backward(kind, t0.elapsed());
    r
}

//! Reverse-mode automatic differentiation as an explicit tape over `engine` ops.
//!
//! - A [`Tape`] records one node per op (the op, its input node ids, what its backward needs).
//!   [`Tape::no_grad`] records nothing: inference allocates nothing for autograd.
//! - A [`Var`] is a value plus its node id on a tape. Ops on `Var`s compute with `engine` and
//!   record themselves.
//! - Parameters live in a [`ParamStore`]. `tape.param(&store, id)` puts one on the tape; the same
//!   parameter may be put on the tape (or one `Var` used) any number of times, as ALBERT does
//!   with its shared layer. [`Tape::backward`] ACCUMULATES (+=) into the store's gradient
//!   buffers, so the gradient of a weight used L times is the sum of its L contributions, and
//!   micro-batches can accumulate too. Activation gradients live only during the backward pass:
//!   the first contribution is stored as is, further ones (fan-out) are added.
//! - `backward` drains the tape: every node and saved tensor is freed as the pass goes, and the
//!   tape is empty afterwards, so nothing grows across training steps.
//! - [`trace`] (off by default) records every op of a forward pass with shapes, parameter ids,
//!   FLOPs, bytes and time, for `albert explain`.
//! - [`gradcheck`] compares the tape's gradients with f64 central finite differences.

mod gradcheck;
mod op;
mod params;
pub mod profile;
mod tape;
pub mod trace;
mod var;

pub use gradcheck::{gradcheck, GradCheck};
pub use op::CheckpointFn;
pub use params::{Param, ParamId, ParamStore};
pub use tape::{Gradients, Tape};
pub use var::Var;

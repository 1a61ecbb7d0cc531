//! Slice-level compute kernels. No tensor type lives here: every kernel takes plain slices and
//! explicit sizes, with the shapes written in its doc comment (llm.c style).
//!
//! Letters used in shape comments: B batch, S sequence, N heads, D head width, H hidden width,
//! E embedding width, V vocabulary, R rows (any flattened leading dims), C columns (last dim).
//!
//! Every op family is one module under [`cpu`]. Each module holds, side by side:
//! - `<op>_fwd_scalar` / `<op>_bwd_scalar`: the readable reference, generic over [`Real`] so the
//!   same code runs in f64 for finite-difference gradient checks. This is the spec.
//! - `<op>_fwd_avx2` / `<op>_bwd_avx2`: the fast f32 version (AVX2 + FMA through `std::arch`),
//!   compiled for every x86-64 target and chosen at run time, never by `target-cpu=native`.
//! - `<op>_fwd` / `<op>_bwd`: the f32 entry point that picks the fast version when the CPU has it.
//!
//! The gradient rule (from llm.c): parameter gradients ACCUMULATE (`+=`) because ALBERT applies
//! one layer's weights at every layer; activation gradients are OVERWRITTEN (`=`) by the kernel
//! that produces them.

pub mod cpu;
pub mod cuda;
mod real;

pub use real::Real;

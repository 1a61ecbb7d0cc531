//! The tensor engine: a `Tensor` handle over shared storage with a strided layout, views that
//! never copy (reshape of contiguous data, permute/transpose, narrow, broadcast), dtypes, devices,
//! a seeded RNG, and forward/backward tensor ops that dispatch onto the `kernels` crate.
//!
//! Dispatch is an exhaustive `match` over the closed [`Storage`] enum and [`DType`]; f32 runs the
//! fast kernels, f64 runs the scalar references (used by finite-difference gradient checks), and
//! bf16/f16 are storage formats converted to f32 for compute.

mod cuda;
mod device;
mod dtype;
mod elem;
mod error;
mod layout;
pub mod ops;
mod rng;
mod storage;
mod tensor;

pub use device::Device;
pub use dtype::DType;
pub use elem::Elem;
pub use error::{Error, Result};
pub use layout::{broadcast_shapes, Layout};
pub use rng::Rng;
pub use storage::{cuda_dt, CpuStorage, CudaStorage, Storage};
pub use tensor::Tensor;

//! The element trait shared by the scalar references: f32 for compute, f64 for gradient checks.

use num_traits::{Float, FromPrimitive, NumAssign};
use std::fmt::Debug;
use std::iter::Sum;

/// A floating-point element the scalar reference kernels are generic over (f32 and f64).
pub trait Real: Float + FromPrimitive + NumAssign + Sum + Debug + Default + Send + Sync + 'static {
    /// Lossless-enough conversion from an f64 constant written in the source.
    fn c(x: f64) -> Self {
        Self::from_f64(x).expect("constant representable")
    }
    /// The Gauss error function, computed in f64 (libm) for both precisions.
    fn erf(self) -> Self;
}

impl Real for f32 {
    fn erf(self) -> Self {
        libm::erf(self as f64) as f32
    }
}

impl Real for f64 {
    fn erf(self) -> Self {
        libm::erf(self)
    }
}

//! CPU kernels, one module per op family. See the crate docs for the naming scheme.

pub mod activation;
pub mod attention;
pub mod binary;
pub mod copy;
pub mod cross_entropy;
pub mod dropout;
pub mod gather;
pub mod layernorm;
pub mod matmul;
pub mod peak;
pub mod reduce;
pub mod simd;
pub mod softmax;

use std::sync::OnceLock;

/// The instruction set the f32 entry points use on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX2 + FMA (x86-64, detected at run time).
    Avx2Fma,
    /// Portable scalar code (other CPUs, or forced with `ALBERT_FORCE_SCALAR=1`).
    Scalar,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx2Fma => "avx2+fma",
            Isa::Scalar => "scalar",
        }
    }
}

/// Detected once. `ALBERT_FORCE_SCALAR=1` forces the reference path (useful to compare speed).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        if std::env::var("ALBERT_FORCE_SCALAR").is_ok_and(|v| v == "1") {
            return Isa::Scalar;
        }
        detect()
    })
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Isa::Avx2Fma
    } else {
        Isa::Scalar
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Scalar
}

/// True when the AVX2+FMA versions may be called on this CPU.
#[inline]
pub fn has_avx2() -> bool {
    isa() == Isa::Avx2Fma
}

/// Elements per rayon task for memory-bound elementwise kernels: below this, threading costs
/// more than it saves on this 2-core machine type.
pub const PAR_CHUNK: usize = 1 << 15;

//! Every kernel file, embedded at build time (the binaries run on GPU machines that have no copy
//! of this repository). NVRTC compiles `COMMON` + one file as one program.

/// One `.cu` file of `kernels/cuda/`.
#[derive(Debug)]
pub struct Source {
    /// The file name without `.cu`; also the module's cache key.
    pub name: &'static str,
    pub code: &'static str,
    /// Needs Hopper's architecture-specific target (wgmma, setmaxnreg): compiled for sm_90a only.
    pub sm90a: bool,
}

/// Helpers every file may use: bf16 conversion, warp/block reductions, GELU, counter-based RNG.
pub const COMMON: &str = include_str!("../../cuda/common.cuh");

/// The list the compile check walks; add a new file here and to a launcher module.
pub const SOURCES: &[&Source] = &[
    &super::copy::SOURCE,
    &super::gemm::SOURCE,
    &super::gemm::SOURCE_SM90A,
    &super::softmax::SOURCE,
    &super::layernorm::SOURCE,
    &super::gather::SOURCE,
    &super::cross_entropy::SOURCE,
    &super::embeddings::SOURCE,
    &super::attention::SOURCE,
    &super::elementwise::SOURCE,
    &super::reduce::SOURCE,
    &super::dropout::SOURCE,
    &super::optim::SOURCE,
];

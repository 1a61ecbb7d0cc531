//! CUDA kernels: `.cu` sources in `kernels/cuda/`, compiled at run time by NVRTC for the device
//! found (see [`driver`]), and one launcher module per op family, mirroring [`crate::cpu`].
//!
//! A launcher is the CUDA twin of a CPU slice kernel: it takes device pointers ([`DevPtr`]) and
//! explicit sizes, with the shapes in its doc comment, checks what it can on the host (sizes,
//! alignment), picks grid and block, and queues the kernel on the device's stream. It does not
//! wait; the engine synchronises only when data comes back to the host.
//!
//! Storage types on the GPU are f32 and bf16 ([`Dt`]); every kernel accumulates in f32.
//! Nothing here runs, or even loads a library, until a [`driver::gpu`] is asked for, so the
//! crate builds and its CPU tests pass on machines with no CUDA at all.

pub mod attention;
pub mod copy;
pub mod cross_entropy;
pub mod driver;
pub mod dropout;
pub mod elementwise;
pub mod embeddings;
pub mod gather;
pub mod gemm;
pub mod layernorm;
pub mod optim;
pub mod reduce;
pub mod softmax;
pub mod sources;

pub use driver::{gpu, Arg, CudaError, CudaResult, DevPtr, DeviceBuffer, Dims6, Gpu, Launch};
pub use driver::{nccl_present, nccl_version, NcclComm, NcclId};

/// The element type of a GPU buffer that kernels compute on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dt {
    F32,
    BF16,
}

impl Dt {
    /// The suffix of the kernel instantiation for this type (`layernorm_fwd_bf16`).
    pub fn suffix(self) -> &'static str {
        match self {
            Dt::F32 => "f32",
            Dt::BF16 => "bf16",
        }
    }
    pub fn size(self) -> usize {
        match self {
            Dt::F32 => 4,
            Dt::BF16 => 2,
        }
    }
}

/// `"<base>_<suffix>"`, the name of a templated kernel's instantiation.
pub fn kernel_name(base: &str, dt: Dt) -> String {
    format!("{base}_{}", dt.suffix())
}

/// Uploads f32 values as a buffer of `dt` (rounding to bf16 on the host when asked).
pub fn upload_f32(g: &std::sync::Arc<Gpu>, data: &[f32], dt: Dt) -> CudaResult<DeviceBuffer> {
    match dt {
        Dt::F32 => g.upload(f32_bytes(data)),
        Dt::BF16 => {
            let bits: Vec<u16> = data.iter().map(|&x| half::bf16::from_f32(x).to_bits()).collect();
            g.upload(&u16_bytes(&bits))
        }
    }
}

/// Uploads i64 values (token ids, targets).
pub fn upload_i64(g: &std::sync::Arc<Gpu>, data: &[i64]) -> CudaResult<DeviceBuffer> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    g.upload(&bytes)
}

/// `n` elements of type `dt` from element `offset` of `buf`, as f32 on the host.
pub fn download_f32(buf: &DeviceBuffer, dt: Dt, offset: usize, n: usize) -> CudaResult<Vec<f32>> {
    let bytes = buf.gpu().download(buf, offset * dt.size(), n * dt.size())?;
    Ok(match dt {
        Dt::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dt::BF16 => {
            bytes.chunks_exact(2).map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()).collect()
        }
    })
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern of it is a valid u8 sequence.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn u16_bytes(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The device to run GPU tests on, or None (after printing why) when there is none, so the
/// same test binaries pass on machines without a GPU.
pub fn test_device() -> Option<std::sync::Arc<Gpu>> {
    if driver::device_count() == 0 {
        eprintln!("skipped: no CUDA device");
        return None;
    }
    match gpu(0) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("skipped: CUDA device 0 unusable: {e}");
            None
        }
    }
}

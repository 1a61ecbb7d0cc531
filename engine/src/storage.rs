//! The closed set of storage kinds. Every op matches on it exhaustively (no `_ =>` arms), so a new
//! device or dtype cannot be forgotten silently.

use crate::DType;
use half::{bf16, f16};
use kernels::cuda::{DeviceBuffer, Dt};

/// Host memory, one vector per dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    BF16(Vec<bf16>),
    F16(Vec<f16>),
    I64(Vec<i64>),
}

/// Device memory of one CUDA device: raw bytes holding `len` elements of `dtype`
/// (f32, bf16 or i64 on the GPU).
#[derive(Debug)]
pub struct CudaStorage {
    pub buf: DeviceBuffer,
    pub dtype: DType,
    pub len: usize,
}

impl CudaStorage {
    /// The kernels' element type, for the dtypes kernels compute on.
    pub fn dt(&self) -> Option<Dt> {
        cuda_dt(self.dtype)
    }
}

/// The kernels' element type of a dtype the GPU computes on (f32, bf16); None for the others.
pub fn cuda_dt(dtype: DType) -> Option<Dt> {
    match dtype {
        DType::F32 => Some(Dt::F32),
        DType::BF16 => Some(Dt::BF16),
        DType::F64 | DType::F16 | DType::I64 => None,
    }
}

/// A tensor's buffer: host memory or one CUDA device's memory.
#[derive(Debug)]
pub enum Storage {
    Cpu(CpuStorage),
    Cuda(CudaStorage),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::I64(_) => DType::I64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
            CpuStorage::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn zeros(dtype: DType, n: usize) -> CpuStorage {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; n]),
            DType::F64 => CpuStorage::F64(vec![0.0; n]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; n]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; n]),
            DType::I64 => CpuStorage::I64(vec![0; n]),
        }
    }

    /// Little-endian bytes of the whole buffer (for checkpoints).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CpuStorage::F32(v) => bytemuck::cast_slice(v),
            CpuStorage::F64(v) => bytemuck::cast_slice(v),
            CpuStorage::BF16(v) => bytemuck::cast_slice(v),
            CpuStorage::F16(v) => bytemuck::cast_slice(v),
            CpuStorage::I64(v) => bytemuck::cast_slice(v),
        }
    }

    /// Copies bytes of any alignment into a typed buffer. `bytes.len()` must be n * dtype size.
    pub fn from_bytes(dtype: DType, bytes: &[u8]) -> CpuStorage {
        match dtype {
            DType::F32 => CpuStorage::F32(bytemuck::pod_collect_to_vec(bytes)),
            DType::F64 => CpuStorage::F64(bytemuck::pod_collect_to_vec(bytes)),
            DType::BF16 => CpuStorage::BF16(bytemuck::pod_collect_to_vec(bytes)),
            DType::F16 => CpuStorage::F16(bytemuck::pod_collect_to_vec(bytes)),
            DType::I64 => CpuStorage::I64(bytemuck::pod_collect_to_vec(bytes)),
        }
    }
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Cuda(s) => s.dtype,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            Storage::Cuda(s) => s.len,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

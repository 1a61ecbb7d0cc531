//! The engine's side of the CUDA backend: moving tensors between host and device, allocating
//! device outputs, and the pointers, strides and element types the launchers of
//! `kernels::cuda` take. No cudarc call lives here (that is `kernels::cuda::driver`).

use crate::error::dims;
use crate::storage::{cuda_dt, CpuStorage, CudaStorage, Storage};
use crate::{DType, Device, Error, Result, Tensor};
use kernels::cuda::{DevPtr, Dims6, Dt, Gpu};
use std::sync::Arc;

/// The GPU every tensor of an op lives on, or None when they are all on the host. Mixed
/// devices are an error naming the op.
pub(crate) fn op_gpu(op: &str, ts: &[&Tensor]) -> Result<Option<Arc<Gpu>>> {
    let dev = ts[0].device();
    if let Some(t) = ts.iter().find(|t| t.device() != dev) {
        return Err(Error::Device(format!("{op}: tensors on {dev} and {}", t.device())));
    }
    match dev {
        Device::Cpu => Ok(None),
        Device::Cuda(_) => Ok(Some(dev.gpu()?)),
    }
}

/// The kernels' element type of `t`, or an error naming the op for dtypes the GPU does not
/// compute on.
pub(crate) fn dt_of(op: &str, t: &Tensor) -> Result<Dt> {
    cuda_dt(t.dtype()).ok_or_else(|| {
        Error::DType(format!(
            "{op}: {} tensor {} on {}: the GPU computes on f32 and bf16",
            t.dtype(),
            t.dims(),
            t.device()
        ))
    })
}

/// A new device tensor of `shape` whose contents are undefined (the caller's kernel writes all of it).
pub(crate) fn empty(g: &Arc<Gpu>, dtype: DType, shape: &[usize]) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let buf = g.alloc_uninit(n * dtype.size_in_bytes())?;
    Ok(Tensor::from_cuda(CudaStorage { buf, dtype, len: n }, shape, g.ordinal()))
}

/// A new zero-filled device tensor.
pub(crate) fn zeros(g: &Arc<Gpu>, dtype: DType, shape: &[usize]) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let buf = g.alloc_zeroed(n * dtype.size_in_bytes())?;
    Ok(Tensor::from_cuda(CudaStorage { buf, dtype, len: n }, shape, g.ordinal()))
}

/// The device address of `t`'s first element (its layout offset applied).
pub(crate) fn ptr(t: &Tensor) -> DevPtr {
    match t.storage() {
        Storage::Cuda(s) => s.buf.ptr(t.layout().offset() * s.dtype.size_in_bytes()),
        Storage::Cpu(_) => panic!("cuda::ptr on a host tensor {} (an op dispatched wrongly)", t.dims()),
    }
}

/// `t`'s shape and strides for the strided kernels (rank <= 6).
pub(crate) fn dims6(op: &str, t: &Tensor) -> Result<Dims6> {
    let r = t.rank();
    if r > 6 {
        return Err(Error::Shape(format!("{op}: rank {} tensor {} (the GPU kernels take rank <= 6)", r, t.dims())));
    }
    let mut d = Dims6 { rank: r as i32, ..Dims6::default() };
    for i in 0..r {
        d.shape[i] = t.shape()[i] as i64;
        d.stride[i] = t.layout().strides()[i] as i64;
    }
    Ok(d)
}

/// Errors unless `t` (statistics saved by a forward: LayerNorm mean/rstd, log-sum-exps) is a
/// dense f32 tensor of `n` elements on `device`: the backward kernels read it as `float*`, so a
/// bf16, host or strided tensor here would be misread rather than rejected.
pub(crate) fn expect_saved_f32(op: &str, what: &str, t: &Tensor, n: usize, device: Device) -> Result<()> {
    if t.dtype() != DType::F32 || t.numel() != n || t.device() != device || !t.is_contiguous() {
        return Err(Error::Invalid(format!(
            "{op}: saved {what} must be a dense f32 tensor of {n} elements on {device}, got {} {} on {}",
            t.dtype(),
            t.dims(),
            t.device()
        )));
    }
    Ok(())
}

/// Host -> device copy of a (contiguous) host tensor.
pub(crate) fn upload(t: &Tensor, ordinal: usize) -> Result<Tensor> {
    match t.dtype() {
        DType::F32 | DType::BF16 | DType::I64 => {}
        d @ (DType::F64 | DType::F16) => {
            return Err(Error::DType(format!(
                "to_device(cuda:{ordinal}): {d} tensor {}: the GPU holds f32, bf16 and i64 (convert first)",
                t.dims()
            )))
        }
    }
    let g = kernels::cuda::gpu(ordinal)?;
    let bytes = t.to_bytes();
    let buf = g.upload(&bytes)?;
    Ok(Tensor::from_cuda(CudaStorage { buf, dtype: t.dtype(), len: t.numel() }, t.shape(), ordinal))
}

/// Device -> host copy (waits for the queued kernels; their faults surface here).
pub(crate) fn download(t: &Tensor) -> Result<Tensor> {
    let t = t.contiguous();
    match t.storage() {
        Storage::Cuda(s) => {
            let sz = s.dtype.size_in_bytes();
            let bytes = s.buf.gpu().download(&s.buf, t.layout().offset() * sz, t.numel() * sz)?;
            Ok(Tensor::from_cpu(CpuStorage::from_bytes(s.dtype, &bytes), t.shape()))
        }
        Storage::Cpu(_) => Ok(t),
    }
}

/// A dense copy of a strided device tensor.
pub(crate) fn contiguous(t: &Tensor) -> Result<Tensor> {
    let g = t.device().gpu()?;
    let out = empty(&g, t.dtype(), t.shape())?;
    if t.numel() > 0 {
        kernels::cuda::copy::copy_strided(&g, t.dtype().size_in_bytes(), ptr(&out), ptr(t), &dims6("contiguous", t)?)?;
    }
    Ok(out)
}

/// f32 <-> bf16 on the device; other pairs go through the host.
pub(crate) fn to_dtype(t: &Tensor, dtype: DType) -> Result<Tensor> {
    match (cuda_dt(t.dtype()), cuda_dt(dtype)) {
        (Some(src), Some(dst)) => {
            let g = t.device().gpu()?;
            let t = t.contiguous();
            let out = empty(&g, dtype, t.shape())?;
            kernels::cuda::copy::convert(&g, ptr(&out), dst, ptr(&t), src, t.numel())?;
            Ok(out)
        }
        _ => {
            let Device::Cuda(i) = t.device() else { unreachable!("cuda::to_dtype on a host tensor") };
            upload(&download(t)?.to_dtype(dtype), i).map_err(|e| {
                Error::DType(format!(
                    "to_dtype({dtype}) of a {} tensor {} on cuda:{i}: {e}",
                    t.dtype(),
                    dims(t.shape())
                ))
            })
        }
    }
}

/// Validated host indices as an i64 device buffer for a gather kernel (freed stream-ordered, so
/// dropping it right after the launch is safe).
pub(crate) fn upload_indices(g: &Arc<Gpu>, idx: &[usize]) -> Result<kernels::cuda::DeviceBuffer> {
    let v: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    Ok(kernels::cuda::upload_i64(g, &v)?)
}

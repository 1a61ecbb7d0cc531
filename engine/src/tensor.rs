//! `Tensor`: a cheap-to-clone handle (shared storage + its own layout). Clones and views share the
//! buffer; ops allocate fresh outputs. The only in-place op, `add_assign`, copies on write if the
//! buffer is shared, so no other handle ever sees a change.

use crate::elem::Elem;
use crate::error::dims;
use crate::layout::Layout;
use crate::storage::{CpuStorage, CudaStorage, Storage};
use crate::{DType, Device, Error, Result};
use half::{bf16, f16};
use std::fmt;
use std::sync::Arc;

#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    layout: Layout,
    device: Device,
}

impl Tensor {
    // ------------------------------------------------------------------ construction
    fn from_storage(storage: CpuStorage, shape: &[usize]) -> Tensor {
        debug_assert_eq!(storage.len(), shape.iter().product::<usize>());
        Tensor { storage: Arc::new(Storage::Cpu(storage)), layout: Layout::contiguous(shape), device: Device::Cpu }
    }

    pub(crate) fn from_cpu(storage: CpuStorage, shape: &[usize]) -> Tensor {
        Self::from_storage(storage, shape)
    }

    /// A dense tensor over device memory of CUDA device `ordinal`.
    pub(crate) fn from_cuda(storage: CudaStorage, shape: &[usize], ordinal: usize) -> Tensor {
        debug_assert_eq!(storage.len, shape.iter().product::<usize>());
        Tensor {
            storage: Arc::new(Storage::Cuda(storage)),
            layout: Layout::contiguous(shape),
            device: Device::Cuda(ordinal),
        }
    }

    fn check_len(op: &str, len: usize, shape: &[usize]) -> Result<()> {
        let n: usize = shape.iter().product();
        if n != len {
            return Err(Error::Shape(format!("{op}: {len} values cannot fill shape {} ({n} elements)", dims(shape))));
        }
        Ok(())
    }

    /// A dense tensor of a compute type from its row-major values.
    pub fn from_vec<T: Elem>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        Self::check_len("from_vec", data.len(), shape)?;
        Ok(Self::from_storage(T::wrap(data), shape))
    }

    pub fn from_i64(data: Vec<i64>, shape: &[usize]) -> Result<Tensor> {
        Self::check_len("from_i64", data.len(), shape)?;
        Ok(Self::from_storage(CpuStorage::I64(data), shape))
    }

    /// From little-endian bytes (e.g. a safetensors payload) of any alignment.
    pub fn from_bytes(bytes: &[u8], dtype: DType, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if bytes.len() != n * dtype.size_in_bytes() {
            return Err(Error::Shape(format!(
                "from_bytes: {} bytes for {dtype} shape {} (need {})",
                bytes.len(),
                dims(shape),
                n * dtype.size_in_bytes()
            )));
        }
        Ok(Self::from_storage(CpuStorage::from_bytes(dtype, bytes), shape))
    }

    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        Self::from_storage(CpuStorage::zeros(dtype, shape.iter().product()), shape)
    }

    /// Zeros on `device` (a device allocation for CUDA).
    pub fn zeros_on(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        match device {
            Device::Cpu => Ok(Self::zeros(shape, dtype)),
            Device::Cuda(_) => crate::cuda::zeros(&device.gpu()?, dtype, shape),
        }
    }

    pub fn full<T: Elem>(value: T, shape: &[usize]) -> Tensor {
        Self::from_storage(T::wrap(vec![value; shape.iter().product()]), shape)
    }

    pub fn scalar<T: Elem>(value: T) -> Tensor {
        Self::full(value, &[])
    }

    /// A copy on `device` (a cheap clone when already there). The GPU holds f32, bf16 and i64.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        match (self.device, device) {
            (a, b) if a == b => Ok(self.clone()),
            (Device::Cpu, Device::Cuda(i)) => crate::cuda::upload(&self.contiguous(), i),
            (Device::Cuda(_), Device::Cpu) => crate::cuda::download(self),
            (Device::Cuda(_), Device::Cuda(j)) => crate::cuda::upload(&crate::cuda::download(self)?, j),
            (Device::Cpu, Device::Cpu) => unreachable!("same device"),
        }
    }

    // ------------------------------------------------------------------ metadata
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }
    pub fn dims(&self) -> String {
        dims(self.shape())
    }
    pub fn rank(&self) -> usize {
        self.layout.rank()
    }
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }
    pub fn device(&self) -> Device {
        self.device
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }
    /// Whether two handles share one buffer (views of each other).
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// The host buffer; panics for device tensors (every caller below first brings device
    /// tensors to the host or dispatches them to a CUDA kernel).
    pub(crate) fn cpu(&self) -> &CpuStorage {
        match &*self.storage {
            Storage::Cpu(s) => s,
            Storage::Cuda(_) => {
                panic!("host access to a tensor {} on {} (an op dispatched wrongly)", self.dims(), self.device)
            }
        }
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The error for host-only accessors on a device tensor.
    fn on_host(&self, op: &str) -> Result<()> {
        match self.device {
            Device::Cpu => Ok(()),
            Device::Cuda(_) => Err(Error::Device(format!(
                "{op}: tensor {} is on {}; copy it with to_device(Device::Cpu) first",
                self.dims(),
                self.device
            ))),
        }
    }

    /// The device address of a dense CUDA tensor's first element, for kernels outside the engine
    /// that update a tensor in place (the fused optimizers). None on the host or for strided views.
    pub fn cuda_ptr(&self) -> Option<kernels::cuda::DevPtr> {
        match (&*self.storage, self.is_contiguous()) {
            (Storage::Cuda(_), true) => Some(crate::cuda::ptr(self)),
            (Storage::Cuda(_), false) | (Storage::Cpu(_), _) => None,
        }
    }

    /// The buffer of a dense tensor that owns exactly its elements and shares them with no other
    /// handle, for an in-place write (a gemm accumulating into a gradient); None otherwise.
    pub(crate) fn exclusive_storage(&mut self) -> Option<&mut Storage> {
        let dense = self.is_contiguous() && self.layout.offset() == 0 && self.storage.len() == self.numel();
        if !dense {
            return None;
        }
        Arc::get_mut(&mut self.storage)
    }

    // ------------------------------------------------------------------ data access
    /// The elements of a contiguous tensor of element type T, as a slice of its storage.
    pub fn data<T: Elem>(&self, op: &str) -> Result<&[T]> {
        self.on_host(op)?;
        let all = T::slice(self.cpu()).ok_or_else(|| {
            Error::DType(format!(
                "{op}: expected a {} tensor, found {} with shape {}",
                T::DTYPE,
                self.dtype(),
                self.dims()
            ))
        })?;
        if !self.is_contiguous() {
            return Err(Error::Invalid(format!("{op}: tensor {} must be contiguous", self.dims())));
        }
        let o = self.layout.offset();
        Ok(&all[o..o + self.numel()])
    }

    /// The whole storage buffer and this tensor's offset into it (for strided kernels).
    pub(crate) fn storage_slice<T: Elem>(&self, op: &str) -> Result<(&[T], usize)> {
        self.on_host(op)?;
        let all = T::slice(self.cpu()).ok_or_else(|| {
            Error::DType(format!(
                "{op}: expected a {} tensor, found {} with shape {}",
                T::DTYPE,
                self.dtype(),
                self.dims()
            ))
        })?;
        Ok((all, self.layout.offset()))
    }

    pub fn ids(&self, op: &str) -> Result<Vec<i64>> {
        if self.device.is_cuda() {
            return crate::cuda::download(self)?.ids(op);
        }
        match self.cpu() {
            CpuStorage::I64(_) => {}
            CpuStorage::F32(_) | CpuStorage::F64(_) | CpuStorage::BF16(_) | CpuStorage::F16(_) => {
                return Err(Error::DType(format!("{op}: expected i64 ids, found {} {}", self.dtype(), self.dims())))
            }
        }
        let t = self.contiguous();
        match t.cpu() {
            CpuStorage::I64(v) => Ok(v[t.layout.offset()..t.layout.offset() + t.numel()].to_vec()),
            CpuStorage::F32(_) | CpuStorage::F64(_) | CpuStorage::BF16(_) | CpuStorage::F16(_) => unreachable!(),
        }
    }

    /// The elements as f32: borrowed from the storage when the tensor is contiguous f32 (no
    /// copy), converted otherwise.
    pub fn f32_values(&self) -> std::borrow::Cow<'_, [f32]> {
        if self.device.is_cuda() {
            return std::borrow::Cow::Owned(self.to_vec_f32());
        }
        match self.data::<f32>("f32_values") {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => std::borrow::Cow::Owned(self.to_vec_f32()),
        }
    }

    /// All elements in row-major order, converted to f32 (any dtype).
    /// Device tensors are copied to the host first (panics if the device fails).
    pub fn to_vec_f32(&self) -> Vec<f32> {
        if self.device.is_cuda() {
            return crate::cuda::download(self).expect("device -> host copy").to_vec_f32();
        }
        self.to_dtype(DType::F32).contiguous().data::<f32>("to_vec_f32").expect("f32").to_vec()
    }

    /// All elements in row-major order, converted to f64 (any dtype).
    pub fn to_vec_f64(&self) -> Vec<f64> {
        if self.device.is_cuda() {
            return crate::cuda::download(self).expect("device -> host copy").to_vec_f64();
        }
        self.to_dtype(DType::F64).contiguous().data::<f64>("to_vec_f64").expect("f64").to_vec()
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::Shape(format!("item: tensor {} has {} elements, not 1", self.dims(), self.numel())));
        }
        Ok(self.to_vec_f64()[0])
    }

    /// Little-endian bytes of the (contiguous) elements.
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.device.is_cuda() {
            return crate::cuda::download(self).expect("device -> host copy").to_bytes();
        }
        let t = self.contiguous();
        let sz = t.dtype().size_in_bytes();
        let o = t.layout.offset() * sz;
        t.cpu().as_bytes()[o..o + t.numel() * sz].to_vec()
    }

    // ------------------------------------------------------------------ conversion
    /// Converts element type (rounding to nearest even for bf16/f16). Same dtype: a cheap clone.
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        if self.device.is_cuda() {
            return crate::cuda::to_dtype(self, dtype).expect("device dtype conversion");
        }
        let t = self.contiguous();
        let o = t.layout.offset();
        let n = t.numel();
        let f64s: Vec<f64> = match t.cpu() {
            CpuStorage::F32(v) => v[o..o + n].iter().map(|&x| x as f64).collect(),
            CpuStorage::F64(v) => v[o..o + n].to_vec(),
            CpuStorage::BF16(v) => v[o..o + n].iter().map(|x| x.to_f64()).collect(),
            CpuStorage::F16(v) => v[o..o + n].iter().map(|x| x.to_f64()).collect(),
            CpuStorage::I64(v) => v[o..o + n].iter().map(|&x| x as f64).collect(),
        };
        // f32 -> bf16/f16 must round from the f32 value, not via f64, to match PyTorch exactly.
        let f32s = || -> Vec<f32> {
            match t.cpu() {
                CpuStorage::F32(v) => v[o..o + n].to_vec(),
                CpuStorage::F64(_) | CpuStorage::BF16(_) | CpuStorage::F16(_) | CpuStorage::I64(_) => {
                    f64s.iter().map(|&x| x as f32).collect()
                }
            }
        };
        let storage = match dtype {
            DType::F32 => CpuStorage::F32(f32s()),
            DType::F64 => CpuStorage::F64(f64s.clone()),
            DType::BF16 => CpuStorage::BF16(f32s().into_iter().map(bf16::from_f32).collect()),
            DType::F16 => CpuStorage::F16(f32s().into_iter().map(f16::from_f32).collect()),
            DType::I64 => CpuStorage::I64(f64s.iter().map(|&x| x as i64).collect()),
        };
        Self::from_storage(storage, self.shape())
    }

    // ------------------------------------------------------------------ views
    fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor { storage: self.storage.clone(), layout, device: self.device }
    }

    /// A dense row-major copy, or a cheap clone if already dense.
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        if self.device.is_cuda() {
            return crate::cuda::contiguous(self).expect("device strided copy");
        }
        let l = &self.layout;
        let storage = match self.cpu() {
            CpuStorage::F32(v) => CpuStorage::F32(strided(v, l)),
            CpuStorage::F64(v) => CpuStorage::F64(strided(v, l)),
            CpuStorage::BF16(v) => CpuStorage::BF16(strided(v, l)),
            CpuStorage::F16(v) => CpuStorage::F16(strided(v, l)),
            CpuStorage::I64(v) => CpuStorage::I64(strided(v, l)),
        };
        Self::from_storage(storage, self.shape())
    }

    /// Same elements, new shape; a view when contiguous, else a copy first.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let t = self.contiguous();
        let layout = t.layout.reshape(shape)?;
        Ok(t.with_layout(layout))
    }

    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.permute(perm)?))
    }

    /// Swaps two axes (negative axes count from the end).
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let (a, b) = (self.layout.axis("transpose", a)?, self.layout.axis("transpose", b)?);
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let axis = self.layout.axis("narrow", axis)?;
        Ok(self.with_layout(self.layout.narrow(axis, start, len)?))
    }

    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.broadcast_to(shape)?))
    }

    // ------------------------------------------------------------------ in place
    /// self += other (same shape), copying the buffer first if another handle shares it.
    pub fn add_assign(&mut self, other: &Tensor) -> Result<()> {
        if self.shape() != other.shape() || self.dtype() != other.dtype() {
            return Err(Error::Shape(format!(
                "add_assign: {} {} += {} {}",
                self.dtype(),
                self.dims(),
                other.dtype(),
                other.dims()
            )));
        }
        if self.device != other.device() {
            return Err(Error::Device(format!("add_assign: {} += {}", self.device, other.device())));
        }
        // Write in place only into a dense buffer no other handle shares; else copy first.
        if !self.is_contiguous()
            || self.layout.offset() != 0
            || self.storage.len() != self.numel()
            || Arc::get_mut(&mut self.storage).is_none()
        {
            *self = self.contiguous_owned();
        }
        let other = other.contiguous();
        let storage = Arc::get_mut(&mut self.storage).expect("a fresh copy is not shared");
        let cpu = match storage {
            Storage::Cpu(cpu) => cpu,
            Storage::Cuda(dst) => {
                let dt = crate::cuda::dt_of("add_assign", &other)?;
                let g = dst.buf.gpu().clone();
                kernels::cuda::elementwise::add_assign(
                    &g,
                    dt,
                    dst.buf.ptr(0),
                    crate::cuda::ptr(&other),
                    other.numel(),
                )?;
                return Ok(());
            }
        };
        match cpu {
            CpuStorage::F32(dst) => crate::elem::k::add_assign(dst, other.data::<f32>("add_assign")?),
            CpuStorage::F64(dst) => crate::elem::k::add_assign(dst, other.data::<f64>("add_assign")?),
            CpuStorage::BF16(_) | CpuStorage::F16(_) | CpuStorage::I64(_) => {
                return Err(Error::DType(format!("add_assign: {} is a storage-only dtype", other.dtype())))
            }
        }
        Ok(())
    }

    /// A dense copy that owns exactly its elements (offset 0, no spare storage).
    /// Always a fresh buffer, even when `self` is already dense (add_assign's copy-on-write).
    fn contiguous_owned(&self) -> Tensor {
        if self.device.is_cuda() {
            return crate::cuda::contiguous(self).expect("device strided copy");
        }
        let l = Layout::new(self.shape().to_vec(), self.layout.strides().to_vec(), self.layout.offset());
        let storage = match self.cpu() {
            CpuStorage::F32(v) => CpuStorage::F32(strided(v, &l)),
            CpuStorage::F64(v) => CpuStorage::F64(strided(v, &l)),
            CpuStorage::BF16(v) => CpuStorage::BF16(strided(v, &l)),
            CpuStorage::F16(v) => CpuStorage::F16(strided(v, &l)),
            CpuStorage::I64(v) => CpuStorage::I64(strided(v, &l)),
        };
        Self::from_storage(storage, self.shape())
    }
}

fn strided<T: Copy + Send + Sync>(src: &[T], l: &Layout) -> Vec<T> {
    let mut out = Vec::with_capacity(l.numel());
    if l.numel() == 0 {
        return out;
    }
    out.resize(l.numel(), src[l.offset()]);
    kernels::cpu::copy::copy_strided(&mut out, src, l.shape(), l.strides(), l.offset());
    out
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.to_vec_f64();
        let head: Vec<String> = v.iter().take(8).map(|x| format!("{x:.6}")).collect();
        write!(
            f,
            "Tensor({} {} [{}{}])",
            self.dtype(),
            self.dims(),
            head.join(", "),
            if v.len() > 8 { ", ..." } else { "" }
        )
    }
}

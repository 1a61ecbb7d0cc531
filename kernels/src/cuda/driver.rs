//! The one module that calls cudarc. Everything else (launchers, the engine) goes through the
//! small API below, so a cudarc upgrade touches this file only.
//!
//! - Probing never panics: libcuda / libnvrtc are looked for before any cudarc call that would
//!   panic when they are missing (`CudaContext::new` does).
//! - Kernel sources are compiled by NVRTC for the device's own architecture on first use, to a
//!   CUBIN (ptxas runs inside NVRTC), and cached: per device in memory, and on disk under
//!   `$ALBERT_CUDA_CACHE` (default `~/.cache/albert-cuda`) keyed by source hash + arch + NVRTC
//!   version + options.
//! - One stream per device. Event tracking is off: all work is ordered on that stream, and
//!   buffers are freed stream-ordered (`cuMemFreeAsync`), so a buffer dropped while a kernel that
//!   reads it is queued stays valid until the kernel is done.

use super::sources::{Source, COMMON};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, LaunchConfig};
use cudarc::driver::{DevicePtr, PushKernelArg};
use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys, Ptx};
use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// A CUDA failure, with what was being done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaError(pub String);

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CudaError {}

pub type CudaResult<T> = Result<T, CudaError>;

fn err(what: &str, e: impl fmt::Debug) -> CudaError {
    CudaError(format!("{what}: {e:?}"))
}

// ------------------------------------------------------------------------------------ probing

/// Whether libcuda (the driver) can be loaded. Never panics.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether libnvrtc can be loaded. Never panics.
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { nvrtc_sys::is_culib_present() }
}

/// Number of usable CUDA devices; 0 when there is no driver, no device, or the driver fails.
pub fn device_count() -> usize {
    if !driver_present() {
        return 0;
    }
    if cudarc::driver::result::init().is_err() {
        return 0;
    }
    CudaContext::device_count().map(|n| n.max(0) as usize).unwrap_or(0)
}

/// NVRTC's (major, minor) version.
pub fn nvrtc_version() -> CudaResult<(i32, i32)> {
    if !nvrtc_present() {
        return Err(CudaError("libnvrtc.so.13 not found (set LD_LIBRARY_PATH to the CUDA 13 lib folder)".into()));
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two out-pointers to live i32s.
    unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) }.result().map_err(|e| err("nvrtcVersion", e))?;
    Ok((major, minor))
}

// ------------------------------------------------------------------------------------ compiling

/// NVRTC's output for one source and one architecture.
pub struct Compiled {
    /// The CUBIN (machine code for exactly that architecture).
    pub cubin: Vec<u8>,
    /// The compile log, including ptxas' per-kernel register / spill report.
    pub log: String,
}

/// The options every kernel file is compiled with. No fast-math: it changes GELU and exp.
fn compile_options(arch: &str) -> Vec<String> {
    let mut opts = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        "--ptxas-options=-v".to_string(),
        "--ptxas-options=--warn-on-spills".to_string(),
        "--ptxas-options=--warning-as-error".to_string(),
    ];
    if let Ok(inc) = std::env::var("ALBERT_CUDA_INCLUDE") {
        opts.push(format!("--include-path={inc}"));
    }
    opts
}

/// The exact program NVRTC sees: the shared header, then the family's file.
pub fn program_text(src: &Source) -> String {
    format!("#line 1 \"common.cuh\"\n{COMMON}\n#line 1 \"{}.cu\"\n{}", src.name, src.code)
}

/// Compiles one kernel file for `arch` (e.g. "sm_90", "sm_90a") to a CUBIN. A compile error,
/// a register spill or any ptxas warning is an error carrying NVRTC's full log.
pub fn compile(src: &Source, arch: &str) -> CudaResult<Compiled> {
    nvrtc_version()?;
    let text = CString::new(program_text(src)).map_err(|e| err("kernel source has a NUL byte", e))?;
    let name = CString::new(format!("{}.cu", src.name)).expect("no NUL in a file name");
    let prog = nvrtc::create_program(&text, Some(&name)).map_err(|e| err("nvrtcCreateProgram", e))?;
    let opts = compile_options(arch);
    // SAFETY: `prog` is live until destroy_program below; options are plain strings.
    let compiled = unsafe { nvrtc::compile_program(prog, &opts) };
    // SAFETY: as above.
    let log = unsafe { nvrtc::get_program_log(prog) }.map(|l| c_chars_to_string(&l)).unwrap_or_default();
    let result = match compiled {
        Err(e) => Err(CudaError(format!("NVRTC failed on {}.cu for {arch} ({e:?}):\n{log}", src.name))),
        Ok(()) => {
            let mut size = 0usize;
            // SAFETY: `prog` compiled successfully; `size` is a live out-pointer.
            unsafe { nvrtc_sys::nvrtcGetCUBINSize(prog, &mut size) }
                .result()
                .map_err(|e| err("nvrtcGetCUBINSize", e))?;
            let mut cubin = vec![0u8; size];
            // SAFETY: the buffer holds exactly `size` bytes.
            unsafe { nvrtc_sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut c_char) }
                .result()
                .map_err(|e| err("nvrtcGetCUBIN", e))?;
            Ok(Compiled { cubin, log })
        }
    };
    // SAFETY: created above and not destroyed before.
    unsafe { nvrtc::destroy_program(prog) }.map_err(|e| err("nvrtcDestroyProgram", e))?;
    result
}

fn c_chars_to_string(v: &[c_char]) -> String {
    let bytes: Vec<u8> = v.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn cache_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("ALBERT_CUDA_CACHE") {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("albert-cuda"))
}

/// FNV-1a, 64 bits: enough to key a cache (a collision only costs a wrong-arch load error,
/// which falls back to recompiling).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf29ce484222325u64;
    for p in parts {
        for &b in *p {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x100000001b3);
    }
    h
}

/// A CUBIN from the disk cache, or compiled and stored there (atomically: temp file + rename).
fn cubin_cached(src: &Source, arch: &str) -> CudaResult<Vec<u8>> {
    let (maj, min) = nvrtc_version()?;
    let key = fnv1a(&[
        program_text(src).as_bytes(),
        arch.as_bytes(),
        format!("{maj}.{min}").as_bytes(),
        compile_options(arch).join(" ").as_bytes(),
    ]);
    let path = cache_dir().map(|d| d.join(format!("{}-{arch}-{key:016x}.cubin", src.name)));
    if let Some(p) = &path {
        if let Ok(bytes) = std::fs::read(p) {
            return Ok(bytes);
        }
    }
    let c = compile(src, arch)?;
    if let Some(p) = &path {
        // The cache is an optimisation: failing to write it is not an error.
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
            let tmp = p.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &c.cubin).is_ok() {
                let _ = std::fs::rename(&tmp, p);
            }
        }
    }
    Ok(c.cubin)
}

// ------------------------------------------------------------------------------------ devices

/// One device: its context, its stream and its loaded kernels.
pub struct Gpu {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    name: String,
    cc: (i32, i32),
    sm_count: usize,
    l2_bytes: usize,
    max_smem_optin: usize,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<(&'static str, String), CudaFunction>>,
}

impl fmt::Debug for Gpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gpu(cuda:{} {} sm_{}{})", self.ordinal, self.name, self.cc.0, self.cc.1)
    }
}

/// The device `ordinal`, opened once per process and shared.
pub fn gpu(ordinal: usize) -> CudaResult<Arc<Gpu>> {
    static DEVICES: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
    let mut map = DEVICES.get_or_init(Default::default).lock().expect("device table poisoned");
    if let Some(g) = map.get(&ordinal) {
        return Ok(g.clone());
    }
    let n = device_count();
    if ordinal >= n {
        return Err(CudaError(if driver_present() {
            format!("cuda:{ordinal}: this machine has {n} CUDA device(s)")
        } else {
            format!("cuda:{ordinal}: no CUDA driver (libcuda.so.1) found on this machine")
        }));
    }
    let g = Arc::new(Gpu::open(ordinal)?);
    map.insert(ordinal, g.clone());
    Ok(g)
}

impl Gpu {
    fn open(ordinal: usize) -> CudaResult<Gpu> {
        let ctx = CudaContext::new(ordinal).map_err(|e| err(&format!("cuda:{ordinal}: creating the context"), e))?;
        // SAFETY: one stream per device; see the module comment.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| err("creating a stream", e))?;
        let cc = ctx.compute_capability().map_err(|e| err("compute capability", e))?;
        use cudarc::driver::sys::CUdevice_attribute as A;
        let attr = |a: A| ctx.attribute(a).map(|v| v.max(0) as usize).map_err(|e| err("device attribute", e));
        Ok(Gpu {
            ordinal,
            name: ctx.name().unwrap_or_else(|_| "unknown".into()),
            cc,
            sm_count: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            l2_bytes: attr(A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)?,
            max_smem_optin: attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?,
            ctx,
            stream,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        })
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
    /// The marketing name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Compute capability (major, minor).
    pub fn compute_capability(&self) -> (i32, i32) {
        self.cc
    }
    pub fn sm_count(&self) -> usize {
        self.sm_count
    }
    pub fn l2_bytes(&self) -> usize {
        self.l2_bytes
    }
    /// The most dynamic shared memory one block may opt into.
    pub fn max_shared_memory_optin(&self) -> usize {
        self.max_smem_optin
    }
    /// NVRTC's name of this device's architecture, e.g. "sm_90".
    pub fn arch(&self) -> String {
        format!("sm_{}{}", self.cc.0, self.cc.1)
    }
    /// Whether Hopper's wgmma / TMA path (sm_90a) can run here.
    pub fn has_sm90a(&self) -> bool {
        self.cc == (9, 0)
    }

    /// A kernel of `src`, compiling and loading the file on first use.
    pub fn function(&self, src: &'static Source, kernel: &str) -> CudaResult<CudaFunction> {
        let key = (src.name, kernel.to_string());
        if let Some(f) = self.functions.lock().expect("poisoned").get(&key) {
            return Ok(f.clone());
        }
        let module = {
            let mut modules = self.modules.lock().expect("poisoned");
            match modules.get(src.name) {
                Some(m) => m.clone(),
                None => {
                    let arch = if src.sm90a { "sm_90a".to_string() } else { self.arch() };
                    if src.sm90a && !self.has_sm90a() {
                        return Err(CudaError(format!(
                            "{}.cu needs sm_90a; {} is {}",
                            src.name,
                            self.name,
                            self.arch()
                        )));
                    }
                    let cubin = cubin_cached(src, &arch)?;
                    let m = self
                        .ctx
                        .load_module(Ptx::from_binary(cubin))
                        .map_err(|e| err(&format!("loading {}.cu on {}", src.name, self.name), e))?;
                    modules.insert(src.name, m.clone());
                    m
                }
            }
        };
        let f = module.load_function(kernel).map_err(|e| err(&format!("kernel {kernel} in {}.cu", src.name), e))?;
        self.functions.lock().expect("poisoned").insert(key, f.clone());
        Ok(f)
    }

    /// Launches `kernel` of `src` with the given arguments (in the kernel's parameter order).
    pub fn launch(&self, src: &'static Source, kernel: &str, cfg: Launch, args: &[Arg]) -> CudaResult<()> {
        let f = self.function(src, kernel)?;
        if cfg.shared_bytes > 48 * 1024 {
            use cudarc::driver::sys::CUfunction_attribute as FA;
            f.set_attribute(FA::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, cfg.shared_bytes as i32)
                .map_err(|e| err(&format!("{kernel}: raising the shared-memory limit"), e))?;
        }
        let mut b = self.stream.launch_builder(&f);
        for a in args {
            match a {
                Arg::Ptr(p) => b.arg(&p.0),
                Arg::I32(v) => b.arg(v),
                Arg::I64(v) => b.arg(v),
                Arg::U64(v) => b.arg(v),
                Arg::F32(v) => b.arg(v),
                Arg::Dims(d) => b.arg(d),
                Arg::TensorMap(m) => b.arg(m),
            };
        }
        let lc = LaunchConfig { grid_dim: cfg.grid, block_dim: cfg.block, shared_mem_bytes: cfg.shared_bytes };
        // SAFETY: the launchers in `kernels::cuda::*` pass arguments matching each kernel's
        // signature, and pointers into live buffers sized by the shapes they are given.
        unsafe { b.launch(lc) }.map_err(|e| err(&format!("launching {kernel}"), e))?;
        Ok(())
    }

    /// A zero-filled buffer of `bytes` bytes.
    pub fn alloc_zeroed(self: &Arc<Self>, bytes: usize) -> CudaResult<DeviceBuffer> {
        let slice =
            self.stream.alloc_zeros::<u8>(bytes.max(1)).map_err(|e| err(&format!("allocating {bytes} B"), e))?;
        Ok(DeviceBuffer { slice, bytes, gpu: self.clone() })
    }

    /// A buffer of `bytes` bytes whose contents are undefined (every element is written next).
    pub fn alloc_uninit(self: &Arc<Self>, bytes: usize) -> CudaResult<DeviceBuffer> {
        // SAFETY: u8 has no invalid bit patterns; callers overwrite before reading.
        let slice =
            unsafe { self.stream.alloc::<u8>(bytes.max(1)) }.map_err(|e| err(&format!("allocating {bytes} B"), e))?;
        Ok(DeviceBuffer { slice, bytes, gpu: self.clone() })
    }

    /// A new buffer holding `data`.
    pub fn upload(self: &Arc<Self>, data: &[u8]) -> CudaResult<DeviceBuffer> {
        let mut buf = self.alloc_uninit(data.len())?;
        if !data.is_empty() {
            self.stream.memcpy_htod(data, &mut buf.slice).map_err(|e| err("copying host -> device", e))?;
        }
        Ok(buf)
    }

    /// Bytes `[offset, offset + len)` of `buf`, copied to the host (waits for queued work).
    pub fn download(&self, buf: &DeviceBuffer, offset: usize, len: usize) -> CudaResult<Vec<u8>> {
        buf.check_range(offset, len)?;
        let mut out = vec![0u8; len];
        if len > 0 {
            let view = buf.slice.slice(offset..offset + len);
            self.stream.memcpy_dtoh(&view, &mut out).map_err(|e| err("copying device -> host", e))?;
            self.synchronize()?;
        }
        Ok(out)
    }

    /// Copies `len` bytes between device buffers (stream-ordered).
    pub fn copy(
        &self,
        dst: &mut DeviceBuffer,
        dst_off: usize,
        src: &DeviceBuffer,
        src_off: usize,
        len: usize,
    ) -> CudaResult<()> {
        dst.check_range(dst_off, len)?;
        src.check_range(src_off, len)?;
        if len == 0 {
            return Ok(());
        }
        let s = src.slice.slice(src_off..src_off + len);
        let mut d = dst.slice.slice_mut(dst_off..dst_off + len);
        self.stream.memcpy_dtod(&s, &mut d).map_err(|e| err("copying device -> device", e))
    }

    /// Zeroes `len` bytes of `buf` from `offset`.
    pub fn memset_zero(&self, buf: &mut DeviceBuffer, offset: usize, len: usize) -> CudaResult<()> {
        buf.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let mut d = buf.slice.slice_mut(offset..offset + len);
        self.stream.memset_zeros(&mut d).map_err(|e| err("memset", e))
    }

    /// Waits for all queued work; surfaces asynchronous kernel faults.
    pub fn synchronize(&self) -> CudaResult<()> {
        self.stream.synchronize().map_err(|e| err(&format!("cuda:{} synchronize", self.ordinal), e))
    }

    /// Milliseconds of GPU time taken by the work `f` queues (timed with events on the stream).
    pub fn time_ms(&self, f: impl FnOnce() -> CudaResult<()>) -> CudaResult<f32> {
        use cudarc::driver::sys::CUevent_flags;
        let start = self
            .stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| err("recording an event", e))?;
        f()?;
        let end = self
            .stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| err("recording an event", e))?;
        end.synchronize().map_err(|e| err("waiting for an event", e))?;
        start.elapsed_ms(&end).map_err(|e| err("event timing", e))
    }

    /// (free, total) device memory in bytes.
    pub fn memory_info(&self) -> CudaResult<(usize, usize)> {
        self.ctx.mem_get_info().map_err(|e| err("cuMemGetInfo", e))
    }
}

// ------------------------------------------------------------------------------------ buffers

/// Device memory owned by one tensor storage: raw bytes, typed by whoever holds it.
pub struct DeviceBuffer {
    slice: CudaSlice<u8>,
    bytes: usize,
    gpu: Arc<Gpu>,
}

impl fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceBuffer(cuda:{}, {} B)", self.gpu.ordinal, self.bytes)
    }
}

impl DeviceBuffer {
    pub fn len_bytes(&self) -> usize {
        self.bytes
    }
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    fn check_range(&self, offset: usize, len: usize) -> CudaResult<()> {
        if offset.checked_add(len).is_none_or(|end| end > self.bytes) {
            return Err(CudaError(format!("device range {offset}..+{len} outside a {} B buffer", self.bytes)));
        }
        Ok(())
    }

    /// The device address of byte `offset` (which must lie inside the buffer, or at its end).
    pub fn ptr(&self, offset: usize) -> DevPtr {
        assert!(offset <= self.bytes, "device offset {offset} beyond a {} B buffer", self.bytes);
        let (base, _sync) = self.slice.device_ptr(&self.gpu.stream);
        DevPtr(base + offset as u64)
    }

    /// A copy of the whole buffer (a new allocation).
    pub fn duplicate(&self) -> CudaResult<DeviceBuffer> {
        let mut out = self.gpu.alloc_uninit(self.bytes)?;
        self.gpu.copy(&mut out, 0, self, 0, self.bytes)?;
        Ok(out)
    }
}

/// A raw device address, passed to kernels as a pointer argument. Launchers take these with
/// the element count implied by the shapes they are given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevPtr(pub u64);

impl DevPtr {
    /// The address `bytes` further on.
    pub fn add_bytes(self, bytes: usize) -> DevPtr {
        DevPtr(self.0 + bytes as u64)
    }
}

/// Up to 6 dimensions' sizes and strides (in elements), passed to a kernel by value; matches
/// `struct Dims6` in common.cuh.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dims6 {
    pub rank: i32,
    pub pad: i32,
    pub shape: [i64; 6],
    pub stride: [i64; 6],
}

// SAFETY: plain-old-data with the same layout as the C struct.
unsafe impl DeviceRepr for Dims6 {}

/// One kernel argument.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    Ptr(DevPtr),
    I32(i32),
    I64(i64),
    U64(u64),
    F32(f32),
    Dims(Dims6),
    /// A TMA descriptor, passed by value (`const __grid_constant__` 128-byte parameter).
    TensorMap(TensorMap),
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_bytes: u32,
}

impl Launch {
    /// A 1-D launch of `threads`-thread blocks covering `n` items, one per thread.
    pub fn linear(n: usize, threads: u32) -> Launch {
        let blocks = n.div_ceil(threads as usize).clamp(1, i32::MAX as usize) as u32;
        Launch { grid: (blocks, 1, 1), block: (threads, 1, 1), shared_bytes: 0 }
    }
    /// One block of `threads` threads per row.
    pub fn rows(rows: usize, threads: u32) -> Launch {
        Launch { grid: (rows.max(1) as u32, 1, 1), block: (threads, 1, 1), shared_bytes: 0 }
    }
}

// ------------------------------------------------------------------------------------ TMA

/// A TMA descriptor (CUtensorMap: 128 opaque bytes, 64-byte aligned), built on the host by
/// [`tensor_map_bf16`] and passed to a kernel by value as a `const __grid_constant__` parameter.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorMap(pub [u64; 16]);

// SAFETY: plain-old-data with the size and alignment of CUtensorMap.
unsafe impl DeviceRepr for TensorMap {}

/// The tiled TMA map of a bf16 tensor at `base` with `dims` (1 to 5, innermost first),
/// `strides_bytes[i]` the byte stride of dimension i + 1 (multiples of 16), copied in boxes of
/// `box_dims` elements into shared memory with the 128-byte swizzle (so box_dims[0] <= 64);
/// elements outside the tensor read as zero.
pub fn tensor_map_bf16(base: DevPtr, dims: &[u64], strides_bytes: &[u64], box_dims: &[u32]) -> CudaResult<TensorMap> {
    use cudarc::driver::sys;
    let rank = dims.len();
    if !(1..=5).contains(&rank) || strides_bytes.len() + 1 != rank || box_dims.len() != rank {
        return Err(CudaError(format!(
            "tensor map: rank {rank} with {} strides, {} box dims",
            strides_bytes.len(),
            box_dims.len()
        )));
    }
    let mut map = sys::CUtensorMap { opaque: [0; 16] };
    let element_strides = [1u32; 5];
    // SAFETY: every array holds `rank` (strides: rank - 1) entries; the map is a live out-pointer.
    unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut map,
            sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            rank as u32,
            base.0 as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides_bytes.as_ptr(),
            box_dims.as_ptr(),
            element_strides.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    }
    .result()
    .map_err(|e| {
        err(&format!("cuTensorMapEncodeTiled (dims {dims:?}, strides {strides_bytes:?}, box {box_dims:?})"), e)
    })?;
    Ok(TensorMap(map.opaque))
}

// ------------------------------------------------------------------------------------ NCCL
//
// Data-parallel training sums the gradients of every process (one per GPU) with one NCCL
// all-reduce per step. libnccl (libnccl.so.2) is loaded lazily, like libcuda: only when a
// communicator is made, never by probing devices or launching kernels. How the ranks meet: rank 0
// makes an [`NcclId`] and every rank receives its 128 bytes before calling [`NcclComm::new`]
// (albert sends it with an MPI broadcast; a file on a shared filesystem works as well).

/// Whether libnccl can be loaded. Never panics.
pub fn nccl_present() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { cudarc::nccl::sys::is_culib_present() }
}

/// The NCCL version as an integer (e.g. 22703 for 2.27.3).
pub fn nccl_version() -> CudaResult<i32> {
    if !nccl_present() {
        return Err(CudaError("NCCL: libnccl.so.2 not found on the library path".into()));
    }
    cudarc::nccl::result::get_nccl_version().map_err(|e| err("ncclGetVersion", e))
}

/// The id every rank of one NCCL communicator is created with (128 opaque bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NcclId(pub [u8; 128]);

impl NcclId {
    /// A fresh id (made once, by rank 0, then sent to the other ranks).
    pub fn new() -> CudaResult<NcclId> {
        if !nccl_present() {
            return Err(CudaError("NCCL: libnccl.so.2 not found on the library path".into()));
        }
        let id = cudarc::nccl::result::get_uniqueid().map_err(|e| err("ncclGetUniqueId", e))?;
        Ok(NcclId(id.internal.map(|c| c as u8)))
    }
}

/// One rank's NCCL communicator, bound to one device and issuing on that device's stream.
pub struct NcclComm {
    comm: cudarc::nccl::sys::ncclComm_t,
    gpu: Arc<Gpu>,
    rank: usize,
    world: usize,
}

// SAFETY: an NCCL communicator may be used from any thread, one call at a time; every method
// takes &self and the trainer calls them from one thread.
unsafe impl Send for NcclComm {}

impl fmt::Debug for NcclComm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NcclComm(rank {} of {} on cuda:{})", self.rank, self.world, self.gpu.ordinal)
    }
}

impl NcclComm {
    /// Joins the communicator `id` as `rank` of `world` on `gpu`. Blocks until every rank has
    /// joined (NCCL's own bootstrap over TCP).
    pub fn new(gpu: &Arc<Gpu>, id: &NcclId, rank: usize, world: usize) -> CudaResult<NcclComm> {
        if rank >= world {
            return Err(CudaError(format!("NCCL: rank {rank} is outside a world of {world}")));
        }
        if !nccl_present() {
            return Err(CudaError("NCCL: libnccl.so.2 not found on the library path".into()));
        }
        gpu.ctx.bind_to_thread().map_err(|e| err("binding the context before ncclCommInitRank", e))?;
        let uid = cudarc::nccl::sys::ncclUniqueId { internal: id.0.map(|b| b as c_char) };
        let mut comm = std::mem::MaybeUninit::uninit();
        // SAFETY: `comm` is a valid out-pointer; the id is the 128 bytes rank 0 made.
        unsafe { cudarc::nccl::result::comm_init_rank(comm.as_mut_ptr(), world as i32, uid, rank as i32) }
            .map_err(|e| err(&format!("ncclCommInitRank (rank {rank} of {world}, cuda:{})", gpu.ordinal), e))?;
        // SAFETY: initialised by the successful call above.
        let comm = unsafe { comm.assume_init() };
        Ok(NcclComm { comm, gpu: gpu.clone(), rank, world })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Sums `count` f32 values at `buf` (on this communicator's device) over all ranks, in place,
    /// queued on the device's stream like a kernel launch.
    pub fn all_reduce_sum_f32(&self, buf: DevPtr, count: usize) -> CudaResult<()> {
        use cudarc::nccl::sys::{ncclDataType_t, ncclRedOp_t};
        let p = buf.0 as *mut std::ffi::c_void;
        // SAFETY: `buf` holds `count` f32 on this device (the caller's contract); in-place
        // all-reduce (send == receive) is allowed by NCCL; the stream belongs to this device.
        unsafe {
            cudarc::nccl::result::all_reduce(
                p,
                p,
                count,
                ncclDataType_t::ncclFloat32,
                ncclRedOp_t::ncclSum,
                self.comm,
                self.gpu.stream.cu_stream() as _,
            )
        }
        .map(|_| ())
        .map_err(|e| err(&format!("ncclAllReduce of {count} f32 (rank {} of {})", self.rank, self.world), e))
    }
}

impl Drop for NcclComm {
    fn drop(&mut self) {
        // SAFETY: a live communicator, destroyed once.
        let _ = unsafe { cudarc::nccl::result::comm_destroy(self.comm) };
    }
}

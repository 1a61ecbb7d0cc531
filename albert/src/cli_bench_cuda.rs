//! `albert bench ... --device cuda`: our GPU kernels and model steps, timed on the device.
//!
//! - gemm and attention time one kernel launch sequence with CUDA events (median of `iters`
//!   after `warmup`), on buffers allocated once: the kernel's own time, as PyTorch's numbers in
//!   benches/torch_gpu.py are measured.
//! - forward / train time a whole step of the eager engine (host work included) by wall clock
//!   between device synchronisations.
//!
//! Output: a text line, or with `--json` one object with "median_ms", "tflops", "tokens_per_s"
//! (model steps) and "device_name", so scripts/gpu-check.sh can set it beside PyTorch's.

use crate::cli_bench::forward_flops;
use crate::config::AlbertConfig;
use crate::model::{Albert, Heads, Inputs, Mode};
use autograd::{ParamStore, Tape};
use engine::{DType, Device, Rng, Tensor};
use kernels::cpu::matmul::Gemm;
use kernels::cuda::attention::{attention_fwd, AttnLayout, AttnShape};
use kernels::cuda::gemm::{gemm, gemm_flops, Epilogue};
use kernels::cuda::{upload_f32, Dt, Gpu};
use std::sync::Arc;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn dt_of(dtype: DType) -> Result<Dt, String> {
    engine::cuda_dt(dtype).ok_or_else(|| format!("--dtype {dtype}: the GPU kernels take f32 or bf16"))
}

fn gpu_of(device: Device) -> Result<Arc<Gpu>, String> {
    device.gpu().map_err(|e| e.to_string())
}

/// Times `f` (which queues GPU work) with events: median milliseconds over `iters`.
fn time_events(
    g: &Gpu,
    warmup: usize,
    iters: usize,
    mut f: impl FnMut() -> Result<(), String>,
) -> Result<Vec<f64>, String> {
    for _ in 0..warmup {
        f()?;
    }
    g.synchronize().map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let mut inner = Ok(());
        let ms = g
            .time_ms(|| {
                inner = f();
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        inner?;
        times.push(f64::from(ms));
    }
    Ok(times)
}

fn report(json: bool, fields: serde_json::Value, text: String) {
    if json {
        println!("{fields}");
    } else {
        println!("{text}");
    }
}

fn random(g: &Arc<Gpu>, n: usize, dt: Dt, seed: u64) -> Result<kernels::cuda::DeviceBuffer, String> {
    let mut rng = Rng::new(seed);
    let v: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32 * 2.0 - 1.0).collect();
    upload_f32(g, &v, dt).map_err(|e| e.to_string())
}

/// One matmul C[m, n] = A[m, k] B (B stored [n, k] with `trans_b`, as a Linear weight).
#[allow(clippy::too_many_arguments)]
pub fn gemm_bench(
    device: Device,
    dtype: DType,
    m: usize,
    n: usize,
    k: usize,
    trans_b: bool,
    warmup: usize,
    iters: usize,
    json: bool,
) -> Result<(), String> {
    let g = gpu_of(device)?;
    let dt = dt_of(dtype)?;
    let (a, b, c) = (
        random(&g, m * k, dt, 1)?,
        random(&g, k * n, dt, 2)?,
        g.alloc_zeroed(m * n * dt.size()).map_err(|e| e.to_string())?,
    );
    let p = Gemm::new(m, n, k, false, trans_b);
    let times = time_events(&g, warmup, iters, || {
        gemm(&g, dt, &p, a.ptr(0), b.ptr(0), c.ptr(0), None, Epilogue::None, None).map_err(|e| e.to_string())
    })?;
    let ms = median(times.clone());
    let tflops = gemm_flops(&p) / ms / 1e9;
    report(
        json,
        serde_json::json!({"bench": "gemm", "m": m, "n": n, "k": k, "dtype": dtype.name(), "trans_b": trans_b,
            "median_ms": ms, "tflops": tflops, "times_ms": times, "device_name": g.name()}),
        format!(
            "gemm {m}x{n}x{k} {} trans_b={trans_b} on {}: median {ms:.3} ms, {tflops:.1} TFLOP/s",
            dtype.name(),
            g.name()
        ),
    );
    Ok(())
}

/// The fused attention forward at [B, S, N, D] (the layout the QKV projections produce).
#[allow(clippy::too_many_arguments)]
pub fn attention_bench(
    device: Device,
    dtype: DType,
    batch: usize,
    heads: usize,
    seq: usize,
    head_dim: usize,
    warmup: usize,
    iters: usize,
    json: bool,
) -> Result<(), String> {
    let g = gpu_of(device)?;
    let dt = dt_of(dtype)?;
    let n = batch * seq * heads * head_dim;
    let (q, k, v) = (random(&g, n, dt, 1)?, random(&g, n, dt, 2)?, random(&g, n, dt, 3)?);
    let o = g.alloc_zeroed(n * dt.size()).map_err(|e| e.to_string())?;
    let lse = g.alloc_zeroed(batch * heads * seq * 4).map_err(|e| e.to_string())?;
    let shape =
        AttnShape { b: batch, n: heads, s_q: seq, s_k: seq, d: head_dim, scale: 1.0 / (head_dim as f32).sqrt() };
    let l = AttnLayout { batch_stride: seq * heads * head_dim, head_stride: head_dim, row_stride: heads * head_dim };
    let times = time_events(&g, warmup, iters, || {
        attention_fwd(&g, dt, &shape, q.ptr(0), &l, k.ptr(0), &l, v.ptr(0), &l, None, o.ptr(0), &l, lse.ptr(0))
            .map_err(|e| e.to_string())
    })?;
    let ms = median(times.clone());
    let flops = 4.0 * (batch * heads * seq * seq * head_dim) as f64;
    let tflops = flops / ms / 1e9;
    report(
        json,
        serde_json::json!({"bench": "attention_fwd", "batch": batch, "heads": heads, "seq": seq, "head_dim": head_dim,
            "dtype": dtype.name(), "median_ms": ms, "tflops": tflops, "times_ms": times, "device_name": g.name()}),
        format!(
            "attention fwd b{batch} n{heads} s{seq} d{head_dim} {} on {}: median {ms:.3} ms, {tflops:.1} TFLOP/s",
            dtype.name(),
            g.name()
        ),
    );
    Ok(())
}

/// A forward (every position scored) or training step (MLM at masked positions + SOP, backward,
/// no optimizer) of ALBERT on the GPU, f32 or bf16 autocast.
#[allow(clippy::too_many_arguments)]
pub fn model_bench(
    device: Device,
    train: bool,
    c: &AlbertConfig,
    preset: &str,
    b: usize,
    s: usize,
    bf16: bool,
    warmup: usize,
    iters: usize,
    json: bool,
) -> Result<(), String> {
    let g = gpu_of(device)?;
    let err = |e: engine::Error| e.to_string();
    let mut store = ParamStore::new();
    let mut model = Albert::new(c, Heads::pretraining(), &mut store, 0).map_err(err)?;
    store.to_device(device).map_err(err)?;
    if bf16 {
        model.compute_dtype = DType::BF16;
    }
    let mut rng = Rng::new(1);
    let ids: Vec<i64> = (0..b * s).map(|_| 5 + rng.below(c.vocab_size as u64 - 5) as i64).collect();
    let types: Vec<i64> = (0..b * s).map(|i| i64::from(i % s >= s / 2)).collect();
    let labels: Vec<i64> = ids.iter().map(|&id| if rng.next_f64() < 0.15 { id } else { -100 }).collect();
    let masked = labels.iter().filter(|&&l| l != -100).count();
    let inputs = Inputs {
        input_ids: Tensor::from_i64(ids, &[b, s]).map_err(err)?,
        attention_mask: None,
        token_type_ids: Some(Tensor::from_i64(types, &[b, s]).map_err(err)?),
    };
    let labels = Tensor::from_i64(labels, &[b, s]).map_err(err)?;
    let sop = Tensor::from_i64((0..b as i64).map(|i| i % 2).collect(), &[b]).map_err(err)?;
    let mut step = || -> Result<f64, String> {
        g.synchronize().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        if train {
            let tape = Tape::new();
            let l = model.pretraining_losses(&tape, &store, &inputs, &labels, &sop, &mut Mode::Eval).map_err(err)?;
            store.zero_grad();
            tape.backward(&l.total, &mut store).map_err(err)?;
        } else {
            let tape = Tape::no_grad();
            let enc = model.encode(&tape, &store, &inputs, &mut Mode::Eval, false).map_err(err)?;
            model.mlm_logits(&tape, &store, &enc.sequence, None).map_err(err)?;
            if let Some(p) = &enc.pooled {
                model.order_logits(&tape, &store, p, &mut Mode::Eval).map_err(err)?;
            }
        }
        g.synchronize().map_err(|e| e.to_string())?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..warmup {
        step()?;
    }
    let times = (0..iters).map(|_| step()).collect::<Result<Vec<f64>, String>>()?;
    let ms = median(times.clone());
    let flops = if train { 3.0 * forward_flops(c, b, s, masked) } else { forward_flops(c, b, s, b * s) };
    let (free, total) = g.memory_info().map_err(|e| e.to_string())?;
    let what = if train { "train" } else { "forward" };
    let precision = if bf16 { "bf16-autocast" } else { "f32" };
    report(
        json,
        serde_json::json!({"bench": what, "preset": preset, "batch": b, "seq": s, "precision": precision,
            "median_ms": ms, "tokens_per_s": (b * s) as f64 / ms * 1e3, "tflops": flops / ms / 1e9,
            "device_mem_in_use_mb": (total - free) as f64 / 1048576.0, "times_ms": times, "device_name": g.name()}),
        format!(
            "{what} {preset} b{b} x s{s} {precision} on {}: median {ms:.2} ms, {:.0} tokens/s, {:.1} TFLOP/s",
            g.name(),
            (b * s) as f64 / ms * 1e3,
            flops / ms / 1e9
        ),
    );
    Ok(())
}

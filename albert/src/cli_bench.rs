//! `albert bench gemm|forward|train`: times one matmul or our ALBERT at a given shape (random
//! init, random ids): warm-up, then the median of K runs, printed as ms, tokens/s, GFLOP/s (matmul
//! FLOPs counted by hand, the way ../shared/reference/perf.md counts PyTorch's), % of the
//! measured FMA peak and the process's peak RSS. `--vs-pytorch` runs benches/torch_albert.py on
//! the same configuration in a subprocess, alternating with ours, and prints the ratios;
//! `--profile` splits one step's time by op kind (autograd's off-by-default timer).

use crate::config::AlbertConfig;
use crate::model::{Albert, Heads, Inputs, Mode};
use autograd::profile::{self, Kind};
use autograd::{ParamStore, Tape};
use engine::{Rng, Tensor};
use kernels::cpu::matmul::Gemm;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchWhat {
    /// One f32 matmul C = A op(B) of --m x --k times --k x --n (default 1024^3).
    Gemm,
    /// Inference: encoder + pooler + MLM logits at every position + SOP logits, no tape
    /// (with --encoder-only: embeddings + encoder + pooler, as transformers' AlbertModel).
    Forward,
    /// One training step without the optimizer: MLM (at the masked positions) + SOP loss, backward.
    Train,
    /// The fused attention forward at [B, S, heads x head-dim] (GPU only: --device cuda).
    Attention,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub what: BenchWhat,
    /// A named configuration (tiny, base, large, ...); default base.
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// A Hugging Face config.json instead of a preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Size of the rayon pool (default: rayon's, RAYON_NUM_THREADS or one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed iterations (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Fraction of positions with an MLM label in `train` (as in pretraining).
    #[arg(long, default_value_t = 0.15)]
    pub mlm_prob: f64,
    /// `train`: keep only each layer's input and recompute the layer inside backward.
    #[arg(long)]
    pub recompute: bool,
    /// `forward`: the encoder only (AlbertModel: embeddings, layers, pooler), no heads.
    #[arg(long)]
    pub encoder_only: bool,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also run benches/torch_albert.py on the same configuration, alternating, and print ratios.
    #[arg(long)]
    pub vs_pytorch: bool,
    /// Alternating rounds (ours, PyTorch) with --vs-pytorch.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// The Python interpreter for --vs-pytorch.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// After timing, run one more step with the per-op-kind timer on and print the split.
    #[arg(long)]
    pub profile: bool,
    /// `gemm`: rows of A and C.
    #[arg(long, default_value_t = 1024)]
    pub m: usize,
    /// `gemm`: columns of op(B) and C.
    #[arg(long, default_value_t = 1024)]
    pub n: usize,
    /// `gemm`: the inner dimension.
    #[arg(long, default_value_t = 1024)]
    pub k: usize,
    /// `gemm`: B stored [n, k] and used transposed, as a Linear layer's weight.
    #[arg(long)]
    pub trans_b: bool,
    /// `gemm`: A stored [k, m] and used transposed, as in a weight gradient dY^T X.
    #[arg(long)]
    pub trans_a: bool,
    /// cpu, cuda or cuda:N. On a GPU, gemm and attention are timed with CUDA events and model
    /// steps by wall clock between synchronisations (see cli_bench_cuda.rs).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Storage type of `gemm` and `attention` on the GPU: f32 (TF32 tensor cores) or bf16.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// bf16 autocast for GPU forward / train (f32 master weights).
    #[arg(long)]
    pub bf16: bool,
    /// Attention heads and head width for `attention` (default: albert-base's 12 x 64).
    #[arg(long, default_value_t = 12)]
    pub heads: usize,
    #[arg(long, default_value_t = 64)]
    pub head_dim: usize,
}

/// Matmul FLOPs (2 per multiply-add) of one forward, as perf.md counts them:
/// per token per layer 8H^2 + 4H*I + 4*S*H, plus 2EH (projection), 2H^2 per sequence (pooler),
/// and the MLM head 2HE + 2EV per scored position.
pub fn forward_flops(c: &AlbertConfig, b: usize, s: usize, scored: usize) -> f64 {
    let (h, e, i, v, l) = (
        c.hidden_size as f64,
        c.embedding_size as f64,
        c.intermediate_size as f64,
        c.vocab_size as f64,
        c.num_hidden_layers as f64,
    );
    let tokens = (b * s) as f64;
    tokens * (l * (8.0 * h * h + 4.0 * h * i + 4.0 * s as f64 * h) + 2.0 * e * h)
        + b as f64 * 2.0 * h * h
        + scored as f64 * (2.0 * h * e + 2.0 * e * v)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The process's peak resident set (VmHWM) in MiB, where /proc is available.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// One timed run: warm-up calls, then `iters` timed calls of `step` (seconds each).
fn time_runs(warmup: usize, iters: usize, step: &mut dyn FnMut() -> Result<(), String>) -> Result<Vec<f64>, String> {
    for _ in 0..warmup {
        step()?;
    }
    (0..iters)
        .map(|_| {
            let t0 = Instant::now();
            step()?;
            Ok(t0.elapsed().as_secs_f64())
        })
        .collect()
}

/// What one side measured.
struct Run {
    times: Vec<f64>,
    flops: f64,
    /// Tokens (gemm: rows of A) per step.
    tokens: usize,
}

impl Run {
    fn median(&self) -> f64 {
        median(&self.times)
    }
}

/// The workload being timed, built once.
enum Workload {
    Gemm { g: Gemm, a: Vec<f32>, b: Vec<f32>, c: Vec<f32> },
    Model(Box<ModelBench>),
}

struct ModelBench {
    model: Albert,
    store: ParamStore,
    inputs: Inputs,
    labels: Tensor,
    sop: Tensor,
    masked: usize,
}

impl Workload {
    fn build(args: &BenchArgs, c: &AlbertConfig) -> Result<Workload, String> {
        if args.what == BenchWhat::Gemm {
            let (m, n, k) = (args.m, args.n, args.k);
            if m == 0 || n == 0 || k == 0 {
                return Err("bench gemm: --m, --n and --k must be positive".into());
            }
            let mut rng = Rng::new(1);
            let mut fill = |len: usize| (0..len).map(|_| rng.next_f64() as f32 * 2.0 - 1.0).collect::<Vec<f32>>();
            let (a, b) = (fill(m * k), fill(k * n));
            return Ok(Workload::Gemm { g: Gemm::new(m, n, k, args.trans_a, args.trans_b), a, b, c: vec![0.0; m * n] });
        }
        let (b, s) = (args.batch, args.seq);
        let mut store = ParamStore::new();
        let mut model = Albert::new(c, Heads::pretraining(), &mut store, 0).map_err(|e| e.to_string())?;
        model.recompute = args.recompute;
        let mut rng = Rng::new(1);
        let ids: Vec<i64> = (0..b * s).map(|_| 5 + rng.below(c.vocab_size as u64 - 5) as i64).collect();
        let types: Vec<i64> = (0..b * s).map(|i| i64::from(i % s >= s / 2)).collect();
        let err = |e: engine::Error| e.to_string();
        let inputs = Inputs {
            input_ids: Tensor::from_i64(ids.clone(), &[b, s]).map_err(err)?,
            attention_mask: None,
            token_type_ids: Some(Tensor::from_i64(types, &[b, s]).map_err(err)?),
        };
        let labels: Vec<i64> = ids.iter().map(|&id| if rng.next_f64() < args.mlm_prob { id } else { -100 }).collect();
        let masked = labels.iter().filter(|&&l| l != -100).count();
        let labels = Tensor::from_i64(labels, &[b, s]).map_err(err)?;
        let sop = Tensor::from_i64((0..b as i64).map(|i| i % 2).collect(), &[b]).map_err(err)?;
        Ok(Workload::Model(Box::new(ModelBench { model, store, inputs, labels, sop, masked })))
    }

    fn flops(&self, args: &BenchArgs, c: &AlbertConfig) -> f64 {
        match self {
            Workload::Gemm { g, .. } => g.flops() as f64,
            Workload::Model(mb) => {
                let (b, s) = (args.batch, args.seq);
                match args.what {
                    BenchWhat::Forward if args.encoder_only => forward_flops(c, b, s, 0),
                    BenchWhat::Forward => forward_flops(c, b, s, b * s),
                    // backward ~ 2x forward; the MLM head scores only the masked positions.
                    // Recomputation's extra forward is not counted: it is overhead, not work.
                    _ => 3.0 * forward_flops(c, b, s, mb.masked),
                }
            }
        }
    }

    fn step(&mut self, args: &BenchArgs) -> Result<(), String> {
        let err = |e: engine::Error| e.to_string();
        match self {
            Workload::Gemm { g, a, b, c } => {
                kernels::cpu::matmul::gemm(g, a, b, c, None);
            }
            Workload::Model(mb) => {
                let mb = &mut **mb;
                profile::mark();
                match args.what {
                    BenchWhat::Forward if args.encoder_only => {
                        let tape = Tape::no_grad();
                        mb.model.encode(&tape, &mb.store, &mb.inputs, &mut Mode::Eval, false).map_err(err)?;
                    }
                    BenchWhat::Forward => {
                        crate::cli_forward::forward_outputs(&mb.model, &mb.store, &mb.inputs)?;
                    }
                    _ => {
                        let tape = Tape::new();
                        let l = mb
                            .model
                            .pretraining_losses(&tape, &mb.store, &mb.inputs, &mb.labels, &mb.sop, &mut Mode::Eval)
                            .map_err(err)?;
                        profile::time(Kind::Other, || mb.store.zero_grad());
                        tape.backward(&l.total, &mut mb.store).map_err(err)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The configuration a model bench runs, and its name for the output.
fn config(args: &BenchArgs) -> Result<(AlbertConfig, String), String> {
    match (&args.config, &args.preset) {
        (Some(path), _) => Ok((AlbertConfig::from_file(path)?, path.display().to_string())),
        (None, p) => {
            let name = p.clone().unwrap_or_else(|| "base".into());
            Ok((AlbertConfig::preset(&name)?, name))
        }
    }
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    let device = engine::Device::parse(&args.device).map_err(|e| format!("--device: {e}"))?;
    if device.is_cuda() {
        return run_cuda(args, device);
    }
    if args.what == BenchWhat::Attention {
        return Err("bench attention times the CUDA kernel: add --device cuda (on the CPU the fused attention is part of forward/train)".into());
    }
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| format!("bench: cannot size the thread pool to {n}: {e}"))?;
    }
    let (c, name) = config(args)?;
    if args.what != BenchWhat::Gemm && (args.seq > c.max_position_embeddings || args.batch == 0 || args.seq == 0) {
        return Err(format!("bench: need 1 <= seq <= {} and a positive batch", c.max_position_embeddings));
    }
    if args.iters == 0 {
        return Err("bench: --iters must be positive".into());
    }
    if args.encoder_only && args.what != BenchWhat::Forward {
        return Err("bench: --encoder-only applies to `forward` only".into());
    }
    if args.recompute && args.what != BenchWhat::Train {
        return Err("bench: --recompute applies to `train` only".into());
    }
    let threads = rayon::current_num_threads();
    let peak = kernels::cpu::peak::fma_gflops_all_threads(3);
    let mut work = Workload::build(args, &c)?;
    let flops = work.flops(args, &c);
    let tokens = if args.what == BenchWhat::Gemm { args.m } else { args.batch * args.seq };
    let label = describe(args, &name, threads);
    let rounds = if args.vs_pytorch { args.rounds.max(1) } else { 1 };
    let script = if args.vs_pytorch { Some(torch_script()?) } else { None };
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let times = time_runs(args.warmup, args.iters, &mut || work.step(args))?;
        let ours = Run { times, flops, tokens };
        report(args, &label, "ours", round, &ours, peak, peak_rss_mb());
        if let Some(script) = &script {
            let torch = run_torch(args, script, threads, &c)?;
            report(args, &label, "pytorch", round, &torch.run, peak, torch.peak_rss_mb);
            ratios.push(torch.run.median() / ours.median());
        }
    }
    if !ratios.is_empty() {
        let med = median(&ratios);
        if args.json {
            println!("{}", json!({"bench": label, "ratio_pytorch_time_over_ours": ratios, "median_ratio": med}));
        } else {
            let list: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
            println!("{label}: PyTorch time / ours per round: {} (median {med:.2}x)", list.join(", "));
        }
    }
    if args.profile {
        profile_step(args, &mut work, &label)?;
    }
    Ok(())
}

fn describe(args: &BenchArgs, name: &str, threads: usize) -> String {
    match args.what {
        BenchWhat::Gemm => {
            let ta = if args.trans_a { "^T" } else { "" };
            let tb = if args.trans_b { "^T" } else { "" };
            format!("gemm {}x{}{ta} * {}x{}{tb}, {threads} threads", args.m, args.k, args.k, args.n)
        }
        w => {
            let mut s = format!("{w:?} {name} b{} x s{}, {threads} threads", args.batch, args.seq).to_lowercase();
            if args.encoder_only {
                s.push_str(", encoder only");
            }
            if args.recompute {
                s.push_str(", recompute");
            }
            s
        }
    }
}

fn report(args: &BenchArgs, label: &str, side: &str, round: usize, r: &Run, peak: Option<f64>, rss: Option<f64>) {
    let t = r.median();
    let gflops = r.flops / t / 1e9;
    let pct = peak.map(|p| 100.0 * gflops / p);
    if args.json {
        let v = json!({"bench": label, "impl": side, "round": round + 1, "median_ms": t * 1e3,
            "tokens_per_s": r.tokens as f64 / t, "gflops": gflops, "fma_peak_gflops": peak,
            "pct_of_fma_peak": pct, "peak_rss_mb": rss, "iters": r.times.len(),
            "times_ms": r.times.iter().map(|x| x * 1e3).collect::<Vec<_>>(),
            "kernel_path": kernels::cpu::isa().name()});
        println!("{v}");
        return;
    }
    let unit = if args.what == BenchWhat::Gemm { "rows/s" } else { "tokens/s" };
    let pct =
        pct.map_or("peak unknown".into(), |p| format!("{p:.0}% of the {:.0} GFLOP/s FMA peak", peak.unwrap_or(0.0)));
    let rss = rss.map_or("?".into(), |m| format!("{m:.0} MiB"));
    println!(
        "{label} [{side}, round {}]: median {:.2} ms over {} iters, {:.0} {unit}, {gflops:.1} GFLOP/s ({pct}), peak RSS {rss}",
        round + 1,
        t * 1e3,
        r.times.len(),
        r.tokens as f64 / t,
    );
}

/// One profiled step: the time per op kind, forward and backward.
fn profile_step(args: &BenchArgs, work: &mut Workload, label: &str) -> Result<(), String> {
    if matches!(work, Workload::Gemm { .. }) {
        return Err("bench: --profile splits model steps; a gemm is one op".into());
    }
    profile::set_enabled(true);
    profile::reset();
    let t0 = Instant::now();
    work.step(args)?;
    let total = t0.elapsed().as_secs_f64();
    profile::set_enabled(false);
    let split = profile::totals();
    let accounted: f64 = split.iter().map(|(_, s)| (s.forward + s.backward).as_secs_f64()).sum();
    if args.json {
        let mut kinds = serde_json::Map::new();
        for (k, s) in &split {
            kinds.insert(
                k.name().into(),
                json!({"forward_ms": s.forward.as_secs_f64() * 1e3, "backward_ms": s.backward.as_secs_f64() * 1e3}),
            );
        }
        let v: Value = json!({"bench": label, "profile": kinds, "step_ms": total * 1e3,
            "unaccounted_ms": (total - accounted) * 1e3});
        println!("{v}");
        return Ok(());
    }
    println!("profile of one step ({:.1} ms):", total * 1e3);
    println!("  {:<11} {:>9} {:>9} {:>9} {:>6}", "op kind", "fwd ms", "bwd ms", "total ms", "%");
    for (k, s) in &split {
        let (f, b) = (s.forward.as_secs_f64() * 1e3, s.backward.as_secs_f64() * 1e3);
        println!("  {:<11} {f:>9.2} {b:>9.2} {:>9.2} {:>5.1}%", k.name(), f + b, 100.0 * (f + b) / (total * 1e3));
    }
    let rest = (total - accounted) * 1e3;
    println!("  {:<11} {:>9} {:>9} {rest:>9.2} {:>5.1}%", "unaccounted", "", "", 100.0 * rest / (total * 1e3));
    Ok(())
}

/// benches/torch_albert.py, from the working directory or the source tree.
fn torch_script() -> Result<PathBuf, String> {
    let here = Path::new("benches/torch_albert.py");
    if here.exists() {
        return Ok(here.to_path_buf());
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/torch_albert.py");
    if src.exists() {
        return Ok(src);
    }
    Err("bench --vs-pytorch: benches/torch_albert.py not found (run from the repository root)".into())
}

struct TorchRun {
    run: Run,
    peak_rss_mb: Option<f64>,
}

/// Runs the PyTorch baseline once in a subprocess and parses its JSON line.
fn run_torch(args: &BenchArgs, script: &Path, threads: usize, c: &AlbertConfig) -> Result<TorchRun, String> {
    let what = format!("{:?}", args.what).to_lowercase();
    let mut cmd = Command::new(&args.python);
    cmd.arg(script).arg(&what).args(["--threads", &threads.to_string()]);
    cmd.args(["--iters", &args.iters.to_string(), "--warmup", &args.warmup.to_string()]);
    match args.what {
        BenchWhat::Gemm => {
            cmd.args(["--m", &args.m.to_string(), "--n", &args.n.to_string(), "--k", &args.k.to_string()]);
            if args.trans_b {
                cmd.arg("--trans-b");
            }
            if args.trans_a {
                cmd.arg("--trans-a");
            }
        }
        _ => {
            cmd.args(["--batch", &args.batch.to_string(), "--seq", &args.seq.to_string()]);
            cmd.args(["--mlm-prob", &args.mlm_prob.to_string()]);
            // Hand the exact configuration over as a config.json, presets included.
            let path = std::env::temp_dir().join(format!("albert-bench-config-{}.json", std::process::id()));
            std::fs::write(&path, c.to_json()).map_err(|e| format!("{}: {e}", path.display()))?;
            cmd.arg("--config").arg(&path);
            if args.what == BenchWhat::Train {
                // Ours scores MLM only at the masked positions; make PyTorch do the same.
                cmd.arg("--mlm-gather");
            }
            if args.encoder_only {
                cmd.arg("--encoder-only");
            }
        }
    }
    let out = cmd.output();
    if args.what != BenchWhat::Gemm {
        // Best effort: a leftover file in the temp dir is harmless.
        let _ =
            std::fs::remove_file(std::env::temp_dir().join(format!("albert-bench-config-{}.json", std::process::id())));
    }
    let out = out.map_err(|e| {
        format!(
            "bench --vs-pytorch: cannot run {}: {e}; install the baseline with `pip install torch transformers`",
            args.python
        )
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("No module named 'torch'") || stderr.contains("No module named 'transformers'") {
            return Err(
                "bench --vs-pytorch: PyTorch is not installed; install it with `pip install torch transformers`".into(),
            );
        }
        return Err(format!("bench --vs-pytorch: {} failed:\n{stderr}", script.display()));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line =
        stdout.lines().rev().find(|l| l.starts_with('{')).ok_or("bench --vs-pytorch: no JSON from the baseline")?;
    let v: Value =
        serde_json::from_str(line).map_err(|e| format!("bench --vs-pytorch: bad JSON from the baseline: {e}"))?;
    let times: Vec<f64> = v["times_ms"]
        .as_array()
        .ok_or("bench --vs-pytorch: baseline JSON lacks times_ms")?
        .iter()
        .filter_map(|x| x.as_f64().map(|ms| ms / 1e3))
        .collect();
    if times.is_empty() {
        return Err("bench --vs-pytorch: baseline reported no times".into());
    }
    let flops = v["gflops"].as_f64().unwrap_or(0.0) * 1e9 * median(&times);
    let tokens = if args.what == BenchWhat::Gemm { args.m } else { args.batch * args.seq };
    Ok(TorchRun { run: Run { times, flops, tokens }, peak_rss_mb: v["peak_rss_mb"].as_f64() })
}

/// `--device cuda`: the GPU benchmarks of cli_bench_cuda.rs.
fn run_cuda(args: &BenchArgs, device: engine::Device) -> Result<(), String> {
    use crate::cli_bench_cuda as cu;
    if args.iters == 0 {
        return Err("bench: --iters must be positive".into());
    }
    let dtype = match args.dtype.as_str() {
        "f32" => engine::DType::F32,
        "bf16" => engine::DType::BF16,
        other => return Err(format!("--dtype {other:?}: expected f32 or bf16")),
    };
    match args.what {
        BenchWhat::Gemm => {
            if args.trans_a {
                return Err("bench gemm --device cuda: --trans-a is not offered on the GPU bench".into());
            }
            cu::gemm_bench(device, dtype, args.m, args.n, args.k, args.trans_b, args.warmup, args.iters, args.json)
        }
        BenchWhat::Attention => cu::attention_bench(
            device,
            dtype,
            args.batch,
            args.heads,
            args.seq,
            args.head_dim,
            args.warmup,
            args.iters,
            args.json,
        ),
        BenchWhat::Forward | BenchWhat::Train => {
            let (c, name) = config(args)?;
            if args.seq > c.max_position_embeddings || args.batch == 0 || args.seq == 0 {
                return Err(format!("bench: need 1 <= seq <= {} and a positive batch", c.max_position_embeddings));
            }
            let train = args.what == BenchWhat::Train;
            cu::model_bench(
                device,
                train,
                &c,
                &name,
                args.batch,
                args.seq,
                args.bf16,
                args.warmup,
                args.iters,
                args.json,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// perf.md: fwd b8 x s128 of albert-base = 187.05 GFLOP (every position scored).
    #[test]
    fn flop_count_matches_the_reference_count() {
        let c = AlbertConfig::preset("base").unwrap();
        let f = forward_flops(&c, 8, 128, 8 * 128);
        assert!((f / 1e9 - 187.05).abs() < 0.01, "{}", f / 1e9);
        assert!((forward_flops(&c, 1, 128, 128) / 1e9 - 23.38).abs() < 0.01);
        // AlbertModel b8 x s512: 773.91 GFLOP.
        assert!((forward_flops(&c, 8, 512, 0) / 1e9 - 773.91).abs() < 0.01);
    }

    #[test]
    fn peak_rss_is_read_from_proc() {
        if Path::new("/proc/self/status").exists() {
            assert!(peak_rss_mb().is_some_and(|m| m > 0.0));
        }
    }
}

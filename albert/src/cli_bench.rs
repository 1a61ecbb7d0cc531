//! `albert bench forward|train`: times our ALBERT at a given shape (random init, random ids) and
//! prints median latency, tokens/s and GFLOP/s with matmul FLOPs counted by hand, the same way
//! ../shared/reference/perf.md counts PyTorch's (so the two can be set side by side).

use crate::config::AlbertConfig;
use crate::model::{Albert, Heads, Inputs, Mode};
use autograd::{ParamStore, Tape};
use engine::{Rng, Tensor};
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchWhat {
    /// Inference: encoder + pooler + MLM logits at every position + SOP logits, no tape.
    Forward,
    /// One training step without the optimizer: MLM (at the masked positions) + SOP loss, backward.
    Train,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub what: BenchWhat,
    #[arg(long, default_value = "base")]
    pub preset: String,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Timed iterations (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Fraction of positions with an MLM label in `train` (as in pretraining).
    #[arg(long, default_value_t = 0.15)]
    pub mlm_prob: f64,
    /// Print one JSON line instead of text.
    #[arg(long)]
    pub json: bool,
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    let c = AlbertConfig::preset(&args.preset)?;
    if args.seq > c.max_position_embeddings || args.batch == 0 || args.seq == 0 || args.iters == 0 {
        return Err(format!("bench: need 1 <= seq <= {} and positive batch and iters", c.max_position_embeddings));
    }
    let (b, s) = (args.batch, args.seq);
    let mut store = ParamStore::new();
    let model = Albert::new(&c, Heads::pretraining(), &mut store, 0).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(1);
    let ids: Vec<i64> = (0..b * s).map(|_| 5 + rng.below(c.vocab_size as u64 - 5) as i64).collect();
    let types: Vec<i64> = (0..b * s).map(|i| i64::from(i % s >= s / 2)).collect();
    let inputs = Inputs {
        input_ids: Tensor::from_i64(ids.clone(), &[b, s]).map_err(|e| e.to_string())?,
        attention_mask: None,
        token_type_ids: Some(Tensor::from_i64(types, &[b, s]).map_err(|e| e.to_string())?),
    };
    let labels: Vec<i64> = ids.iter().map(|&id| if rng.next_f64() < args.mlm_prob { id } else { -100 }).collect();
    let masked = labels.iter().filter(|&&l| l != -100).count();
    let labels = Tensor::from_i64(labels, &[b, s]).map_err(|e| e.to_string())?;
    let sop = Tensor::from_i64((0..b as i64).map(|i| i % 2).collect(), &[b]).map_err(|e| e.to_string())?;
    let err = |e: engine::Error| e.to_string();
    let mut step = || -> Result<f64, String> {
        let t0 = Instant::now();
        match args.what {
            BenchWhat::Forward => {
                crate::cli_forward::forward_outputs(&model, &store, &inputs)?;
            }
            BenchWhat::Train => {
                let tape = Tape::new();
                let l =
                    model.pretraining_losses(&tape, &store, &inputs, &labels, &sop, &mut Mode::Eval).map_err(err)?;
                store.zero_grad();
                tape.backward(&l.total, &mut store).map_err(err)?;
            }
        }
        Ok(t0.elapsed().as_secs_f64())
    };
    for _ in 0..args.warmup {
        step()?;
    }
    let times = (0..args.iters).map(|_| step()).collect::<Result<Vec<f64>, String>>()?;
    let t = median(times.clone());
    let flops = match args.what {
        BenchWhat::Forward => forward_flops(&c, b, s, b * s),
        // backward ~ 2x forward; the MLM head scores only the masked positions
        BenchWhat::Train => 3.0 * forward_flops(&c, b, s, masked),
    };
    let what = format!("{:?}", args.what).to_lowercase();
    let threads = rayon::current_num_threads();
    if args.json {
        let v = serde_json::json!({"bench": what, "preset": args.preset, "batch": b, "seq": s, "threads": threads,
            "median_ms": t * 1e3, "tokens_per_s": (b * s) as f64 / t, "gflops": flops / t / 1e9,
            "times_ms": times.iter().map(|x| x * 1e3).collect::<Vec<_>>(), "kernel_path": kernels::cpu::isa().name()});
        println!("{v}");
    } else {
        println!(
            "{what} {} b{b} x s{s}, {threads} threads, {}: median {:.1} ms over {} iters, {:.1} tokens/s, {:.1} GFLOP/s",
            args.preset,
            kernels::cpu::isa().name(),
            t * 1e3,
            args.iters,
            (b * s) as f64 / t,
            flops / t / 1e9
        );
    }
    Ok(())
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
    }
}

//! Memory-bound kernels at ALBERT-base shapes, batch 8 x seq 128 (1024 tokens, H = 768, FFN 3072,
//! 12 heads, E = 128, V = 30000). Each group `cpu_<op>` runs the scalar reference (`scalar`) and
//! the dispatched f32 entry point (`avx2`: the AVX2+FMA kernel on this CPU, unless
//! ALBERT_FORCE_SCALAR=1), with Throughput::Bytes = the bytes the op must read and write once,
//! so criterion's B/s is effective memory bandwidth. `cargo bench --bench ops` (about a minute).

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput};
use kernels::cpu::{activation, binary, cross_entropy, gather, layernorm, softmax};
use std::hint::black_box;
use std::time::Duration;

const F: u64 = 4; // bytes per f32
const TOKENS: usize = 8 * 128;
const HIDDEN: usize = 768;
const FFN: usize = 3072;
const HEADS: usize = 12;
const SEQ: usize = 128;
const EMBED: usize = 128;
const VOCAB: usize = 30_000;
/// MLM positions: 15% of 1024 tokens, rounded to the usual 20 per sequence.
const MASKED: usize = 160;

/// n values in [lo, hi) from a fixed LCG: only ordinary floats are needed.
fn values(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// A group with short, flat sampling: the scalar references take tens of ms per call, and the
/// whole bench must stay around a minute.
fn group<'a>(c: &'a mut Criterion, name: &str, bytes: u64) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(bytes));
    g
}

fn bench_gelu(c: &mut Criterion) {
    // [1024 x 3072]: the FFN intermediate activation
    let n = TOKENS * FFN;
    let x = values(n, -4.0, 4.0, 1);
    let dout = values(n, -1.0, 1.0, 2);
    let mut out = vec![0f32; n];

    let mut g = group(c, "cpu_gelu_tanh_fwd", 2 * F * n as u64); // read x, write out
    g.bench_function("scalar", |b| b.iter(|| activation::gelu_tanh_fwd_scalar(black_box(&mut out), black_box(&x))));
    g.bench_function("avx2", |b| b.iter(|| activation::gelu_tanh_fwd(black_box(&mut out), black_box(&x))));
    g.finish();

    let mut g = group(c, "cpu_gelu_tanh_bwd", 3 * F * n as u64); // read x, dout, write dinp
    g.bench_function("scalar", |b| {
        b.iter(|| activation::gelu_tanh_bwd_scalar(black_box(&mut out), black_box(&x), black_box(&dout)))
    });
    g.bench_function("avx2", |b| {
        b.iter(|| activation::gelu_tanh_bwd(black_box(&mut out), black_box(&x), black_box(&dout)))
    });
    g.finish();
}

fn bench_layernorm(c: &mut Criterion) {
    // [1024 x 768], eps 1e-12 as in ALBERT
    let (rows, cols) = (TOKENS, HIDDEN);
    let n = rows * cols;
    let x = values(n, -3.0, 3.0, 3);
    let gamma = values(cols, 0.5, 1.5, 4);
    let beta = values(cols, -0.5, 0.5, 5);
    let dout = values(n, -1.0, 1.0, 6);
    let (mut out, mut mean, mut rstd) = (vec![0f32; n], vec![0f32; rows], vec![0f32; rows]);
    let (mut dgamma, mut dbeta) = (vec![0f32; cols], vec![0f32; cols]);
    layernorm::layernorm_fwd(&mut out, &mut mean, &mut rstd, &x, &gamma, &beta, rows, cols, 1e-12);
    let (m0, s0) = (mean.clone(), rstd.clone());

    // read x, write out; gamma, beta, mean, rstd
    let mut g = group(c, "cpu_layernorm_fwd", F * (2 * n + 2 * cols + 2 * rows) as u64);
    g.bench_function("scalar", |b| {
        b.iter(|| {
            layernorm::layernorm_fwd_scalar(
                &mut out,
                &mut mean,
                &mut rstd,
                black_box(&x),
                &gamma,
                &beta,
                rows,
                cols,
                1e-12,
            )
        })
    });
    g.bench_function("avx2", |b| {
        b.iter(|| {
            layernorm::layernorm_fwd(&mut out, &mut mean, &mut rstd, black_box(&x), &gamma, &beta, rows, cols, 1e-12)
        })
    });
    g.finish();

    // read dout, x, write dinp; mean, rstd; gamma read, dgamma and dbeta read and written
    let mut g = group(c, "cpu_layernorm_bwd", F * (3 * n + 2 * rows + 5 * cols) as u64);
    g.bench_function("scalar", |b| {
        b.iter(|| {
            layernorm::layernorm_bwd_scalar(
                &mut out,
                &mut dgamma,
                &mut dbeta,
                black_box(&dout),
                &x,
                &gamma,
                &m0,
                &s0,
                rows,
                cols,
            )
        })
    });
    g.bench_function("avx2", |b| {
        b.iter(|| {
            layernorm::layernorm_bwd(
                &mut out,
                &mut dgamma,
                &mut dbeta,
                black_box(&dout),
                &x,
                &gamma,
                &m0,
                &s0,
                rows,
                cols,
            )
        })
    });
    g.finish();
}

fn bench_softmax(c: &mut Criterion) {
    // attention probabilities [B*N*S, S] = [12288 x 128], padding mask [B, S] shared by N*S rows
    let (rows, cols, rpm) = (8 * HEADS * SEQ, SEQ, HEADS * SEQ);
    let n = rows * cols;
    let x = values(n, -6.0, 6.0, 7);
    // the last 16 positions of every sequence are padding
    let mask: Vec<f32> = (0..8 * SEQ).map(|i| if i % SEQ >= SEQ - 16 { -1e9 } else { 0.0 }).collect();
    let dout = values(n, -1.0, 1.0, 8);
    let mut y = vec![0f32; n];
    let mut d = vec![0f32; n];
    let scale = 0.125; // 1/sqrt(64)

    let mut g = group(c, "cpu_softmax_fwd", F * (2 * n + mask.len()) as u64); // read x (+ mask), write y
    g.bench_function("scalar", |b| {
        b.iter(|| softmax::softmax_fwd_scalar(&mut y, black_box(&x), Some(&mask), rows, cols, rpm, scale))
    });
    g.bench_function("avx2", |b| {
        b.iter(|| softmax::softmax_fwd(&mut y, black_box(&x), Some(&mask), rows, cols, rpm, scale))
    });
    g.finish();

    let mut g = group(c, "cpu_softmax_bwd", 3 * F * n as u64); // read y, dout, write dinp
    g.bench_function("scalar", |b| {
        b.iter(|| softmax::softmax_bwd_scalar(&mut d, black_box(&y), &dout, rows, cols, scale))
    });
    g.bench_function("avx2", |b| b.iter(|| softmax::softmax_bwd(&mut d, black_box(&y), &dout, rows, cols, scale)));
    g.finish();
}

fn bench_cross_entropy(c: &mut Criterion) {
    // MLM head on the masked positions only: logits [160 x 30000]
    let (rows, cols) = (MASKED, VOCAB);
    let n = rows * cols;
    let logits = values(n, -8.0, 8.0, 9);
    let targets: Vec<i64> = (0..rows).map(|r| ((r * 7919) % cols) as i64).collect();
    let mut lse = vec![0f32; rows];
    let mut d = vec![0f32; n];

    let mut g = group(c, "cpu_cross_entropy_fwd", F * (n + rows) as u64 + 8 * rows as u64); // logits, lse, targets
    g.bench_function("scalar", |b| {
        b.iter(|| cross_entropy::cross_entropy_fwd_scalar(&mut lse, black_box(&logits), &targets, rows, cols, -100))
    });
    g.bench_function("avx2", |b| {
        b.iter(|| cross_entropy::cross_entropy_fwd(&mut lse, black_box(&logits), &targets, rows, cols, -100))
    });
    g.finish();

    // read logits, write dlogits; lse, targets
    let mut g = group(c, "cpu_cross_entropy_bwd", F * (2 * n + rows) as u64 + 8 * rows as u64);
    let scale = 1.0 / rows as f32;
    g.bench_function("scalar", |b| {
        b.iter(|| {
            cross_entropy::cross_entropy_bwd_scalar(&mut d, black_box(&logits), &lse, &targets, rows, cols, -100, scale)
        })
    });
    g.bench_function("avx2", |b| {
        b.iter(|| cross_entropy::cross_entropy_bwd(&mut d, black_box(&logits), &lse, &targets, rows, cols, -100, scale))
    });
    g.finish();
}

fn bench_add(c: &mut Criterion) {
    // residual add [1024 x 768]
    let n = TOKENS * HIDDEN;
    let a = values(n, -1.0, 1.0, 10);
    let bb = values(n, -1.0, 1.0, 11);
    let mut out = vec![0f32; n];
    let mut g = group(c, "cpu_add", 3 * F * n as u64); // read a, b, write out
    g.bench_function("scalar", |b| b.iter(|| binary::add_fwd_scalar(&mut out, black_box(&a), black_box(&bb))));
    g.bench_function("avx2", |b| b.iter(|| binary::add_fwd(&mut out, black_box(&a), black_box(&bb))));
    g.finish();
}

fn bench_gather(c: &mut Criterion) {
    // word embeddings: 1024 ids into a [30000 x 128] table
    let (n, cols) = (TOKENS, EMBED);
    let table = values(VOCAB * cols, -0.1, 0.1, 12);
    let ids: Vec<usize> = (0..n).map(|i| (i * 7919 + 13) % VOCAB).collect();
    let dout = values(n * cols, -1e-3, 1e-3, 13);
    let mut out = vec![0f32; n * cols];
    let mut dtable = vec![0f32; VOCAB * cols];

    let mut g = group(c, "cpu_gather_rows_fwd", 2 * F * (n * cols) as u64 + 8 * n as u64); // rows in, rows out, ids
    g.bench_function("scalar", |b| b.iter(|| gather::gather_rows_fwd_scalar(&mut out, black_box(&table), &ids, cols)));
    g.bench_function("avx2", |b| b.iter(|| gather::gather_rows_fwd(&mut out, black_box(&table), &ids, cols)));
    g.finish();

    // read dout, read and write the hit table rows, ids
    let mut g = group(c, "cpu_gather_rows_bwd", 3 * F * (n * cols) as u64 + 8 * n as u64);
    g.bench_function("scalar", |b| {
        b.iter(|| gather::gather_rows_bwd_scalar(&mut dtable, black_box(&dout), &ids, cols))
    });
    g.bench_function("avx2", |b| b.iter(|| gather::gather_rows_bwd(&mut dtable, black_box(&dout), &ids, cols)));
    g.finish();
}

criterion_group!(benches, bench_gelu, bench_layernorm, bench_softmax, bench_cross_entropy, bench_add, bench_gather);
criterion_main!(benches);

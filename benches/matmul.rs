//! gemm throughput on the ALBERT-base products at batch 8 x seq 128 (1024 tokens), plus square
//! 1024^3. Throughput is reported in elements = FLOPs (2 per multiply-add), so criterion's
//! "elem/s" reads as FLOP/s. `cargo bench --bench matmul`; compare with benches/numpy_matmul.py.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kernels::cpu::matmul::{gemm, gemm_scalar, Gemm};
use std::time::Duration;

/// (name, gemm): the shape in the name is op(A) times the stored B (`^T` = trans_b).
fn shapes() -> Vec<(&'static str, Gemm)> {
    vec![
        ("1024x768*768x768^T", Gemm::new(1024, 768, 768, false, true)),
        ("1024x768*3072x768^T", Gemm::new(1024, 3072, 768, false, true)),
        ("1024x3072*768x3072^T", Gemm::new(1024, 768, 3072, false, true)),
        ("96x128x64*96x128x64^T", Gemm::batched(96, 128, 128, 64, false, true)),
        ("1024x128*768x128^T", Gemm::new(1024, 768, 128, false, true)),
        ("1024x1024*1024x1024", Gemm::new(1024, 1024, 1024, false, false)),
    ]
}

/// Inputs in [-1, 1) from a fixed LCG: values only need to be ordinary floats.
fn inputs(g: &Gemm) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (la, lb, lc) = g.min_lens();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let a = (0..la).map(|_| next()).collect();
    let b = (0..lb).map(|_| next()).collect();
    (a, b, vec![0.0; lc])
}

fn bench_gemm(cr: &mut Criterion) {
    let mut group = cr.benchmark_group("gemm_flops");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (name, g) in shapes() {
        let (a, b, mut c) = inputs(&g);
        group.throughput(Throughput::Elements(g.flops()));
        group.bench_function(BenchmarkId::new("avx2", name), |bch| {
            bch.iter(|| gemm(&g, black_box(&a), black_box(&b), black_box(&mut c), None))
        });
    }
    // The reference on one small shape, for the speed ratio (it is ~100x slower).
    let g = Gemm::new(128, 128, 128, false, true);
    let (a, b, mut c) = inputs(&g);
    group.throughput(Throughput::Elements(g.flops()));
    group.bench_function(BenchmarkId::new("scalar", "128x128*128x128^T"), |bch| {
        bch.iter(|| gemm_scalar(&g, black_box(&a), black_box(&b), black_box(&mut c), None))
    });
    group.bench_function(BenchmarkId::new("avx2", "128x128*128x128^T"), |bch| {
        bch.iter(|| gemm(&g, black_box(&a), black_box(&b), black_box(&mut c), None))
    });
    group.finish();
}

criterion_group!(benches, bench_gemm);
criterion_main!(benches);

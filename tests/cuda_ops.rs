//! Every engine op on the GPU against the same op on the CPU, forward and backward, f32 (gemms in
//! exact-IEEE mode, plus one TF32 check) and bf16 storage, on odd shapes and strided views.
//! Skips with a printed notice when there is no CUDA device.

use engine::ops::{self, DropoutMask, EmbeddingParams};
use engine::{DType, Device, Rng, Tensor};
use kernels::cuda::gemm::{set_f32_precision, F32Precision};

fn gpu() -> Option<Device> {
    if kernels::cuda::driver::device_count() == 0 {
        eprintln!("skipped: no CUDA device");
        return None;
    }
    set_f32_precision(F32Precision::Ieee);
    Some(Device::Cuda(0))
}

fn rand(seed: u64, shape: &[usize]) -> Tensor {
    Rng::new(seed).uniform_tensor(shape, -1.0, 1.0, DType::F32).unwrap()
}

/// A bf16-representable f32 tensor (so CPU f32 and GPU bf16 start from the same values).
fn rand_bf16(seed: u64, shape: &[usize]) -> Tensor {
    rand(seed, shape).to_dtype(DType::BF16).to_dtype(DType::F32)
}

fn to(t: &Tensor, d: Device) -> Tensor {
    t.to_device(d).unwrap()
}

/// |gpu - cpu| <= tol * (1 + |cpu|) elementwise; names the op and the first bad element.
fn close(what: &str, gpu: &Tensor, cpu: &Tensor, tol: f32) {
    assert_eq!(gpu.device(), Device::Cuda(0), "{what}: result left the device");
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shape");
    let (g, c) = (gpu.to_vec_f32(), cpu.to_vec_f32());
    for (i, (x, y)) in g.iter().zip(&c).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}: element {i}: gpu {x} vs cpu {y}");
    }
}

const F32_TOL: f32 = 2e-5;
const BF16_TOL: f32 = 2e-2;

#[test]
fn moves_and_views() {
    let Some(d) = gpu() else { return };
    let x = rand(1, &[3, 5, 7]);
    let xg = to(&x, d);
    assert_eq!(xg.to_vec_f32(), x.to_vec_f32(), "round trip");
    let p = x.permute(&[2, 0, 1]).unwrap().narrow(1, 1, 2).unwrap();
    let pg = xg.permute(&[2, 0, 1]).unwrap().narrow(1, 1, 2).unwrap();
    assert_eq!(pg.contiguous().to_vec_f32(), p.contiguous().to_vec_f32(), "strided copy");
    let b = x.to_dtype(DType::BF16);
    assert_eq!(xg.to_dtype(DType::BF16).to_vec_f32(), b.to_vec_f32(), "f32 -> bf16 rounds as the host");
    let ids = Tensor::from_i64(vec![3, -1, 7], &[3]).unwrap();
    assert_eq!(to(&ids, d).ids("ids").unwrap(), vec![3, -1, 7]);
    let mut acc = to(&x, d);
    acc.add_assign(&xg).unwrap();
    close("add_assign", &acc, &ops::scale(&x, 2.0).unwrap(), F32_TOL);
}

#[test]
fn matmul_all_layouts() {
    let Some(d) = gpu() else { return };
    for (m, k, n) in [(1, 1, 1), (7, 33, 5), (129, 64, 127), (64, 128, 256)] {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a = rand(1, &if ta { [3, k, m] } else { [3, m, k] });
            let b = rand(2, &if tb { [n, k] } else { [k, n] });
            let bias = rand(3, &[n]);
            let cpu = ops::matmul(&a, &b, ta, tb, Some(&bias)).unwrap();
            let gpu = ops::matmul(&to(&a, d), &to(&b, d), ta, tb, Some(&to(&bias, d))).unwrap();
            close(&format!("matmul {m}x{k}x{n} ta={ta} tb={tb}"), &gpu, &cpu, F32_TOL * (k as f32).sqrt());
            let dout = rand(4, cpu.shape());
            let (da, db, dbias) = ops::matmul_bwd(&dout, &a, &b, ta, tb, true).unwrap();
            let (ga, gb, gbias) = ops::matmul_bwd(&to(&dout, d), &to(&a, d), &to(&b, d), ta, tb, true).unwrap();
            close("matmul dA", &ga, &da, 1e-4);
            close("matmul dB", &gb, &db, 1e-4);
            close("matmul dbias", &gbias.unwrap(), &dbias.unwrap(), 1e-4);
        }
    }
    // A transposed view as the operand (read through its strides, no copy on the host side).
    let x = rand(5, &[2, 4, 9, 16]);
    let cpu = ops::matmul(&x, &x.transpose(-1, -2).unwrap(), false, false, None).unwrap();
    let xg = to(&x, d);
    let gpu = ops::matmul(&xg, &xg.transpose(-1, -2).unwrap(), false, false, None).unwrap();
    close("matmul strided view", &gpu, &cpu, 1e-4);
    // TF32: about 10 mantissa bits.
    set_f32_precision(F32Precision::Tf32);
    let (a, b) = (rand(6, &[257, 300]), rand(7, &[300, 129]));
    let tf = ops::matmul(&to(&a, d), &to(&b, d), false, false, None).unwrap();
    set_f32_precision(F32Precision::Ieee);
    close("matmul tf32", &tf, &ops::matmul(&a, &b, false, false, None).unwrap(), 3e-3 * 300f32.sqrt());
    // bf16 storage, f32 accumulation.
    let (a, b) = (rand_bf16(8, &[100, 200]), rand_bf16(9, &[72, 200]));
    let cpu = ops::matmul(&a, &b, false, true, None).unwrap();
    let bf =
        ops::matmul(&to(&a, d).to_dtype(DType::BF16), &to(&b, d).to_dtype(DType::BF16), false, true, None).unwrap();
    assert_eq!(bf.dtype(), DType::BF16);
    close("matmul bf16", &bf, &cpu, BF16_TOL);
}

#[test]
fn elementwise_reductions_and_activations() {
    let Some(d) = gpu() else { return };
    let (a, b) = (rand(1, &[4, 1, 33]), rand(2, &[5, 1]));
    let (ag, bg) = (to(&a, d), to(&b, d));
    close("add", &ops::add(&ag, &bg).unwrap(), &ops::add(&a, &b).unwrap(), F32_TOL);
    close("sub", &ops::sub(&ag, &bg).unwrap(), &ops::sub(&a, &b).unwrap(), F32_TOL);
    close("mul", &ops::mul(&ag, &bg).unwrap(), &ops::mul(&a, &b).unwrap(), F32_TOL);
    let bpos = ops::add(&ops::mul(&b, &b).unwrap(), &Tensor::scalar(0.5f32)).unwrap();
    close("div", &ops::div(&ag, &to(&bpos, d)).unwrap(), &ops::div(&a, &bpos).unwrap(), F32_TOL);
    let dout = rand(3, &[4, 5, 33]);
    let (da, db) = ops::mul_bwd(&dout, &a, &b).unwrap();
    let (ga, gb) = ops::mul_bwd(&to(&dout, d), &ag, &bg).unwrap();
    close("mul_bwd da", &ga, &da, 1e-4);
    close("mul_bwd db", &gb, &db, 1e-4);
    let (da, db) = ops::div_bwd(&dout, &a, &bpos).unwrap();
    let (ga, gb) = ops::div_bwd(&to(&dout, d), &ag, &to(&bpos, d)).unwrap();
    close("div_bwd da", &ga, &da, 1e-4);
    close("div_bwd db", &gb, &db, 1e-4);
    let x = rand(4, &[6, 1000, 3]);
    let xg = to(&x, d);
    for axis in [0isize, 1, 2] {
        close("sum", &ops::sum(&xg, axis, false).unwrap(), &ops::sum(&x, axis, false).unwrap(), 1e-4);
        close("mean", &ops::mean(&xg, axis, true).unwrap(), &ops::mean(&x, axis, true).unwrap(), 1e-4);
    }
    let g = rand(5, &[6, 3]);
    close(
        "sum_bwd",
        &ops::sum_bwd(&to(&g, d), &[6, 1000, 3], 1).unwrap(),
        &ops::sum_bwd(&g, &[6, 1000, 3], 1).unwrap(),
        0.0,
    );
    close("sum_to_shape", &ops::sum_to_shape(&xg, &[1, 3]).unwrap(), &ops::sum_to_shape(&x, &[1, 3]).unwrap(), 1e-4);
    close("scale", &ops::scale(&xg, -0.25).unwrap(), &ops::scale(&x, -0.25).unwrap(), 0.0);
    let z = ops::scale(&rand(6, &[7, 129]), 4.0).unwrap();
    let (zg, dz) = (to(&z, d), rand(7, &[7, 129]));
    type Fwd = fn(&Tensor) -> engine::Result<Tensor>;
    type Bwd = fn(&Tensor, &Tensor) -> engine::Result<Tensor>;
    let acts: [(&str, Fwd, Bwd, bool); 4] = [
        ("gelu_tanh", ops::gelu_tanh, ops::gelu_tanh_bwd, false),
        ("gelu_erf", ops::gelu_erf, ops::gelu_erf_bwd, false),
        ("tanh", ops::tanh, ops::tanh_bwd, true),
        ("relu", ops::relu, ops::relu_bwd, false),
    ];
    for (name, f, b, saves_output) in acts {
        let (y, yg) = (f(&z).unwrap(), f(&zg).unwrap());
        close(name, &yg, &y, 1e-5);
        let (s, sg) = if saves_output { (y, yg) } else { (z.clone(), zg.clone()) };
        close(&format!("{name} bwd"), &b(&sg, &to(&dz, d)).unwrap(), &b(&s, &dz).unwrap(), 1e-5);
        let zb = to(&z, d).to_dtype(DType::BF16);
        close(
            &format!("{name} bf16"),
            &f(&zb).unwrap(),
            &f(&zb.to_device(Device::Cpu).unwrap().to_dtype(DType::F32)).unwrap(),
            BF16_TOL,
        );
    }
}

#[test]
fn softmax_layernorm_and_losses() {
    let Some(d) = gpu() else { return };
    // Attention-shaped scores with a padding mask; batch row 1 fully masked.
    let x = rand(1, &[2, 3, 17, 17]);
    let mut m = vec![0.0f32; 2 * 17];
    m[13..17].iter_mut().for_each(|v| *v = f32::MIN);
    m[17..].iter_mut().for_each(|v| *v = f32::MIN);
    let mask = Tensor::from_vec(m, &[2, 1, 1, 17]).unwrap();
    let y = ops::softmax(&x, Some(&mask), 0.125).unwrap();
    let yg = ops::softmax(&to(&x, d), Some(&to(&mask, d)), 0.125).unwrap();
    close("softmax", &yg, &y, 1e-5);
    let dy = rand(2, y.shape());
    close(
        "softmax_bwd",
        &ops::softmax_bwd(&yg, &to(&dy, d), 0.125).unwrap(),
        &ops::softmax_bwd(&y, &dy, 0.125).unwrap(),
        1e-5,
    );
    for cols in [1usize, 33, 768, 1025] {
        let x = ops::scale(&rand(3, &[37, cols]), 3.0).unwrap();
        let (g, b) = (rand(4, &[cols]), rand(5, &[cols]));
        let (y, s) = ops::layer_norm(&x, &g, &b, 1e-12).unwrap();
        let (yg, sg) = ops::layer_norm(&to(&x, d), &to(&g, d), &to(&b, d), 1e-12).unwrap();
        close(&format!("layer_norm {cols}"), &yg, &y, 1e-4);
        let dy = rand(6, &[37, cols]);
        let (dx, dg, db) = ops::layer_norm_bwd(&dy, &x, &g, &s).unwrap();
        let (gx, gg, gb) = ops::layer_norm_bwd(&to(&dy, d), &to(&x, d), &to(&g, d), &sg).unwrap();
        close("layer_norm dx", &gx, &dx, 1e-4);
        close("layer_norm dgamma", &gg, &dg, 1e-4);
        close("layer_norm dbeta", &gb, &db, 1e-4);
    }
    for cols in [2usize, 30001] {
        let logits = ops::scale(&rand(7, &[19, cols]), 5.0).unwrap();
        let t: Vec<i64> = (0..19).map(|i| if i % 4 == 3 { -100 } else { (i * 7919) as i64 % cols as i64 }).collect();
        let targets = Tensor::from_i64(t, &[19]).unwrap();
        let (l, s) = ops::cross_entropy(&logits, &targets, -100).unwrap();
        let (lg, sg) = ops::cross_entropy(&to(&logits, d), &targets, -100).unwrap();
        close("cross_entropy", &lg, &l, 1e-5);
        let dl = ops::cross_entropy_bwd(0.7, &logits, &targets, -100, &s).unwrap();
        let dlg = ops::cross_entropy_bwd(0.7, &to(&logits, d), &targets, -100, &sg).unwrap();
        close("cross_entropy_bwd", &dlg, &dl, 1e-5);
    }
}

#[test]
fn gathers_shapes_and_dropout() {
    let Some(d) = gpu() else { return };
    let table = rand(1, &[50, 33]);
    let ids = Tensor::from_i64(vec![3, 49, 0, 3, 7, 3], &[2, 3]).unwrap();
    let tg = to(&table, d);
    close("embedding", &ops::embedding(&tg, &ids).unwrap(), &ops::embedding(&table, &ids).unwrap(), 0.0);
    let dout = rand(2, &[2, 3, 33]);
    let cpu = ops::embedding_bwd(&dout, &ids, &[50, 33]).unwrap();
    close(
        "embedding_bwd (repeated ids add up)",
        &ops::embedding_bwd(&to(&dout, d), &ids, &[50, 33]).unwrap(),
        &cpu,
        1e-5,
    );
    let idx = Tensor::from_i64(vec![4, 0, 4], &[3]).unwrap();
    close("gather_rows", &ops::gather_rows(&tg, &idx).unwrap(), &ops::gather_rows(&table, &idx).unwrap(), 0.0);
    let parts = [rand(3, &[2, 3, 4]), rand(4, &[2, 5, 4])];
    let gparts = [to(&parts[0], d), to(&parts[1], d)];
    let c = ops::concat(&parts, 1).unwrap();
    close("concat", &ops::concat(&gparts, 1).unwrap(), &c, 0.0);
    let back = ops::concat_bwd(&to(&c, d), &[vec![2, 3, 4], vec![2, 5, 4]], 1).unwrap();
    close("concat_bwd", &back[1], &parts[1], 0.0);
    let nb = ops::narrow_bwd(&to(&parts[0], d), &[2, 9, 4], 1, 2).unwrap();
    close("narrow_bwd", &nb, &ops::narrow_bwd(&parts[0], &[2, 9, 4], 1, 2).unwrap(), 0.0);
    // Dropout on the device: the backward regenerates the forward's mask from the seed.
    let x = ops::add(&rand(5, &[64, 129]), &Tensor::scalar(2.0f32)).unwrap(); // no zeros
    let (y, mask) = ops::dropout(&to(&x, d), 0.25, &mut Rng::new(3)).unwrap();
    assert!(matches!(mask, DropoutMask::Device { .. }));
    let ones = Tensor::full(1.0f32, x.shape()).to_device(d).unwrap();
    let keep_scaled = ops::dropout_bwd(&ones, &mask).unwrap().to_vec_f32();
    let (yv, xv) = (y.to_vec_f32(), x.to_vec_f32());
    let mut kept = 0;
    for i in 0..xv.len() {
        assert!((yv[i] - xv[i] * keep_scaled[i]).abs() <= 1e-5 * xv[i].abs(), "dropout element {i}");
        assert!(keep_scaled[i] == 0.0 || (keep_scaled[i] - 1.0 / 0.75).abs() < 1e-6);
        kept += usize::from(keep_scaled[i] != 0.0);
    }
    let frac = kept as f64 / xv.len() as f64;
    assert!((frac - 0.75).abs() < 0.03, "kept fraction {frac}");
}

#[test]
fn fused_albert_embeddings() {
    let Some(d) = gpu() else { return };
    let (v, p, t, e, h) = (40, 16, 2, 24, 40);
    let params = EmbeddingParams {
        word: rand(1, &[v, e]),
        position: rand(2, &[p, e]),
        token_type: rand(3, &[t, e]),
        ln_gamma: rand(4, &[e]),
        ln_beta: rand(5, &[e]),
        proj_w: rand(6, &[h, e]),
        proj_b: rand(7, &[h]),
    };
    let on = |q: &EmbeddingParams| EmbeddingParams {
        word: to(&q.word, d),
        position: to(&q.position, d),
        token_type: to(&q.token_type, d),
        ln_gamma: to(&q.ln_gamma, d),
        ln_beta: to(&q.ln_beta, d),
        proj_w: to(&q.proj_w, d),
        proj_b: to(&q.proj_b, d),
    };
    let ids = Tensor::from_i64(vec![0, 5, 39, 5, 0, 1, 2, 3], &[2, 4]).unwrap();
    let types = Tensor::from_i64(vec![0, 0, 1, 1, 0, 1, 0, 1], &[2, 4]).unwrap();
    let pos = Tensor::from_i64(vec![0, 1, 2, 3, 0, 1, 2, 3], &[2, 4]).unwrap();
    let (y, s) = ops::albert_embeddings(&params, &ids, &types, &pos, 1e-12, None, Some(0)).unwrap();
    let gp = on(&params);
    let (yg, sg) = ops::albert_embeddings(&gp, &ids, &types, &pos, 1e-12, None, Some(0)).unwrap();
    close("albert_embeddings", &yg, &y, 1e-4);
    let dout = rand(8, y.shape());
    let g = ops::albert_embeddings_bwd(&dout, &params, &s).unwrap();
    let gg = ops::albert_embeddings_bwd(&to(&dout, d), &gp, &sg).unwrap();
    for (name, a, b) in [
        ("word", &gg.word, &g.word),
        ("position", &gg.position, &g.position),
        ("token_type", &gg.token_type, &g.token_type),
        ("ln_gamma", &gg.ln_gamma, &g.ln_gamma),
        ("ln_beta", &gg.ln_beta, &g.ln_beta),
        ("proj_w", &gg.proj_w, &g.proj_w),
        ("proj_b", &gg.proj_b, &g.proj_b),
    ] {
        close(&format!("albert_embeddings_bwd {name}"), a, b, 1e-4);
    }
}

#[test]
fn fused_attention_matches_the_cpu() {
    let Some(d) = gpu() else { return };
    for (b, s, heads, hd) in [(2usize, 17usize, 3usize, 64usize), (1, 100, 2, 32), (2, 33, 1, 128)] {
        let h = heads * hd;
        let (q, k, v) = (rand(1, &[b, s, h]), rand(2, &[b, s, h]), rand(3, &[b, s, h]));
        let mut m = vec![0.0f32; b * s];
        m[s - 3..s].iter_mut().for_each(|x| *x = f32::MIN); // padding at the end of batch row 0
        let mask = Tensor::from_vec(m, &[b, 1, 1, s]).unwrap();
        let scale = 1.0 / (hd as f64).sqrt();
        let cpu = ops::attention(&q, &k, &v, Some(&mask), heads, scale).unwrap();
        let (qg, kg, vg, mg) = (to(&q, d), to(&k, d), to(&v, d), to(&mask, d));
        let gpu = ops::attention(&qg, &kg, &vg, Some(&mg), heads, scale).unwrap();
        close(&format!("attention b{b} s{s} n{heads} d{hd}"), &gpu, &cpu, 1e-4);
        let dout = rand(4, &[b, s, h]);
        let (dq, dk, dv) = ops::attention_bwd(&dout, &q, &k, &v, Some(&mask), heads, scale).unwrap();
        let (gq, gk, gv) = ops::attention_bwd(&to(&dout, d), &qg, &kg, &vg, Some(&mg), heads, scale).unwrap();
        close("attention dq", &gq, &dq, 1e-4);
        close("attention dk", &gk, &dk, 1e-4);
        close("attention dv", &gv, &dv, 1e-4);
        // bf16 storage on the tensor-core path.
        let bf = |t: &Tensor| to(t, d).to_dtype(DType::BF16);
        let (qb, kb, vb) = (bf(&q), bf(&k), bf(&v));
        let gpu16 = ops::attention(&qb, &kb, &vb, Some(&mg.to_dtype(DType::BF16)), heads, scale).unwrap();
        let cpu16 = ops::attention(
            &qb.to_device(Device::Cpu).unwrap().to_dtype(DType::F32),
            &kb.to_device(Device::Cpu).unwrap().to_dtype(DType::F32),
            &vb.to_device(Device::Cpu).unwrap().to_dtype(DType::F32),
            Some(&mask),
            heads,
            scale,
        )
        .unwrap();
        close("attention bf16", &gpu16, &cpu16, BF16_TOL);
    }
}

#[test]
fn fused_residual_layer_norm_matches_the_cpu() {
    let Some(d) = gpu() else { return };
    for cols in [33usize, 768, 1025] {
        let (x, r) = (rand(1, &[19, cols]), rand(2, &[19, cols]));
        let (g, b) = (rand(3, &[cols]), rand(4, &[cols]));
        let (y, sum, _) = ops::add_layer_norm(&x, &r, &g, &b, 1e-12).unwrap();
        let (yg, sumg, _) = ops::add_layer_norm(&to(&x, d), &to(&r, d), &to(&g, d), &to(&b, d), 1e-12).unwrap();
        close(&format!("add_layer_norm {cols}"), &yg, &y, 1e-4);
        close("add_layer_norm sum", &sumg, &sum, 0.0);
    }
}

#[test]
fn linear_gelu_epilogue_matches_the_cpu() {
    let Some(d) = gpu() else { return };
    for gelu in [ops::Gelu::Tanh, ops::Gelu::Erf] {
        let (x, w, b) = (rand(1, &[3, 45, 64]), rand(2, &[200, 64]), rand(3, &[200]));
        let (pre, y) = ops::linear_gelu(&x, &w, &b, gelu).unwrap();
        let (pg, yg) = ops::linear_gelu(&to(&x, d), &to(&w, d), &to(&b, d), gelu).unwrap();
        close(&format!("linear_gelu {gelu:?} pre"), &pg, &pre, 1e-4);
        close(&format!("linear_gelu {gelu:?}"), &yg, &y, 1e-4);
    }
}

#[test]
fn weight_gradient_accumulates_in_place_on_the_device() {
    let Some(d) = gpu() else { return };
    for trans_b in [true, false] {
        let a = rand(1, &[2, 33, 40]);
        let b = if trans_b { rand(2, &[24, 40]) } else { rand(2, &[40, 24]) };
        let dout = rand(3, &[2, 33, 24]);
        let earlier = rand(4, b.shape());
        let (_, db, _) = ops::matmul_bwd(&dout, &a, &b, false, trans_b, true).unwrap();
        let mut acc = ops::scale(&to(&earlier, d), 1.0).unwrap();
        ops::matmul_bwd_accumulate(&to(&dout, d), &to(&a, d), &to(&b, d), false, trans_b, true, &mut acc).unwrap();
        close("accumulated weight gradient", &acc, &ops::add(&earlier, &db).unwrap(), 1e-4);
    }
}

//! LAMB, AdamW options, global-norm clipping, the learning-rate schedule and optimizer state
//! checkpoints.
//!
//! The LAMB trajectory is compared with tests/fixtures/optim/lamb.json, written by the float64
//! numpy transcription of the official TF code in tests/reference/gen_lamb.py: parameters, moments
//! and trust ratios after each of three clipped / scheduled steps, per tensor
//! `max|got - want| <= 1e-6 * max|want|`.

use albert::checkpoint::{read_tensors, write_tensors};
use albert::optim::{
    clip_grad_norm, load_state_file, save_state_file, AdamW, Lamb, Optimizer, Schedule, DEFAULT_EXCLUDE,
};
use autograd::{ParamId, ParamStore};
use engine::Tensor;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn fixture() -> Value {
    let path = root().join("tests/fixtures/optim/lamb.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    f64s(v).into_iter().map(|x| x as f32).collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

/// A fresh directory under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("albert-optim-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// max|got - want| <= rel * max|want| (want all zero: exact).
fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rel * scale, "{what}[{i}]: got {g}, want {w} (tolerance {rel:e} * {scale:e})");
    }
}

fn values(store: &ParamStore, name: &str) -> Vec<f64> {
    store.value(store.find(name).unwrap()).to_vec_f64()
}

/// Replaces every gradient by the given ones (parameters not listed get none).
fn set_grads(store: &mut ParamStore, grads: &[(&str, Vec<f32>)]) {
    store.zero_grad();
    for (name, g) in grads {
        let id = store.find(name).unwrap();
        let shape = store.value(id).shape().to_vec();
        store.accumulate(id, &Tensor::from_vec(g.clone(), &shape).unwrap()).unwrap();
    }
}

fn state_map(opt: &dyn Optimizer, store: &ParamStore) -> HashMap<String, Tensor> {
    opt.state_tensors(store).into_iter().collect()
}

// ====================================================================================== reference

#[test]
fn fixture_was_made_by_the_current_generator() {
    let bytes = std::fs::read(root().join("tests/reference/gen_lamb.py")).unwrap();
    let sha = format!("{:x}", Sha256::digest(&bytes));
    assert_eq!(
        fixture()["generator_sha256"].as_str().unwrap(),
        sha,
        "tests/reference/gen_lamb.py changed since tests/fixtures/optim/lamb.json was written: re-run tests/reference/gen_lamb.py"
    );
}

#[test]
fn lamb_with_clipping_and_schedule_follows_the_reference() {
    let fx = fixture();
    let h = &fx["hyper"];
    let s = &fx["schedule"];
    let schedule = Schedule {
        peak_lr: s["peak_lr"].as_f64().unwrap(),
        warmup_steps: s["warmup_steps"].as_u64().unwrap(),
        total_steps: s["total_steps"].as_u64().unwrap(),
        power: s["power"].as_f64().unwrap(),
    };
    let exclude: Vec<String> =
        h["exclude"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
    assert_eq!(exclude, DEFAULT_EXCLUDE);
    let mut opt = Lamb::new(
        schedule.peak_lr,
        h["beta1"].as_f64().unwrap(),
        h["beta2"].as_f64().unwrap(),
        h["eps"].as_f64().unwrap(),
        h["weight_decay"].as_f64().unwrap(),
    );
    assert_eq!(opt.exclude, exclude);
    let mut store = ParamStore::new();
    for p in fx["params"].as_array().unwrap() {
        let t = Tensor::from_vec(f32s(&p["value"]), &usizes(&p["shape"])).unwrap();
        store.add(p["name"].as_str().unwrap(), t).unwrap();
    }
    for step in fx["steps"].as_array().unwrap() {
        let gs = step["global_step"].as_u64().unwrap();
        let grads: Vec<(&str, Vec<f32>)> =
            step["grads"].as_object().unwrap().iter().map(|(k, v)| (k.as_str(), f32s(v))).collect();
        set_grads(&mut store, &grads);
        let norm = clip_grad_norm(&mut store, h["clip_norm"].as_f64().unwrap());
        let want_norm = step["grad_norm_before_clip"].as_f64().unwrap();
        assert!((norm - want_norm).abs() <= 1e-12 * want_norm, "step {gs}: norm {norm} vs {want_norm}");
        let lr = schedule.lr_at(gs);
        let want_lr = step["lr"].as_f64().unwrap();
        assert!((lr - want_lr).abs() <= 1e-15, "step {gs}: lr {lr} vs {want_lr}");
        opt.step(&mut store, lr).unwrap();
        let state = state_map(&opt, &store);
        for (name, want) in step["after"].as_object().unwrap() {
            let what = format!("step {gs} {name}");
            assert_close(&format!("{what} value"), &values(&store, name), &f64s(&want["value"]), 1e-6);
            assert_close(&format!("{what} m"), &state[&format!("{name}.adam_m")].to_vec_f64(), &f64s(&want["m"]), 1e-6);
            assert_close(&format!("{what} v"), &state[&format!("{name}.adam_v")].to_vec_f64(), &f64s(&want["v"]), 1e-6);
            let ratio = opt.trust_ratios()[store.find(name).unwrap().0];
            let want_ratio = want["ratio"].as_f64().unwrap();
            assert!((ratio - want_ratio).abs() <= 1e-6 * want_ratio, "{what}: ratio {ratio} vs {want_ratio}");
        }
    }
    assert_eq!(opt.steps_taken(), 3);
}

// ====================================================================================== exclusions

/// One LAMB step from zero state, in f64: (update without decay, m / (sqrt(v) + eps)).
fn first_update(g: &[f32], eps: f64) -> Vec<f64> {
    g.iter()
        .map(|&g| {
            let g = f64::from(g);
            let (m, v) = (0.1 * g, 0.001 * g * g);
            m / (v.sqrt() + eps)
        })
        .collect()
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

#[test]
fn lamb_exclusions_apply_by_name() {
    let w = vec![0.5f32, -1.25, 0.75, 2.0];
    let g = vec![0.3f32, -0.1, 0.05, -0.4];
    let names = ["emb.LayerNorm.weight", "layer.0.full_layer_layer_norm.bias", "dense.bias", "dense.weight"];
    let make = || {
        let mut store = ParamStore::new();
        for n in names {
            store.add(n, Tensor::from_vec(w.clone(), &[2, 2]).unwrap()).unwrap();
        }
        let grads: Vec<(&str, Vec<f32>)> = names.iter().map(|&n| (n, g.clone())).collect();
        set_grads(&mut store, &grads);
        store
    };
    let (lr, wd, eps) = (0.1, 0.01, 1e-6);
    let u = first_update(&g, eps);
    let plain: Vec<f64> = w.iter().zip(&u).map(|(&w, u)| f64::from(w) - lr * u).collect();
    let decayed: Vec<f64> = u.iter().zip(&w).map(|(u, &w)| u + wd * f64::from(w)).collect();
    let wf: Vec<f64> = w.iter().map(|&x| f64::from(x)).collect();
    let r = norm(&wf) / norm(&decayed);
    let adapted: Vec<f64> = wf.iter().zip(&decayed).map(|(w, u)| w - r * lr * u).collect();

    // default exclusions: LayerNorm / layer_norm / bias get the plain Adam-like step
    let mut store = make();
    let mut opt = Lamb::official(lr);
    opt.step(&mut store, lr).unwrap();
    for n in &names[..3] {
        assert_close(n, &values(&store, n), &plain, 1e-6);
        assert_eq!(opt.trust_ratios()[store.find(n).unwrap().0], 1.0, "{n}");
    }
    assert_close("dense.weight", &values(&store, "dense.weight"), &adapted, 1e-6);
    assert!((opt.trust_ratios()[3] - r).abs() <= 1e-6 * r, "ratio {} vs {r}", opt.trust_ratios()[3]);

    // no exclusions: every tensor gets weight decay and the trust ratio
    let mut store = make();
    let mut opt = Lamb::official(lr).with_exclusions::<&str>(&[]);
    opt.step(&mut store, lr).unwrap();
    for n in names {
        assert_close(n, &values(&store, n), &adapted, 1e-6);
    }

    // a custom list: only names containing "dense"
    let mut store = make();
    let mut opt = Lamb::official(lr).with_exclusions(&["dense"]);
    opt.step(&mut store, lr).unwrap();
    assert_close("LayerNorm", &values(&store, names[0]), &adapted, 1e-6);
    assert_close("dense.weight", &values(&store, "dense.weight"), &plain, 1e-6);
}

#[test]
fn adamw_exclusions_skip_weight_decay_only() {
    let mk = |names: &[&str]| {
        let mut store = ParamStore::new();
        for n in names {
            store.add(n, Tensor::from_vec(vec![0.5f32, -1.0, 2.0], &[3]).unwrap()).unwrap();
        }
        store
    };
    let names = ["a.LayerNorm.weight", "a.dense.bias", "a.dense.weight"];
    let grads: Vec<(&str, Vec<f32>)> = names.iter().map(|&n| (n, vec![0.1f32, 0.2, -0.3])).collect();
    let run = |mut opt: AdamW| {
        let mut store = mk(&names);
        for _ in 0..3 {
            set_grads(&mut store, &grads);
            opt.step(&mut store).unwrap();
        }
        names.iter().map(|n| store.value(store.find(n).unwrap()).to_vec_f32()).collect::<Vec<_>>()
    };
    assert!(AdamW::new(1e-2, 0.9, 0.999, 1e-8, 0.1).exclude.is_empty(), "torch parity: no exclusions by default");
    let with = run(AdamW::new(1e-2, 0.9, 0.999, 1e-8, 0.1).with_exclusions(&DEFAULT_EXCLUDE));
    let decay_all = run(AdamW::new(1e-2, 0.9, 0.999, 1e-8, 0.1));
    let decay_none = run(AdamW::new(1e-2, 0.9, 0.999, 1e-8, 0.0));
    assert_eq!(with[0], decay_none[0]);
    assert_eq!(with[1], decay_none[1]);
    assert_eq!(with[2], decay_all[2]);
    assert_ne!(decay_all[2], decay_none[2]);
}

#[test]
fn adamw_step_with_lr_is_step_at_that_lr() {
    let mut a = ParamStore::new();
    a.add("w", Tensor::from_vec(vec![1.0f32, -2.0, 3.0], &[3]).unwrap()).unwrap();
    let mut b = a.clone();
    let mut oa = AdamW::new(3e-3, 0.9, 0.999, 1e-8, 0.01);
    let mut ob = AdamW::new(1.0, 0.9, 0.999, 1e-8, 0.01);
    for k in 0..4 {
        let g = vec![0.1f32 * k as f32, -0.2, 0.3];
        set_grads(&mut a, &[("w", g.clone())]);
        set_grads(&mut b, &[("w", g)]);
        oa.step(&mut a).unwrap();
        Optimizer::step(&mut ob, &mut b, 3e-3).unwrap();
    }
    assert_eq!(a.value(ParamId(0)).to_vec_f32(), b.value(ParamId(0)).to_vec_f32());
    assert_eq!(Optimizer::steps_taken(&ob), 4);
}

/// The torch AdamW update written out element by element in f32, in torch's order (lerp for m,
/// 1 - beta rounded from f64): the rayon / exclusion machinery must not change a bit.
#[test]
fn adamw_update_is_unchanged_bit_for_bit() {
    let (lr, b1, b2, eps, wd) = (1e-3f64, 0.9f64, 0.999f64, 1e-8f64, 0.01f64);
    let w0: Vec<f32> = (0..37).map(|i| (i as f32 * 0.71).sin()).collect();
    let mut store = ParamStore::new();
    store.add("w", Tensor::from_vec(w0.clone(), &[37]).unwrap()).unwrap();
    let mut opt = AdamW::new(lr, b1, b2, eps, wd);
    let (mut w, mut m, mut v) = (w0, vec![0f32; 37], vec![0f32; 37]);
    for t in 1..=5 {
        let g: Vec<f32> = (0..37).map(|i| ((i * 3 + t * 11) as f32 * 0.29).cos() * 0.1).collect();
        set_grads(&mut store, &[("w", g.clone())]);
        opt.step(&mut store).unwrap();
        let (c1, b2f, c2) = ((1.0 - b1) as f32, b2 as f32, (1.0 - b2) as f32);
        let bc1 = 1.0 - b1.powi(t);
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt() as f32;
        let step_size = (lr / bc1) as f32;
        let decay = (1.0 - lr * wd) as f32;
        for i in 0..37 {
            w[i] *= decay;
            m[i] += c1 * (g[i] - m[i]);
            v[i] = b2f * v[i] + c2 * g[i] * g[i];
            w[i] -= step_size * m[i] / (v[i].sqrt() / bc2_sqrt + eps as f32);
        }
        assert_eq!(bits(store.value(ParamId(0))), w.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), "step {t}");
    }
}

// ====================================================================================== zero norms

#[test]
fn lamb_zero_norms_give_ratio_one() {
    let (lr, wd, eps) = (0.05, 0.01, 1e-6);
    let g = vec![0.2f32, -0.7, 0.1];
    let mut store = ParamStore::new();
    let zero_w = store.add("a.weight", Tensor::zeros(&[3], engine::DType::F32)).unwrap();
    let zero_both = store.add("b.weight", Tensor::zeros(&[3], engine::DType::F32)).unwrap();
    let zero_g = store.add("c.weight", Tensor::from_vec(vec![1.0f32, -2.0, 0.5], &[3]).unwrap()).unwrap();
    let idle = store.add("d.weight", Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap()).unwrap();
    set_grads(&mut store, &[("a.weight", g.clone()), ("b.weight", vec![0.0; 3]), ("c.weight", vec![0.0; 3])]);

    // wd = 0 first: c's update is exactly zero
    let mut s0 = store.clone();
    let mut opt0 = Lamb::new(lr, 0.9, 0.999, eps, 0.0);
    opt0.step(&mut s0, lr).unwrap();
    assert_eq!(s0.value(zero_g).to_vec_f32(), vec![1.0, -2.0, 0.5], "zero update leaves the weight alone");
    assert_eq!(opt0.trust_ratios()[zero_g.0], 1.0);

    let mut opt = Lamb::new(lr, 0.9, 0.999, eps, wd);
    opt.step(&mut store, lr).unwrap();
    let r = opt.trust_ratios();
    // ||w|| = 0: ratio 1, w = -lr * m / (sqrt(v) + eps)
    assert_eq!(r[zero_w.0], 1.0);
    let want: Vec<f64> = first_update(&g, eps).iter().map(|u| -lr * u).collect();
    assert_close("a.weight", &values(&store, "a.weight"), &want, 1e-6);
    // both zero: ratio 1, stays zero
    assert_eq!(r[zero_both.0], 1.0);
    assert_eq!(store.value(zero_both).to_vec_f32(), vec![0.0; 3]);
    // zero gradient, wd > 0: u = wd * w, ratio 1/wd, so w -> w (1 - lr)
    assert!((r[zero_g.0] - 1.0 / wd).abs() <= 1e-6 / wd, "ratio {}", r[zero_g.0]);
    assert_close("c.weight", &values(&store, "c.weight"), &[0.95, -1.9, 0.475], 1e-6);
    // no gradient: untouched, ratio NaN, no state
    assert!(r[idle.0].is_nan());
    assert_eq!(store.value(idle).to_vec_f32(), vec![1.0, 2.0, 3.0]);
    assert!(!state_map(&opt, &store).contains_key("d.weight.adam_m"));
}

// ====================================================================================== clipping

#[test]
fn clip_grad_norm_scales_only_above_the_threshold() {
    let mut store = ParamStore::new();
    store.add("a", Tensor::zeros(&[2], engine::DType::F32)).unwrap();
    store.add("b", Tensor::zeros(&[2, 2], engine::DType::F32)).unwrap();
    let none = store.add("c", Tensor::zeros(&[3], engine::DType::F32)).unwrap();
    let (ga, gb) = (vec![0.3f32, -0.4], vec![1.2f32, 0.0, -0.5, 2.0]);
    let want = [&ga[..], &gb[..]].concat().iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();

    // below (and exactly at) the threshold: unchanged, bit for bit
    for max in [10.0, want] {
        set_grads(&mut store, &[("a", ga.clone()), ("b", gb.clone())]);
        let n = clip_grad_norm(&mut store, max);
        assert_eq!(n, want);
        assert_eq!(store.grad(ParamId(0)).unwrap().to_vec_f32(), ga);
        assert_eq!(store.grad(ParamId(1)).unwrap().to_vec_f32(), gb);
    }

    // above: every gradient times max / norm, the pre-clip norm returned
    set_grads(&mut store, &[("a", ga.clone()), ("b", gb.clone())]);
    let n = clip_grad_norm(&mut store, 1.0);
    assert_eq!(n, want);
    let scale = (1.0 / want) as f32;
    let got_a = store.grad(ParamId(0)).unwrap().to_vec_f32();
    let got_b = store.grad(ParamId(1)).unwrap().to_vec_f32();
    assert_eq!(got_a, ga.iter().map(|x| x * scale).collect::<Vec<_>>());
    assert_eq!(got_b, gb.iter().map(|x| x * scale).collect::<Vec<_>>());
    assert!(store.grad(none).is_none(), "a parameter without gradient stays without");
    let after = clip_grad_norm(&mut store, 1.0);
    assert!((after - 1.0).abs() < 1e-6, "norm after clipping {after}");

    // no gradients at all: norm 0
    store.zero_grad();
    assert_eq!(clip_grad_norm(&mut store, 1.0), 0.0);
}

// ====================================================================================== schedule

#[test]
fn schedule_matches_the_official_formula() {
    for p in fixture()["schedule_points"].as_array().unwrap() {
        let s = Schedule {
            peak_lr: p["peak_lr"].as_f64().unwrap(),
            warmup_steps: p["warmup_steps"].as_u64().unwrap(),
            total_steps: p["total_steps"].as_u64().unwrap(),
            power: p["power"].as_f64().unwrap(),
        };
        let step = p["step"].as_u64().unwrap();
        let (got, want) = (s.lr_at(step), p["lr"].as_f64().unwrap());
        assert!((got - want).abs() <= 1e-14 * s.peak_lr, "{s:?} step {step}: {got} vs {want}");
    }
    let s = Schedule::albert_pretraining();
    assert_eq!(s, Schedule { peak_lr: 0.00176, warmup_steps: 3125, total_steps: 125_000, power: 1.0 });
    assert_eq!(s.lr_at(0), 0.0);
    assert!((s.lr_at(1562) - 0.00176 * 1562.0 / 3125.0).abs() < 1e-18);
    assert!((s.lr_at(3124) - 0.00176 * 3124.0 / 3125.0).abs() < 1e-18);
    // the end of the warmup jumps onto the decay line measured from step 0
    assert!((s.lr_at(3125) - 0.00176 * (1.0 - 3125.0 / 125000.0)).abs() < 1e-18);
    assert!((s.lr_at(3125) - 0.001716).abs() < 1e-15);
    assert!((s.lr_at(62_500) - 0.00088).abs() < 1e-18);
    assert_eq!(s.lr_at(125_000), 0.0);
    assert_eq!(s.lr_at(1_000_000), 0.0);
    // no warmup; no decay
    assert_eq!(Schedule::new(1e-3, 0, 100).lr_at(0), 1e-3);
    assert_eq!(Schedule::new(1e-3, 10, 0).lr_at(50), 1e-3);
    assert_eq!(Schedule::new(1e-3, 10, 0).lr_at(5), 5e-4);
}

// ====================================================================================== checkpoints

const NAMES: [(&str, &[usize]); 5] = [
    ("enc.LayerNorm.weight", &[4]),
    ("enc.dense.weight", &[3, 4]),
    ("enc.dense.bias", &[3]),
    ("late.weight", &[2, 2]),
    ("never.weight", &[2]),
];

fn toy_store() -> ParamStore {
    let mut store = ParamStore::new();
    for (k, (name, shape)) in NAMES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((k * 17 + i * 5) as f32 * 0.61).cos()).collect();
        store.add(name, Tensor::from_vec(v, shape).unwrap()).unwrap();
    }
    store
}

/// Deterministic gradients for step `s`; `late.weight` gets one only from step 4, `never.weight`
/// never, so a checkpoint after step 3 holds state for some parameters only.
fn toy_grads(store: &mut ParamStore, s: u64) {
    let mut grads = Vec::new();
    for (k, (name, shape)) in NAMES.iter().enumerate() {
        if *name == "never.weight" || (*name == "late.weight" && s < 4) {
            continue;
        }
        let n: usize = shape.iter().product();
        let g: Vec<f32> = (0..n).map(|i| ((s as usize * 31 + k * 7 + i * 13) as f32 * 0.37).sin() * 0.8).collect();
        grads.push((*name, g));
    }
    set_grads(store, &grads);
}

/// Steps `from..to` (global step numbers) of the toy run: clip at 1.0, schedule lr, step.
fn toy_steps(opt: &mut dyn Optimizer, store: &mut ParamStore, from: u64, to: u64) {
    let schedule = Schedule::new(0.02, 2, 10);
    for s in from..to {
        toy_grads(store, s);
        clip_grad_norm(store, 1.0);
        opt.step(store, schedule.lr_at(s)).unwrap();
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec_f32().iter().map(|x| x.to_bits()).collect()
}

fn resume_is_bit_exact(make: fn() -> Box<dyn Optimizer>, tag: &str) {
    // uninterrupted: 7 steps
    let mut store_a = toy_store();
    let mut a = make();
    toy_steps(a.as_mut(), &mut store_a, 0, 7);

    // 3 steps, save weights and optimizer state, restart from the files, 4 more steps
    let dir = temp_dir(tag);
    let mut store_b = toy_store();
    let mut b = make();
    toy_steps(b.as_mut(), &mut store_b, 0, 3);
    let weights: Vec<(String, Tensor)> = store_b.iter().map(|(_, p)| (p.name.clone(), p.value.clone())).collect();
    write_tensors(&dir.join("model.safetensors"), &weights, None).unwrap();
    save_state_file(b.as_ref(), &store_b, &dir.join("optimizer.safetensors")).unwrap();
    let saved = state_map(b.as_ref(), &store_b);
    assert!(saved.contains_key("enc.dense.weight.adam_m") && saved.contains_key("enc.LayerNorm.weight.adam_v"));
    assert!(!saved.contains_key("late.weight.adam_m"), "no state before the first gradient");
    drop((b, store_b));

    // (a safetensors file keeps no order: register in the model's order)
    let mut read: HashMap<String, Tensor> = read_tensors(&dir.join("model.safetensors")).unwrap().into_iter().collect();
    let mut store_c = ParamStore::new();
    for (name, _) in NAMES {
        store_c.add(name, read.remove(name).unwrap()).unwrap();
    }
    let mut c = make();
    load_state_file(c.as_mut(), &store_c, &dir.join("optimizer.safetensors")).unwrap();
    assert_eq!(c.steps_taken(), 3);
    toy_steps(c.as_mut(), &mut store_c, 3, 7);

    assert_eq!(c.steps_taken(), a.steps_taken());
    for ((_, pa), (_, pc)) in store_a.iter().zip(store_c.iter()) {
        assert_eq!(pa.name, pc.name);
        assert_eq!(bits(&pa.value), bits(&pc.value), "{tag}: {} differs after resuming", pa.name);
    }
    let (sa, sc) = (a.state_tensors(&store_a), c.state_tensors(&store_c));
    assert_eq!(sa.len(), sc.len());
    for ((na, ta), (nc, tc)) in sa.iter().zip(&sc) {
        assert_eq!(na, nc);
        assert_eq!(ta.shape(), tc.shape());
        if na == "step" {
            assert_eq!(ta.ids("test").unwrap(), tc.ids("test").unwrap());
        } else {
            assert_eq!(bits(ta), bits(tc), "{tag}: state {na} differs after resuming");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lamb_state_save_load_continue_is_bit_exact() {
    resume_is_bit_exact(|| Box::new(Lamb::official(0.02)), "lamb");
}

#[test]
fn adamw_state_save_load_continue_is_bit_exact() {
    resume_is_bit_exact(
        || Box::new(AdamW::new(0.02, 0.9, 0.999, 1e-8, 0.01).with_exclusions(&DEFAULT_EXCLUDE)),
        "adamw",
    );
}

/// Runs `load_state` on an edited copy of a valid state and checks the error mentions `needles`
/// and leaves the optimizer unchanged.
fn assert_rejected(
    opt: &mut Lamb,
    store: &ParamStore,
    edit: impl FnOnce(&mut Vec<(String, Tensor)>),
    needles: &[&str],
) {
    let before = opt.state_tensors(store);
    let mut tensors = before.clone();
    edit(&mut tensors);
    let err = opt.load_state(store, &tensors).unwrap_err();
    for n in needles {
        assert!(err.contains(n), "error {err:?} should mention {n:?}");
    }
    let after = opt.state_tensors(store);
    assert_eq!(before.len(), after.len(), "state changed by a failed load ({err})");
    for ((n1, t1), (n2, t2)) in before.iter().zip(&after) {
        assert_eq!(n1, n2);
        assert_eq!(t1.to_vec_f64(), t2.to_vec_f64(), "{n1} changed by a failed load ({err})");
    }
}

fn replace(tensors: &mut [(String, Tensor)], name: &str, t: Tensor) {
    tensors.iter_mut().find(|(n, _)| n == name).unwrap().1 = t;
}

#[test]
fn bad_state_gives_named_errors() {
    let mut store = toy_store();
    let mut opt = Lamb::official(0.02);
    toy_steps(&mut opt, &mut store, 0, 2);
    let f32_zeros = |shape: &[usize]| Tensor::zeros(shape, engine::DType::F32);

    assert_rejected(&mut opt, &store, |t| t.retain(|(n, _)| n != "step"), &["missing tensor step"]);
    assert_rejected(
        &mut opt,
        &store,
        |t| t.push(("enc.dense.weight.adam_x".into(), f32_zeros(&[3, 4]))),
        &["unexpected tensor enc.dense.weight.adam_x"],
    );
    assert_rejected(
        &mut opt,
        &store,
        |t| t.push(("decoder.weight.adam_m".into(), f32_zeros(&[3]))),
        &["decoder.weight.adam_m", "not a model parameter"],
    );
    assert_rejected(
        &mut opt,
        &store,
        |t| replace(t, "enc.dense.weight.adam_m", f32_zeros(&[4, 3])),
        &["enc.dense.weight.adam_m", "expected shape [3,4], found [4,3]"],
    );
    assert_rejected(
        &mut opt,
        &store,
        |t| t.retain(|(n, _)| n != "enc.dense.bias.adam_v"),
        &["missing tensor enc.dense.bias.adam_v"],
    );
    assert_rejected(
        &mut opt,
        &store,
        |t| replace(t, "enc.dense.bias.adam_m", Tensor::zeros(&[3], engine::DType::F64)),
        &["enc.dense.bias.adam_m", "dtype f64, expected f32"],
    );
    assert_rejected(
        &mut opt,
        &store,
        |t| replace(t, "enc.dense.bias.adam_v", Tensor::from_vec(vec![0.0f32, f32::NAN, 0.0], &[3]).unwrap()),
        &["enc.dense.bias.adam_v", "non-finite"],
    );
    assert_rejected(
        &mut opt,
        &store,
        |t| replace(t, "step", Tensor::from_vec(vec![2.0f32], &[]).unwrap()),
        &["tensor step must be a single i64"],
    );
    assert_rejected(
        &mut opt,
        &store,
        |t| replace(t, "step", Tensor::from_i64(vec![-1], &[]).unwrap()),
        &["step is negative"],
    );
    assert_rejected(
        &mut opt,
        &store,
        |t| {
            let dup = t[0].clone();
            t.push(dup)
        },
        &["duplicate tensor enc.LayerNorm.weight.adam_m"],
    );
    assert_eq!(opt.steps_taken(), 2);

    // files: another optimizer's state, a truncated file, a missing file
    let dir = temp_dir("bad");
    let path = dir.join("optimizer.safetensors");
    save_state_file(&opt, &store, &path).unwrap();
    let mut adam = AdamW::new(1e-3, 0.9, 0.999, 1e-8, 0.0);
    let err = load_state_file(&mut adam, &store, &path).unwrap_err();
    assert!(err.contains("optimizer state of lamb, cannot load it into adamw"), "{err}");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let err = load_state_file(&mut opt, &store, &path).unwrap_err();
    assert!(err.contains("optimizer.safetensors") && err.contains("corrupt"), "{err}");
    let err = load_state_file(&mut opt, &store, &dir.join("absent.safetensors")).unwrap_err();
    assert!(err.contains("absent.safetensors") && err.contains("cannot read"), "{err}");
    // a state for another model: the parameter names do not match
    let mut other = ParamStore::new();
    other.add("x.weight", Tensor::zeros(&[2], engine::DType::F32)).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let err = load_state_file(&mut opt, &other, &path).unwrap_err();
    assert!(err.contains("not a model parameter"), "{err}");
    assert_eq!(opt.steps_taken(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

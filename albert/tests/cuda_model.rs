//! ALBERT on the GPU against the CPU: forward, every parameter's gradient, the optimizers, bf16
//! autocast, and a short pretraining run whose loss falls. Skips with a printed notice when there
//! is no CUDA device.

use albert::data::{CorpusSource, Split};
use albert::model::{Albert, Heads, Inputs, Mode};
use albert::optim::{clip_grad_norm, AdamW, Lamb, Optimizer};
use albert::tokenizer::Tokenizer;
use albert::train::{self, ObjectiveKind, OptimizerKind, RunOptions, TrainSettings};
use albert::AlbertConfig;
use autograd::{ParamStore, Tape};
use engine::{DType, Device, Rng, Tensor};
use kernels::cuda::gemm::{set_f32_precision, F32Precision};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn gpu() -> Option<Device> {
    if kernels::cuda::driver::device_count() == 0 {
        eprintln!("skipped: no CUDA device");
        return None;
    }
    Some(Device::Cuda(0))
}

fn config() -> AlbertConfig {
    AlbertConfig {
        vocab_size: 301,
        embedding_size: 32,
        hidden_size: 128,
        num_hidden_layers: 3,
        num_attention_heads: 2,
        intermediate_size: 200,
        max_position_embeddings: 40,
        initializer_range: 0.1,
        ..AlbertConfig::default()
    }
}

fn batch(b: usize, s: usize, seed: u64) -> (Inputs, Tensor, Tensor) {
    let mut rng = Rng::new(seed);
    let ids: Vec<i64> = (0..b * s).map(|_| 1 + rng.below(300) as i64).collect();
    let mask: Vec<i64> = (0..b * s).map(|i| i64::from(i % s < s - 2 * (i / s))).collect();
    let types: Vec<i64> = (0..b * s).map(|i| i64::from(i % s >= s / 2)).collect();
    let labels: Vec<i64> = ids.iter().enumerate().map(|(i, &t)| if i % 5 == 2 { t } else { -100 }).collect();
    let inputs = Inputs {
        input_ids: Tensor::from_i64(ids, &[b, s]).unwrap(),
        attention_mask: Some(Tensor::from_i64(mask, &[b, s]).unwrap()),
        token_type_ids: Some(Tensor::from_i64(types, &[b, s]).unwrap()),
    };
    let sop = Tensor::from_i64((0..b as i64).map(|i| i % 2).collect(), &[b]).unwrap();
    (inputs, Tensor::from_i64(labels, &[b, s]).unwrap(), sop)
}

/// Loss and leaves the gradients in `store`.
fn loss_and_grads(model: &Albert, store: &mut ParamStore, data: &(Inputs, Tensor, Tensor)) -> f64 {
    let tape = Tape::new();
    let l = model.pretraining_losses(&tape, store, &data.0, &data.1, &data.2, &mut Mode::Eval).unwrap();
    store.zero_grad();
    tape.backward(&l.total, store).unwrap();
    l.total.value().item().unwrap()
}

fn max_rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn forward_and_every_gradient_match_the_cpu() {
    let Some(d) = gpu() else { return };
    set_f32_precision(F32Precision::Ieee);
    let c = config();
    let mut cpu_store = ParamStore::new();
    let model = Albert::new(&c, Heads::pretraining(), &mut cpu_store, 3).unwrap();
    let mut gpu_store = cpu_store.clone();
    gpu_store.to_device(d).unwrap();
    let data = batch(3, 37, 1);
    let lc = loss_and_grads(&model, &mut cpu_store, &data);
    let lg = loss_and_grads(&model, &mut gpu_store, &data);
    assert!((lc - lg).abs() < 1e-4 * lc.abs(), "loss cpu {lc} vs gpu {lg}");
    for ((_, pc), (_, pg)) in cpu_store.iter().zip(gpu_store.iter()) {
        let (gc, gg) = (pc.grad.as_ref().unwrap(), pg.grad.as_ref().unwrap());
        assert_eq!(gg.device(), d, "{}: gradient left the device", pc.name);
        let e = max_rel_err(&gg.to_vec_f32(), &gc.to_vec_f32());
        assert!(e < 1e-3, "{}: gradient max error {e} (relative to its largest element)", pc.name);
    }
}

#[test]
fn bf16_autocast_tracks_f32_and_keeps_f32_master_gradients() {
    let Some(d) = gpu() else { return };
    set_f32_precision(F32Precision::Ieee);
    let c = config();
    let mut store = ParamStore::new();
    let mut model = Albert::new(&c, Heads::pretraining(), &mut store, 3).unwrap();
    store.to_device(d).unwrap();
    let data = batch(4, 32, 2);
    let l32 = loss_and_grads(&model, &mut store, &data);
    model.compute_dtype = DType::BF16;
    let l16 = loss_and_grads(&model, &mut store, &data);
    assert!((l32 - l16).abs() < 3e-2 * l32.abs(), "loss f32 {l32} vs bf16 autocast {l16}");
    for (_, p) in store.iter() {
        let g = p.grad.as_ref().unwrap();
        assert_eq!(g.dtype(), DType::F32, "{}: master gradient dtype", p.name);
        assert!(g.to_vec_f32().iter().all(|x| x.is_finite()), "{}: non-finite gradient", p.name);
    }
}

#[test]
fn optimizers_and_clipping_match_the_cpu() {
    let Some(d) = gpu() else { return };
    set_f32_precision(F32Precision::Ieee);
    let c = config();
    for lamb in [false, true] {
        let mut cpu_store = ParamStore::new();
        let model = Albert::new(&c, Heads::pretraining(), &mut cpu_store, 5).unwrap();
        let mut gpu_store = cpu_store.clone();
        gpu_store.to_device(d).unwrap();
        let mk = || -> Box<dyn Optimizer> {
            if lamb {
                Box::new(Lamb::official(1e-3))
            } else {
                Box::new(AdamW::new(1e-3, 0.9, 0.999, 1e-6, 0.01))
            }
        };
        let (mut oc, mut og) = (mk(), mk());
        for step in 0..3 {
            let data = batch(2, 24, 10 + step);
            loss_and_grads(&model, &mut cpu_store, &data);
            loss_and_grads(&model, &mut gpu_store, &data);
            let (nc, ng) = (clip_grad_norm(&mut cpu_store, 0.5), clip_grad_norm(&mut gpu_store, 0.5));
            assert!((nc - ng).abs() < 1e-3 * nc, "grad norm cpu {nc} vs gpu {ng}");
            oc.step(&mut cpu_store, 1e-3).unwrap();
            og.step(&mut gpu_store, 1e-3).unwrap();
        }
        for ((_, pc), (_, pg)) in cpu_store.iter().zip(gpu_store.iter()) {
            assert_eq!(pg.value.device(), d);
            let e = max_rel_err(&pg.value.to_vec_f32(), &pc.value.to_vec_f32());
            assert!(
                e < 1e-3,
                "{} ({}): parameter max error {e} after 3 steps",
                pc.name,
                if lamb { "lamb" } else { "adamw" }
            );
        }
        // The state saved from the GPU is the host format and loads back.
        let saved = og.state_tensors(&gpu_store);
        assert!(saved.iter().all(|(_, t)| t.device() == Device::Cpu));
        let mut again = mk();
        again.load_state(&gpu_store, &saved).unwrap();
    }
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("albert-cuda-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn small_corpus(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for doc in CorpusSource::Embedded.documents(Split::All).unwrap().take(60) {
        for s in doc.unwrap().sentences.iter().take(40) {
            text.push_str(s);
            text.push('\n');
        }
        text.push('\n');
    }
    let p = dir.join("corpus.txt");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_short_gpu_pretraining_run_lowers_the_loss() {
    let Some(d) = gpu() else { return };
    // The GPU machine runs a copied binary from the repository root: the path baked in at build
    // time may not exist there.
    let baked = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let root = if baked.join("data/tokenizer").exists() { baked } else { std::env::current_dir().unwrap() };
    let tok = Arc::new(Tokenizer::from_dir(&root.join("data/tokenizer")).unwrap());
    let dir = temp("pretrain");
    let corpus = small_corpus(&dir);
    let cfg = AlbertConfig {
        vocab_size: tok.vocab_size(),
        embedding_size: 64,
        hidden_size: 128,
        num_hidden_layers: 4,
        num_attention_heads: 2,
        intermediate_size: 512,
        max_position_embeddings: 128,
        ..AlbertConfig::default()
    };
    for bf16 in [false, true] {
        let s = TrainSettings {
            objective: ObjectiveKind::Sop,
            optimizer: OptimizerKind::Adamw,
            lr: 2e-3,
            warmup: 5,
            steps: 60,
            batch_size: 16,
            seq_len: 128,
            accumulate: 1,
            weight_decay: 0.01,
            clip_norm: 1.0,
            seed: 7,
            max_predictions: 20,
            eval_batches: 2,
            corpus: corpus.display().to_string(),
        };
        let out = dir.join(if bf16 { "bf16" } else { "f32" });
        let run = RunOptions { device: d, bf16, ..RunOptions::silent(&out, 1000) };
        let sum = train::pretrain(&s, &run, &cfg, tok.clone(), CorpusSource::path(&corpus)).unwrap();
        let rows = &sum.train_rows;
        let first: f64 = rows[..5].iter().map(|r| r.loss).sum::<f64>() / 5.0;
        let last: f64 = rows[rows.len() - 5..].iter().map(|r| r.loss).sum::<f64>() / 5.0;
        eprintln!("gpu pretraining (bf16 {bf16}): loss {first:.3} -> {last:.3}, {:.0} tokens/s", sum.tokens_per_s);
        assert!(last < first - 0.5, "bf16 {bf16}: loss {first} -> {last} did not fall");
        assert!(out.join("metrics.csv").exists());
    }
}

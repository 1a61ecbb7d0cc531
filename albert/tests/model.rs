//! Model-level behaviour: the sharing modes are exactly what they claim (same function as an
//! unrolled model, gradients summed over the layers that share a tensor), every head works,
//! checkpoints round-trip bit-exactly and bad ones fail with named errors, and the CLI runs.

use albert::checkpoint::{save_model_dir, write_tensors};
use albert::cli_forward::{forward_outputs, load_model};
use albert::model::{Albert, Heads, Inputs, Mode, OrderHead};
use albert::{AlbertConfig, Sharing};
use autograd::{ParamStore, Tape};
use engine::{Rng, Tensor};
use std::path::PathBuf;

fn small(sharing: Sharing) -> AlbertConfig {
    AlbertConfig {
        vocab_size: 53,
        embedding_size: 12,
        hidden_size: 18,
        num_hidden_layers: 3,
        num_attention_heads: 3,
        intermediate_size: 26,
        max_position_embeddings: 20,
        initializer_range: 0.3,
        sharing,
        ..AlbertConfig::default()
    }
}

fn batch(b: usize, s: usize, seed: u64) -> (Inputs, Tensor, Tensor) {
    let mut rng = Rng::new(seed);
    let ids: Vec<i64> = (0..b * s).map(|_| 1 + rng.below(52) as i64).collect();
    let mask: Vec<i64> = (0..b * s).map(|i| i64::from(i % s < s - (i / s))).collect(); // row r has r pads
    let types: Vec<i64> = (0..b * s).map(|i| i64::from(i % s >= s / 2)).collect();
    let labels: Vec<i64> = ids.iter().enumerate().map(|(i, &t)| if i % 4 == 1 { t } else { -100 }).collect();
    let inputs = Inputs {
        input_ids: Tensor::from_i64(ids, &[b, s]).unwrap(),
        attention_mask: Some(Tensor::from_i64(mask, &[b, s]).unwrap()),
        token_type_ids: Some(Tensor::from_i64(types, &[b, s]).unwrap()),
    };
    let sop = Tensor::from_i64((0..b as i64).map(|i| i % 2).collect(), &[b]).unwrap();
    (inputs, Tensor::from_i64(labels, &[b, s]).unwrap(), sop)
}

/// The name of the tensor in an all-shared model that plays this tensor's role.
fn shared_name(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        ["albert", "encoder", "albert_layer_groups", _, "albert_layers", _, rest @ ..]
        | ["albert", "encoder", "unshared_ffn" | "unshared_attention", _, rest @ ..] => {
            format!("albert.encoder.albert_layer_groups.0.albert_layers.0.{}", rest.join("."))
        }
        _ => name.to_string(),
    }
}

fn train_step(model: &Albert, store: &mut ParamStore, data: &(Inputs, Tensor, Tensor)) -> (f64, Tensor) {
    let tape = Tape::new();
    let l = model.pretraining_losses(&tape, store, &data.0, &data.1, &data.2, &mut Mode::Eval).unwrap();
    let out = model.encode(&Tape::no_grad(), store, &data.0, &mut Mode::Eval, false).unwrap().sequence.value().clone();
    tape.backward(&l.total, store).unwrap();
    (l.total.value().item().unwrap(), out)
}

#[test]
fn every_sharing_mode_computes_the_shared_function_and_sums_gradients() {
    let data = batch(3, 7, 1);
    let mut shared = ParamStore::new();
    let m_all = Albert::new(&small(Sharing::All), Heads::pretraining(), &mut shared, 5).unwrap();
    let (loss_all, out_all) = train_step(&m_all, &mut shared, &data);
    let layer_params = shared.iter().filter(|(_, p)| p.name.starts_with("albert.encoder.albert_layer_groups")).count();
    assert_eq!(layer_params, 16);

    for (mode, copies_per_shared) in [(Sharing::None, 3), (Sharing::Attention, 1), (Sharing::Ffn, 1)] {
        let mut store = ParamStore::new();
        let m = Albert::new(&small(mode), Heads::pretraining(), &mut store, 99).unwrap();
        // give every layer the shared model's weights
        let ids: Vec<_> = store.ids().collect();
        for id in &ids {
            let src = shared.find(&shared_name(&store.get(*id).name)).unwrap();
            store.set_value(*id, shared.value(src).clone()).unwrap();
        }
        let (loss, out) = train_step(&m, &mut store, &data);
        assert_eq!(loss, loss_all, "{mode}: same function, same arithmetic");
        assert_eq!(out.to_vec_f32(), out_all.to_vec_f32(), "{mode}");
        // the shared model's gradient of a layer tensor = sum of the copies' gradients
        for (sid, sp) in shared.iter().filter(|(_, p)| p.name.starts_with("albert.encoder.albert_layer_groups")) {
            let copies: Vec<_> =
                store.iter().filter(|(_, p)| shared_name(&p.name) == sp.name).map(|(id, _)| id).collect();
            assert!(
                copies.len() == 3 || (copies.len() == 1 && copies_per_shared == 1),
                "{mode} {}: {} copies",
                sp.name,
                copies.len()
            );
            let mut sum = vec![0f64; sp.value.numel()];
            for id in copies {
                for (s, g) in sum.iter_mut().zip(store.grad(id).unwrap().to_vec_f64()) {
                    *s += g;
                }
            }
            let want = shared.grad(sid).unwrap().to_vec_f64();
            let scale = want.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
            for (a, b) in sum.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5 * scale, "{mode} {}: unrolled sum {a} vs shared {b}", sp.name);
            }
        }
    }
}

#[test]
fn groups_and_inner_blocks_follow_the_hf_schedule() {
    // L=4, G=2, K=2: layers 0,1 run group 0's two blocks, layers 2,3 group 1's.
    let c = AlbertConfig { num_hidden_layers: 4, num_hidden_groups: 2, inner_group_num: 2, ..small(Sharing::All) };
    let mut store = ParamStore::new();
    Albert::new(&c, Heads::base(), &mut store, 1).unwrap();
    let groups: Vec<String> =
        store.iter().map(|(_, p)| p.name.clone()).filter(|n| n.ends_with("attention.query.weight")).collect();
    assert_eq!(groups.len(), 4, "{groups:?}");
    assert!(groups.iter().any(|n| n.contains("albert_layer_groups.1.albert_layers.1.")));
    let bad = AlbertConfig { sharing: Sharing::Ffn, ..c };
    assert!(Albert::new(&bad, Heads::base(), &mut ParamStore::new(), 1).is_err());
}

#[test]
fn heads_classification_nsp_and_masked_lm() {
    let data = batch(2, 6, 3);
    let c = small(Sharing::All);
    let mut store = ParamStore::new();
    let m = Albert::new(&c, Heads::classification(5), &mut store, 2).unwrap();
    let tape = Tape::new();
    let enc = m.encode(&tape, &store, &data.0, &mut Mode::Eval, false).unwrap();
    let logits = m.classifier_logits(&tape, &store, enc.pooled.as_ref().unwrap(), &mut Mode::Eval).unwrap();
    assert_eq!(logits.shape(), &[2, 5]);
    let loss = logits.cross_entropy(&Tensor::from_i64(vec![4, 0], &[2]).unwrap(), -100).unwrap();
    tape.backward(&loss, &mut store).unwrap();
    assert!(store.grad(store.find("classifier.weight").unwrap()).is_some());
    assert!(m.mlm_logits(&Tape::no_grad(), &store, &enc.sequence, None).is_err(), "no MLM head");
    // dropout in training mode changes the logits, reproducibly from the seed
    let run = |seed| {
        let t = Tape::no_grad();
        let mut rng = Rng::new(seed);
        let e = m.encode(&t, &store, &data.0, &mut Mode::Eval, false).unwrap();
        m.classifier_logits(&t, &store, e.pooled.as_ref().unwrap(), &mut Mode::Train(&mut rng))
            .unwrap()
            .value()
            .to_vec_f32()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));

    let mut store = ParamStore::new();
    let nsp = Heads { order: Some(OrderHead::Nsp), ..Heads::pretraining() };
    let m = Albert::new(&c, nsp, &mut store, 2).unwrap();
    assert!(
        store.find("nsp_classifier.classifier.weight").is_some()
            && store.find("sop_classifier.classifier.weight").is_none()
    );
    let tape = Tape::new();
    let l = m.pretraining_losses(&tape, &store, &data.0, &data.1, &data.2, &mut Mode::Eval).unwrap();
    assert!(l.total.value().item().unwrap().is_finite());

    let mut store = ParamStore::new();
    let m = Albert::new(&c, Heads::masked_lm(), &mut store, 2).unwrap();
    assert!(store.find("albert.pooler.weight").is_none());
    let out: Vec<String> = forward_outputs(&m, &store, &data.0).unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(out, ["last_hidden_state", "prediction_logits"]);
    let bad = Heads { pooler: false, ..Heads::pretraining() };
    assert!(Albert::new(&c, bad, &mut ParamStore::new(), 2).is_err());
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("albert-model-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn checkpoints_round_trip_and_bad_ones_are_named() {
    let data = batch(2, 5, 4);
    for sharing in [Sharing::All, Sharing::None, Sharing::Attention, Sharing::Ffn] {
        let c = small(sharing);
        let mut store = ParamStore::new();
        let m = Albert::new(&c, Heads::pretraining(), &mut store, 8).unwrap();
        let dir = temp_dir(&format!("rt-{sharing}"));
        save_model_dir(&dir, &c, &store).unwrap();
        let (m2, store2) = load_model(&dir).unwrap();
        let normalised = AlbertConfig {
            extra: Default::default(),
            num_hidden_groups: if sharing == Sharing::None { 3 } else { 1 },
            ..m.config.clone()
        };
        assert_eq!(AlbertConfig { extra: Default::default(), ..m2.config.clone() }, normalised);
        assert_eq!(m2.heads, m.heads);
        for ((_, a), (_, b)) in store.iter().zip(store2.iter()) {
            assert_eq!((a.name.as_str(), a.value.to_bytes()), (b.name.as_str(), b.value.to_bytes()), "{sharing}");
        }
        let (o1, o2) = (forward_outputs(&m, &store, &data.0).unwrap(), forward_outputs(&m2, &store2, &data.0).unwrap());
        for ((n1, t1), (n2, t2)) in o1.iter().zip(&o2) {
            assert_eq!((n1, t1.to_bytes()), (n2, t2.to_bytes()), "{sharing}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // a config that contradicts the weights
    let c = small(Sharing::All);
    let mut store = ParamStore::new();
    Albert::new(&c, Heads::pretraining(), &mut store, 8).unwrap();
    let dir = temp_dir("bad");
    save_model_dir(&dir, &c, &store).unwrap();
    let wrong = AlbertConfig { intermediate_size: 30, ..c.clone() };
    std::fs::write(dir.join("config.json"), wrong.to_json()).unwrap();
    let e = load_model(&dir).err().unwrap();
    assert!(e.contains("albert_layers.0.ffn.") && e.contains("expected shape [30") && e.contains("found [26"), "{e}");
    // a sharing mode that does not match the tensor names
    let wrong = AlbertConfig { sharing: Sharing::Ffn, ..c.clone() };
    std::fs::write(dir.join("config.json"), wrong.to_json()).unwrap();
    let e = load_model(&dir).err().unwrap();
    // the shared attention tensors are unexpected for `ffn` sharing (each layer owns its attention)
    assert!(e.contains("unexpected tensor albert.encoder.albert_layer_groups.0.albert_layers.0.attention."), "{e}");
    // truncated weights
    std::fs::write(dir.join("config.json"), c.to_json()).unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let e = load_model(&dir).err().unwrap();
    assert!(e.contains("model.safetensors") && e.contains("truncated or corrupt"), "{e}");
    // a config that is not valid
    std::fs::write(dir.join("config.json"), "{\"hidden_size\": 10, \"num_attention_heads\": 3}").unwrap();
    let e = load_model(&dir).err().unwrap();
    assert!(e.contains("config.json") && e.contains("not divisible by num_attention_heads 3"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_cli_runs_params_and_forward() {
    let exe = env!("CARGO_BIN_EXE_albert");
    let out = std::process::Command::new(exe).args(["params", "--preset", "base", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["albert_model"].as_u64(), v["for_pretraining"].as_u64()), (Some(11_683_584), Some(11_813_810)));

    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/albert/e_ne_h_gelu_new");
    let dir = temp_dir("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let io: Vec<(String, Tensor)> = albert::checkpoint::read_tensors(&fixture.join("io.safetensors")).unwrap();
    let inputs: Vec<(String, Tensor)> = io
        .iter()
        .filter(|(n, _)| ["input_ids", "attention_mask", "token_type_ids"].contains(&n.as_str()))
        .cloned()
        .collect();
    write_tensors(&dir.join("in.safetensors"), &inputs, None).unwrap();
    let status = std::process::Command::new(exe)
        .args(["forward", "--model"])
        .arg(&fixture)
        .arg("--inputs")
        .arg(dir.join("in.safetensors"))
        .arg("--output")
        .arg(dir.join("out.safetensors"))
        .status()
        .unwrap();
    assert!(status.success());
    let got: Vec<(String, Tensor)> = albert::checkpoint::read_tensors(&dir.join("out.safetensors")).unwrap();
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["last_hidden_state", "pooler_output", "prediction_logits", "sop_logits"]);
    let want = &io.iter().find(|(n, _)| n == "last_hidden_state").unwrap().1;
    let (g, w) = (got[0].1.to_vec_f32(), want.to_vec_f32());
    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(g.iter().zip(&w).all(|(a, b)| (a - b).abs() <= 1e-5 * scale));
    // a bad path is an error naming it, not a panic
    let out = std::process::Command::new(exe)
        .args(["forward", "--model", "/nonexistent", "--inputs", "x", "--output", "y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `recompute` (activation checkpointing) gives the same loss and parameter gradients as the
/// plain tape, with padding, shared and unshared layers.
#[test]
fn recompute_matches_the_plain_tape() {
    for sharing in [Sharing::All, Sharing::None] {
        let c = small(sharing);
        let data = batch(3, 9, 7);
        let grads = |recompute: bool| {
            let mut store = ParamStore::new();
            let mut model = Albert::new(&c, Heads::pretraining(), &mut store, 3).unwrap();
            model.recompute = recompute;
            let (loss, _) = train_step(&model, &mut store, &data);
            let g: Vec<Vec<f64>> = store.ids().map(|id| store.grad(id).map_or(vec![], |g| g.to_vec_f64())).collect();
            (loss, g)
        };
        let (l0, g0) = grads(false);
        let (l1, g1) = grads(true);
        assert!((l0 - l1).abs() <= 1e-6 * l0.abs(), "{sharing:?}: loss {l0} vs {l1}");
        for (a, b) in g0.iter().zip(&g1) {
            let scale = a.iter().fold(1e-6f64, |m, x| m.max(x.abs()));
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-5 * scale, "{sharing:?}: gradient {x} vs {y}");
            }
        }
    }
}

/// With dropout on, each recomputed block must replay its forward masks: runs are reproducible,
/// and the gradient agrees with finite differences of the (same-seeded) loss.
#[test]
fn recompute_replays_dropout_masks() {
    let c = AlbertConfig { hidden_dropout_prob: 0.2, attention_probs_dropout_prob: 0.1, ..small(Sharing::All) };
    let data = batch(2, 8, 5);
    let run = || {
        let mut store = ParamStore::new();
        let mut model = Albert::new(&c, Heads::pretraining(), &mut store, 4).unwrap();
        model.recompute = true;
        let tape = Tape::new();
        let mut rng = Rng::new(11);
        let l = model.pretraining_losses(&tape, &store, &data.0, &data.1, &data.2, &mut Mode::Train(&mut rng)).unwrap();
        let loss = l.total.value().item().unwrap();
        tape.backward(&l.total, &mut store).unwrap();
        (loss, store.ids().map(|id| store.grad(id).map_or(vec![], |g| g.to_vec_f64())).collect::<Vec<_>>())
    };
    let (l0, g0) = run();
    let (l1, g1) = run();
    assert_eq!(l0, l1);
    assert_eq!(g0, g1);
    // A wrong replay (different masks in backward) would still be deterministic, so also check
    // the gradient against finite differences of the loss along one direction: the encoder's
    // first query weight, perturbed as a whole.
    let loss_at = |delta: f64| {
        let mut store = ParamStore::new();
        let mut model = Albert::new(&c, Heads::pretraining(), &mut store, 4).unwrap();
        model.recompute = true;
        let id = store.ids().find(|&id| store.get(id).name.ends_with("attention.query.weight")).unwrap();
        let w = store.value(id).to_vec_f64().iter().map(|x| x + delta).collect::<Vec<_>>();
        let shape = store.value(id).shape().to_vec();
        store.set_value(id, Tensor::from_vec(w, &shape).unwrap().to_dtype(engine::DType::F32)).unwrap();
        let tape = Tape::new(); // recording, so the recompute path (and its mask seeds) runs
        let mut rng = Rng::new(11);
        let l = model.pretraining_losses(&tape, &store, &data.0, &data.1, &data.2, &mut Mode::Train(&mut rng)).unwrap();
        (l.total.value().item().unwrap(), id)
    };
    let h = 3e-3;
    let ((lp, id), (lm, _)) = (loss_at(h), loss_at(-h));
    let fd = (lp - lm) / (2.0 * h);
    let mut store = ParamStore::new();
    Albert::new(&c, Heads::pretraining(), &mut store, 4).unwrap();
    let pos = store.ids().position(|x| x == id).unwrap();
    let analytic: f64 = g0[pos].iter().sum();
    assert!((fd - analytic).abs() <= 0.02 * analytic.abs().max(1e-3), "fd {fd} vs analytic {analytic}");
}

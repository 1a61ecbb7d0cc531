//! The fine-tuning heads (AlbertForTokenClassification's `classifier`, AlbertForQuestionAnswering's
//! `qa_outputs`): forward and backward against the unfused composition computed by hand, a
//! finite-difference check through the whole model, checkpoint round trips with the heads
//! inferred from the tensor names; and `albert finetune` / `classify` end to end on a tiny set.

use albert::checkpoint::save_model_dir;
use albert::cli_forward::load_model;
use albert::finetune::{self, Settings, Start};
use albert::model::{Albert, Heads, Inputs, Mode};
use albert::AlbertConfig;
use autograd::{ParamStore, Tape};
use engine::{Rng, Tensor};

fn small() -> AlbertConfig {
    AlbertConfig {
        vocab_size: 41,
        embedding_size: 8,
        hidden_size: 12,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 16,
        max_position_embeddings: 16,
        initializer_range: 0.3,
        classifier_dropout_prob: 0.0,
        ..AlbertConfig::default()
    }
}

fn inputs(b: usize, s: usize, seed: u64) -> Inputs {
    let mut rng = Rng::new(seed);
    let ids: Vec<i64> = (0..b * s).map(|_| 1 + rng.below(40) as i64).collect();
    let mask: Vec<i64> = (0..b * s).map(|i| i64::from(i % s < s - (i / s))).collect();
    Inputs {
        input_ids: Tensor::from_i64(ids, &[b, s]).unwrap(),
        attention_mask: Some(Tensor::from_i64(mask, &[b, s]).unwrap()),
        token_type_ids: None,
    }
}

fn value(store: &ParamStore, name: &str) -> Vec<f32> {
    store.value(store.find(name).unwrap()).to_vec_f32()
}

fn grad(store: &ParamStore, name: &str) -> Vec<f32> {
    store.grad(store.find(name).unwrap()).expect("gradient").to_vec_f32()
}

/// x [P, H] W^T [H, N] + b, in f64.
fn linear_ref(x: &[f32], w: &[f32], b: &[f32], h: usize, n: usize) -> Vec<f64> {
    x.chunks(h)
        .flat_map(|row| {
            (0..n).map(move |j| b[j] as f64 + (0..h).map(|k| row[k] as f64 * w[j * h + k] as f64).sum::<f64>())
        })
        .collect()
}

fn close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= tol * (1.0 + w.abs()), "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn token_classification_matches_the_composition_forward_and_backward() {
    let (b, s, h, n) = (2, 5, 12, 3);
    let mut store = ParamStore::new();
    let model = Albert::new(&small(), Heads::token_classification(n), &mut store, 7).unwrap();
    assert!(store.find("albert.pooler.weight").is_none() && store.find("classifier.weight").is_some());
    let tape = Tape::new();
    let enc = model.encode(&tape, &store, &inputs(b, s, 1), &mut Mode::Eval, false).unwrap();
    let logits = model.token_logits(&tape, &store, &enc.sequence, &mut Mode::Eval).unwrap();
    assert_eq!(logits.shape(), &[b, s, n]);
    let seq = enc.sequence.value().to_vec_f32();
    let (w, bias) = (value(&store, "classifier.weight"), value(&store, "classifier.bias"));
    close(&logits.value().to_vec_f32(), &linear_ref(&seq, &w, &bias, h, n), 1e-5, "token logits");
    // d/dW sum(R * logits) = R^T X, d/db = column sums of R
    let r: Vec<f32> = (0..b * s * n).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
    let loss = logits.mul(&tape.constant(Tensor::from_vec(r.clone(), &[b, s, n]).unwrap())).unwrap().sum_all().unwrap();
    tape.backward(&loss, &mut store).unwrap();
    let dw: Vec<f64> =
        (0..n * h).map(|i| (0..b * s).map(|p| r[p * n + i / h] as f64 * seq[p * h + i % h] as f64).sum()).collect();
    let db: Vec<f64> = (0..n).map(|j| (0..b * s).map(|p| r[p * n + j] as f64).sum()).collect();
    close(&grad(&store, "classifier.weight"), &dw, 1e-4, "d classifier.weight");
    close(&grad(&store, "classifier.bias"), &db, 1e-4, "d classifier.bias");
}

#[test]
fn question_answering_matches_the_composition_forward_and_backward() {
    let (b, s, h) = (2, 6, 12);
    let mut store = ParamStore::new();
    let model = Albert::new(&small(), Heads::question_answering(), &mut store, 3).unwrap();
    let tape = Tape::new();
    let enc = model.encode(&tape, &store, &inputs(b, s, 2), &mut Mode::Eval, false).unwrap();
    let (start, end) = model.qa_logits(&tape, &store, &enc.sequence).unwrap();
    assert_eq!((start.shape(), end.shape()), (&[b, s][..], &[b, s][..]));
    let seq = enc.sequence.value().to_vec_f32();
    let want = linear_ref(&seq, &value(&store, "qa_outputs.weight"), &value(&store, "qa_outputs.bias"), h, 2);
    let pick = |c: usize| want.iter().skip(c).step_by(2).copied().collect::<Vec<f64>>();
    close(&start.value().to_vec_f32(), &pick(0), 1e-5, "start logits");
    close(&end.value().to_vec_f32(), &pick(1), 1e-5, "end logits");
    // transformers' loss: mean of the start and end cross-entropies over the sequence positions
    let (ts, te) = (Tensor::from_i64(vec![1, 4], &[b]).unwrap(), Tensor::from_i64(vec![2, 0], &[b]).unwrap());
    let loss = start
        .cross_entropy(&ts, -100)
        .unwrap()
        .add(&end.cross_entropy(&te, -100).unwrap())
        .unwrap()
        .scale(0.5)
        .unwrap();
    tape.backward(&loss, &mut store).unwrap();
    // d loss / d logits = (softmax - onehot) / (2 B) per head; chain to W by hand
    let soft = |row: &[f64], t: usize| -> Vec<f64> {
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = row.iter().map(|x| (x - m).exp()).sum();
        row.iter()
            .enumerate()
            .map(|(i, x)| ((x - m).exp() / z - f64::from(u8::from(i == t))) / (2.0 * b as f64))
            .collect()
    };
    let mut dlog = vec![0.0; b * s * 2];
    for (c, t) in [(0, [1, 4]), (1, [2, 0])] {
        let all = pick(c);
        for bi in 0..b {
            for (p, g) in soft(&all[bi * s..(bi + 1) * s], t[bi]).into_iter().enumerate() {
                dlog[(bi * s + p) * 2 + c] = g;
            }
        }
    }
    let dw: Vec<f64> =
        (0..2 * h).map(|i| (0..b * s).map(|p| dlog[p * 2 + i / h] * seq[p * h + i % h] as f64).sum()).collect();
    close(&grad(&store, "qa_outputs.weight"), &dw, 1e-4, "d qa_outputs.weight");
}

#[test]
fn head_gradients_reach_the_encoder_as_finite_differences_say() {
    // central differences of the token-classification loss in one embedding weight, f32 model
    let mut store = ParamStore::new();
    let model = Albert::new(&small(), Heads::token_classification(2), &mut store, 11).unwrap();
    let x = inputs(1, 4, 5);
    let targets = Tensor::from_i64(vec![0, 1, 1, 0], &[4]).unwrap();
    let loss_of = |store: &ParamStore| {
        let tape = Tape::no_grad();
        let enc = model.encode(&tape, store, &x, &mut Mode::Eval, false).unwrap();
        let l = model.token_logits(&tape, store, &enc.sequence, &mut Mode::Eval).unwrap().reshape(&[4, 2]).unwrap();
        l.cross_entropy(&targets, -100).unwrap().value().item().unwrap()
    };
    let tape = Tape::new();
    let enc = model.encode(&tape, &store, &x, &mut Mode::Eval, false).unwrap();
    let l = model.token_logits(&tape, &store, &enc.sequence, &mut Mode::Eval).unwrap().reshape(&[4, 2]).unwrap();
    let loss = l.cross_entropy(&targets, -100).unwrap();
    tape.backward(&loss, &mut store).unwrap();
    let id = store.find("albert.encoder.embedding_hidden_mapping_in.weight").unwrap();
    let analytic = store.grad(id).unwrap().to_vec_f32();
    let base = store.value(id).to_vec_f32();
    for k in [0, 5, 17, 40] {
        let eps = 1e-2f32;
        let mut at = |d: f32| {
            let mut v = base.clone();
            v[k] += d;
            store.set_value(id, Tensor::from_vec(v, store.value(id).shape()).unwrap()).unwrap();
            loss_of(&store)
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
        let a = analytic[k] as f64;
        assert!(
            (numeric - a).abs() <= 2e-3 * (1.0 + a.abs()),
            "element {k}: finite differences {numeric} vs backward {a}"
        );
    }
}

#[test]
fn heads_round_trip_through_checkpoints_and_are_inferred_from_names() {
    let dir = std::env::temp_dir().join(format!("albert-heads-{}", std::process::id()));
    for heads in [Heads::token_classification(3), Heads::question_answering(), Heads::classification(4)] {
        let mut store = ParamStore::new();
        let model = Albert::new(&small(), heads.clone(), &mut store, 5).unwrap();
        let mut config = small();
        config.extra.insert("architectures".into(), serde_json::json!([heads.architecture()]));
        save_model_dir(&dir, &config, &store).unwrap();
        let (back, back_store) = load_model(&dir).unwrap();
        assert_eq!(back.heads, heads);
        for (_, p) in store.iter() {
            assert_eq!(value(&back_store, &p.name), p.value.to_vec_f32(), "{}", p.name);
        }
        let x = inputs(1, 5, 9);
        let out = |m: &Albert, st: &ParamStore| -> Vec<f32> {
            let tape = Tape::no_grad();
            let e = m.encode(&tape, st, &x, &mut Mode::Eval, false).unwrap();
            if m.heads.qa {
                let (a, b) = m.qa_logits(&tape, st, &e.sequence).unwrap();
                [a.value().to_vec_f32(), b.value().to_vec_f32()].concat()
            } else if m.heads.token_labels.is_some() {
                m.token_logits(&tape, st, &e.sequence, &mut Mode::Eval).unwrap().value().to_vec_f32()
            } else {
                m.classifier_logits(&tape, st, &e.pooled.unwrap(), &mut Mode::Eval).unwrap().value().to_vec_f32()
            }
        };
        assert_eq!(out(&model, &store), out(&back, &back_store));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = ParamStore::new();
    let both = Heads { num_labels: Some(2), ..Heads::token_classification(2) };
    assert!(Albert::new(&small(), both, &mut store, 0).is_err());
    let mut store = ParamStore::new();
    assert!(Albert::new(&small(), Heads { pooler: true, ..Heads::question_answering() }, &mut store, 0).is_err());
}

#[test]
fn finetune_and_classify_end_to_end_on_a_tiny_set() {
    let dir = std::env::temp_dir().join(format!("albert-ft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pos = ["a fine and moving film", "great fun", "wonderful acting", "a delight"];
    let neg = ["a dull mess", "awful and boring", "tedious", "a waste of time"];
    let mut text = String::from("sentence\tlabel\n");
    for i in 0..4 {
        text += &format!("{}\tpos\n{}\tneg\n", pos[i], neg[i]);
    }
    std::fs::write(dir.join("train.tsv"), &text).unwrap();
    std::fs::write(dir.join("dev.tsv"), &text).unwrap();
    let out = dir.join("model");
    let s = Settings {
        start: Start::Random,
        train: dir.join("train.tsv"),
        dev: dir.join("dev.tsv"),
        epochs: 2,
        lr: 1e-3,
        batch_size: 4,
        max_seq_len: 16,
        seed: 1,
        warmup: 0.1,
        weight_decay: 0.01,
        max_train: None,
        out: Some(out.clone()),
        device: engine::Device::Cpu,
        progress_bar: false,
        quiet: true,
    };
    let o = finetune::finetune(&s, &|_| {}).unwrap();
    assert_eq!(o.labels, vec!["neg".to_string(), "pos".to_string()]);
    assert_eq!(o.epochs.len(), 2);
    assert!((0.0..=1.0).contains(&o.best.accuracy) && o.best.n == 8);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["id2label"]["1"], "pos");
    assert_eq!(config["architectures"][0], "AlbertForSequenceClassification");
    let probs = albert::cli_finetune::classify_probabilities(&out, "great fun", None).unwrap();
    assert_eq!(probs.len(), 2);
    assert!((probs.iter().map(|p| p.1).sum::<f64>() - 1.0).abs() < 1e-9);
    // a dev label the training set lacks is an error that names the file and line
    std::fs::write(dir.join("bad.tsv"), "tedious\tneutral\n").unwrap();
    let err = finetune::finetune(&Settings { dev: dir.join("bad.tsv"), out: None, ..s }, &|_| {}).unwrap_err();
    assert!(err.contains("bad.tsv:1: label \"neutral\""), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

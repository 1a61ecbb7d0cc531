//! Parity with PyTorch/transformers on committed fixtures (tests/fixtures/albert, written by
//! tests/reference/gen_albert.py): outputs, losses, every parameter gradient, and a 10-step AdamW
//! trajectory. Tolerances: outputs and losses max|d| <= 1e-5 * max|ref|; gradients <= 1e-4 of the
//! tensor's max|ref|; trajectory losses within 1e-4.

use albert::checkpoint::read_tensors;
use albert::cli_forward::{forward_outputs, load_model};
use albert::model::{Inputs, Mode};
use albert::optim::AdamW;
use autograd::Tape;
use engine::Tensor;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 3] = ["e_ne_h_gelu_new", "groups_inner_gelu_erf", "relu_e_eq_h_tied_decoder"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn dir(name: &str) -> PathBuf {
    root().join("tests/fixtures/albert").join(name)
}

fn io(name: &str, file: &str) -> HashMap<String, Tensor> {
    read_tensors(&dir(name).join(file)).unwrap().into_iter().collect()
}

fn meta(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir(name).join("meta.json")).unwrap()).unwrap()
}

/// max|got - want| <= tol * max|want|; on failure prints the tensor, the worst index, both values.
fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_vec_f64(), want.to_vec_f64());
    let scale = w.iter().fold(0f64, |m, v| m.max(v.abs()));
    let (i, d) =
        g.iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .fold((0, 0f64), |m, (i, d)| if d > m.1 { (i, d) } else { m });
    assert!(
        d <= tol * scale,
        "{what}: max|diff| {d:.3e} at index {i} (ours {}, torch {}) exceeds {tol:e} * max|ref| {scale:.3e}",
        g[i],
        w[i]
    );
}

fn inputs(t: &HashMap<String, Tensor>, prefix: &str) -> Inputs {
    Inputs {
        input_ids: t[&format!("{prefix}input_ids")].clone(),
        attention_mask: Some(t[&format!("{prefix}attention_mask")].clone()),
        token_type_ids: Some(t[&format!("{prefix}token_type_ids")].clone()),
    }
}

#[test]
fn fixtures_were_made_by_the_current_generator() {
    let bytes = std::fs::read(root().join("tests/reference/gen_albert.py")).unwrap();
    let sha = format!("{:x}", Sha256::digest(&bytes));
    for name in FIXTURES {
        let recorded = meta(name)["generator_sha256"].as_str().unwrap().to_string();
        assert_eq!(sha, recorded, "{name}: tests/reference/gen_albert.py changed since the fixtures were written: re-run tests/reference/gen_albert.py");
    }
}

#[test]
fn forward_outputs_match_transformers() {
    for name in FIXTURES {
        let (model, store) = load_model(&dir(name)).unwrap();
        let t = io(name, "io.safetensors");
        let out: HashMap<String, Tensor> =
            forward_outputs(&model, &store, &inputs(&t, "")).unwrap().into_iter().collect();
        for key in ["last_hidden_state", "pooler_output", "prediction_logits", "sop_logits"] {
            assert_close(&format!("{name}: {key}"), &out[key], &t[key], 1e-5);
        }
        // every layer-loop step (transformers 5 also records states inside a group's inner loop)
        let tape = Tape::no_grad();
        let enc = model.encode(&tape, &store, &inputs(&t, ""), &mut Mode::Eval, true).unwrap();
        let idx: Vec<usize> = meta(name)["hidden_states_index_after_layer_loop_step"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(enc.hidden_states.len(), idx.len() + 1);
        assert_close(&format!("{name}: hidden_states.0"), enc.hidden_states[0].value(), &t["hidden_states.0"], 1e-5);
        for (l, &i) in idx.iter().enumerate() {
            assert_close(
                &format!("{name}: layer {l}"),
                enc.hidden_states[l + 1].value(),
                &t[&format!("hidden_states.{i}")],
                1e-5,
            );
        }
    }
}

#[test]
fn losses_and_every_parameter_gradient_match_transformers() {
    for name in FIXTURES {
        let (model, mut store) = load_model(&dir(name)).unwrap();
        let t = io(name, "io.safetensors");
        let tape = Tape::new();
        let l = model
            .pretraining_losses(&tape, &store, &inputs(&t, ""), &t["mlm_labels"], &t["sop_labels"], &mut Mode::Eval)
            .unwrap();
        assert_close(&format!("{name}: loss"), l.total.value(), &t["loss"], 1e-5);
        assert_close(&format!("{name}: loss_mlm"), l.mlm.value(), &t["loss_mlm"], 1e-5);
        assert_close(&format!("{name}: loss_sop"), l.order.as_ref().unwrap().value(), &t["loss_sop"], 1e-5);
        tape.backward(&l.total, &mut store).unwrap();
        let mut checked = 0;
        for (_, p) in store.iter() {
            let want = &t[&format!("grad.{}", p.name)];
            let got = p.grad.as_ref().unwrap_or_else(|| panic!("{name}: no gradient for {}", p.name));
            if p.name.ends_with("attention.key.bias") {
                // Exactly zero in exact arithmetic (a constant added to every score of a softmax
                // row changes nothing): both sides hold rounding noise, so bound it absolutely.
                let worst = got.to_vec_f64().iter().chain(&want.to_vec_f64()).fold(0f64, |m, v| m.max(v.abs()));
                assert!(worst < 1e-6, "{name}: {} should be ~0, max |.| {worst:e}", p.name);
            } else {
                assert_close(&format!("{name}: grad {}", p.name), got, want, 1e-4);
            }
            checked += 1;
        }
        assert_eq!(
            checked,
            t.keys().filter(|k| k.starts_with("grad.")).count(),
            "{name}: every torch gradient checked"
        );
    }
}

#[test]
fn ten_adamw_steps_follow_the_torch_trajectory() {
    let name = "e_ne_h_gelu_new";
    let (model, mut store) = load_model(&dir(name)).unwrap();
    let t = io(name, "trajectory.safetensors");
    let want = t["losses"].to_vec_f64();
    let mut opt = AdamW::new(1e-3, 0.9, 0.999, 1e-8, 0.01);
    for (step, &w) in want.iter().enumerate() {
        let p = format!("step{step}.");
        let tape = Tape::new();
        let l = model
            .pretraining_losses(
                &tape,
                &store,
                &inputs(&t, &p),
                &t[&format!("{p}mlm_labels")],
                &t[&format!("{p}sop_labels")],
                &mut Mode::Eval,
            )
            .unwrap();
        let got = l.total.value().item().unwrap();
        assert!((got - w).abs() <= 1e-4, "step {step}: loss {got} vs torch {w}");
        store.zero_grad();
        tape.backward(&l.total, &mut store).unwrap();
        opt.step(&mut store).unwrap();
    }
    // and the weights after the 10th update. Not attention.key.bias: its true gradient is zero, and
    // Adam's m / sqrt(v) turns either side's rounding noise into full-size steps of random sign.
    for (_, p) in store.iter().filter(|(_, p)| !p.name.ends_with("attention.key.bias")) {
        assert_close(&format!("final {}", p.name), &p.value, &t[&format!("final.{}", p.name)], 1e-4);
    }
}

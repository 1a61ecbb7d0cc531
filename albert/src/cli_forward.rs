//! `albert forward`: run a Hugging Face ALBERT checkpoint on token ids from a safetensors file and
//! write transformers' outputs, so anyone can compare our engine with PyTorch on their own model.

use crate::checkpoint::{self, load_into, CheckpointError};
use crate::config::AlbertConfig;
use crate::model::{Albert, Heads, Inputs, Mode, OrderHead};
use autograd::{ParamStore, Tape};
use engine::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ForwardArgs {
    /// Model directory: config.json + model.safetensors.
    #[arg(long)]
    pub model: PathBuf,
    /// safetensors with int64 input_ids [B,S] and optional attention_mask, token_type_ids.
    #[arg(long)]
    pub inputs: PathBuf,
    /// Where to write last_hidden_state, pooler_output, prediction_logits, sop_logits (f32).
    #[arg(long)]
    pub output: PathBuf,
    /// cpu, cuda or cuda:N (outputs are written from the host either way).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The heads a checkpoint carries, read off its tensor names.
pub fn heads_in(names: &[String], config: &AlbertConfig) -> Result<Heads, String> {
    let has =
        |n: &str| names.iter().any(|k| k == n || k.strip_prefix("albert.") == Some(n) || format!("albert.{k}") == n);
    let order = if has("sop_classifier.classifier.weight") {
        Some(OrderHead::Sop)
    } else if has("nsp_classifier.classifier.weight") {
        Some(OrderHead::Nsp)
    } else {
        None
    };
    let pooler = has("albert.pooler.weight");
    let labels = if has("classifier.weight") {
        let n = config.extra.get("id2label").and_then(|m| m.as_object()).map(|m| m.len());
        Some(n.unwrap_or(2))
    } else {
        None
    };
    // `classifier.*` is the sequence classifier on the pooled output (AlbertForSequenceClassification,
    // which has the pooler) or the per-token classifier (AlbertForTokenClassification, which has none).
    let (num_labels, token_labels) = if pooler { (labels, None) } else { (None, labels) };
    Ok(Heads {
        pooler,
        mlm: has("predictions.dense.weight"),
        order,
        num_labels,
        token_labels,
        qa: has("qa_outputs.weight"),
    })
}

/// Loads a model directory into a fresh store (heads inferred from the weights).
pub fn load_model(dir: &Path) -> Result<(Albert, ParamStore), String> {
    let (config, tensors) = checkpoint::load_model_dir(dir).map_err(|e| e.to_string())?;
    let names: Vec<String> = tensors.iter().map(|(n, _)| n.clone()).collect();
    let mut heads = heads_in(&names, &config)?;
    if let Some((_, w)) = tensors.iter().find(|(n, _)| n == "classifier.weight") {
        let n = Some(w.shape()[0]);
        if heads.num_labels.is_some() {
            heads.num_labels = n;
        } else {
            heads.token_labels = n;
        }
    }
    let mut store = ParamStore::new();
    let model = Albert::new_zeroed(&config, heads, &mut store).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join(checkpoint::WEIGHTS_FILE);
    load_into(&mut store, tensors, &file).map_err(|e: CheckpointError| e.to_string())?;
    Ok((model, store))
}

fn ids_tensor(t: &Tensor, name: &str, file: &Path) -> Result<Tensor, String> {
    let v: Vec<i64> = match t.dtype() {
        DType::I64 => t.ids(name).map_err(|e| e.to_string())?,
        // masks are sometimes saved as floats
        DType::F32 | DType::F64 | DType::BF16 | DType::F16 => {
            t.to_vec_f64().iter().map(|&x| x.round() as i64).collect()
        }
    };
    if t.rank() != 2 {
        return Err(format!("{}: {name} must be [batch, seq], got {}", file.display(), t.dims()));
    }
    Tensor::from_i64(v, t.shape()).map_err(|e| e.to_string())
}

/// Reads input_ids / attention_mask / token_type_ids from a safetensors file.
pub fn read_inputs(file: &Path) -> Result<Inputs, String> {
    let tensors = checkpoint::read_tensors(file).map_err(|e| e.to_string())?;
    let get = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| ids_tensor(t, name, file)).transpose();
    let input_ids = get("input_ids")?.ok_or_else(|| format!("{}: no tensor named input_ids", file.display()))?;
    let (attention_mask, token_type_ids) = (get("attention_mask")?, get("token_type_ids")?);
    for (name, t) in [("attention_mask", &attention_mask), ("token_type_ids", &token_type_ids)] {
        if let Some(t) = t {
            if t.shape() != input_ids.shape() {
                return Err(format!(
                    "{}: {name} {} does not match input_ids {}",
                    file.display(),
                    t.dims(),
                    input_ids.dims()
                ));
            }
        }
    }
    Ok(Inputs { input_ids, attention_mask, token_type_ids })
}

/// The outputs transformers would give, by name.
pub fn forward_outputs(model: &Albert, store: &ParamStore, inputs: &Inputs) -> Result<Vec<(String, Tensor)>, String> {
    let tape = Tape::no_grad();
    let e = |e: engine::Error| e.to_string();
    let enc = model.encode(&tape, store, inputs, &mut Mode::Eval, false).map_err(e)?;
    let mut out = vec![("last_hidden_state".to_string(), enc.sequence.value().clone())];
    if let Some(p) = &enc.pooled {
        out.push(("pooler_output".into(), p.value().clone()));
    }
    if model.heads.mlm {
        out.push((
            "prediction_logits".into(),
            model.mlm_logits(&tape, store, &enc.sequence, None).map_err(e)?.value().clone(),
        ));
    }
    if let (Some(order), Some(p)) = (model.heads.order, &enc.pooled) {
        let name = if order == OrderHead::Sop { "sop_logits" } else { "nsp_logits" };
        out.push((name.into(), model.order_logits(&tape, store, p, &mut Mode::Eval).map_err(e)?.value().clone()));
    }
    if let (Some(_), Some(p)) = (model.heads.num_labels, &enc.pooled) {
        out.push((
            "logits".into(),
            model.classifier_logits(&tape, store, p, &mut Mode::Eval).map_err(e)?.value().clone(),
        ));
    }
    if model.heads.token_labels.is_some() {
        let logits = model.token_logits(&tape, store, &enc.sequence, &mut Mode::Eval).map_err(e)?;
        out.push(("logits".into(), logits.value().clone()));
    }
    if model.heads.qa {
        let (start, end) = model.qa_logits(&tape, store, &enc.sequence).map_err(e)?;
        out.push(("start_logits".into(), start.value().clone()));
        out.push(("end_logits".into(), end.value().clone()));
    }
    Ok(out)
}

pub fn run(args: &ForwardArgs) -> Result<(), String> {
    let device = Device::parse(&args.device).map_err(|e| format!("--device: {e}"))?;
    device.check_available().map_err(|e| e.to_string())?;
    let (model, mut store) = load_model(&args.model)?;
    store.to_device(device).map_err(|e| e.to_string())?;
    let inputs = read_inputs(&args.inputs)?;
    let t0 = std::time::Instant::now();
    let outputs = forward_outputs(&model, &store, &inputs)?;
    let secs = t0.elapsed().as_secs_f64();
    checkpoint::write_tensors(&args.output, &outputs, None).map_err(|e| e.to_string())?;
    let names: Vec<String> = outputs.iter().map(|(n, t)| format!("{n} {}", t.dims())).collect();
    println!("wrote {} ({}) in {secs:.3} s", args.output.display(), names.join(", "));
    Ok(())
}

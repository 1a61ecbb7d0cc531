//! `albert fill-mask` and `albert embed`: inference on text with a trained model directory
//! (config.json + model.safetensors + tokenizer.json).

use crate::cli_forward::load_model;
use crate::model::{Albert, Inputs, Mode};
use crate::tokenizer::{SpecialIds, Tokenizer};
use autograd::{ParamStore, Tape};
use engine::Tensor;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct FillMaskArgs {
    /// Model directory with config.json, model.safetensors and tokenizer.json.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    #[arg(long)]
    pub json: bool,
    /// Text with one or more [MASK] tokens.
    pub text: String,
}

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// One or more texts.
    #[arg(required = true)]
    pub texts: Vec<String>,
}

fn load(dir: &std::path::Path) -> Result<(Albert, ParamStore, Tokenizer, SpecialIds), String> {
    let (model, store) = load_model(dir)?;
    let tok = Tokenizer::from_dir(dir)?;
    let special = tok.special()?;
    if tok.vocab_size() != model.config.vocab_size {
        return Err(format!(
            "{}: tokenizer has {} pieces but the model's vocab_size is {}",
            dir.display(),
            tok.vocab_size(),
            model.config.vocab_size
        ));
    }
    Ok((model, store, tok, special))
}

/// `[CLS] text [SEP]` with every literal "[MASK]" turned into the mask id, cut to the model's
/// maximum length.
pub fn encode_with_masks(tok: &Tokenizer, special: SpecialIds, text: &str, max_len: usize) -> Vec<u32> {
    let mut ids = vec![special.cls];
    for (i, part) in text.split("[MASK]").enumerate() {
        if i > 0 {
            ids.push(special.mask);
        }
        ids.extend(tok.encode(part));
    }
    ids.truncate(max_len.saturating_sub(1));
    ids.push(special.sep);
    ids
}

fn one_row(ids: &[u32]) -> Result<Inputs, String> {
    let n = ids.len();
    let t = Tensor::from_i64(ids.iter().map(|&i| i as i64).collect(), &[1, n]).map_err(|e| e.to_string())?;
    Ok(Inputs { input_ids: t, attention_mask: None, token_type_ids: None })
}

pub fn fill_mask(args: &FillMaskArgs) -> Result<(), String> {
    let (model, store, tok, special) = load(&args.model)?;
    if !model.heads.mlm {
        return Err(format!("{}: this checkpoint has no MLM head", args.model.display()));
    }
    let ids = encode_with_masks(&tok, special, &args.text, model.config.max_position_embeddings);
    let positions: Vec<usize> = ids.iter().enumerate().filter(|(_, &i)| i == special.mask).map(|(p, _)| p).collect();
    if positions.is_empty() {
        return Err("fill-mask: the text has no [MASK]".into());
    }
    let tape = Tape::no_grad();
    let e = |e: engine::Error| e.to_string();
    let enc = model.encode(&tape, &store, &one_row(&ids)?, &mut Mode::Eval, false).map_err(e)?;
    let rows = Tensor::from_i64(positions.iter().map(|&p| p as i64).collect(), &[positions.len()])
        .map_err(|x| x.to_string())?;
    let logits = model.mlm_logits(&tape, &store, &enc.sequence, Some(&rows)).map_err(e)?;
    let v = model.config.vocab_size;
    let mut out = Vec::new();
    for (k, row) in logits.value().to_vec_f32().chunks(v).enumerate() {
        let max = row.iter().fold(f32::MIN, |m, &x| m.max(x));
        let z: f64 = row.iter().map(|&x| ((x - max) as f64).exp()).sum();
        let mut order: Vec<usize> = (0..v).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let top: Vec<(String, f64)> = order
            .iter()
            .take(args.top_k)
            .map(|&i| (tok.id_to_piece(i as u32).unwrap_or("?").to_string(), ((row[i] - max) as f64).exp() / z))
            .collect();
        out.push((positions[k], top));
    }
    if args.json {
        let v: Vec<serde_json::Value> = out
            .iter()
            .map(|(pos, top)| {
                let c: Vec<serde_json::Value> =
                    top.iter().map(|(t, p)| serde_json::json!({"token": t, "probability": p})).collect();
                serde_json::json!({"position": pos, "candidates": c})
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for (pos, top) in out {
            println!("[MASK] at position {pos}:");
            for (t, p) in top {
                println!("  {t:<20} {p:.4}");
            }
        }
    }
    Ok(())
}

pub fn embed(args: &EmbedArgs) -> Result<(), String> {
    let (model, store, tok, special) = load(&args.model)?;
    let tape = Tape::no_grad();
    let mut out = Vec::new();
    for text in &args.texts {
        let ids = encode_with_masks(&tok, special, text, model.config.max_position_embeddings);
        let enc = model.encode(&tape, &store, &one_row(&ids)?, &mut Mode::Eval, false).map_err(|e| e.to_string())?;
        let h = model.config.hidden_size;
        let seq = enc.sequence.value().to_vec_f32();
        let mut mean = vec![0f64; h];
        for row in seq.chunks(h) {
            mean.iter_mut().zip(row).for_each(|(m, &x)| *m += x as f64);
        }
        mean.iter_mut().for_each(|m| *m /= ids.len() as f64);
        let pooled = enc.pooled.map(|p| p.value().to_vec_f32());
        out.push(serde_json::json!({"text": text, "tokens": ids.len(), "pooled": pooled, "mean_pooled": mean}));
    }
    println!("{}", serde_json::Value::Array(out));
    Ok(())
}

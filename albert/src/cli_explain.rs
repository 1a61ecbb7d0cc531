//! `albert explain --model DIR "text"`: one forward pass, op by op. Every op the tape records is
//! listed in order with its input and output shapes, the parameters it reads (by id: ALBERT's
//! shared layer shows the same ids at every layer), estimated FLOPs, bytes moved and time,
//! grouped by layer; the attention map of every layer and head is written as a PNG.

use crate::cli_forward::load_model;
use crate::finetune::data::encode_example;
use crate::model::{Inputs, Mode};
use crate::tokenizer::Tokenizer;
use autograd::trace::{self, Entry};
use autograd::{ParamStore, Tape};
use engine::Tensor;
use plotters::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Where the attention maps go (attention-layer<L>.png).
    #[arg(long, default_value = "runs/explain")]
    pub out: PathBuf,
    /// The text (and optionally a second segment).
    #[arg(num_args = 1..=2, required = true)]
    pub texts: Vec<String>,
}

fn human(x: f64, unit: &str) -> String {
    let (v, p) = match x {
        x if x >= 1e9 => (x / 1e9, "G"),
        x if x >= 1e6 => (x / 1e6, "M"),
        x if x >= 1e3 => (x / 1e3, "K"),
        x => (x, ""),
    };
    format!("{v:.1} {p}{unit}")
}

fn dims(s: &[usize]) -> String {
    format!("[{}]", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

pub fn run(a: &ExplainArgs) -> Result<(), String> {
    let (model, store) = load_model(&a.model)?;
    let tok = Tokenizer::from_dir(&a.model)?;
    crate::train::check_tokenizer(&tok, &model.config).map_err(|e| format!("{}: {e}", a.model.display()))?;
    let special = tok.special()?;
    let (ids, types) = encode_example(
        &tok,
        special,
        &a.texts[0],
        a.texts.get(1).map(String::as_str),
        model.config.max_position_embeddings,
    );
    let s = ids.len();
    let e = |e: engine::Error| e.to_string();
    let inputs = Inputs {
        input_ids: Tensor::from_i64(ids.iter().map(|&i| i as i64).collect(), &[1, s]).map_err(e)?,
        attention_mask: None,
        token_type_ids: Some(Tensor::from_i64(types.iter().map(|&i| i as i64).collect(), &[1, s]).map_err(e)?),
    };
    let tokens: Vec<String> = ids.iter().map(|&i| tok.id_to_piece(i).unwrap_or("?").to_string()).collect();
    let c = &model.config;
    println!(
        "{}: E {} H {} L {} heads {} (head width {}) I {} V {}, sharing {}; heads: {}",
        a.model.display(),
        c.embedding_size,
        c.hidden_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        c.head_dim(),
        c.intermediate_size,
        c.vocab_size,
        c.sharing,
        model.heads.architecture()
    );
    println!("input: {} tokens: {}", s, tokens.join(" "));

    // A recording tape, so parameters are nodes whose ids the trace can name.
    let tape = Tape::new();
    trace::start();
    let result = (|| -> Result<(), String> {
        let enc = model.encode(&tape, &store, &inputs, &mut Mode::Eval, false).map_err(e)?;
        if model.heads.mlm {
            model.mlm_logits(&tape, &store, &enc.sequence, None).map_err(e)?;
        }
        if let Some(p) = &enc.pooled {
            if model.heads.order.is_some() {
                model.order_logits(&tape, &store, p, &mut Mode::Eval).map_err(e)?;
            }
            if model.heads.num_labels.is_some() {
                model.classifier_logits(&tape, &store, p, &mut Mode::Eval).map_err(e)?;
            }
        }
        if model.heads.token_labels.is_some() {
            model.token_logits(&tape, &store, &enc.sequence, &mut Mode::Eval).map_err(e)?;
        }
        if model.heads.qa {
            model.qa_logits(&tape, &store, &enc.sequence).map_err(e)?;
        }
        Ok(())
    })();
    let entries = trace::finish();
    result?;
    print_table(&entries, &store);
    let written = attention_maps(&entries, &tokens, c.num_attention_heads, c.head_dim(), &a.out)?;
    if !written.is_empty() {
        println!("\nattention maps (rows: queries, columns: keys; one panel per head): {}", written.join(", "));
    }
    Ok(())
}

fn print_table(entries: &[Entry], store: &ParamStore) {
    let name = |id: autograd::ParamId| store.get(id).name.clone();
    let mut groups: Vec<(String, Vec<&Entry>)> = Vec::new();
    for en in entries {
        match groups.last_mut() {
            Some((s, v)) if *s == en.scope => v.push(en),
            _ => groups.push((en.scope.clone(), vec![en])),
        }
    }
    let mut first_layer: Option<BTreeSet<usize>> = None;
    let (mut tf, mut tb, mut tt) = (0u64, 0u64, 0f64);
    let mut k = 0;
    for (scope, ops) in &groups {
        let ids: BTreeSet<usize> = ops.iter().flat_map(|o| o.params.iter().flatten().map(|p| p.0)).collect();
        let f: u64 = ops.iter().map(|o| o.flops).sum();
        let b: u64 = ops.iter().map(|o| o.bytes).sum();
        let t: f64 = ops.iter().map(|o| o.time.as_secs_f64()).sum();
        let shared = if scope.starts_with("layer ") {
            match &first_layer {
                None => {
                    first_layer = Some(ids.clone());
                    String::new()
                }
                Some(f0) if *f0 == ids => "  <- the same weight ids as the first layer: shared".to_string(),
                Some(f0) if !f0.is_disjoint(&ids) => "  <- shares some weight ids with the first layer".to_string(),
                Some(_) => "  <- its own weights".to_string(),
            }
        } else {
            String::new()
        };
        let ids_text = ids.iter().map(|i| format!("#{i}")).collect::<Vec<_>>().join(" ");
        println!(
            "\n== {} ({} ops, {}, {}, {:.3} ms) weights {}{}",
            if scope.is_empty() { "(outside the model)" } else { scope },
            ops.len(),
            human(f as f64, "FLOP"),
            human(b as f64, "B"),
            t * 1e3,
            if ids_text.is_empty() { "none".to_string() } else { ids_text },
            shared
        );
        println!(
            "  {:>4}  {:<17} {:<44} {:<16} {:>12} {:>11} {:>9}",
            "#", "op", "inputs", "output", "FLOPs", "bytes", "time µs"
        );
        for o in ops {
            let ins: Vec<String> = o
                .inputs
                .iter()
                .zip(&o.params)
                .map(|(s, p)| match p {
                    Some(id) => format!("w#{}{}", id.0, dims(s)),
                    None => dims(s),
                })
                .collect();
            println!(
                "  {:>4}  {:<17} {:<44} {:<16} {:>12} {:>11} {:>9.1}",
                k,
                o.op,
                ins.join(" "),
                dims(&o.output),
                o.flops,
                o.bytes,
                o.time.as_secs_f64() * 1e6
            );
            k += 1;
        }
        tf += f;
        tb += b;
        tt += t;
    }
    println!(
        "\ntotal: {} ops, {}, {} moved, {:.3} ms",
        entries.len(),
        human(tf as f64, "FLOP"),
        human(tb as f64, "B"),
        tt * 1e3
    );
    let used: BTreeSet<usize> = entries.iter().flat_map(|o| o.params.iter().flatten().map(|p| p.0)).collect();
    println!("weights (w#id = parameter id in the store):");
    for id in used {
        let p = store.get(autograd::ParamId(id));
        println!("  w#{id:<3} {} {}", name(autograd::ParamId(id)), dims(p.value.shape()));
    }
}

/// Attention probabilities [heads][S][S] of one layer's fused attention op (q, k and the
/// optional additive mask, as the op saw them), recomputed in f64: softmax(q_h k_h^T * scale + mask).
fn probs_from_qk(q: &Tensor, k: &Tensor, mask: Option<&Tensor>, heads: usize, d: usize) -> Vec<Vec<Vec<f64>>> {
    let (s, sk, h) = (q.shape()[1], k.shape()[1], q.shape()[2]);
    let (qv, kv) = (q.to_vec_f32(), k.to_vec_f32());
    let mv = mask.map(|m| m.to_vec_f32());
    let scale = 1.0 / (d as f64).sqrt();
    (0..heads)
        .map(|n| {
            (0..s)
                .map(|i| {
                    let row: Vec<f64> = (0..sk)
                        .map(|j| {
                            let dot: f64 =
                                (0..d).map(|x| qv[i * h + n * d + x] as f64 * kv[j * h + n * d + x] as f64).sum();
                            dot * scale + mv.as_ref().map_or(0.0, |m| m[j] as f64)
                        })
                        .collect();
                    let max = row.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = row.iter().map(|x| (x - max).exp()).sum();
                    row.iter().map(|x| (x - max).exp() / z).collect()
                })
                .collect()
        })
        .collect()
}

fn attention_maps(
    entries: &[Entry],
    tokens: &[String],
    heads: usize,
    d: usize,
    out: &Path,
) -> Result<Vec<String>, String> {
    let mut maps: Vec<Vec<Vec<Vec<f64>>>> = Vec::new();
    for en in entries {
        match en.op {
            "attention" if en.saved.len() >= 2 => {
                maps.push(probs_from_qk(&en.saved[0], &en.saved[1], en.saved.get(2), heads, d));
            }
            // the unfused path: softmax over [1, N, S, S] scores is the map itself
            "softmax" if en.output.len() == 4 && en.saved.len() == 1 => {
                let (n, s, sk) = (en.output[1], en.output[2], en.output[3]);
                let v = en.saved[0].to_vec_f32();
                maps.push(
                    (0..n)
                        .map(|h| (0..s).map(|i| (0..sk).map(|j| v[(h * s + i) * sk + j] as f64).collect()).collect())
                        .collect(),
                );
            }
            _ => {}
        }
    }
    if maps.is_empty() {
        return Ok(vec![]);
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    crate::train::plots::register_font();
    let mut written = Vec::new();
    for (l, m) in maps.iter().enumerate() {
        let path = out.join(format!("attention-layer{l}.png"));
        draw_layer(&path, l, m, tokens)?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

fn draw_layer(path: &Path, layer: usize, m: &[Vec<Vec<f64>>], tokens: &[String]) -> Result<(), String> {
    let n = m.len();
    let s = tokens.len();
    let tmp = path.with_extension("tmp.png");
    {
        let e = |x: &dyn std::fmt::Display| format!("{}: {x}", path.display());
        let panel = 420u32;
        let root = BitMapBackend::new(&tmp, (panel * n as u32, panel + 40)).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let (title, body) = root.split_vertically(40);
        title
            .draw_text(
                &format!("layer {layer}: attention probabilities"),
                &("sans-serif", 20).into_text_style(&title),
                (10, 10),
            )
            .map_err(|x| e(&x))?;
        let label = |x: &SegmentValue<usize>| -> String {
            match x {
                SegmentValue::CenterOf(i) if *i < s && s <= 64 => tokens[*i].clone(),
                _ => String::new(),
            }
        };
        for (h, area) in body.split_evenly((1, n)).iter().enumerate() {
            // shade from this map's smallest (white) to largest (blue) probability, so structure
            // shows even when attention is nearly uniform
            let top = m[h].iter().flatten().cloned().fold(0.0, f64::max);
            let low = m[h].iter().flatten().cloned().fold(1.0, f64::min);
            let range = (top - low).max(1e-12);
            let mut chart = ChartBuilder::on(area)
                .caption(format!("head {h} (white {low:.3} .. blue {top:.3})"), ("sans-serif", 16))
                .margin(6)
                .x_label_area_size(60)
                .y_label_area_size(70)
                .build_cartesian_2d((0..s).into_segmented(), (0..s).into_segmented())
                .map_err(|x| e(&x))?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(s.min(64))
                .y_labels(s.min(64))
                .x_label_formatter(&label)
                .y_label_formatter(&|y: &SegmentValue<usize>| match y {
                    SegmentValue::CenterOf(c) if *c < s => label(&SegmentValue::CenterOf(s - 1 - c)),
                    _ => String::new(),
                })
                .x_label_style(("sans-serif", 10).into_font().transform(FontTransform::Rotate90))
                .y_label_style(("sans-serif", 10))
                .draw()
                .map_err(|x| e(&x))?;
            // row i (query) is drawn from the top: y = s - 1 - i
            let cells = (0..s).flat_map(|i| (0..s).map(move |j| (i, j))).map(|(i, j)| {
                let p = ((m[h][i][j] - low) / range).clamp(0.0, 1.0);
                let shade = (255.0 * (1.0 - p)) as u8;
                let y = s - 1 - i;
                Rectangle::new(
                    [
                        (SegmentValue::Exact(j), SegmentValue::Exact(y + 1)),
                        (SegmentValue::Exact(j + 1), SegmentValue::Exact(y)),
                    ],
                    RGBColor(shade, shade, 255).filled(),
                )
            });
            chart.draw_series(cells).map_err(|x| e(&x))?;
        }
        root.present().map_err(|x| e(&x))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

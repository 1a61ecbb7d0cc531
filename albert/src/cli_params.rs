//! `albert params`: parameter counts per component, for AlbertModel (with pooler) and
//! AlbertForPreTraining (the tied decoder counted once), from a preset or a config file.

use crate::config::{AlbertConfig, Sharing};
use crate::model::{Albert, Heads};
use autograd::ParamStore;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ParamsArgs {
    /// base, large, xlarge, xxlarge or tiny (default base).
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// A Hugging Face config.json.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub embedding_size: Option<usize>,
    #[arg(long)]
    pub hidden: Option<usize>,
    #[arg(long)]
    pub layers: Option<usize>,
    #[arg(long)]
    pub heads: Option<usize>,
    #[arg(long)]
    pub intermediate: Option<usize>,
    #[arg(long)]
    pub vocab: Option<usize>,
    /// all (ALBERT), attention, ffn or none (BERT-like).
    #[arg(long)]
    pub sharing: Option<Sharing>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl ParamsArgs {
    /// The config these flags describe (preset or file, then overrides), validated.
    pub fn resolve(&self) -> Result<AlbertConfig, String> {
        let mut c = match &self.config {
            Some(path) => AlbertConfig::from_file(path)?,
            None => AlbertConfig::preset(self.preset.as_deref().unwrap_or("base"))?,
        };
        let set = |dst: &mut usize, v: Option<usize>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut c.embedding_size, self.embedding_size);
        set(&mut c.hidden_size, self.hidden);
        set(&mut c.num_hidden_layers, self.layers);
        set(&mut c.num_attention_heads, self.heads);
        set(&mut c.intermediate_size, self.intermediate);
        set(&mut c.vocab_size, self.vocab);
        if let Some(s) = self.sharing {
            c.sharing = s;
        }
        c.validate()?;
        Ok(c)
    }
}

/// Parameter counts of one model, by component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub embeddings: usize,
    pub projection: usize,
    pub encoder: usize,
    pub pooler: usize,
    pub mlm_head: usize,
    pub sop_head: usize,
}

impl Counts {
    pub fn albert_model(&self) -> usize {
        self.embeddings + self.projection + self.encoder + self.pooler
    }
    pub fn for_pretraining(&self) -> usize {
        self.albert_model() + self.mlm_head + self.sop_head
    }
}

/// Counts by building the pretraining model with zeroed (untouched) weights and grouping names.
pub fn count(c: &AlbertConfig) -> Result<Counts, String> {
    let mut store = ParamStore::new();
    Albert::new_zeroed(c, Heads::pretraining(), &mut store).map_err(|e| e.to_string())?;
    let mut n = Counts { embeddings: 0, projection: 0, encoder: 0, pooler: 0, mlm_head: 0, sop_head: 0 };
    for (_, p) in store.iter() {
        let k = p.value.numel();
        let name = p.name.as_str();
        let slot = if name.starts_with("albert.embeddings.") {
            &mut n.embeddings
        } else if name.starts_with("albert.encoder.embedding_hidden_mapping_in.") {
            &mut n.projection
        } else if name.starts_with("albert.encoder.") {
            &mut n.encoder
        } else if name.starts_with("albert.pooler.") {
            &mut n.pooler
        } else if name.starts_with("predictions.") {
            &mut n.mlm_head
        } else if name.starts_with("sop_classifier.") {
            &mut n.sop_head
        } else {
            return Err(format!("params: unexpected parameter {name}"));
        };
        *slot += k;
    }
    Ok(n)
}

pub fn run(args: &ParamsArgs) -> Result<(), String> {
    let c = args.resolve()?;
    let n = count(&c)?;
    if args.json {
        let v = serde_json::json!({
            "albert_model": n.albert_model(),
            "for_pretraining": n.for_pretraining(),
            "embeddings": n.embeddings,
            "embedding_hidden_mapping_in": n.projection,
            "encoder_layers": n.encoder,
            "pooler": n.pooler,
            "mlm_head": n.mlm_head,
            "sop_head": n.sop_head,
            "config": {
                "vocab_size": c.vocab_size, "embedding_size": c.embedding_size, "hidden_size": c.hidden_size,
                "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
                "intermediate_size": c.intermediate_size, "num_hidden_groups": c.num_hidden_groups,
                "inner_group_num": c.inner_group_num, "sharing": c.sharing.to_string(),
            }
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "V={} E={} H={} L={} heads={} I={} groups={} inner={} sharing={}",
        c.vocab_size,
        c.embedding_size,
        c.hidden_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        c.intermediate_size,
        c.num_hidden_groups,
        c.inner_group_num,
        c.sharing
    );
    let rows = [
        ("embeddings (word + position + type + LayerNorm, width E)", n.embeddings),
        ("embedding_hidden_mapping_in (E -> H)", n.projection),
        ("encoder layers (distinct tensors)", n.encoder),
        ("pooler", n.pooler),
        ("MLM head (decoder tied to word embeddings)", n.mlm_head),
        ("SOP head", n.sop_head),
    ];
    for (what, k) in rows {
        println!("  {what:<58} {:>13}", group(k));
    }
    println!("  {:<58} {:>13}", "AlbertModel (with pooler)", group(n.albert_model()));
    println!("  {:<58} {:>13}", "AlbertForPreTraining", group(n.for_pretraining()));
    Ok(())
}

/// 11683584 -> "11,683,584"
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures transformers gives (albert.md 2.2, computed with HF's own modules).
    #[test]
    fn counts_match_transformers_for_every_preset() {
        for (preset, model, pretraining) in [
            ("base", 11_683_584, 11_813_810),
            ("large", 17_683_968, 17_847_474),
            ("xlarge", 58_724_864, 59_021_490),
            ("xxlarge", 222_595_584, 223_158_450),
        ] {
            let n = count(&AlbertConfig::preset(preset).unwrap()).unwrap();
            assert_eq!((n.albert_model(), n.for_pretraining()), (model, pretraining), "{preset}");
        }
        let base = count(&AlbertConfig::preset("base").unwrap()).unwrap();
        assert_eq!(
            (base.embeddings, base.projection, base.encoder, base.pooler),
            (3_906_048, 99_072, 7_087_872, 590_592)
        );
        assert_eq!((base.mlm_head, base.sop_head), (128_688, 1_538));
    }

    #[test]
    fn sharing_modes_scale_as_documented() {
        let base = AlbertConfig::preset("base").unwrap();
        let layer = 7_087_872;
        let attn = 4 * (768 * 768 + 768) + 2 * 768; // q, k, v, dense + LayerNorm
        let ffn = layer - attn;
        for (s, encoder) in [
            (Sharing::All, layer),
            (Sharing::None, 12 * layer),
            (Sharing::Attention, attn + 12 * ffn),
            (Sharing::Ffn, ffn + 12 * attn),
        ] {
            let n = count(&AlbertConfig { sharing: s, ..base.clone() }).unwrap();
            assert_eq!(n.encoder, encoder, "{s}");
        }
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(12), "12");
    }
}

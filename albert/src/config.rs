//! `AlbertConfig`: the Hugging Face `config.json` fields (same names, same defaults as
//! transformers' `AlbertConfig`, i.e. xxlarge), plus our `sharing` extension for the paper's
//! cross-layer sharing ablation. Unknown fields are kept and written back unchanged.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The activation between the FFN's two linears (and in the MLM head).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// HF "gelu_new" (and "gelu_pytorch_tanh", the same formula); the official TF code's "gelu".
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh")]
    GeluTanh,
    /// HF "gelu": the exact erf form (PyTorch's default GELU).
    #[serde(rename = "gelu")]
    GeluErf,
    #[serde(rename = "relu")]
    Relu,
}

/// Which parts of a transformer block are shared across layers (paper Sec. 4.5, Table 4).
/// `all` is ALBERT. See `model::encoder` for exactly which tensors each mode shares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    #[default]
    All,
    Attention,
    Ffn,
    None,
}

impl fmt::Display for Sharing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sharing::All => "all",
            Sharing::Attention => "attention",
            Sharing::Ffn => "ffn",
            Sharing::None => "none",
        })
    }
}

impl std::str::FromStr for Sharing {
    type Err = String;
    fn from_str(s: &str) -> Result<Sharing, String> {
        match s {
            "all" => Ok(Sharing::All),
            "attention" => Ok(Sharing::Attention),
            "ffn" => Ok(Sharing::Ffn),
            "none" => Ok(Sharing::None),
            other => Err(format!("unknown sharing mode {other:?} (expected all, attention, ffn or none)")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlbertConfig {
    pub vocab_size: usize,
    pub embedding_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_hidden_groups: usize,
    pub inner_group_num: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub initializer_range: f64,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub classifier_dropout_prob: f64,
    pub pad_token_id: i64,
    pub bos_token_id: i64,
    pub eos_token_id: i64,
    /// Our extension (absent in HF files, where it means `all`).
    pub sharing: Sharing,
    /// Fields we do not use (model_type, architectures, id2label, ...), written back as read.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for AlbertConfig {
    /// transformers' defaults (the xxlarge shape).
    fn default() -> Self {
        AlbertConfig {
            vocab_size: 30000,
            embedding_size: 128,
            hidden_size: 4096,
            num_hidden_layers: 12,
            num_hidden_groups: 1,
            inner_group_num: 1,
            num_attention_heads: 64,
            intermediate_size: 16384,
            hidden_act: Activation::GeluTanh,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            initializer_range: 0.02,
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            classifier_dropout_prob: 0.1,
            pad_token_id: 0,
            bos_token_id: 2,
            eos_token_id: 3,
            sharing: Sharing::All,
            extra: serde_json::Map::new(),
        }
    }
}

/// The preset names `AlbertConfig::preset` knows.
pub const PRESETS: [&str; 5] = ["base", "large", "xlarge", "xxlarge", "tiny"];

impl AlbertConfig {
    /// The v2 release shapes (V=30000, E=128, dropout 0, gelu_new), and `tiny` for CPU demos.
    pub fn preset(name: &str) -> Result<AlbertConfig, String> {
        let (layers, hidden, heads, inter) = match name {
            "base" => (12, 768, 12, 3072),
            "large" => (24, 1024, 16, 4096),
            "xlarge" => (24, 2048, 16, 8192),
            "xxlarge" => (12, 4096, 64, 16384),
            // The default pretraining model: the configuration that leaves the unigram plateau
            // within minutes on 2 CPU cores (shared/reference/pretrain-calibration.md).
            "tiny" => {
                return Ok(AlbertConfig {
                    vocab_size: 8000,
                    embedding_size: 64,
                    hidden_size: 128,
                    num_hidden_layers: 4,
                    num_attention_heads: 2,
                    intermediate_size: 512,
                    max_position_embeddings: 128,
                    ..AlbertConfig::default()
                })
            }
            other => return Err(format!("unknown preset {other:?} (expected one of {})", PRESETS.join(", "))),
        };
        Ok(AlbertConfig {
            num_hidden_layers: layers,
            hidden_size: hidden,
            num_attention_heads: heads,
            intermediate_size: inter,
            ..AlbertConfig::default()
        })
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Every invalid combination is an error naming the fields and values.
    pub fn validate(&self) -> Result<(), String> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("embedding_size", self.embedding_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_hidden_groups", self.num_hidden_groups),
            ("inner_group_num", self.inner_group_num),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(format!("config: {name} must be positive, got 0"));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "config: hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.num_hidden_layers.is_multiple_of(self.num_hidden_groups) {
            return Err(format!(
                "config: num_hidden_layers {} is not divisible by num_hidden_groups {}",
                self.num_hidden_layers, self.num_hidden_groups
            ));
        }
        // `none` is written as HF's num_hidden_groups = L (one group per layer), so accept that too.
        let groups_ok = self.num_hidden_groups == 1
            || (self.sharing == Sharing::None && self.num_hidden_groups == self.num_hidden_layers);
        if self.sharing != Sharing::All && (!groups_ok || self.inner_group_num != 1) {
            return Err(format!(
                "config: sharing = {} needs num_hidden_groups = 1 and inner_group_num = 1 (got {} and {})",
                self.sharing, self.num_hidden_groups, self.inner_group_num
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            ("attention_probs_dropout_prob", self.attention_probs_dropout_prob),
            ("classifier_dropout_prob", self.classifier_dropout_prob),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("config: {name} must be in [0, 1), got {p}"));
            }
        }
        let positive = |x: f64| x > 0.0 && x.is_finite();
        if !positive(self.layer_norm_eps) || !positive(self.initializer_range) {
            return Err(format!(
                "config: layer_norm_eps ({}) and initializer_range ({}) must be positive",
                self.layer_norm_eps, self.initializer_range
            ));
        }
        Ok(())
    }

    /// Reads and validates a `config.json`; errors name the file (and line for bad JSON).
    pub fn from_file(path: &Path) -> Result<AlbertConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cfg: AlbertConfig = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        cfg.validate().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// The JSON text of a `config.json` (with `model_type: albert` as HF expects). `sharing = none`
    /// is written with num_hidden_groups = num_hidden_layers: that is the same model in HF's terms,
    /// so transformers loads the checkpoint as it is.
    pub fn to_json(&self) -> String {
        let mut c = self.clone();
        if c.sharing == Sharing::None {
            c.num_hidden_groups = c.num_hidden_layers;
        }
        c.extra.entry("model_type").or_insert_with(|| "albert".into());
        serde_json::to_string_pretty(&c).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hf_config_and_keeps_unknown_fields() {
        let json = r#"{"architectures":["AlbertForMaskedLM"],"attention_probs_dropout_prob":0,"bos_token_id":2,
            "classifier_dropout_prob":0.1,"down_scale_factor":1,"embedding_size":128,"eos_token_id":3,"gap_size":0,
            "hidden_act":"gelu_new","hidden_dropout_prob":0,"hidden_size":768,"initializer_range":0.02,
            "inner_group_num":1,"intermediate_size":3072,"layer_norm_eps":1e-12,"max_position_embeddings":512,
            "model_type":"albert","net_structure_type":0,"num_attention_heads":12,"num_hidden_groups":1,
            "num_hidden_layers":12,"num_memory_blocks":0,"pad_token_id":0,"type_vocab_size":2,"vocab_size":30000}"#;
        let c: AlbertConfig = serde_json::from_str(json).unwrap();
        c.validate().unwrap();
        assert_eq!(c.hidden_act, Activation::GeluTanh);
        assert_eq!(c, AlbertConfig { extra: c.extra.clone(), ..AlbertConfig::preset("base").unwrap() });
        let back: AlbertConfig = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.extra["gap_size"], 0);
        let erf: AlbertConfig = serde_json::from_str(r#"{"hidden_act":"gelu"}"#).unwrap();
        assert_eq!(erf.hidden_act, Activation::GeluErf);
        assert!(serde_json::from_str::<AlbertConfig>(r#"{"hidden_act":"swish"}"#).is_err());
    }

    #[test]
    fn invalid_values_are_named() {
        let bad = AlbertConfig { num_attention_heads: 7, ..AlbertConfig::preset("base").unwrap() };
        assert_eq!(bad.validate().unwrap_err(), "config: hidden_size 768 is not divisible by num_attention_heads 7");
        let bad = AlbertConfig { num_hidden_groups: 5, ..AlbertConfig::preset("base").unwrap() };
        assert!(bad.validate().unwrap_err().contains("num_hidden_layers 12 is not divisible by num_hidden_groups 5"));
        let bad = AlbertConfig { intermediate_size: 0, ..AlbertConfig::preset("base").unwrap() };
        assert_eq!(bad.validate().unwrap_err(), "config: intermediate_size must be positive, got 0");
        for p in PRESETS {
            AlbertConfig::preset(p).unwrap().validate().unwrap();
        }
    }
}

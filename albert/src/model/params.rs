//! Parameter registration: every tensor is created in the `ParamStore` under its Hugging Face
//! state-dict name (so checkpoints need no renaming), initialised from a seed: truncated
//! normal(initializer_range) weights, zero biases, LayerNorm weight 1 / bias 0.
//!
//! Cross-layer sharing (`config.sharing`) decides which ids the layers get:
//! - `all`  (ALBERT, HF layout): groups `albert.encoder.albert_layer_groups.{g}.albert_layers.{k}.*`;
//!   layer l runs group floor(l*G/L), each group applies its K inner blocks in order.
//! - `none` (BERT-like): one block per layer. This IS HF's layout with num_hidden_groups = L, so the
//!   checkpoint is written that way and loads in transformers unchanged.
//! - `attention`: the attention sub-block (query, key, value, dense, attention.LayerNorm) is shared
//!   and stored under group 0's HF names; each layer l owns its FFN sub-block (ffn, ffn_output,
//!   full_layer_layer_norm) under `albert.encoder.unshared_ffn.{l}.*`.
//! - `ffn`: the FFN sub-block is shared under group 0's HF names; each layer owns its attention
//!   sub-block under `albert.encoder.unshared_attention.{l}.attention.*`.
//!   The two partial modes use names transformers does not know, so such a checkpoint can never be
//!   mistaken for a standard ALBERT one.

use crate::config::{AlbertConfig, Sharing};
use autograd::{ParamId, ParamStore};
use engine::{DType, Result, Rng, Tensor};

#[derive(Clone, Copy, Debug)]
pub struct Linear {
    pub weight: ParamId,
    pub bias: ParamId,
}

#[derive(Clone, Copy, Debug)]
pub struct Norm {
    pub weight: ParamId,
    pub bias: ParamId,
}

#[derive(Clone, Copy, Debug)]
pub struct EmbeddingIds {
    pub word: ParamId,
    pub position: ParamId,
    pub token_type: ParamId,
    pub norm: Norm,
    pub mapping_in: Linear,
}

#[derive(Clone, Copy, Debug)]
pub struct AttentionIds {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub dense: Linear,
    pub norm: Norm,
}

#[derive(Clone, Copy, Debug)]
pub struct FfnIds {
    pub ffn: Linear,
    pub ffn_output: Linear,
    pub norm: Norm,
}

#[derive(Clone, Copy, Debug)]
pub struct BlockIds {
    pub attention: AttentionIds,
    pub ffn: FfnIds,
}

/// Registers tensors with the store's naming and the config's initialisation.
pub struct Init<'a> {
    pub store: &'a mut ParamStore,
    /// None: weights are zeros (shapes only, for loading a checkpoint or counting parameters;
    /// zeroed allocations are not touched until written, so even xxlarge costs nothing here).
    pub rng: Option<Rng>,
    pub std: f64,
}

impl Init<'_> {
    pub fn weight(&mut self, name: &str, shape: &[usize]) -> Result<ParamId> {
        let t = match &mut self.rng {
            Some(rng) => rng.truncated_normal_tensor(shape, self.std, DType::F32)?,
            None => Tensor::zeros(shape, DType::F32),
        };
        self.store.add(name, t)
    }

    pub fn zeros(&mut self, name: &str, shape: &[usize]) -> Result<ParamId> {
        self.store.add(name, Tensor::zeros(shape, DType::F32))
    }

    /// A Linear(in -> out): weight [out, in] (PyTorch layout), bias [out].
    pub fn linear(&mut self, prefix: &str, inp: usize, out: usize) -> Result<Linear> {
        Ok(Linear {
            weight: self.weight(&format!("{prefix}.weight"), &[out, inp])?,
            bias: self.zeros(&format!("{prefix}.bias"), &[out])?,
        })
    }

    pub fn norm(&mut self, prefix: &str, n: usize) -> Result<Norm> {
        let weight = self.store.add(&format!("{prefix}.weight"), Tensor::full(1.0f32, &[n]))?;
        Ok(Norm { weight, bias: self.zeros(&format!("{prefix}.bias"), &[n])? })
    }

    pub fn embeddings(&mut self, c: &AlbertConfig) -> Result<EmbeddingIds> {
        let e = c.embedding_size;
        Ok(EmbeddingIds {
            word: self.weight("albert.embeddings.word_embeddings.weight", &[c.vocab_size, e])?,
            position: self.weight("albert.embeddings.position_embeddings.weight", &[c.max_position_embeddings, e])?,
            token_type: self.weight("albert.embeddings.token_type_embeddings.weight", &[c.type_vocab_size, e])?,
            norm: self.norm("albert.embeddings.LayerNorm", e)?,
            mapping_in: self.linear("albert.encoder.embedding_hidden_mapping_in", e, c.hidden_size)?,
        })
    }

    fn attention(&mut self, prefix: &str, h: usize) -> Result<AttentionIds> {
        Ok(AttentionIds {
            query: self.linear(&format!("{prefix}.query"), h, h)?,
            key: self.linear(&format!("{prefix}.key"), h, h)?,
            value: self.linear(&format!("{prefix}.value"), h, h)?,
            dense: self.linear(&format!("{prefix}.dense"), h, h)?,
            norm: self.norm(&format!("{prefix}.LayerNorm"), h)?,
        })
    }

    fn ffn(&mut self, prefix: &str, h: usize, i: usize) -> Result<FfnIds> {
        Ok(FfnIds {
            ffn: self.linear(&format!("{prefix}.ffn"), h, i)?,
            ffn_output: self.linear(&format!("{prefix}.ffn_output"), i, h)?,
            norm: self.norm(&format!("{prefix}.full_layer_layer_norm"), h)?,
        })
    }

    /// The blocks each layer applies, in order: `layers[l]` lists layer l's blocks (K of them for
    /// `all`, one otherwise). Shared blocks appear with the same ids in several layers.
    pub fn encoder(&mut self, c: &AlbertConfig) -> Result<Vec<Vec<BlockIds>>> {
        let (h, i, l) = (c.hidden_size, c.intermediate_size, c.num_hidden_layers);
        let group = |g: usize, k: usize| format!("albert.encoder.albert_layer_groups.{g}.albert_layers.{k}");
        Ok(match c.sharing {
            Sharing::All | Sharing::None => {
                let groups = if c.sharing == Sharing::None { l } else { c.num_hidden_groups };
                let k_inner = if c.sharing == Sharing::None { 1 } else { c.inner_group_num };
                let mut g_blocks = Vec::with_capacity(groups);
                for g in 0..groups {
                    let mut blocks = Vec::with_capacity(k_inner);
                    for k in 0..k_inner {
                        let p = group(g, k);
                        let attention = self.attention(&format!("{p}.attention"), h)?;
                        blocks.push(BlockIds { attention, ffn: self.ffn(&p, h, i)? });
                    }
                    g_blocks.push(blocks);
                }
                (0..l).map(|layer| g_blocks[layer * groups / l].clone()).collect()
            }
            Sharing::Attention => {
                let attention = self.attention(&format!("{}.attention", group(0, 0)), h)?;
                (0..l)
                    .map(|layer| {
                        Ok(vec![BlockIds {
                            attention,
                            ffn: self.ffn(&format!("albert.encoder.unshared_ffn.{layer}"), h, i)?,
                        }])
                    })
                    .collect::<Result<_>>()?
            }
            Sharing::Ffn => {
                let ffn = self.ffn(&group(0, 0), h, i)?;
                (0..l)
                    .map(|layer| {
                        let a = self.attention(&format!("albert.encoder.unshared_attention.{layer}.attention"), h)?;
                        Ok(vec![BlockIds { attention: a, ffn }])
                    })
                    .collect::<Result<_>>()?
            }
        })
    }
}

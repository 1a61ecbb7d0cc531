//! The ALBERT model: fused factorised embedding, the shared encoder, and the heads.
//!
//! Parameters live in a `ParamStore` under Hugging Face names (see `params`); the model holds only
//! their ids, so one set of weights is simply the same id used by several layers, and the tape
//! accumulates its gradient over every layer that used it.

mod encoder;
mod heads;
pub mod params;

pub use heads::{Heads, OrderHead, PretrainingLosses};

use crate::config::AlbertConfig;
use autograd::{ParamId, ParamStore, Tape, Var};

use engine::{DType, Error, Result, Rng, Tensor};
use params::{BlockIds, EmbeddingIds, Init, Linear};
use std::cell::RefCell;
use std::collections::HashMap;

/// The parameters as one forward pass uses them: each looked up on the tape once and, under
/// bf16 autocast, converted once -- not once per layer, although ALBERT's layers share them.
pub(crate) struct Weights<'t, 's> {
    tape: &'t Tape,
    store: &'s ParamStore,
    dtype: DType,
    cache: RefCell<HashMap<ParamId, Var<'t>>>,
}

impl<'t, 's> Weights<'t, 's> {
    pub(crate) fn new(tape: &'t Tape, store: &'s ParamStore, dtype: DType) -> Self {
        Weights { tape, store, dtype, cache: RefCell::new(HashMap::new()) }
    }

    /// Parameter `id` in the compute dtype.
    pub(crate) fn get(&self, id: ParamId) -> Result<Var<'t>> {
        if let Some(v) = self.cache.borrow().get(&id) {
            return Ok(v.clone());
        }
        let v = self.tape.param(self.store, id).to_dtype(self.dtype)?;
        self.cache.borrow_mut().insert(id, v.clone());
        Ok(v)
    }
}

/// One batch of token ids and their optional companions (all i64, shape [B, S]).
#[derive(Clone, Debug)]
pub struct Inputs {
    pub input_ids: Tensor,
    /// 1 = attend, 0 = padding. Default: all ones.
    pub attention_mask: Option<Tensor>,
    /// Default: zeros.
    pub token_type_ids: Option<Tensor>,
}

/// Whether dropout is active, and the generator that draws its masks.
pub enum Mode<'r> {
    Eval,
    Train(&'r mut Rng),
}

/// The encoder's outputs.
pub struct Encoded<'t> {
    /// [B, S, H]
    pub sequence: Var<'t>,
    /// tanh(Linear(sequence[:, 0])): [B, H]; None for a model without a pooler.
    pub pooled: Option<Var<'t>>,
    /// The input of every layer and the final output (L + 1 tensors of [B, S, H]) when requested.
    pub hidden_states: Vec<Var<'t>>,
}

pub struct Albert {
    pub config: AlbertConfig,
    pub heads: Heads,
    pub(crate) embeddings: EmbeddingIds,
    /// `layers[l]` = the blocks layer l applies (ids repeat across layers when shared).
    pub(crate) layers: Vec<Vec<BlockIds>>,
    pub(crate) pooler: Option<Linear>,
    pub(crate) head_ids: heads::HeadIds,
    /// The dtype activations and weights are computed in: f32, or bf16 (autocast on the GPU:
    /// the store keeps f32 master weights, converted once per forward; reductions stay f32).
    pub compute_dtype: DType,
    /// Training keeps only each block's input and recomputes the block inside backward
    /// (activation checkpointing: less memory for one more forward of the encoder).
    pub recompute: bool,
}

impl Albert {
    /// Registers every parameter in `store` (which should be empty) and initialises it from `seed`:
    /// truncated normal(initializer_range) weights, zero biases, LayerNorm 1 / 0.
    pub fn new(config: &AlbertConfig, heads: Heads, store: &mut ParamStore, seed: u64) -> Result<Albert> {
        Self::build(config, heads, store, Some(Rng::new(seed)))
    }

    /// Registers every parameter with zero weights (to be loaded from a checkpoint, or counted).
    pub fn new_zeroed(config: &AlbertConfig, heads: Heads, store: &mut ParamStore) -> Result<Albert> {
        Self::build(config, heads, store, None)
    }

    fn build(config: &AlbertConfig, heads: Heads, store: &mut ParamStore, rng: Option<Rng>) -> Result<Albert> {
        config.validate().map_err(Error::Invalid)?;
        let mut init = Init { store, rng, std: config.initializer_range };
        let embeddings = init.embeddings(config)?;
        let layers = init.encoder(config)?;
        let pooler = match heads.pooler {
            true => Some(init.linear("albert.pooler", config.hidden_size, config.hidden_size)?),
            false => None,
        };
        if !heads.pooler && (heads.order.is_some() || heads.num_labels.is_some()) {
            return Err(Error::Invalid("the sentence-order and classification heads need the pooler".into()));
        }
        if heads.pooler && (heads.token_labels.is_some() || heads.qa) {
            // transformers builds these with add_pooling_layer=False: a pooler would be an
            // unexpected tensor there, and it would make the head ambiguous when loading.
            return Err(Error::Invalid("the token-classification and question-answering heads take no pooler".into()));
        }
        let head_ids = heads::HeadIds::register(&mut init, config, &heads)?;
        Ok(Albert {
            config: config.clone(),
            heads,
            embeddings,
            layers,
            pooler,
            head_ids,
            compute_dtype: DType::F32,
            recompute: false,
        })
    }

    /// Runs the embeddings, the L layers and the pooler.
    pub fn encode<'t>(
        &self,
        tape: &'t Tape,
        store: &ParamStore,
        inputs: &Inputs,
        mode: &mut Mode,
        keep_hidden_states: bool,
    ) -> Result<Encoded<'t>> {
        let c = &self.config;
        let ids = &inputs.input_ids;
        if ids.rank() != 2 {
            return Err(Error::Shape(format!("input_ids must be [batch, seq], got {}", ids.dims())));
        }
        let (b, s) = (ids.shape()[0], ids.shape()[1]);
        if s > c.max_position_embeddings {
            return Err(Error::Shape(format!(
                "input_ids: sequence length {s} exceeds max_position_embeddings {}",
                c.max_position_embeddings
            )));
        }
        let zeros = Tensor::from_i64(vec![0; b * s], &[b, s])?;
        let types = inputs.token_type_ids.clone().unwrap_or(zeros);
        let positions = Tensor::from_i64((0..b * s).map(|i| (i % s) as i64).collect(), &[b, s])?;
        let w = Weights::new(tape, store, self.compute_dtype);
        let p = |id: ParamId| w.get(id);
        let e = &self.embeddings;
        let emb_params = [
            &p(e.word)?,
            &p(e.position)?,
            &p(e.token_type)?,
            &p(e.norm.weight)?,
            &p(e.norm.bias)?,
            &p(e.mapping_in.weight)?,
            &p(e.mapping_in.bias)?,
        ];
        let (dropout, mut scratch_rng) = match mode {
            Mode::Eval => (0.0, Rng::new(0)),
            Mode::Train(rng) => (c.hidden_dropout_prob, rng.fork()),
        };
        // transformers' nn.Embedding(padding_idx=pad_token_id): lookups of <pad> leave its row's gradient alone.
        let pad = usize::try_from(c.pad_token_id).ok().filter(|&p| p < c.vocab_size);
        autograd::trace::scope("embeddings");
        let mut x = Var::albert_embeddings(
            emb_params,
            ids,
            &types,
            &positions,
            c.layer_norm_eps,
            dropout,
            pad,
            &mut scratch_rng,
        )?;
        let mask = encoder::additive_mask(inputs.attention_mask.as_ref(), b, s, self.compute_dtype)?;
        let mut hidden_states = Vec::new();
        for (l, blocks) in self.layers.iter().enumerate() {
            if autograd::trace::enabled() {
                autograd::trace::scope(&format!("layer {l}"));
            }
            if keep_hidden_states {
                hidden_states.push(x.clone());
            }
            for block in blocks {
                x = if self.recompute && tape.is_recording() {
                    encoder::block_recomputed(c, &w, block, &x, mask.as_ref(), mode)?
                } else {
                    encoder::block(c, &|id| w.get(id), block, &x, mask.as_ref(), mode)?
                };
            }
        }
        if keep_hidden_states {
            hidden_states.push(x.clone());
        }
        let pooled = match self.pooler {
            Some(lin) => {
                autograd::trace::scope("pooler");
                let first = x.narrow(1, 0, 1)?.reshape(&[b, c.hidden_size])?;
                Some(first.linear(&p(lin.weight)?, Some(&p(lin.bias)?))?.tanh()?)
            }
            None => None,
        };
        Ok(Encoded { sequence: x, pooled, hidden_states })
    }
}

/// Checks an i64 [B, S] companion tensor.
pub(crate) fn check_companion(name: &str, t: &Tensor, b: usize, s: usize) -> Result<()> {
    if t.shape() != [b, s] || t.dtype() != DType::I64 {
        return Err(Error::Shape(format!(
            "{name} must be i64 [{b}, {s}] like input_ids, got {} {}",
            t.dtype(),
            t.dims()
        )));
    }
    Ok(())
}

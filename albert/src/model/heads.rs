//! The heads on top of the encoder.
//! - MLM (`predictions.*`): Linear(H -> E), activation, LayerNorm(E), then logits = x Word^T + bias
//!   with the decoder TIED to the word embeddings (no separate decoder tensor). In training only
//!   the masked positions are gathered and scored, never the whole [B, S, V].
//! - Sentence order (`sop_classifier.classifier`, [2, H]) on the pooled output, after the
//!   classifier dropout as in transformers; or the NSP head of the same shape for the paper's
//!   ablation, stored as `nsp_classifier.classifier` so the two can never be confused.
//! - Sequence classification (`classifier`, [num_labels, H]): dropout + Linear on the pooled output.
//! - Token classification (`classifier`, [num_labels, H], AlbertForTokenClassification): dropout +
//!   Linear on every position of the sequence output (logits [B, S, num_labels]); no pooler.
//! - Extractive question answering (`qa_outputs`, [2, H], AlbertForQuestionAnswering): Linear on
//!   every position, split into start and end logits ([B, S] each); no pooler, no dropout.

use super::params::{Init, Linear, Norm};
use super::{Albert, Inputs, Mode};
use crate::config::AlbertConfig;
use autograd::{ParamId, ParamStore, Tape, Var};
use engine::{Error, Result, Tensor};

/// Which sentence-pair objective the pretraining head learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderHead {
    /// Sentence-order prediction (ALBERT): label 1 = the two segments were swapped.
    Sop,
    /// Next-sentence prediction (BERT), for the ablation: label 1 = B is a random segment.
    Nsp,
}

/// The heads a model carries besides the encoder and pooler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heads {
    /// tanh(Linear) on [CLS]; AlbertForMaskedLM has none.
    pub pooler: bool,
    pub mlm: bool,
    pub order: Option<OrderHead>,
    /// Sequence classification (`classifier.*` on the pooled output).
    pub num_labels: Option<usize>,
    /// Token classification (`classifier.*` on every position; excludes `num_labels`).
    pub token_labels: Option<usize>,
    /// Question answering (`qa_outputs.*`: start / end logits).
    pub qa: bool,
}

impl Heads {
    /// AlbertModel: encoder + pooler only.
    pub fn base() -> Heads {
        Heads { pooler: true, mlm: false, order: None, num_labels: None, token_labels: None, qa: false }
    }
    /// AlbertForPreTraining: MLM + SOP.
    pub fn pretraining() -> Heads {
        Heads { mlm: true, order: Some(OrderHead::Sop), ..Heads::base() }
    }
    /// AlbertForMaskedLM (no pooler, as in transformers).
    pub fn masked_lm() -> Heads {
        Heads { pooler: false, mlm: true, ..Heads::base() }
    }
    /// AlbertForSequenceClassification.
    pub fn classification(num_labels: usize) -> Heads {
        Heads { num_labels: Some(num_labels), ..Heads::base() }
    }
    /// AlbertForTokenClassification (no pooler, as in transformers).
    pub fn token_classification(num_labels: usize) -> Heads {
        Heads { pooler: false, token_labels: Some(num_labels), ..Heads::base() }
    }
    /// AlbertForQuestionAnswering (no pooler, as in transformers).
    pub fn question_answering() -> Heads {
        Heads { pooler: false, qa: true, ..Heads::base() }
    }
    /// transformers' class name for a model with these heads (config.json `architectures`).
    pub fn architecture(&self) -> &'static str {
        if self.mlm && self.order.is_some() {
            "AlbertForPreTraining"
        } else if self.mlm {
            "AlbertForMaskedLM"
        } else if self.num_labels.is_some() {
            "AlbertForSequenceClassification"
        } else if self.token_labels.is_some() {
            "AlbertForTokenClassification"
        } else if self.qa {
            "AlbertForQuestionAnswering"
        } else {
            "AlbertModel"
        }
    }
}

pub(crate) struct MlmIds {
    dense: Linear,
    norm: Norm,
    bias: ParamId,
}

pub(crate) struct HeadIds {
    mlm: Option<MlmIds>,
    order: Option<Linear>,
    classifier: Option<Linear>,
    qa: Option<Linear>,
}

impl HeadIds {
    pub(crate) fn register(init: &mut Init, c: &AlbertConfig, heads: &Heads) -> Result<HeadIds> {
        let mlm = if heads.mlm {
            Some(MlmIds {
                dense: init.linear("predictions.dense", c.hidden_size, c.embedding_size)?,
                norm: init.norm("predictions.LayerNorm", c.embedding_size)?,
                bias: init.zeros("predictions.bias", &[c.vocab_size])?,
            })
        } else {
            None
        };
        let order = match heads.order {
            Some(OrderHead::Sop) => Some(init.linear("sop_classifier.classifier", c.hidden_size, 2)?),
            Some(OrderHead::Nsp) => Some(init.linear("nsp_classifier.classifier", c.hidden_size, 2)?),
            None => None,
        };
        let labels = match (heads.num_labels, heads.token_labels) {
            (Some(_), Some(_)) => {
                return Err(Error::Invalid(
                    "sequence and token classification heads both use the name `classifier`: pick one".into(),
                ))
            }
            (n, t) => n.or(t),
        };
        let classifier = match labels {
            Some(0) => return Err(Error::Invalid("classification head: num_labels must be positive".into())),
            Some(n) => Some(init.linear("classifier", c.hidden_size, n)?),
            None => None,
        };
        let qa = if heads.qa { Some(init.linear("qa_outputs", c.hidden_size, 2)?) } else { None };
        Ok(HeadIds { mlm, order, classifier, qa })
    }
}

/// The pretraining objective's parts: scalar losses, plus the logits and targets they came from
/// (for accuracies).
pub struct PretrainingLosses<'t> {
    /// mlm + order (or mlm alone for a model without an order head).
    pub total: Var<'t>,
    pub mlm: Var<'t>,
    /// None when the model has no sentence-order / NSP head (`--objective none`).
    pub order: Option<Var<'t>>,
    /// [P, V] logits at the P masked positions, and their i64 targets [P].
    pub mlm_logits: Var<'t>,
    pub mlm_targets: Tensor,
    /// [B, 2]
    pub order_logits: Option<Var<'t>>,
}

fn missing(head: &str) -> Error {
    Error::Invalid(format!("this model has no {head} head"))
}

impl Albert {
    /// MLM logits. `rows`: flat indices into the B*S positions to score ([P] -> logits [P, V]);
    /// None scores every position ([B, S, V], as transformers' prediction_logits).
    pub fn mlm_logits<'t>(
        &self,
        tape: &'t Tape,
        store: &ParamStore,
        sequence: &Var<'t>,
        rows: Option<&Tensor>,
    ) -> Result<Var<'t>> {
        autograd::trace::scope("MLM head");
        let ids = self.head_ids.mlm.as_ref().ok_or_else(|| missing("MLM"))?;
        let (b, s, h) = (sequence.shape()[0], sequence.shape()[1], sequence.shape()[2]);
        let w = super::Weights::new(tape, store, self.compute_dtype);
        let p = |id| w.get(id);
        let flat = sequence.reshape(&[b * s, h])?;
        let x = match rows {
            Some(r) => flat.gather_rows(r)?,
            None => flat,
        };
        let x = x.linear(&p(ids.dense.weight)?, Some(&p(ids.dense.bias)?))?;
        let x = super::encoder::activation(self.config.hidden_act, &x)?;
        let x = x.layer_norm(&p(ids.norm.weight)?, &p(ids.norm.bias)?, self.config.layer_norm_eps)?;
        let logits = x.matmul(&p(self.embeddings.word)?, false, true, Some(&p(ids.bias)?))?;
        match rows {
            Some(_) => Ok(logits),
            None => logits.reshape(&[b, s, self.config.vocab_size]),
        }
    }

    /// Sentence-order (or NSP) logits [B, 2] from the pooled output.
    pub fn order_logits<'t>(
        &self,
        tape: &'t Tape,
        store: &ParamStore,
        pooled: &Var<'t>,
        mode: &mut Mode,
    ) -> Result<Var<'t>> {
        let lin = self.head_ids.order.ok_or_else(|| missing("sentence-order"))?;
        self.pooled_linear(tape, store, pooled, lin, mode)
    }

    /// Classification logits [B, num_labels] from the pooled output.
    pub fn classifier_logits<'t>(
        &self,
        tape: &'t Tape,
        store: &ParamStore,
        pooled: &Var<'t>,
        mode: &mut Mode,
    ) -> Result<Var<'t>> {
        if self.heads.num_labels.is_none() {
            return Err(missing("sequence-classification"));
        }
        let lin = self.head_ids.classifier.ok_or_else(|| missing("classification"))?;
        self.pooled_linear(tape, store, pooled, lin, mode)
    }

    /// Token-classification logits [B, S, num_labels] from the sequence output [B, S, H]
    /// (transformers' AlbertForTokenClassification: dropout with `classifier_dropout_prob`, then
    /// the classifier at every position).
    pub fn token_logits<'t>(
        &self,
        tape: &'t Tape,
        store: &ParamStore,
        sequence: &Var<'t>,
        mode: &mut Mode,
    ) -> Result<Var<'t>> {
        autograd::trace::scope("token-classification head");
        let n = self.heads.token_labels.ok_or_else(|| missing("token-classification"))?;
        let lin = self.head_ids.classifier.ok_or_else(|| missing("token-classification"))?;
        let (b, s, h) = Self::bsh(sequence, "token_logits")?;
        let x = match mode {
            Mode::Train(rng) if self.config.classifier_dropout_prob > 0.0 => {
                sequence.dropout(self.config.classifier_dropout_prob, rng)?
            }
            _ => sequence.clone(),
        };
        let w = super::Weights::new(tape, store, self.compute_dtype);
        let logits = x.reshape(&[b * s, h])?.linear(&w.get(lin.weight)?, Some(&w.get(lin.bias)?))?;
        logits.reshape(&[b, s, n])
    }

    /// Start and end logits ([B, S] each) of extractive question answering from the sequence
    /// output [B, S, H] (transformers' AlbertForQuestionAnswering: `qa_outputs` at every position,
    /// channel 0 = start, 1 = end; no dropout).
    pub fn qa_logits<'t>(&self, tape: &'t Tape, store: &ParamStore, sequence: &Var<'t>) -> Result<(Var<'t>, Var<'t>)> {
        autograd::trace::scope("question-answering head");
        let lin = self.head_ids.qa.ok_or_else(|| missing("question-answering"))?;
        let (b, s, h) = Self::bsh(sequence, "qa_logits")?;
        let w = super::Weights::new(tape, store, self.compute_dtype);
        let logits = sequence.reshape(&[b * s, h])?.linear(&w.get(lin.weight)?, Some(&w.get(lin.bias)?))?;
        let start = logits.narrow(1, 0, 1)?.reshape(&[b, s])?;
        let end = logits.narrow(1, 1, 1)?.reshape(&[b, s])?;
        Ok((start, end))
    }

    fn bsh(sequence: &Var, what: &str) -> Result<(usize, usize, usize)> {
        match sequence.shape() {
            &[b, s, h] => Ok((b, s, h)),
            other => {
                Err(Error::Shape(format!("{what}: the sequence output must be [batch, seq, hidden], got {other:?}")))
            }
        }
    }

    fn pooled_linear<'t>(
        &self,
        tape: &'t Tape,
        store: &ParamStore,
        pooled: &Var<'t>,
        lin: Linear,
        mode: &mut Mode,
    ) -> Result<Var<'t>> {
        autograd::trace::scope("pooled head");
        let x = match mode {
            Mode::Train(rng) if self.config.classifier_dropout_prob > 0.0 => {
                pooled.dropout(self.config.classifier_dropout_prob, rng)?
            }
            _ => pooled.clone(),
        };
        let w = super::Weights::new(tape, store, self.compute_dtype);
        x.linear(&w.get(lin.weight)?, Some(&w.get(lin.bias)?))
    }

    /// MLM + sentence-order loss. mlm_labels: i64 [B, S], -100 where nothing is predicted (only the
    /// other positions are gathered and scored); order_labels: i64 [B].
    pub fn pretraining_losses<'t>(
        &self,
        tape: &'t Tape,
        store: &ParamStore,
        inputs: &Inputs,
        mlm_labels: &Tensor,
        order_labels: &Tensor,
        mode: &mut Mode,
    ) -> Result<PretrainingLosses<'t>> {
        let (b, s) = (inputs.input_ids.shape()[0], inputs.input_ids.shape().get(1).copied().unwrap_or(0));
        super::check_companion("mlm_labels", mlm_labels, b, s)?;
        if order_labels.shape() != [b] {
            return Err(Error::Shape(format!("sentence-order labels must be i64 [{b}], got {}", order_labels.dims())));
        }
        let enc = self.encode(tape, store, inputs, mode, false)?;
        let labels = mlm_labels.ids("mlm_labels")?;
        let (rows, targets): (Vec<i64>, Vec<i64>) =
            labels.iter().enumerate().filter(|(_, &l)| l != -100).map(|(i, &l)| (i as i64, l)).unzip();
        let n = rows.len();
        let logits = self.mlm_logits(tape, store, &enc.sequence, Some(&Tensor::from_i64(rows, &[n])?))?;
        let mlm_targets = Tensor::from_i64(targets, &[n])?;
        let mlm = logits.cross_entropy(&mlm_targets, -100)?;
        let (order, order_logits) = match self.head_ids.order {
            Some(_) => {
                let pooled = enc.pooled.as_ref().ok_or_else(|| missing("pooler"))?;
                let ol = self.order_logits(tape, store, pooled, mode)?;
                (Some(ol.cross_entropy(order_labels, -100)?), Some(ol))
            }
            None => (None, None),
        };
        let total = match &order {
            Some(o) => mlm.add(o)?,
            None => mlm.clone(),
        };
        Ok(PretrainingLosses { total, mlm, order, mlm_logits: logits, mlm_targets, order_logits })
    }
}

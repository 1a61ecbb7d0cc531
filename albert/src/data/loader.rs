//! Batches for pretraining, made on a background thread.
//!
//! How instances are made (a streaming version of the official `create_training_instances`):
//! 1. the documents of the training split are read in order and gathered into pools of
//!    [`LoaderConfig::pool_documents`] documents (default 1000; the embedded corpus's 350 training
//!    documents fit in one pool, which is then exactly the official whole-corpus behaviour);
//! 2. each pool is tokenised (sentences in parallel with rayon; a sentence longer than
//!    `seq_len - 3` tokens keeps its first `seq_len - 3`, the most an instance can hold; sentences
//!    that tokenise to nothing and documents left empty are dropped) and shuffled;
//! 3. every document of the pool yields its instances [`LoaderConfig::dupe_factor`] times (random
//!    B segments come from the same pool), and the pool's instances are shuffled;
//! 4. instances are cut into batches of `batch_size` in that order; a batch may span two pools or
//!    two epochs. An epoch is one pass over the corpus; each epoch draws new pairs and new masks
//!    (dynamic masking). With `epochs: Some(n)` the stream ends after n passes, with a last batch
//!    that may be smaller; with `None` it never ends.
//!
//! Memory: one pool of tokenised documents and its instances (for the default corpus about 2.2 M
//! token ids and 20 K instances) plus `prefetch_batches` ready batches.
//!
//! Determinism: pool `c` of epoch `e` uses `Rng::new(mix(seed, e, c))`, so batch k depends only on
//! the seed, the corpus, the vocabulary and the configuration, never on timing. Resuming: with
//! `start_at_batch = k` (or [`Loader::skip_batches`]) the thread regenerates every instance before batch k
//! and discards it without building tensors, so a resumed run sees exactly the batches an
//! uninterrupted run would; the cost is re-tokenising and re-masking the skipped part.

use super::corpus::{CorpusSource, Document, Documents, Split, HELD_OUT_EVERY};
use super::instances::{create_instances_from_document, shuffle, Instance, InstanceConfig, Objective};
use super::{DataError, Result, Vocab};
use crate::model::Inputs;
use engine::{Rng, Tensor};
use rayon::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Label value for positions without a prediction (PyTorch's `ignore_index`).
pub const IGNORE_LABEL: i64 = -100;

/// One padded batch.
#[derive(Clone, Debug)]
pub struct PretrainBatch {
    /// input_ids, attention_mask (1 = token, 0 = padding), token_type_ids (segment ids, 0 on
    /// padding): i64 [B, S]. Padding uses the vocabulary's pad id (0 for ALBERT vocabularies).
    pub inputs: Inputs,
    /// i64 [B, S]: the original id at each masked position, -100 everywhere else.
    pub mlm_labels: Tensor,
    /// i64 `[B]`: the SOP/NSP label of each instance.
    pub order_labels: Tensor,
    /// Number of non-padding tokens in the batch.
    pub tokens: usize,
}

impl PretrainBatch {
    /// Pads `instances` to `seq_len` (each must fit) and stacks them.
    pub fn from_instances(instances: &[Instance], seq_len: usize, pad: u32) -> Result<PretrainBatch> {
        let b = instances.len();
        let mut ids = vec![pad as i64; b * seq_len];
        let mut mask = vec![0i64; b * seq_len];
        let mut types = vec![0i64; b * seq_len];
        let mut labels = vec![IGNORE_LABEL; b * seq_len];
        let mut order = Vec::with_capacity(b);
        let mut tokens = 0;
        for (r, inst) in instances.iter().enumerate() {
            if inst.tokens.len() > seq_len {
                return Err(DataError::Config(format!(
                    "instance {r} has {} tokens, more than seq_len {seq_len}",
                    inst.tokens.len()
                )));
            }
            let row = r * seq_len;
            for (j, (&t, &s)) in inst.tokens.iter().zip(&inst.segment_ids).enumerate() {
                ids[row + j] = t as i64;
                mask[row + j] = 1;
                types[row + j] = s as i64;
            }
            for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
                labels[row + p] = l as i64;
            }
            order.push(inst.order_label as i64);
            tokens += inst.tokens.len();
        }
        let t = |v: Vec<i64>, shape: &[usize]| Tensor::from_i64(v, shape).map_err(|e| DataError::Config(e.to_string()));
        Ok(PretrainBatch {
            inputs: Inputs {
                input_ids: t(ids, &[b, seq_len])?,
                attention_mask: Some(t(mask, &[b, seq_len])?),
                token_type_ids: Some(t(types, &[b, seq_len])?),
            },
            mlm_labels: t(labels, &[b, seq_len])?,
            order_labels: t(order, &[b])?,
            tokens,
        })
    }

    /// Number of rows (B).
    pub fn batch_size(&self) -> usize {
        self.order_labels.shape()[0]
    }
}

/// Settings of the loader. `Default` gives the reference calibration run's data settings
/// (seq 128, 20 predictions, 15%, 10% short sequences, SOP) with batch 32.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    /// S: tokens per row, `[CLS]` and `[SEP]`s included.
    pub seq_len: usize,
    /// B: rows per batch.
    pub batch_size: usize,
    pub max_predictions_per_seq: usize,
    pub masked_lm_prob: f64,
    pub short_seq_prob: f64,
    pub objective: Objective,
    /// Longest masked n-gram in words (3), p(n) ∝ 1/n when `favor_shorter_ngram`.
    pub max_ngram: usize,
    pub favor_shorter_ngram: bool,
    pub whole_word_mask: bool,
    /// Seeds every random choice (pairs, masks, shuffles).
    pub seed: u64,
    /// Instances drawn from each document per epoch (official `dupe_factor`, each time with new pairs and masks).
    pub dupe_factor: usize,
    /// Passes over the corpus; None = repeat forever.
    pub epochs: Option<usize>,
    /// Index of the first batch to hand out (resume); earlier batches are regenerated and discarded.
    pub start_at_batch: usize,
    /// Documents per pool (shuffling and random-document picks happen within a pool).
    pub pool_documents: usize,
    /// Batches the background thread may have ready ahead of the trainer.
    pub prefetch_batches: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        let i = InstanceConfig::default();
        LoaderConfig {
            seq_len: i.max_seq_len,
            batch_size: 32,
            max_predictions_per_seq: i.max_predictions_per_seq,
            masked_lm_prob: i.masked_lm_prob,
            short_seq_prob: i.short_seq_prob,
            objective: i.objective,
            max_ngram: i.max_ngram,
            favor_shorter_ngram: i.favor_shorter_ngram,
            whole_word_mask: i.whole_word_mask,
            seed: 12345,
            dupe_factor: 1,
            epochs: None,
            start_at_batch: 0,
            pool_documents: 1000,
            prefetch_batches: 16,
        }
    }
}

impl LoaderConfig {
    /// The instance-creation part of the settings.
    pub fn instance_config(&self) -> InstanceConfig {
        InstanceConfig {
            max_seq_len: self.seq_len,
            short_seq_prob: self.short_seq_prob,
            masked_lm_prob: self.masked_lm_prob,
            max_predictions_per_seq: self.max_predictions_per_seq,
            objective: self.objective,
            max_ngram: self.max_ngram,
            favor_shorter_ngram: self.favor_shorter_ngram,
            whole_word_mask: self.whole_word_mask,
        }
    }

    /// Checks every setting and the vocabulary's special ids.
    pub fn validate(&self, vocab: &dyn Vocab) -> Result<()> {
        self.instance_config().validate()?;
        for (name, v) in [
            ("batch_size", self.batch_size),
            ("dupe_factor", self.dupe_factor),
            ("pool_documents", self.pool_documents),
            ("prefetch_batches", self.prefetch_batches),
        ] {
            if v == 0 {
                return Err(DataError::Config(format!("{name} must be at least 1")));
            }
        }
        let n = vocab.vocab_size();
        if n == 0 || n > u32::MAX as usize {
            return Err(DataError::Config(format!("vocabulary size {n} is out of range")));
        }
        let s = vocab.special();
        for (name, id) in [("pad", s.pad), ("unk", s.unk), ("[CLS]", s.cls), ("[SEP]", s.sep), ("[MASK]", s.mask)] {
            if id as usize >= n {
                return Err(DataError::Config(format!(
                    "special id {name} = {id} is outside the vocabulary (size {n})"
                )));
            }
        }
        Ok(())
    }
}

/// SplitMix64 finaliser: spreads (seed, stream, epoch, pool) into independent generator seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(mix(seed), |acc, &p| mix(acc ^ mix(p)))
}

/// Which stream a generator seed belongs to (training and evaluation never share draws).
const STREAM_TRAIN: u64 = 1;
const STREAM_EVAL: u64 = 2;

/// Tokenises one document: sentences cut to `max_tokens`, empty sentences dropped.
fn tokenize_document(doc: &Document, vocab: &dyn Vocab, max_tokens: usize) -> Vec<Vec<u32>> {
    doc.sentences
        .iter()
        .filter_map(|s| {
            let mut ids = vocab.encode(s);
            ids.truncate(max_tokens);
            (!ids.is_empty()).then_some(ids)
        })
        .collect()
}

/// The instance stream of one split: pools of documents -> shuffled instances, epoch after epoch.
struct InstanceStream {
    source: CorpusSource,
    vocab: Arc<dyn Vocab>,
    icfg: InstanceConfig,
    split: Split,
    seed: u64,
    stream: u64,
    dupe_factor: usize,
    pool_documents: usize,
    epochs: Option<usize>,
    stop: Option<Arc<AtomicBool>>,
    epoch: usize,
    pool: usize,
    docs: Option<Documents>,
    ready: VecDeque<Instance>,
    epoch_documents: usize,
    epoch_instances: usize,
}

impl InstanceStream {
    fn new(
        source: CorpusSource,
        vocab: Arc<dyn Vocab>,
        cfg: &LoaderConfig,
        split: Split,
        stream: u64,
    ) -> InstanceStream {
        InstanceStream {
            source,
            vocab,
            icfg: cfg.instance_config(),
            split,
            seed: cfg.seed,
            stream,
            dupe_factor: cfg.dupe_factor,
            pool_documents: cfg.pool_documents,
            epochs: cfg.epochs,
            stop: None,
            epoch: 0,
            pool: 0,
            docs: None,
            ready: VecDeque::new(),
            epoch_documents: 0,
            epoch_instances: 0,
        }
    }

    fn split_name(&self) -> &'static str {
        match self.split {
            Split::All => "",
            Split::Train => "training ",
            Split::HeldOut => "held-out ",
        }
    }

    /// The next instance; Ok(None) when the last epoch is done (or the loader is stopping).
    fn next_instance(&mut self) -> Result<Option<Instance>> {
        loop {
            if let Some(inst) = self.ready.pop_front() {
                return Ok(Some(inst));
            }
            if self.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Ok(None);
            }
            if self.epochs.is_some_and(|n| self.epoch >= n) {
                return Ok(None);
            }
            let docs = match &mut self.docs {
                Some(d) => d,
                None => self.docs.insert(self.source.documents(self.split)?),
            };
            let mut raw = Vec::with_capacity(self.pool_documents.min(4096));
            while raw.len() < self.pool_documents {
                match docs.next() {
                    Some(doc) => raw.push(doc?),
                    None => break,
                }
            }
            if raw.is_empty() {
                let read = docs.documents_read();
                if self.epoch_documents == 0 {
                    return Err(DataError::Corpus(format!(
                        "corpus {} has no {}documents: it has {read} document(s) in all, and document i is held \
                         out when i % {HELD_OUT_EVERY} == 0",
                        self.source.describe(),
                        self.split_name(),
                    )));
                }
                if self.epoch_instances == 0 {
                    return Err(DataError::Corpus(format!(
                        "corpus {}: its {}{}documents gave no instances (do they tokenise to nothing?)",
                        self.source.describe(),
                        self.epoch_documents,
                        self.split_name()
                    )));
                }
                self.docs = None;
                self.epoch += 1;
                self.pool = 0;
                self.epoch_documents = 0;
                self.epoch_instances = 0;
                continue;
            }
            self.epoch_documents += raw.len();
            let instances = self.make_pool(&raw);
            self.epoch_instances += instances.len();
            self.ready.extend(instances);
            self.pool += 1;
        }
    }

    /// Tokenises one pool of documents and returns its shuffled instances.
    fn make_pool(&self, raw: &[Document]) -> Vec<Instance> {
        let vocab = &*self.vocab;
        let max_tokens = self.icfg.max_num_tokens();
        let mut pool: Vec<Vec<Vec<u32>>> = raw.par_iter().map(|d| tokenize_document(d, vocab, max_tokens)).collect();
        pool.retain(|d| !d.is_empty());
        if pool.is_empty() {
            return Vec::new();
        }
        let mut rng = Rng::new(derive_seed(self.seed, &[self.stream, self.epoch as u64, self.pool as u64]));
        shuffle(&mut rng, &mut pool);
        let mut instances = Vec::new();
        for _ in 0..self.dupe_factor {
            for d in 0..pool.len() {
                instances.extend(create_instances_from_document(&pool, d, &self.icfg, vocab, &mut rng));
            }
        }
        shuffle(&mut rng, &mut instances);
        instances
    }
}

/// Pretraining batches from a background thread (see the module docs for how they are made).
///
/// Iterate with [`Loader::next_batch`] or as an `Iterator` of `Result<PretrainBatch>`; dropping
/// the loader stops its thread.
pub struct Loader {
    rx: Option<Receiver<Result<PretrainBatch>>>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// The first message, received in `new` so setup errors are reported there.
    first: Option<Result<PretrainBatch>>,
    next_index: usize,
    finished: bool,
}

impl Loader {
    /// Checks the settings, opens the corpus and starts the background thread; waits for the first
    /// batch (so the first pool is tokenised before this returns), and returns its error if it
    /// could not be made: a missing path, a folder with no files, bad UTF-8, no training documents.
    pub fn new(source: CorpusSource, vocab: Arc<dyn Vocab>, cfg: LoaderConfig) -> Result<Loader> {
        cfg.validate(&*vocab)?;
        source.files()?; // path errors now, not on the thread
        let pad = vocab.special().pad;
        let start_at_batch = cfg.start_at_batch;
        let stop = Arc::new(AtomicBool::new(false));
        let mut stream = InstanceStream::new(source, vocab, &cfg, Split::Train, STREAM_TRAIN);
        stream.stop = Some(stop.clone());
        let (tx, rx) = sync_channel(cfg.prefetch_batches);
        let thread = std::thread::Builder::new()
            .name("albert-data".into())
            .spawn(move || produce(stream, &cfg, pad, tx))
            .map_err(|e| DataError::Loader(format!("cannot start the data loader thread: {e}")))?;
        let mut loader = Loader {
            rx: Some(rx),
            thread: Some(thread),
            stop,
            first: None,
            next_index: start_at_batch,
            finished: false,
        };
        match loader.receive() {
            Some(Err(e)) => return Err(e),
            first => {
                loader.finished = first.is_none();
                loader.first = first;
            }
        }
        Ok(loader)
    }

    /// The index (counted from the start of training) of the batch `next_batch` returns next.
    pub fn batch_index(&self) -> usize {
        self.next_index
    }

    /// The next batch; None when the configured epochs are done. After an error, None.
    pub fn next_batch(&mut self) -> Option<Result<PretrainBatch>> {
        let item = match self.first.take() {
            Some(first) => Some(first),
            None if self.finished => None,
            None => self.receive(),
        };
        match &item {
            Some(Ok(_)) => self.next_index += 1,
            Some(Err(_)) | None => self.finished = true,
        }
        item
    }

    /// Discards the next `n` batches (e.g. to resume after batch n of a run started with this loader's
    /// settings). Creating the loader with `start_at_batch` does the same without building tensors.
    /// (Named so as not to clash with `Iterator::skip`.)
    pub fn skip_batches(&mut self, n: usize) -> Result<()> {
        for _ in 0..n {
            match self.next_batch() {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(())
    }

    fn receive(&mut self) -> Option<Result<PretrainBatch>> {
        match self.rx.as_ref()?.recv() {
            Ok(item) => Some(item),
            Err(_) => {
                // The thread has hung up: the stream ended, or the thread panicked.
                self.rx = None;
                let panicked = self.thread.take().map(|t| t.join().is_err()).unwrap_or(false);
                panicked.then(|| Err(DataError::Loader("the data loader thread panicked".into())))
            }
        }
    }
}

impl Iterator for Loader {
    type Item = Result<PretrainBatch>;
    fn next(&mut self) -> Option<Result<PretrainBatch>> {
        self.next_batch()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.rx = None; // a thread blocked in send() wakes up with an error and returns
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The background thread: instances -> batches -> channel, skipping batches before `start_at_batch`.
fn produce(mut stream: InstanceStream, cfg: &LoaderConfig, pad: u32, tx: SyncSender<Result<PretrainBatch>>) {
    let mut pending: Vec<Instance> = Vec::with_capacity(cfg.batch_size);
    let mut index = 0usize;
    let emit = |pending: &mut Vec<Instance>, index: &mut usize| -> bool {
        let keep_going = if *index >= cfg.start_at_batch {
            let batch = PretrainBatch::from_instances(pending, cfg.seq_len, pad);
            let failed = batch.is_err();
            tx.send(batch).is_ok() && !failed
        } else {
            true
        };
        pending.clear();
        *index += 1;
        keep_going
    };
    loop {
        match stream.next_instance() {
            Ok(Some(inst)) => {
                pending.push(inst);
                if pending.len() == cfg.batch_size && !emit(&mut pending, &mut index) {
                    return;
                }
            }
            Ok(None) => {
                let stopping = stream.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
                if !pending.is_empty() && !stopping {
                    emit(&mut pending, &mut index);
                }
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// A fixed evaluation set from the held-out documents (index % 20 == 0): one pass, `cfg.dupe_factor`
/// instances per document, batches of `cfg.batch_size` (the last one may be smaller), at most
/// `max_batches` of them. Deterministic for `cfg.seed` and independent of the training stream's
/// draws; `cfg.epochs` and `cfg.start_at_batch` are ignored. Runs on the calling thread.
pub fn build_eval_set(
    source: &CorpusSource,
    vocab: Arc<dyn Vocab>,
    cfg: &LoaderConfig,
    max_batches: Option<usize>,
) -> Result<Vec<PretrainBatch>> {
    cfg.validate(&*vocab)?;
    let pad = vocab.special().pad;
    let mut stream = InstanceStream::new(source.clone(), vocab, cfg, Split::HeldOut, STREAM_EVAL);
    stream.epochs = Some(1);
    let limit = max_batches.unwrap_or(usize::MAX);
    let mut batches = Vec::new();
    let mut pending = Vec::with_capacity(cfg.batch_size);
    while batches.len() < limit {
        match stream.next_instance()? {
            Some(inst) => {
                pending.push(inst);
                if pending.len() == cfg.batch_size {
                    batches.push(PretrainBatch::from_instances(&pending, cfg.seq_len, pad)?);
                    pending.clear();
                }
            }
            None => {
                if !pending.is_empty() {
                    batches.push(PretrainBatch::from_instances(&pending, cfg.seq_len, pad)?);
                }
                break;
            }
        }
    }
    Ok(batches)
}

//! Pretraining instances, built as the official ALBERT `create_pretraining_data.py` builds them
//! (reference: `albert.md` §1.8): sentence pairs `[CLS] A [SEP] B [SEP]` with a sentence-order (SOP)
//! or next-sentence (NSP) label, and whole-word n-gram masking.
//!
//! Differences from the official code, all deliberate:
//! - every random draw comes from our seeded [`Rng`] (the official n-gram length uses the global,
//!   unseeded `np.random`), so a seed reproduces every instance;
//! - the n-gram length is drawn among the lengths that fit before the last word, renormalised (the
//!   official code keeps all N lengths and lets the slices near the end come out shorter);
//! - a `[CLS]/[SEP]` ends the current word: the first piece of B never joins the last word of A even
//!   when it is not a word start (with SentencePiece the first piece of a sentence nearly always is);
//! - `Objective::None` (MLM only) builds pairs like SOP but never swaps; its label is always 0.
//!
//! Token ids are `u32`; a document is `Vec<sentence>` with each sentence a non-empty `Vec<u32>`.

use super::{DataError, Result, Vocab};
use engine::Rng;

/// The sentence-level objective the pairs are built for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Objective {
    /// Sentence order (ALBERT): B follows A in the document (label 0) or A and B were swapped
    /// (label 1, probability 0.5). A chunk of a single sentence takes B from a random other document
    /// and gets label 1, as the official code does.
    #[default]
    Sop,
    /// Next sentence (BERT): B follows A (label 0) or B comes from a random other document (label 1,
    /// probability 0.5, and always for a single-sentence chunk).
    Nsp,
    /// MLM only: pairs as for SOP without the swap; `order_label` is always 0 and meant to be ignored.
    None,
}

/// The settings of instance creation (the official flags, same defaults except `max_seq_len`).
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceConfig {
    /// Tokens per instance including `[CLS]` and the two `[SEP]` (official `max_seq_length`). At least 5.
    pub max_seq_len: usize,
    /// Probability that a document's target length is drawn in `2..=max_seq_len-3` instead of the maximum.
    pub short_seq_prob: f64,
    /// Fraction of the tokens to predict (before the cap).
    pub masked_lm_prob: f64,
    /// Cap on predictions per instance.
    pub max_predictions_per_seq: usize,
    pub objective: Objective,
    /// Longest masked n-gram, in words (official `ngram`, 3).
    pub max_ngram: usize,
    /// p(n) ∝ 1/n when true (the default), ∝ 1/(N+1-n) when false.
    pub favor_shorter_ngram: bool,
    /// Group a word start with the continuation pieces after it (official `do_whole_word_mask`).
    pub whole_word_mask: bool,
}

impl Default for InstanceConfig {
    fn default() -> Self {
        InstanceConfig {
            max_seq_len: 128,
            short_seq_prob: 0.1,
            masked_lm_prob: 0.15,
            max_predictions_per_seq: 20,
            objective: Objective::Sop,
            max_ngram: 3,
            favor_shorter_ngram: true,
            whole_word_mask: true,
        }
    }
}

impl InstanceConfig {
    /// Checks the ranges; the message names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::Config(m));
        if self.max_seq_len < 5 {
            return bad(format!("seq_len {} is too small: [CLS] A [SEP] B [SEP] needs at least 5", self.max_seq_len));
        }
        for (name, p) in [("short_seq_prob", self.short_seq_prob), ("masked_lm_prob", self.masked_lm_prob)] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1], got {p}"));
            }
        }
        if self.max_ngram == 0 {
            return bad("max_ngram must be at least 1".to_string());
        }
        Ok(())
    }

    /// Tokens left for A and B: `max_seq_len - 3`.
    pub fn max_num_tokens(&self) -> usize {
        self.max_seq_len.saturating_sub(3)
    }
}

/// One pretraining example, unpadded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// `[CLS] A [SEP] B [SEP]` after masking (the model's input ids); length <= max_seq_len.
    pub tokens: Vec<u32>,
    /// 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`; same length as `tokens`.
    pub segment_ids: Vec<u8>,
    /// Positions of the predicted tokens, ascending, never a `[CLS]/[SEP]`.
    pub masked_positions: Vec<usize>,
    /// The original ids at `masked_positions`.
    pub masked_labels: Vec<u32>,
    /// SOP: 1 = swapped (or B from another document); NSP: 1 = random B; None: 0.
    pub order_label: u8,
}

/// The result of masking one token sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskedLm {
    /// The input with the chosen positions replaced (80% `[MASK]`, 10% kept, 10% a random id).
    pub tokens: Vec<u32>,
    /// Ascending positions.
    pub positions: Vec<usize>,
    /// The original ids at `positions`.
    pub labels: Vec<u32>,
}

/// Uniform integer in `lo..=hi` (Python's `random.randint`).
pub(crate) fn randint(rng: &mut Rng, lo: usize, hi: usize) -> usize {
    debug_assert!(lo <= hi);
    lo + rng.below((hi - lo + 1) as u64) as usize
}

/// Fisher-Yates shuffle with our generator (Python's `random.shuffle` algorithm).
pub(crate) fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// The instances of `pool[doc_index]`; other documents of `pool` supply random B segments.
///
/// As the official `create_instances_from_document`: one target length per document (the maximum
/// `max_seq_len - 3`, or with probability `short_seq_prob` a uniform draw in `2..=max`); sentences
/// accumulate into a chunk until the target length or the document's end; A = the first `a_end`
/// sentences of the chunk (`a_end` uniform in `1..=len-1`), B = the rest, or a random document's
/// sentences from a random start (see [`Objective`]); the pair is trimmed to `max_seq_len - 3` by
/// [`truncate_seq_pair`]; then masked by [`create_masked_lm_predictions`].
pub fn create_instances_from_document(
    pool: &[Vec<Vec<u32>>],
    doc_index: usize,
    cfg: &InstanceConfig,
    vocab: &dyn Vocab,
    rng: &mut Rng,
) -> Vec<Instance> {
    let document = &pool[doc_index];
    let special = vocab.special();
    let max_num_tokens = cfg.max_num_tokens();
    let mut target_seq_length = max_num_tokens;
    if rng.next_f64() < cfg.short_seq_prob {
        target_seq_length = randint(rng, 2.min(max_num_tokens), max_num_tokens);
    }

    let mut instances = Vec::new();
    let mut chunk: Vec<&[u32]> = Vec::new();
    let mut chunk_len = 0usize;
    let mut i = 0usize;
    while i < document.len() {
        let segment = &document[i];
        chunk.push(segment);
        chunk_len += segment.len();
        if i == document.len() - 1 || chunk_len >= target_seq_length {
            let a_end = if chunk.len() >= 2 { randint(rng, 1, chunk.len() - 1) } else { 1 };
            let mut tokens_a: Vec<u32> = chunk[..a_end].concat();
            let mut tokens_b: Vec<u32>;
            let order_label: u8;
            let random_next = chunk.len() == 1 || (cfg.objective == Objective::Nsp && rng.next_f64() < 0.5);
            if random_next {
                order_label = if cfg.objective == Objective::None { 0 } else { 1 };
                let target_b_length = target_seq_length.saturating_sub(tokens_a.len());
                let mut other = doc_index;
                for _ in 0..10 {
                    other = randint(rng, 0, pool.len() - 1);
                    if other != doc_index {
                        break;
                    }
                }
                let random_document = &pool[other];
                tokens_b = Vec::new();
                if !random_document.is_empty() {
                    let start = randint(rng, 0, random_document.len() - 1);
                    for sentence in &random_document[start..] {
                        tokens_b.extend_from_slice(sentence);
                        if tokens_b.len() >= target_b_length {
                            break;
                        }
                    }
                }
                // The sentences of the chunk after A were not used: read them again.
                i -= chunk.len() - a_end;
            } else if cfg.objective == Objective::Sop && rng.next_f64() < 0.5 {
                order_label = 1;
                tokens_b = chunk[a_end..].concat();
                std::mem::swap(&mut tokens_a, &mut tokens_b);
            } else {
                order_label = 0;
                tokens_b = chunk[a_end..].concat();
            }
            truncate_seq_pair(&mut tokens_a, &mut tokens_b, max_num_tokens, rng);
            // The official code asserts both are non-empty; only empty sentences could break that.
            if !tokens_a.is_empty() && !tokens_b.is_empty() {
                let mut tokens = Vec::with_capacity(tokens_a.len() + tokens_b.len() + 3);
                tokens.push(special.cls);
                tokens.extend_from_slice(&tokens_a);
                tokens.push(special.sep);
                let len_a = tokens.len();
                tokens.extend_from_slice(&tokens_b);
                tokens.push(special.sep);
                let mut segment_ids = vec![0u8; tokens.len()];
                segment_ids[len_a..].fill(1);
                let m = create_masked_lm_predictions(&tokens, cfg, vocab, rng);
                instances.push(Instance {
                    tokens: m.tokens,
                    segment_ids,
                    masked_positions: m.positions,
                    masked_labels: m.labels,
                    order_label,
                });
            }
            chunk.clear();
            chunk_len = 0;
        }
        i += 1;
    }
    instances
}

/// Trims the pair to `max_num_tokens` in total: while too long, drop one token from the longer
/// side (B on a tie), from its front or its back with probability 0.5 each (official `truncate_seq_pair`).
pub fn truncate_seq_pair(a: &mut Vec<u32>, b: &mut Vec<u32>, max_num_tokens: usize, rng: &mut Rng) {
    // Dropping from the front one token at a time would be quadratic; count the drops per side and end,
    // drawing exactly the same coin flips, then cut once.
    let (mut a_front, mut a_back, mut b_front, mut b_back) = (0usize, 0usize, 0usize, 0usize);
    let (mut la, mut lb) = (a.len(), b.len());
    while la + lb > max_num_tokens {
        let front = rng.next_f64() < 0.5;
        if la > lb {
            if front {
                a_front += 1
            } else {
                a_back += 1
            }
            la -= 1;
        } else {
            if front {
                b_front += 1
            } else {
                b_back += 1
            }
            lb -= 1;
        }
    }
    a.truncate(a.len() - a_back);
    a.drain(..a_front);
    b.truncate(b.len() - b_back);
    b.drain(..b_front);
}

/// Chooses and replaces the tokens to predict in `tokens` (`[CLS] A [SEP] B [SEP]`).
///
/// As the official `create_masked_lm_predictions` with whole-word masking and n-grams:
/// - candidates are words: a piece with `is_word_start` false joins the word before it; `[CLS]` and
///   `[SEP]` are never candidates (and end the current word);
/// - `num_to_predict = min(max_predictions_per_seq, max(1, round(len(tokens) * masked_lm_prob)))`,
///   rounding half to even as Python does; nothing at all when `masked_lm_prob == 0`;
/// - one n-gram span per word index (the words `idx..idx+n`), visited in shuffled order; n drawn with
///   p(n) ∝ 1/n among the lengths that fit (`max_ngram` = 3: 6/11, 3/11, 2/11); if the span would
///   exceed `num_to_predict`, shorter n are tried, and a span still too long or touching an
///   already-chosen position is skipped;
/// - each chosen position: 80% `[MASK]`, else 50/50 kept or a uniform id in `0..vocab_size`;
/// - positions returned in ascending order with their original ids.
pub fn create_masked_lm_predictions(
    tokens: &[u32],
    cfg: &InstanceConfig,
    vocab: &dyn Vocab,
    rng: &mut Rng,
) -> MaskedLm {
    let special = vocab.special();
    let mut output = tokens.to_vec();
    if cfg.masked_lm_prob <= 0.0 || cfg.max_predictions_per_seq == 0 {
        return MaskedLm { tokens: output, positions: Vec::new(), labels: Vec::new() };
    }
    // words[w] = start..end positions of word w (contiguous: a special token always ends a word).
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut after_special = true;
    for (i, &t) in tokens.iter().enumerate() {
        if t == special.cls || t == special.sep {
            after_special = true;
            continue;
        }
        let joins = cfg.whole_word_mask && !after_special && !vocab.is_word_start(t);
        match words.last_mut() {
            Some(last) if joins => last.1 = i + 1,
            _ => words.push((i, i + 1)),
        }
        after_special = false;
    }
    let rounded = (tokens.len() as f64 * cfg.masked_lm_prob).round_ties_even() as usize;
    let num_to_predict = cfg.max_predictions_per_seq.min(rounded.max(1));

    // p(n) for n = 1..=N.
    let n_max = cfg.max_ngram;
    let pvals: Vec<f64> = (1..=n_max)
        .map(|n| if cfg.favor_shorter_ngram { 1.0 / n as f64 } else { 1.0 / (n_max + 1 - n) as f64 })
        .collect();
    // Number of positions covered by the n-gram of words starting at `idx`.
    let span_len = |idx: usize, n: usize| words[idx..idx + n].iter().map(|&(s, e)| e - s).sum::<usize>();

    let mut order: Vec<usize> = (0..words.len()).collect();
    shuffle(rng, &mut order);
    let mut covered = vec![false; tokens.len()];
    let mut masked: Vec<(usize, u32)> = Vec::with_capacity(num_to_predict);
    for idx in order {
        if masked.len() >= num_to_predict {
            break;
        }
        let available = n_max.min(words.len() - idx);
        let total: f64 = pvals[..available].iter().sum();
        let mut u = rng.next_f64() * total;
        let mut n = available;
        for (k, p) in pvals[..available].iter().enumerate() {
            if u < *p {
                n = k + 1;
                break;
            }
            u -= p;
        }
        while masked.len() + span_len(idx, n) > num_to_predict && n > 1 {
            n -= 1;
        }
        if masked.len() + span_len(idx, n) > num_to_predict {
            continue;
        }
        let positions = || words[idx..idx + n].iter().flat_map(|&(s, e)| s..e);
        if positions().any(|p| covered[p]) {
            continue;
        }
        for p in positions() {
            covered[p] = true;
            output[p] = if rng.next_f64() < 0.8 {
                special.mask
            } else if rng.next_f64() < 0.5 {
                tokens[p]
            } else {
                rng.below(vocab.vocab_size() as u64) as u32
            };
            masked.push((p, tokens[p]));
        }
    }
    masked.sort_unstable_by_key(|&(p, _)| p);
    MaskedLm {
        tokens: output,
        positions: masked.iter().map(|&(p, _)| p).collect(),
        labels: masked.iter().map(|&(_, l)| l).collect(),
    }
}

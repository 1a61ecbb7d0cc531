//! The pretraining data pipeline: corpus streaming and its errors, instance layout, masking
//! statistics, SOP/NSP pairs, loader determinism and resumption, the embedded corpus.
//!
//! A fake vocabulary stands in for the tokenizer: a word that is a number is that id, any other word
//! hashes into the vocabulary; ids divisible by 4 are continuation pieces (not word starts) unless
//! `all_starts` is set. Special ids: pad 0, unk 1, [CLS] 2, [SEP] 3, [MASK] 4.

use albert::data::corpus::{embedded_corpus_gz, is_held_out, MAX_LINE_BYTES};
use albert::data::instances::{create_instances_from_document, Instance, InstanceConfig, Objective};
use albert::data::loader::IGNORE_LABEL;
use albert::data::{
    build_eval_set, CorpusSource, DataError, Loader, LoaderConfig, PretrainBatch, SpecialIds, Split, Vocab,
};
use engine::Rng;
use proptest::prelude::*;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

const PAD: u32 = 0;
const CLS: u32 = 2;
const SEP: u32 = 3;
const MASK: u32 = 4;
/// First id the synthetic documents use.
const FIRST_ID: u32 = 5;

struct FakeVocab {
    size: usize,
    all_starts: bool,
}

impl FakeVocab {
    fn new(size: usize) -> FakeVocab {
        FakeVocab { size, all_starts: false }
    }
}

impl Vocab for FakeVocab {
    fn encode(&self, text: &str) -> Vec<u32> {
        text.split_whitespace()
            .map(|w| match w.parse::<u32>() {
                Ok(id) => id,
                Err(_) => {
                    let h =
                        w.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
                    FIRST_ID + (h % (self.size as u64 - FIRST_ID as u64)) as u32
                }
            })
            .collect()
    }
    fn is_word_start(&self, id: u32) -> bool {
        self.all_starts || !id.is_multiple_of(4)
    }
    fn vocab_size(&self) -> usize {
        self.size
    }
    fn special(&self) -> SpecialIds {
        SpecialIds { pad: PAD, unk: 1, cls: CLS, sep: SEP, mask: MASK }
    }
}

/// Documents of sentences of token ids.
type Pool = Vec<Vec<Vec<u32>>>;
/// id -> (document, sentence).
type Origins = HashMap<u32, (usize, usize)>;

/// Documents of sentences with ids unique over the whole pool, plus where each id comes from:
/// `origin[id] = (document, sentence)`.
fn numbered_pool(shape: &[Vec<usize>]) -> (Pool, Origins) {
    let mut next = FIRST_ID;
    let mut origin = HashMap::new();
    let pool = shape
        .iter()
        .enumerate()
        .map(|(d, lens)| {
            lens.iter()
                .enumerate()
                .map(|(s, &len)| {
                    (0..len)
                        .map(|_| {
                            let id = next;
                            next += 1;
                            origin.insert(id, (d, s));
                            id
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    (pool, origin)
}

/// The instance's ids before masking (labels put back at the masked positions).
fn unmasked(inst: &Instance) -> Vec<u32> {
    let mut t = inst.tokens.clone();
    for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
        t[p] = l;
    }
    t
}

/// (A, B) of an unmasked `[CLS] A [SEP] B [SEP]`.
fn segments(tokens: &[u32]) -> (&[u32], &[u32]) {
    let first_sep = tokens.iter().position(|&t| t == SEP).expect("a [SEP]");
    (&tokens[1..first_sep], &tokens[first_sep + 1..tokens.len() - 1])
}

fn instances_of(pool: &[Vec<Vec<u32>>], cfg: &InstanceConfig, vocab: &dyn Vocab, seed: u64) -> Vec<Instance> {
    let mut rng = Rng::new(seed);
    (0..pool.len()).flat_map(|d| create_instances_from_document(pool, d, cfg, vocab, &mut rng)).collect()
}

/// Checks the layout, the segment ids and the masked positions of one instance.
fn check_instance(inst: &Instance, cfg: &InstanceConfig, vocab: &FakeVocab) {
    let t = unmasked(inst);
    assert!(t.len() <= cfg.max_seq_len, "length {} > {}", t.len(), cfg.max_seq_len);
    assert_eq!(t[0], CLS);
    assert_eq!(*t.last().unwrap(), SEP);
    assert_eq!(t.iter().filter(|&&x| x == SEP).count(), 2, "{t:?}");
    assert_eq!(t.iter().filter(|&&x| x == CLS).count(), 1);
    let (a, b) = segments(&t);
    assert!(!a.is_empty() && !b.is_empty());
    let len_a = a.len() + 2;
    assert_eq!(inst.segment_ids.len(), t.len());
    assert!(inst.segment_ids[..len_a].iter().all(|&s| s == 0));
    assert!(inst.segment_ids[len_a..].iter().all(|&s| s == 1));
    assert!(inst.masked_positions.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    assert_eq!(inst.masked_positions.len(), inst.masked_labels.len());
    assert!(inst.masked_positions.len() <= cfg.max_predictions_per_seq);
    for &p in &inst.masked_positions {
        assert!(p < t.len());
        assert!(t[p] != CLS && t[p] != SEP, "masked a special token at {p}");
    }
    // Unmasked positions keep their ids.
    for (p, (&x, &y)) in inst.tokens.iter().zip(&t).enumerate() {
        if !inst.masked_positions.contains(&p) {
            assert_eq!(x, y);
        }
    }
    // Whole words: a masked word start masks its continuation pieces, a masked continuation its start.
    let masked: Vec<bool> = (0..t.len()).map(|p| inst.masked_positions.binary_search(&p).is_ok()).collect();
    for p in 1..t.len() {
        let continuation = !vocab.is_word_start(t[p]) && t[p] != SEP && t[p - 1] != SEP && t[p - 1] != CLS;
        if continuation {
            assert_eq!(masked[p], masked[p - 1], "word split by the mask at {p}: {t:?} {:?}", inst.masked_positions);
        }
    }
}

fn objective() -> impl Strategy<Value = Objective> {
    prop_oneof![Just(Objective::Sop), Just(Objective::Nsp), Just(Objective::None)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn layout_segments_and_masks(
        shape in prop::collection::vec(prop::collection::vec(1usize..40, 1..10), 1..6),
        seq in 5usize..80,
        max_pred in 0usize..30,
        prob in 0.0f64..0.5,
        obj in objective(),
        seed in any::<u64>(),
    ) {
        let (pool, _) = numbered_pool(&shape);
        let vocab = FakeVocab::new(20_000);
        let cfg = InstanceConfig {
            max_seq_len: seq,
            masked_lm_prob: prob,
            max_predictions_per_seq: max_pred,
            objective: obj,
            ..InstanceConfig::default()
        };
        let instances = instances_of(&pool, &cfg, &vocab, seed);
        prop_assert!(!instances.is_empty());
        for inst in &instances {
            check_instance(inst, &cfg, &vocab);
            if obj == Objective::None {
                prop_assert_eq!(inst.order_label, 0);
            }
        }
    }

    #[test]
    fn batches_pad_and_label(
        shape in prop::collection::vec(prop::collection::vec(1usize..30, 1..8), 2..5),
        seq in 8usize..64,
        seed in any::<u64>(),
    ) {
        let (pool, _) = numbered_pool(&shape);
        let vocab = FakeVocab::new(20_000);
        let cfg = InstanceConfig { max_seq_len: seq, ..InstanceConfig::default() };
        let instances = instances_of(&pool, &cfg, &vocab, seed);
        let batch = PretrainBatch::from_instances(&instances, seq, PAD).unwrap();
        let b = instances.len();
        prop_assert_eq!(batch.inputs.input_ids.shape(), &[b, seq]);
        prop_assert_eq!(batch.order_labels.shape(), &[b]);
        let ids = batch.inputs.input_ids.ids("t").unwrap();
        let mask = batch.inputs.attention_mask.as_ref().unwrap().ids("t").unwrap();
        let types = batch.inputs.token_type_ids.as_ref().unwrap().ids("t").unwrap();
        let labels = batch.mlm_labels.ids("t").unwrap();
        prop_assert_eq!(batch.tokens, mask.iter().sum::<i64>() as usize);
        for (r, inst) in instances.iter().enumerate() {
            for j in 0..seq {
                let k = r * seq + j;
                if j < inst.tokens.len() {
                    prop_assert_eq!(mask[k], 1);
                    prop_assert_eq!(ids[k], inst.tokens[j] as i64);
                    prop_assert_eq!(types[k], inst.segment_ids[j] as i64);
                } else {
                    prop_assert_eq!((mask[k], ids[k], types[k], labels[k]), (0, PAD as i64, 0, IGNORE_LABEL));
                }
                match inst.masked_positions.binary_search(&j) {
                    Ok(i) => prop_assert_eq!(labels[k], inst.masked_labels[i] as i64),
                    Err(_) => prop_assert_eq!(labels[k], IGNORE_LABEL),
                }
            }
        }
    }
}

/// Many instances of full-length sequences from long documents.
fn big_pool(docs: usize, seed: u64) -> (Pool, Origins) {
    let mut rng = Rng::new(seed);
    let shape: Vec<Vec<usize>> = (0..docs).map(|_| (0..40).map(|_| 3 + rng.below(25) as usize).collect()).collect();
    numbered_pool(&shape)
}

#[test]
fn masking_rate_and_80_10_10() {
    let (pool, _) = big_pool(400, 1);
    let vocab = FakeVocab::new(100_000);
    let cfg = InstanceConfig { max_seq_len: 128, max_predictions_per_seq: 1000, ..InstanceConfig::default() };
    let instances = instances_of(&pool, &cfg, &vocab, 7);
    let (mut tokens, mut predicted, mut as_mask, mut kept, mut random) = (0usize, 0usize, 0usize, 0usize, 0usize);
    for inst in &instances {
        tokens += inst.tokens.len();
        predicted += inst.masked_positions.len();
        let expected = ((inst.tokens.len() as f64 * 0.15).round_ties_even() as usize).max(1);
        assert!(inst.masked_positions.len() <= expected);
        for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
            match inst.tokens[p] {
                MASK => as_mask += 1,
                x if x == l => kept += 1,
                _ => random += 1,
            }
        }
    }
    let rate = predicted as f64 / tokens as f64;
    eprintln!("{} instances, rate {rate:.4}, mask/kept/random {as_mask}/{kept}/{random}", instances.len());
    assert!(instances.len() > 2000, "{} instances", instances.len());
    // Whole-word spans cannot always fill the budget exactly, so the rate is at most 0.15, a bit below.
    assert!((0.135..=0.152).contains(&rate), "masking rate {rate}");
    let n = predicted as f64;
    let (fm, fk, fr) = (as_mask as f64 / n, kept as f64 / n, random as f64 / n);
    assert!((fm - 0.8).abs() < 0.01, "[MASK] {fm}");
    assert!((fk - 0.1).abs() < 0.008, "kept {fk}");
    assert!((fr - 0.1).abs() < 0.008, "random {fr}");
}

#[test]
fn prediction_cap_binds() {
    let (pool, _) = big_pool(20, 2);
    let vocab = FakeVocab::new(100_000);
    let cfg = InstanceConfig { max_seq_len: 128, max_predictions_per_seq: 20, ..InstanceConfig::default() };
    let instances = instances_of(&pool, &cfg, &vocab, 3);
    let full: Vec<&Instance> = instances.iter().filter(|i| i.tokens.len() == 128).collect();
    assert!(full.len() > 50);
    // round(128 * 0.15) = 19 < 20: the budget is 19 and nearly always met exactly.
    let exact = full.iter().filter(|i| i.masked_positions.len() == 19).count();
    assert!(full.iter().all(|i| i.masked_positions.len() <= 19));
    assert!(exact as f64 / full.len() as f64 > 0.9, "{exact} of {}", full.len());
}

/// With a budget of 3 one-piece words, the first span has length n ~ p(n) = (6, 3, 2)/11 and always
/// fits; the rest is filled by shorter spans. So the masked runs come out as {3} with p 2/11, {2,1}
/// with p 3/11 + 6/11 * 5/11, {1,1,1} with p (6/11)^2 (up to rare adjacent spans merging).
#[test]
fn ngram_lengths_follow_one_over_n() {
    let (pool, _) = big_pool(500, 4);
    let vocab = FakeVocab { size: 100_000, all_starts: true };
    let cfg = InstanceConfig {
        max_seq_len: 128,
        max_predictions_per_seq: 3,
        short_seq_prob: 0.0,
        ..InstanceConfig::default()
    };
    let instances = instances_of(&pool, &cfg, &vocab, 5);
    let mut counts = [0usize; 3]; // {3}, {2,1}, {1,1,1}
    let mut total = 0;
    for inst in instances.iter().filter(|i| i.tokens.len() > 100) {
        let t = unmasked(inst);
        // Runs of consecutive masked positions; a [SEP] between two masked positions does not break a run.
        let mut runs = Vec::new();
        let mut prev: Option<usize> = None;
        for &p in &inst.masked_positions {
            match prev {
                Some(q) if p == q + 1 || (p == q + 2 && t[q + 1] == SEP) => *runs.last_mut().unwrap() += 1,
                _ => runs.push(1),
            }
            prev = Some(p);
        }
        runs.sort_unstable();
        total += 1;
        match runs.as_slice() {
            [3] => counts[0] += 1,
            [1, 2] => counts[1] += 1,
            [1, 1, 1] => counts[2] += 1,
            other => panic!("3 predictions expected, got runs {other:?}"),
        }
    }
    assert!(total > 2000, "{total}");
    let f: Vec<f64> = counts.iter().map(|&c| c as f64 / total as f64).collect();
    eprintln!("{total} instances, run patterns {{3}} {{2,1}} {{1,1,1}}: {f:.4?}");
    let expect = [2.0 / 11.0, 3.0 / 11.0 + 30.0 / 121.0, 36.0 / 121.0];
    for k in 0..3 {
        // Merging of adjacent spans (probability ~2%) moves mass towards {3}/{2,1}; sampling sd ~0.013.
        assert!((f[k] - expect[k]).abs() < 0.045, "run pattern {k}: {} vs {}", f[k], expect[k]);
    }
}

/// (document, min sentence, max sentence) of a segment, or None if it mixes documents.
fn span(seg: &[u32], origin: &Origins) -> Option<(usize, usize, usize)> {
    let (d, _) = origin[&seg[0]];
    let mut lo = usize::MAX;
    let mut hi = 0;
    for id in seg {
        let (dd, s) = origin[id];
        if dd != d {
            return None;
        }
        lo = lo.min(s);
        hi = hi.max(s);
    }
    Some((d, lo, hi))
}

#[test]
fn sop_swaps_half_of_the_pairs() {
    let (pool, origin) = big_pool(300, 8);
    let vocab = FakeVocab::new(100_000);
    let cfg = InstanceConfig { max_seq_len: 64, masked_lm_prob: 0.0, ..InstanceConfig::default() };
    let instances = instances_of(&pool, &cfg, &vocab, 9);
    let (mut same_doc, mut swapped, mut other_doc) = (0usize, 0usize, 0usize);
    for inst in &instances {
        assert!(inst.masked_positions.is_empty());
        let (a, b) = segments(&inst.tokens);
        let (da, a_lo, a_hi) = span(a, &origin).expect("A from one document");
        let (db, b_lo, b_hi) = span(b, &origin).expect("B from one document");
        if da != db {
            other_doc += 1;
            assert_eq!(inst.order_label, 1, "a random B is labelled 1");
            continue;
        }
        same_doc += 1;
        match inst.order_label {
            0 => assert!(a_hi < b_lo, "in order: A sentences {a_lo}..={a_hi} before B {b_lo}..={b_hi}"),
            _ => {
                assert!(b_hi < a_lo, "swapped: A sentences {a_lo}..={a_hi} after B {b_lo}..={b_hi}");
                swapped += 1;
            }
        }
    }
    let f = swapped as f64 / same_doc as f64;
    eprintln!(
        "{} instances: {same_doc} same-document pairs, {swapped} swapped ({f:.4}), {other_doc} random B",
        instances.len()
    );
    assert!(same_doc > 2000, "{same_doc}");
    assert!((f - 0.5).abs() < 0.04, "swapped fraction {f}");
    // Single-sentence chunks (rare with these sentence lengths) are the only source of a random B.
    assert!((other_doc as f64) < 0.1 * instances.len() as f64, "{other_doc}");
}

#[test]
fn nsp_takes_a_random_b_half_of_the_time() {
    let (pool, origin) = big_pool(200, 10);
    let vocab = FakeVocab::new(100_000);
    let cfg =
        InstanceConfig { max_seq_len: 64, masked_lm_prob: 0.0, objective: Objective::Nsp, ..InstanceConfig::default() };
    let instances = instances_of(&pool, &cfg, &vocab, 11);
    let mut random = 0usize;
    for inst in &instances {
        let (a, b) = segments(&inst.tokens);
        let (da, _, a_hi) = span(a, &origin).unwrap();
        let (db, b_lo, _) = span(b, &origin).unwrap();
        match inst.order_label {
            // With 200 documents, 10 draws all hitting the same document has probability 200^-10.
            1 => {
                assert_ne!(da, db, "label 1 = B from another document");
                random += 1;
            }
            _ => assert!(da == db && a_hi < b_lo, "label 0 = B follows A"),
        }
    }
    let f = random as f64 / instances.len() as f64;
    eprintln!("{} NSP instances, {random} random B ({f:.4})", instances.len());
    assert!((0.46..0.62).contains(&f), "random-B fraction {f}");

    // MLM only: never swapped, label 0.
    let cfg = InstanceConfig { objective: Objective::None, ..cfg };
    for inst in instances_of(&pool, &cfg, &vocab, 11) {
        assert_eq!(inst.order_label, 0);
        let (a, b) = segments(&inst.tokens);
        let (da, _, a_hi) = span(a, &origin).unwrap();
        let (db, b_lo, _) = span(b, &origin).unwrap();
        assert!(da != db || a_hi < b_lo);
    }
}

#[test]
fn instances_depend_only_on_the_seed() {
    let (pool, _) = big_pool(10, 12);
    let vocab = FakeVocab::new(100_000);
    let cfg = InstanceConfig::default();
    assert_eq!(instances_of(&pool, &cfg, &vocab, 1), instances_of(&pool, &cfg, &vocab, 1));
    assert_ne!(instances_of(&pool, &cfg, &vocab, 1), instances_of(&pool, &cfg, &vocab, 2));
}

// ---------------------------------------------------------------------------------------------- corpus

/// A fresh, empty folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("albert-data-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_gz(path: &std::path::Path, text: &str) {
    let file = std::fs::File::create(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap();
}

fn read_all(source: &CorpusSource, split: Split) -> Result<Vec<(usize, Vec<String>)>, DataError> {
    source.documents(split)?.map(|d| d.map(|d| (d.index, d.sentences))).collect()
}

#[test]
fn corpus_streams_a_folder_of_text_and_gzip_files() {
    let dir = temp_dir("folder");
    std::fs::write(dir.join("a.txt"), "one a\none b\n\n\n  \ntwo a\r\ntwo b\r\n").unwrap();
    std::fs::create_dir(dir.join("b")).unwrap();
    write_gz(&dir.join("b").join("c.txt.gz"), "three a\n\nfour a\nfour b\nfour c");
    std::fs::write(dir.join("b").join("d.txt"), "\n\nfive a\n").unwrap();
    std::fs::write(dir.join(".hidden"), "never read\n").unwrap();
    let source = CorpusSource::path(&dir);
    let docs = read_all(&source, Split::All).unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        docs,
        vec![
            (0, s(&["one a", "one b"])),
            (1, s(&["two a", "two b"])),
            (2, s(&["three a"])),
            (3, s(&["four a", "four b", "four c"])),
            (4, s(&["five a"])),
        ]
    );
    assert_eq!(read_all(&source, Split::HeldOut).unwrap().iter().map(|d| d.0).collect::<Vec<_>>(), vec![0]);
    assert_eq!(read_all(&source, Split::Train).unwrap().iter().map(|d| d.0).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    let single = CorpusSource::path(dir.join("b").join("c.txt.gz"));
    assert_eq!(read_all(&single, Split::All).unwrap().len(), 2);
    let counts = source.count().unwrap();
    assert_eq!((counts.documents, counts.train_documents, counts.held_out_documents), (5, 4, 1));
    assert_eq!((counts.sentences, counts.words), (9, 18));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn err_text<T>(r: Result<T, DataError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_corpus_input_gives_clear_errors() {
    let dir = temp_dir("bad");
    let vocab: Arc<dyn Vocab> = Arc::new(FakeVocab::new(1000));

    let missing = dir.join("nope.txt");
    let e = err_text(CorpusSource::path(&missing).documents(Split::All));
    assert!(e.contains("nope.txt") && e.contains("does it exist"), "{e}");
    let e = err_text(Loader::new(CorpusSource::path(&missing), vocab.clone(), LoaderConfig::default()));
    assert!(e.contains("nope.txt"), "{e}");

    let empty_dir = dir.join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    let e = err_text(CorpusSource::path(&empty_dir).documents(Split::All));
    assert!(e.contains("contains no files"), "{e}");

    let blank = dir.join("blank.txt");
    std::fs::write(&blank, "\n  \n\n").unwrap();
    let e = err_text(read_all(&CorpusSource::path(&blank), Split::All));
    assert!(e.contains("blank.txt") && e.contains("no documents"), "{e}");

    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"fine\nalso fine\ncaf\xe9 au lait\n".as_slice()).unwrap();
    let e = err_text(read_all(&CorpusSource::path(&latin1), Split::All));
    assert!(e.contains("latin1.txt line 3") && e.contains("not UTF-8"), "{e}");
    let e = err_text(Loader::new(CorpusSource::path(&latin1), vocab.clone(), LoaderConfig::default()));
    assert!(e.contains("latin1.txt line 3"), "{e}");

    let not_gz = dir.join("fake.txt.gz");
    std::fs::write(&not_gz, "plain text\n").unwrap();
    let e = err_text(read_all(&CorpusSource::path(&not_gz), Split::All));
    assert!(e.contains("fake.txt.gz"), "{e}");

    // One document: it is held out (index 0), so there is nothing to train on.
    let one = dir.join("one.txt");
    std::fs::write(&one, "a b c\nd e f\n").unwrap();
    let e = err_text(Loader::new(CorpusSource::path(&one), vocab.clone(), LoaderConfig::default()));
    assert!(e.contains("no training documents") && e.contains("1 document(s)"), "{e}");

    let two = dir.join("two.txt");
    std::fs::write(&two, "a b c\n\nd e f\n").unwrap();
    let cfg = LoaderConfig { seq_len: 4, ..LoaderConfig::default() };
    let e = err_text(Loader::new(CorpusSource::path(&two), vocab.clone(), cfg));
    assert!(e.contains("seq_len 4"), "{e}");
    let tiny: Arc<dyn Vocab> = Arc::new(FakeVocab::new(4));
    let e = err_text(Loader::new(CorpusSource::path(&two), tiny, LoaderConfig::default()));
    assert!(e.contains("[MASK] = 4") && e.contains("size 4"), "{e}");
    // Two documents: one to train on, one held out; both work.
    assert!(Loader::new(CorpusSource::path(&two), vocab.clone(), LoaderConfig::default()).is_ok());
    assert_eq!(
        build_eval_set(&CorpusSource::path(&two), vocab.clone(), &LoaderConfig::default(), None).unwrap().len(),
        1
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn overlong_lines_are_truncated() {
    let dir = temp_dir("long");
    let path = dir.join("long.txt");
    // 'é' is 2 bytes: 0x1F + MAX/2 of them put a character across the cut.
    let long = "é".repeat(MAX_LINE_BYTES / 2 + 100);
    std::fs::write(&path, format!("x{long}\nshort\n\nnext doc\n")).unwrap();
    let docs = read_all(&CorpusSource::path(&path), Split::All).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].1.len(), 2);
    assert_eq!(docs[0].1[0].len(), MAX_LINE_BYTES - 1, "cut at the character boundary before the limit");
    assert_eq!(docs[0].1[1], "short");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn embedded_corpus_has_the_documented_counts() {
    assert!(embedded_corpus_gz().len() > 3_000_000);
    let c = CorpusSource::Embedded.count().unwrap();
    assert_eq!((c.documents, c.train_documents, c.held_out_documents), (369, 350, 19));
    assert_eq!(c.sentences, 71_589);
    assert_eq!(c.words, 2_002_611);
    let held: Vec<usize> =
        CorpusSource::Embedded.documents(Split::HeldOut).unwrap().map(|d| d.unwrap().index).collect();
    assert_eq!(held, (0..369).step_by(20).collect::<Vec<_>>());
    assert!(held.iter().all(|&i| is_held_out(i)));
    let first = CorpusSource::Embedded.documents(Split::All).unwrap().next().unwrap().unwrap();
    assert!(first.sentences[0].starts_with("Fellow-Citizens of the Senate"), "{}", first.sentences[0]);
    let last = CorpusSource::Embedded.documents(Split::All).unwrap().last().unwrap().unwrap();
    assert_eq!(last.index, 368);
    assert!(last.sentences[0].starts_with("The drama's done."), "epilogue, title dropped: {}", last.sentences[0]);
}

// ---------------------------------------------------------------------------------------------- loader

/// A corpus file of `docs` documents of numeric sentences (ids unique per document).
fn numeric_corpus(dir: &std::path::Path, docs: usize) -> PathBuf {
    let mut rng = Rng::new(99);
    let mut text = String::new();
    let mut next = FIRST_ID;
    for _ in 0..docs {
        for _ in 0..(5 + rng.below(20)) {
            let len = 2 + rng.below(15);
            let words: Vec<String> = (0..len)
                .map(|_| {
                    next += 1;
                    next.to_string()
                })
                .collect();
            text.push_str(&words.join(" "));
            text.push('\n');
        }
        text.push('\n');
    }
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text).unwrap();
    path
}

/// The contents of a batch as plain vectors, for comparisons.
fn flat(b: &PretrainBatch) -> Vec<Vec<i64>> {
    vec![
        b.inputs.input_ids.ids("t").unwrap(),
        b.inputs.attention_mask.as_ref().unwrap().ids("t").unwrap(),
        b.inputs.token_type_ids.as_ref().unwrap().ids("t").unwrap(),
        b.mlm_labels.ids("t").unwrap(),
        b.order_labels.ids("t").unwrap(),
    ]
}

fn take(loader: &mut Loader, n: usize) -> Vec<Vec<Vec<i64>>> {
    (0..n).map(|_| flat(&loader.next_batch().expect("a batch").expect("no error"))).collect()
}

#[test]
fn loader_is_deterministic_and_resumable() {
    let dir = temp_dir("loader");
    let source = CorpusSource::path(numeric_corpus(&dir, 45));
    let vocab: Arc<dyn Vocab> = Arc::new(FakeVocab::new(100_000));
    // Small pools and prefetch so batches cross pools and epochs while the thread waits on the channel.
    let cfg = LoaderConfig {
        seq_len: 32,
        batch_size: 8,
        pool_documents: 7,
        prefetch_batches: 2,
        seed: 5,
        ..LoaderConfig::default()
    };
    let mut a = Loader::new(source.clone(), vocab.clone(), cfg.clone()).unwrap();
    let first = take(&mut a, 60);
    assert_eq!(a.batch_index(), 60);
    let mut b = Loader::new(source.clone(), vocab.clone(), cfg.clone()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20)); // timing must not matter
    assert_eq!(take(&mut b, 60), first);
    assert_eq!(first[0][0].len(), 8 * 32);

    let mut other = Loader::new(source.clone(), vocab.clone(), LoaderConfig { seed: 6, ..cfg.clone() }).unwrap();
    assert_ne!(take(&mut other, 3), first[..3].to_vec());

    let mut resumed =
        Loader::new(source.clone(), vocab.clone(), LoaderConfig { start_at_batch: 37, ..cfg.clone() }).unwrap();
    assert_eq!(resumed.batch_index(), 37);
    assert_eq!(take(&mut resumed, 23), first[37..].to_vec());
    let mut skipped = Loader::new(source.clone(), vocab.clone(), cfg.clone()).unwrap();
    skipped.skip_batches(37).unwrap();
    assert_eq!(take(&mut skipped, 23), first[37..].to_vec());

    // Finite epochs: the stream ends; every epoch has fresh masks.
    let mut one = Loader::new(source.clone(), vocab.clone(), LoaderConfig { epochs: Some(1), ..cfg.clone() }).unwrap();
    let batches: Vec<PretrainBatch> = one.by_ref().map(|b| b.unwrap()).collect();
    let rows: usize = batches.iter().map(|b| b.batch_size()).sum();
    assert!(batches[..batches.len() - 1].iter().all(|b| b.batch_size() == 8));
    assert!(one.next_batch().is_none());
    let mut two = Loader::new(source.clone(), vocab.clone(), LoaderConfig { epochs: Some(2), ..cfg.clone() }).unwrap();
    let rows2: usize = two.by_ref().map(|b| b.unwrap().batch_size()).sum();
    assert!(rows2 > rows + rows / 2, "second epoch: {rows} then {rows2} rows");

    // Dropping a loader whose thread is blocked on a full channel returns promptly.
    drop(Loader::new(source.clone(), vocab.clone(), cfg.clone()).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_set_uses_held_out_documents_only() {
    let dir = temp_dir("eval");
    let path = numeric_corpus(&dir, 80);
    let source = CorpusSource::path(&path);
    // id -> document index, from the file itself.
    let mut doc_of = HashMap::new();
    for doc in source.documents(Split::All).unwrap() {
        let doc = doc.unwrap();
        for s in &doc.sentences {
            for w in s.split_whitespace() {
                doc_of.insert(w.parse::<i64>().unwrap(), doc.index);
            }
        }
    }
    let vocab: Arc<dyn Vocab> = Arc::new(FakeVocab::new(100_000));
    let cfg = LoaderConfig { seq_len: 32, batch_size: 4, ..LoaderConfig::default() };
    let eval = build_eval_set(&source, vocab.clone(), &cfg, None).unwrap();
    assert!(!eval.is_empty());
    let again = build_eval_set(&source, vocab.clone(), &cfg, None).unwrap();
    assert_eq!(eval.iter().map(flat).collect::<Vec<_>>(), again.iter().map(flat).collect::<Vec<_>>());
    let capped = build_eval_set(&source, vocab.clone(), &cfg, Some(2)).unwrap();
    assert_eq!(capped.len(), 2.min(eval.len()));
    for batch in &eval {
        let ids = batch.inputs.input_ids.ids("t").unwrap();
        let labels = batch.mlm_labels.ids("t").unwrap();
        for (&id, &label) in ids.iter().zip(&labels) {
            let original = if label != IGNORE_LABEL { label } else { id };
            if let Some(&d) = doc_of.get(&original) {
                assert!(is_held_out(d), "id {original} from training document {d}");
            }
        }
    }
    // And the training stream never sees a held-out document.
    let mut train = Loader::new(source.clone(), vocab, LoaderConfig { epochs: Some(1), ..cfg }).unwrap();
    for batch in train.by_ref() {
        let batch = batch.unwrap();
        let ids = batch.inputs.input_ids.ids("t").unwrap();
        let labels = batch.mlm_labels.ids("t").unwrap();
        for (&id, &label) in ids.iter().zip(&labels) {
            let original = if label != IGNORE_LABEL { label } else { id };
            if let Some(&d) = doc_of.get(&original) {
                assert!(!is_held_out(d), "id {original} from held-out document {d}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loader_runs_on_the_embedded_corpus() {
    let vocab: Arc<dyn Vocab> = Arc::new(FakeVocab::new(8000));
    let cfg = LoaderConfig { batch_size: 16, ..LoaderConfig::default() };
    let mut loader = Loader::new(CorpusSource::Embedded, vocab, cfg).unwrap();
    let batch = loader.next_batch().unwrap().unwrap();
    assert_eq!(batch.inputs.input_ids.shape(), &[16, 128]);
    let labels = batch.mlm_labels.ids("t").unwrap();
    let predicted = labels.iter().filter(|&&l| l != IGNORE_LABEL).count();
    // At most 19 per full row (round(128 * 0.15)); short rows predict fewer.
    assert!(predicted <= 16 * 19 && predicted > 16 * 10, "{predicted}");
}

#[test]
fn loader_and_batches_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<Loader>();
    send::<PretrainBatch>();
    let d = LoaderConfig::default();
    assert_eq!((d.seq_len, d.max_predictions_per_seq, d.masked_lm_prob, d.short_seq_prob), (128, 20, 0.15, 0.1));
    assert_eq!(d.objective, Objective::Sop);
}

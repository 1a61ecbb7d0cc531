//! SentencePiece-compatible unigram tokenizer with ALBERT's text preprocessing.
//!
//! One [`Tokenizer`] type for the three ways a tokenizer arrives:
//!
//! - [`Tokenizer::from_spiece_model`] reads a SentencePiece `ModelProto` (`spiece.model`, `30k-clean.model`)
//!   with a small hand-written protobuf reader. Encoding ports sentencepiece 0.2 itself: its normaliser
//!   (longest-match rewriting with the model's `precompiled_charsmap`, user-defined pieces kept verbatim,
//!   extra whitespace removed, dummy prefix, spaces as `▁`) and its unigram Viterbi (`EncodeOptimized`: f32
//!   scores, first-best tie-breaking, score re-basing, user-defined bonus, runs of unknown characters merged
//!   into one `<unk>`). It gives exactly sentencepiece's ids on every line of the sentencepiece sdist's
//!   `botchan.txt`, on the whole text as one input, and on seeded random lines built to provoke near-ties
//!   (tests in `albert/tests/tokenizer.rs`). `tokenizers`' own unigram code differs from sentencepiece on
//!   near-ties (it sums in f64: "0"+"00" against "00"+"0") and its `Precompiled` normaliser drops some
//!   combining marks, so neither is used for encoding unigram models.
//! - [`Tokenizer::from_tokenizer_json`] loads a Hugging Face `tokenizer.json` with the `tokenizers` crate.
//!   For a unigram model, `tokenizers` splits off added tokens and runs the normaliser steps and the
//!   pre-tokenizer (a `Precompiled` step applied the way sentencepiece applies a charsmap; trailing `▁`
//!   dropped as sentencepiece does), then the sentencepiece Viterbi above runs over the normalised text.
//!   Other model types (BPE, WordPiece) encode with `tokenizers` as they are.
//! - [`Tokenizer::train`] trains a unigram vocabulary with `tokenizers`' `UnigramTrainer`, with ALBERT's
//!   special pieces `<pad>`=0 `<unk>`=1 `[CLS]`=2 `[SEP]`=3 `[MASK]`=4.
//!
//! **ALBERT-style tokenizers.** A tokenizer whose vocabulary holds `[CLS]`, `[SEP]` and `[MASK]` (real
//! ALBERT `spiece.model`s, every tokenizer made by [`Tokenizer::train`]) gets the preprocessing of ALBERT's
//! reference tokenizers (TF `tokenization.preprocess_text` / `encode_pieces`, HF's slow `AlbertTokenizer`
//! with its defaults) around the SentencePiece encoding:
//!
//! 1. whitespace collapsed (`" ".join(text.strip().split())`, Python's notion of whitespace);
//! 2. ` `` ` and `''` replaced with `"` (HF);
//! 3. NFKD, then every character with a non-zero canonical combining class dropped (accent stripping,
//!    Python's `unicodedata.combining`);
//! 4. lowercase;
//! 5. the SentencePiece encoding of the model;
//! 6. the digit-comma rule: a piece longer than one character that ends in `,` preceded by a digit is
//!    re-encoded without the comma (and without `▁` if the original piece had none) and `,` appended as
//!    its own piece, so `9,9` gives `▁9 , 9` rather than `▁9, 9`.
//!
//! Other tokenizers (the sentencepiece test models, any other `tokenizer.json`) get plain sentencepiece /
//! `tokenizers` behaviour, which is what the parity tests against sentencepiece require; applying ALBERT's
//! lowercasing to them would break it. The ALBERT steps are decided from the vocabulary alone, so a
//! tokenizer saved with [`Tokenizer::save`] and loaded back behaves the same. On a model made with ALBERT's
//! `spm_train` recipe the result equals HF's slow `AlbertTokenizer` (fixture `albert_style_1000`).
//!
//! Known differences, none of which occur in ALBERT's data: `UNUSED` pieces of a `.model` saved as
//! tokenizer.json and loaded back become normal pieces, and so do control pieces whose names are not among
//! `<pad> <unk> <s> </s> [CLS] [SEP] [MASK]`; user-defined pieces are only kept verbatim by the `.model`
//! loader; added tokens of a tokenizer.json (e.g. the specials of a trained tokenizer) are matched in the
//! raw text as `tokenizers` matches them, which sentencepiece never does (for ALBERT-style tokenizers the
//! lowercasing makes `[CLS]`/`[SEP]`/`[MASK]` unmatchable anyway).
//!
//! A `tokenizer.json` written by [`Tokenizer::save`] loads in Hugging Face `tokenizers`. For trained
//! tokenizers its normaliser also lowercases and strips accents (HF's `NFKD` + `StripAccents`, as in HF's
//! ALBERT conversion) and trims whitespace, so Python users get the same ids except for the digit-comma
//! rule (which only this wrapper applies) and rare near-ties.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use tokenizers::decoders::metaspace::{Metaspace, PrependScheme};
use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Lowercase, Precompiled, Replace, Sequence, Strip, StripAccents, NFKD};
use tokenizers::{
    AddedToken, Model, ModelWrapper, NormalizedString, Normalizer, NormalizerWrapper, OffsetReferential, OffsetType,
    PreTokenizedString, PreTokenizer,
};

/// The SentencePiece whitespace marker.
pub const SPIECE_UNDERLINE: char = '\u{2581}';

/// ALBERT's special pieces in id order (`pad_id=0 unk_id=1`, control symbols `[CLS] [SEP] [MASK]`).
pub const ALBERT_SPECIAL_PIECES: [&str; 5] = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"];

/// Piece names that `decode` always treats as special when present in the vocabulary.
const SPECIAL_NAMES: [&str; 7] = ["<pad>", "<unk>", "<s>", "</s>", "[CLS]", "[SEP]", "[MASK]"];

/// Ids of ALBERT's special pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialIds {
    pub pad: u32,
    pub unk: u32,
    pub cls: u32,
    pub sep: u32,
    pub mask: u32,
}

/// A unigram (SentencePiece-compatible) tokenizer; see the module documentation.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// id -> piece (`None` for ids that name no piece).
    vocab: Vec<Option<String>>,
    /// Whether ALBERT's preprocessing and digit-comma rule apply (vocabulary holds [CLS], [SEP], [MASK]).
    albert: bool,
    /// Per id: skipped by `decode`.
    skip: Vec<bool>,
    /// The unknown piece's id, if the model has one.
    unk: Option<u32>,
    /// How `encode` runs.
    pipe: Pipe,
    /// The pre-tokenizer is (or contains) a Metaspace one: sentencepiece-style whitespace.
    metaspace: bool,
    /// `inner.get_vocab_size(true)`, cached: the library rebuilds a hash map on every call, and the
    /// data pipeline asks for it once per masked token.
    size: usize,
}

/// The encoding pipeline behind [`Tokenizer::encode`] (before the ALBERT steps).
#[derive(Clone)]
enum Pipe {
    /// A non-unigram tokenizer.json: the `tokenizers` pipeline as it is.
    Hf,
    /// A SentencePiece model: sentencepiece's normaliser, then sentencepiece's Viterbi.
    Spm { norm: spm_norm::SpNormalizer, viterbi: viterbi::Viterbi },
    /// A unigram tokenizer.json: `tokenizers` splits off added tokens, runs the normaliser steps (a
    /// `Precompiled` step the way sentencepiece applies a charsmap) and the pre-tokenizer; sentencepiece's
    /// Viterbi then runs over each stretch of normalised text between added tokens.
    Json { steps: Vec<Step>, viterbi: viterbi::Viterbi },
}

#[derive(Clone)]
enum Step {
    Charsmap(spm_norm::CharsMap),
    Hf(NormalizerWrapper),
}

/// What a SentencePiece model adds to the `tokenizers` pipeline built from it.
struct SpmInfo {
    kinds: Vec<viterbi::Kind>,
    scores: Vec<f32>,
    norm: spm_norm::SpNormalizer,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("albert_style", &self.albert)
            .field("unk", &self.unk)
            .finish()
    }
}

impl Tokenizer {
    /// Loads `dir/tokenizer.json` if present, else `dir/spiece.model` (or a TF release's `30k-clean.model`).
    pub fn from_dir(dir: &Path) -> Result<Tokenizer, String> {
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_tokenizer_json(&json);
        }
        for name in ["spiece.model", "30k-clean.model"] {
            let model = dir.join(name);
            if model.is_file() {
                return Self::from_spiece_model(&model);
            }
        }
        Err(format!("no tokenizer.json or spiece.model in {}", dir.display()))
    }

    /// Loads a SentencePiece `ModelProto` file (unigram models only).
    pub fn from_spiece_model(path: &Path) -> Result<Tokenizer, String> {
        let bytes = fs::read(path).map_err(|e| format!("cannot read SentencePiece model {}: {e}", path.display()))?;
        Self::from_spiece_bytes(&bytes).map_err(|e| format!("bad SentencePiece model {}: {e}", path.display()))
    }

    fn from_spiece_bytes(bytes: &[u8]) -> Result<Tokenizer, String> {
        let proto = proto::parse_model(bytes)?;
        if proto.pieces.is_empty() {
            return Err("the model has no pieces (not a SentencePiece ModelProto?)".into());
        }
        match proto.model_type {
            proto::UNIGRAM => {}
            proto::BPE => return Err("BPE models are not supported (unigram only)".into()),
            proto::WORD => return Err("WORD models are not supported (unigram only)".into()),
            proto::CHAR => return Err("CHAR models are not supported (unigram only)".into()),
            t => return Err(format!("unknown model_type {t} (unigram only)")),
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut unk = None;
        for (id, p) in proto.pieces.iter().enumerate() {
            if p.piece.is_empty() {
                return Err(format!("piece {id} is empty"));
            }
            if !p.score.is_finite() {
                return Err(format!("piece {id} ({:?}) has score {}", p.piece, p.score));
            }
            if let Some(first) = seen.insert(p.piece.as_str(), id) {
                return Err(format!("piece {:?} is defined twice (ids {first} and {id})", p.piece));
            }
            if p.kind == proto::TYPE_UNKNOWN {
                if let Some(u) = unk {
                    return Err(format!("two unknown pieces (ids {u} and {id})"));
                }
                unk = Some(id);
            }
        }
        let unk = match unk {
            Some(u) => u,
            None => return Err("the model has no unknown (<unk>) piece".into()),
        };
        if !proto.normalizer.escape_whitespaces {
            return Err("normalizer_spec.escape_whitespaces = false is not supported".into());
        }
        if proto.treat_whitespace_as_suffix {
            return Err("trainer_spec.treat_whitespace_as_suffix = true is not supported".into());
        }
        let vocab: Vec<(String, f64)> = proto
            .pieces
            .iter()
            .map(|p| {
                // sentencepiece gives user-defined pieces the score 0.1 * (bytes - 1) so that they always win.
                let score = if p.kind == proto::TYPE_USER_DEFINED {
                    0.1 * (p.piece.len() as f64 - 1.0)
                } else {
                    p.score as f64
                };
                (p.piece.clone(), score)
            })
            .collect();
        let model = Unigram::from(vocab, Some(unk), proto.byte_fallback).map_err(|e| e.to_string())?;

        // `inner` is the Hugging Face form of the model, what `save` writes (like HF's converters: Unigram,
        // Precompiled + whitespace normaliser, Metaspace). Encoding uses the sentencepiece port instead.
        let norm = &proto.normalizer;
        let mut steps: Vec<NormalizerWrapper> = Vec::new();
        let mut charsmap = None;
        if !norm.precompiled_charsmap.is_empty() {
            charsmap = Some(spm_norm::CharsMap::parse(&norm.precompiled_charsmap)?);
            charsmap::check(&norm.precompiled_charsmap)?;
            let pc =
                Precompiled::from(&norm.precompiled_charsmap).map_err(|e| format!("bad precompiled_charsmap: {e}"))?;
            steps.push(pc.into());
        }
        if norm.remove_extra_whitespaces {
            steps.push(replace_regex("^ +| +$", "")?.into());
            steps.push(replace_regex(" {2,}", " ")?.into());
        }
        let mut inner = tokenizers::Tokenizer::new(model);
        if !steps.is_empty() {
            inner.with_normalizer(Some(Sequence::new(steps)));
        }
        let scheme = if norm.add_dummy_prefix { PrependScheme::Always } else { PrependScheme::Never };
        inner.with_pre_tokenizer(Some(Metaspace::new(SPIECE_UNDERLINE, scheme, proto.split_by_whitespace)));
        inner.with_decoder(Some(Metaspace::new(SPIECE_UNDERLINE, scheme, proto.split_by_whitespace)));
        let kinds: Vec<viterbi::Kind> = proto
            .pieces
            .iter()
            .map(|p| match p.kind {
                proto::TYPE_NORMAL => viterbi::Kind::Normal,
                proto::TYPE_USER_DEFINED => viterbi::Kind::UserDefined,
                proto::TYPE_UNKNOWN | proto::TYPE_CONTROL => viterbi::Kind::Special,
                _ => viterbi::Kind::Unmatched, // UNUSED, BYTE, unknown types
            })
            .collect();
        let scores: Vec<f32> = proto.pieces.iter().map(|p| p.score).collect();
        let user_defined: Vec<String> =
            proto.pieces.iter().filter(|p| p.kind == proto::TYPE_USER_DEFINED).map(|p| p.piece.clone()).collect();
        let norm = spm_norm::SpNormalizer {
            charsmap,
            user_defined,
            add_dummy_prefix: norm.add_dummy_prefix,
            remove_extra_whitespaces: norm.remove_extra_whitespaces,
        };
        Self::wrap(inner, Some(SpmInfo { kinds, scores, norm }))
    }

    /// Loads a Hugging Face `tokenizer.json`.
    pub fn from_tokenizer_json(path: &Path) -> Result<Tokenizer, String> {
        let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let bad = |e: String| format!("malformed tokenizer.json {}: {e}", path.display());
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        // `tokenizers` panics on a charsmap it cannot parse, and its Precompiled normaliser trusts the
        // charsmap blindly while encoding: check every charsmap first.
        let mut maps = Vec::new();
        find_charsmaps(&value, &mut maps);
        for m in maps {
            let bytes = base64_decode(m).ok_or_else(|| bad("precompiled_charsmap is not base64".into()))?;
            charsmap::check(&bytes).map_err(bad)?;
        }
        let parsed = std::panic::catch_unwind(|| text.parse::<tokenizers::Tokenizer>().map_err(|e| e.to_string()));
        let inner = match parsed {
            Ok(r) => r.map_err(bad)?,
            Err(_) => return Err(bad("the tokenizers library could not load it".into())),
        };
        Self::wrap(inner, None).map_err(bad)
    }

    /// Builds the wrapper; `spm` is what a SentencePiece model adds (piece kinds, f32 scores, normaliser).
    fn wrap(inner: tokenizers::Tokenizer, spm: Option<SpmInfo>) -> Result<Tokenizer, String> {
        let map = inner.get_vocab(true);
        let n = map.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        if n == 0 {
            return Err("the vocabulary is empty".into());
        }
        if n > 50_000_000 {
            return Err(format!("vocabulary ids go up to {}, too many", n - 1));
        }
        let mut vocab: Vec<Option<String>> = vec![None; n];
        for (piece, id) in map {
            let slot = &mut vocab[id as usize];
            // A piece declared both in the model and as an added token keeps the model's name.
            if slot.is_none() || inner.get_model().token_to_id(&piece) == Some(id) {
                *slot = Some(piece);
            }
        }
        let model_json = serde_json::to_value(inner.get_model()).unwrap_or(serde_json::Value::Null);
        let unk = match model_json.get("unk_id").and_then(|v| v.as_u64()) {
            Some(id) if (id as usize) < n => Some(id as u32),
            _ => model_json.get("unk_token").and_then(|v| v.as_str()).and_then(|t| inner.token_to_id(t)),
        };
        let mut skip = vec![false; n];
        let mut mark = |id: u32| {
            if let Some(s) = skip.get_mut(id as usize) {
                *s = true;
            }
        };
        if let Some(u) = unk {
            mark(u);
        }
        for name in SPECIAL_NAMES {
            if let Some(id) = inner.token_to_id(name) {
                mark(id);
            }
        }
        for (id, tok) in inner.get_added_tokens_decoder() {
            if tok.special {
                mark(id);
            }
        }
        if let Some(SpmInfo { kinds, .. }) = &spm {
            for (id, k) in kinds.iter().enumerate() {
                if *k == viterbi::Kind::Special {
                    mark(id as u32);
                }
            }
        }
        let pipe = match inner.get_model() {
            ModelWrapper::Unigram(u) => {
                let unk = unk.ok_or("the unigram model has no unk_id")?;
                let pieces: Vec<(String, f64)> = u.iter().cloned().collect();
                let (kinds, scores, norm) = match spm {
                    Some(SpmInfo { kinds, scores, norm }) => (kinds, scores, Some(norm)),
                    None => {
                        // tokenizer.json: special pieces are never matched in text; with byte fallback, neither
                        // are the <0xXX> byte pieces; every other piece is a normal one.
                        let kinds = pieces
                            .iter()
                            .enumerate()
                            .map(|(id, (p, _))| {
                                if skip.get(id).copied().unwrap_or(false) {
                                    viterbi::Kind::Special
                                } else if u.byte_fallback() && is_byte_piece(p) {
                                    viterbi::Kind::Unmatched
                                } else {
                                    viterbi::Kind::Normal
                                }
                            })
                            .collect();
                        (kinds, pieces.iter().map(|(_, s)| *s as f32).collect(), None)
                    }
                };
                if kinds.len() != pieces.len() || scores.len() != pieces.len() {
                    return Err("internal: piece tables disagree".into());
                }
                let viterbi = viterbi::Viterbi::new(&pieces, &kinds, &scores, unk, u.byte_fallback());
                match norm {
                    Some(norm) => Pipe::Spm { norm, viterbi },
                    None => Pipe::Json { steps: normalizer_steps(inner.get_normalizer())?, viterbi },
                }
            }
            _ => Pipe::Hf,
        };
        let albert = ["[CLS]", "[SEP]", "[MASK]"].iter().all(|p| inner.token_to_id(p).is_some());
        let metaspace = serde_json::to_string(&inner.get_pre_tokenizer())
            .map(|j| j.contains("\"type\":\"Metaspace\""))
            .unwrap_or(false);
        let size = inner.get_vocab_size(true);
        Ok(Tokenizer { inner, vocab, albert, skip, unk, pipe, metaspace, size })
    }

    /// Writes `dir/tokenizer.json` (Hugging Face format) atomically: a temporary file, then a rename.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let json = self.inner.to_string(true).map_err(|e| format!("cannot serialise the tokenizer: {e}"))?;
        let target = dir.join("tokenizer.json");
        let tmp: PathBuf = dir.join(format!(".tokenizer.json.tmp.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(json.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &target)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("cannot write {}: {e}", target.display())
        })
    }

    /// Piece ids of one text (normalised; no special tokens added).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_pairs(text).into_iter().map(|(id, _)| id).collect()
    }

    /// Pieces of one text, as `encode` produces them (an unknown stretch of text appears as itself).
    pub fn pieces(&self, text: &str) -> Vec<String> {
        self.encode_pairs(text).into_iter().map(|(_, p)| p).collect()
    }

    /// The piece with this id.
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.vocab.get(id as usize).and_then(|p| p.as_deref())
    }

    /// The id of this piece (model pieces and added tokens).
    pub fn piece_to_id(&self, piece: &str) -> Option<u32> {
        self.inner.token_to_id(piece)
    }

    /// Whether the ALBERT preprocessing and digit-comma rule apply (the vocabulary has [CLS] [SEP] [MASK]).
    pub fn is_albert_style(&self) -> bool {
        self.albert
    }

    /// Text of the pieces: joined, `▁` turned into a space, trimmed. Special pieces (`<pad>`, `<unk>`,
    /// `[CLS]`, `[SEP]`, `[MASK]`, `<s>`, `</s>`, SentencePiece control pieces, special added tokens) and
    /// ids outside the vocabulary are skipped, as HF's `decode(..., skip_special_tokens=True)` does.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        for &id in ids {
            if self.skip.get(id as usize).copied().unwrap_or(true) {
                continue;
            }
            if let Some(p) = self.id_to_piece(id) {
                out.extend(p.chars().map(|c| if c == SPIECE_UNDERLINE { ' ' } else { c }));
            }
        }
        out.trim().to_string()
    }

    /// Number of ids (model pieces and added tokens).
    pub fn vocab_size(&self) -> usize {
        self.size
    }

    /// Ids of `<pad>`, `<unk>`, `[CLS]`, `[SEP]`, `[MASK]`; the error names the missing ones.
    pub fn special(&self) -> Result<SpecialIds, String> {
        let ids: Vec<Option<u32>> = ALBERT_SPECIAL_PIECES.iter().map(|p| self.inner.token_to_id(p)).collect();
        let missing: Vec<&str> =
            ALBERT_SPECIAL_PIECES.iter().zip(&ids).filter(|(_, id)| id.is_none()).map(|(p, _)| *p).collect();
        if !missing.is_empty() {
            return Err(format!("the tokenizer has no special piece(s) {}", missing.join(" ")));
        }
        let id = |i: usize| ids[i].unwrap_or_default();
        Ok(SpecialIds { pad: id(0), unk: id(1), cls: id(2), sep: id(3), mask: id(4) })
    }

    /// ALBERT's `_is_start_piece_sp` (TF `create_pretraining_data.py`) for the piece with this id: the
    /// piece starts a word if it starts with `▁` or `<`, is a single punctuation character, or contains a
    /// character that is neither an (ASCII, after lowercasing) letter nor punctuation. Unknown ids: false.
    pub fn is_word_start(&self, id: u32) -> bool {
        self.id_to_piece(id).is_some_and(is_start_piece)
    }

    /// Trains a unigram vocabulary of (at most) `vocab_size` pieces with ALBERT's special pieces at ids 0..4
    /// (`<pad>` `<unk>` `[CLS]` `[SEP]` `[MASK]`). Sentences get ALBERT's preprocessing (lowercase, accents
    /// stripped, whitespace collapsed) before training; empty ones are ignored.
    pub fn train(sentences: impl Iterator<Item = String>, vocab_size: usize) -> Result<Tokenizer, String> {
        if vocab_size < ALBERT_SPECIAL_PIECES.len() + 2 {
            return Err(format!("vocab_size {vocab_size} is too small (at least {})", ALBERT_SPECIAL_PIECES.len() + 2));
        }
        let vocab_size_u32 = u32::try_from(vocab_size).map_err(|_| format!("vocab_size {vocab_size} is too large"))?;
        let prepared: Vec<String> = sentences.map(|s| albert_preprocess(&s)).filter(|s| !s.is_empty()).collect();
        if prepared.is_empty() {
            return Err("no training text (every sentence is empty)".into());
        }
        let specials: Vec<AddedToken> = ALBERT_SPECIAL_PIECES.iter().map(|p| AddedToken::from(*p, true)).collect();
        let trainer = UnigramTrainer::builder()
            .show_progress(false)
            .vocab_size(vocab_size_u32)
            .special_tokens(specials)
            .unk_token(Some("<unk>".to_string()))
            .build()
            .map_err(|e| format!("cannot configure the unigram trainer: {e}"))?;
        let mut trainer = TrainerWrapper::UnigramTrainer(trainer);
        let mut inner = tokenizers::Tokenizer::new(Unigram::default());
        inner.with_normalizer(Some(albert_json_normalizer()?));
        inner.with_pre_tokenizer(Some(Metaspace::new(SPIECE_UNDERLINE, PrependScheme::Always, true)));
        inner.with_decoder(Some(Metaspace::new(SPIECE_UNDERLINE, PrependScheme::Always, true)));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inner.train(&mut trainer, prepared.into_iter()).map(|_| ()).map_err(|e| e.to_string())
        }));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("unigram training failed: {e}")),
            Err(_) => return Err("unigram training failed (the trainer panicked)".into()),
        }
        // Scores rounded to 15 significant digits: JSON keeps them exactly (serde_json parses such numbers
        // exactly), so save -> load -> save gives the same file.
        let rounded = match inner.get_model() {
            ModelWrapper::Unigram(u) => {
                let vocab: Vec<(String, f64)> =
                    u.iter().map(|(p, s)| (p.clone(), format!("{s:.14e}").parse::<f64>().unwrap_or(*s))).collect();
                Some(Unigram::from(vocab, Some(1), u.byte_fallback()).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        if let Some(m) = rounded {
            inner.with_model(m);
        }
        let tok = Self::wrap(inner, None)?;
        for (want, piece) in ALBERT_SPECIAL_PIECES.iter().enumerate() {
            if tok.inner.token_to_id(piece) != Some(want as u32) {
                return Err(format!("training put {piece} at id {:?}, not {want}", tok.inner.token_to_id(piece)));
            }
        }
        Ok(tok)
    }

    /// The `tokenizers` pipeline inside (for callers that need offsets, batching, ...). It does not apply
    /// the ALBERT preprocessing or the digit-comma rule.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn encode_pairs(&self, text: &str) -> Vec<(u32, String)> {
        if !self.albert {
            return self.raw_encode(text);
        }
        let prepared = albert_preprocess(text);
        let pairs = self.raw_encode(&prepared);
        self.digit_comma(pairs)
    }

    /// The model's own encoding (no ALBERT steps); see [`Pipe`].
    fn raw_encode(&self, text: &str) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        match &self.pipe {
            Pipe::Hf => {
                if let Ok(enc) = self.inner.encode(text, false) {
                    out.extend(enc.get_ids().iter().copied().zip(enc.get_tokens().iter().cloned()));
                }
                // (Loading validated the pipeline; nothing in it fails on a valid &str.)
            }
            Pipe::Spm { norm, viterbi } => viterbi.encode(&norm.normalize(text), &mut out),
            Pipe::Json { steps, viterbi } => {
                let added = self.inner.get_added_vocabulary();
                let pts = added.extract_and_normalize::<NormalizerWrapper>(None, text);
                for (part, _, tokens) in pts.get_splits(OffsetReferential::Original, OffsetType::Byte) {
                    match tokens {
                        Some(tokens) => out.extend(tokens.iter().map(|t| (t.id, t.value.clone()))),
                        None => {
                            for chunk in self.normalize_steps(steps, part) {
                                viterbi.encode(&chunk, &mut out);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Normaliser steps, then the pre-tokenizer, of a unigram tokenizer.json. With a Metaspace pre-tokenizer
    /// the parts are joined again into one chunk (sentencepiece's Viterbi sees the whole normalised text);
    /// with any other pre-tokenizer each part is its own chunk.
    fn normalize_steps(&self, steps: &[Step], text: &str) -> Vec<String> {
        let mut s = text.to_string();
        for step in steps {
            s = match step {
                Step::Charsmap(map) => map.apply(&s),
                Step::Hf(n) => {
                    let mut ns = NormalizedString::from(s.as_str());
                    if n.normalize(&mut ns).is_err() {
                        return Vec::new();
                    }
                    ns.get().to_string()
                }
            };
        }
        let Some(pt) = self.inner.get_pre_tokenizer() else { return vec![s] };
        let mut pts = PreTokenizedString::from(s);
        if pt.pre_tokenize(&mut pts).is_err() {
            return Vec::new();
        }
        let parts = pts.get_splits(OffsetReferential::Normalized, OffsetType::Byte).into_iter().map(|(p, _, _)| p);
        if !self.metaspace {
            return parts.map(str::to_string).collect();
        }
        let mut joined: String = parts.collect();
        // sentencepiece drops trailing whitespace (a tokenizer.json made by `tokenizers`' from_spm does not).
        while joined.ends_with(SPIECE_UNDERLINE) {
            joined.pop();
        }
        vec![joined]
    }

    /// ALBERT's digit-comma rule (TF `encode_pieces`, HF `AlbertTokenizer._tokenize`).
    fn digit_comma(&self, pairs: Vec<(u32, String)>) -> Vec<(u32, String)> {
        let mut out = Vec::with_capacity(pairs.len());
        for (id, piece) in pairs {
            let chars: Vec<char> = piece.chars().collect();
            let n = chars.len();
            if !(n > 1 && chars[n - 1] == ',' && is_python_digit(chars[n - 2])) {
                out.push((id, piece));
                continue;
            }
            let stem: String = chars[..n - 1].iter().filter(|&&c| c != SPIECE_UNDERLINE).collect();
            let mut cur = self.raw_encode(&stem);
            if chars[0] != SPIECE_UNDERLINE {
                if let Some((first_id, first)) = cur.first_mut() {
                    if first.starts_with(SPIECE_UNDERLINE) {
                        if first.chars().count() == 1 {
                            cur.remove(0);
                        } else {
                            let rest: String = first.chars().skip(1).collect();
                            *first_id = self.lookup(&rest);
                            *first = rest;
                        }
                    }
                }
            }
            cur.push((self.lookup(","), ",".to_string()));
            out.extend(cur);
        }
        out
    }

    fn lookup(&self, piece: &str) -> u32 {
        self.inner.token_to_id(piece).or(self.unk).unwrap_or(0)
    }
}

/// Python's `str.isdigit` for the characters that survive NFKD (decimal digits of every script and the
/// few other digit characters); approximated by Unicode's numeric property.
fn is_python_digit(c: char) -> bool {
    c.is_numeric()
}

/// Python's `str.isspace`: Unicode White_Space plus the information separators U+001C..U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// ALBERT's text preprocessing (HF slow `AlbertTokenizer.preprocess_text` with its defaults): collapse
/// whitespace, ` `` `/`''` -> `"`, NFKD, drop characters with a non-zero combining class, lowercase.
pub fn albert_preprocess(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for word in text.split(is_python_space).filter(|w| !w.is_empty()) {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(word);
    }
    let s = if s.contains("``") || s.contains("''") { s.replace("``", "\"").replace("''", "\"") } else { s };
    let s: Cow<str> = if s.is_ascii() {
        Cow::Owned(s)
    } else {
        let mut n = NormalizedString::from(s.as_str());
        n.nfkd();
        Cow::Owned(n.get().chars().filter(|&c| !has_combining_class(c)).collect())
    };
    s.to_lowercase()
}

thread_local! {
    static CCC_CACHE: RefCell<HashMap<char, bool>> = RefCell::new(HashMap::new());
}

/// Whether `c` (a character of NFKD output) has a non-zero canonical combining class, i.e. Python's
/// `unicodedata.combining(c) != 0`. Found without a table: canonical reordering moves a mark with class
/// 1..239 in front of U+0345 (class 240, the only character with that class), and leaves starters alone.
fn has_combining_class(c: char) -> bool {
    if c.is_ascii() {
        return false;
    }
    if c == '\u{345}' {
        return true;
    }
    CCC_CACHE.with(|cache| {
        if let Some(&v) = cache.borrow().get(&c) {
            return v;
        }
        let probe: String = ['\u{345}', c].iter().collect();
        let mut n = NormalizedString::from(probe.as_str());
        n.nfd();
        let v = n.get() != probe && n.get().starts_with(c);
        cache.borrow_mut().insert(c, v);
        v
    })
}

fn is_albert_punct(c: char) -> bool {
    // TF create_pretraining_data.py `special_pieces` (note: no ' < = >).
    "!\"#$%&()*+,-./:;?@[\\]^_`{|}~".contains(c)
}

/// `_is_start_piece_sp` for a piece string.
pub fn is_start_piece(piece: &str) -> bool {
    if piece.starts_with(SPIECE_UNDERLINE) || piece.starts_with('<') {
        return true;
    }
    let mut it = piece.chars();
    if let (Some(c), None) = (it.next(), it.next()) {
        if is_albert_punct(c) {
            return true;
        }
    }
    !piece.chars().all(|c| {
        let mut lower = c.to_lowercase();
        match (lower.next(), lower.next()) {
            (Some(l), None) => l.is_ascii_lowercase() || is_albert_punct(l),
            _ => false,
        }
    })
}

/// `<0xAB>`-style byte pieces (byte fallback).
fn is_byte_piece(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() == 6 && p.starts_with("<0x") && p.ends_with('>') && b[3].is_ascii_hexdigit() && b[4].is_ascii_hexdigit()
}

fn replace_regex(pattern: &str, content: &str) -> Result<Replace, String> {
    Replace::new(ReplacePattern::Regex(pattern.to_string()), content).map_err(|e| e.to_string())
}

/// Normaliser stored in a trained tokenizer's tokenizer.json (HF's ALBERT conversion, minus the charsmap).
fn albert_json_normalizer() -> Result<Sequence, String> {
    let steps: Vec<NormalizerWrapper> = vec![
        Replace::new("``", "\"").map_err(|e| e.to_string())?.into(),
        Replace::new("''", "\"").map_err(|e| e.to_string())?.into(),
        NFKD.into(),
        StripAccents.into(),
        Lowercase.into(),
        replace_regex(r"\s+", " ")?.into(),
        Strip::new(true, true).into(),
    ];
    Ok(Sequence::new(steps))
}

/// The steps of a tokenizer.json normaliser, nested sequences flattened, `Precompiled` steps replaced by
/// sentencepiece's charsmap lookup (`tokenizers`' `Precompiled` works grapheme by grapheme and drops some
/// combining marks that sentencepiece keeps).
fn normalizer_steps(n: Option<&NormalizerWrapper>) -> Result<Vec<Step>, String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<Step>) -> Result<(), String> {
        match v.get("type").and_then(|t| t.as_str()) {
            Some("Sequence") => {
                for x in v.get("normalizers").and_then(|x| x.as_array()).map(Vec::as_slice).unwrap_or(&[]) {
                    walk(x, out)?;
                }
            }
            Some("Precompiled") => {
                let b64 = v.get("precompiled_charsmap").and_then(|x| x.as_str()).unwrap_or("");
                let bytes = base64_decode(b64).ok_or("precompiled_charsmap is not base64")?;
                out.push(Step::Charsmap(spm_norm::CharsMap::parse(&bytes)?));
            }
            _ => out.push(Step::Hf(serde_json::from_value(v.clone()).map_err(|e| format!("normalizer: {e}"))?)),
        }
        Ok(())
    }
    let mut out = Vec::new();
    if let Some(n) = n {
        walk(&serde_json::to_value(n).map_err(|e| format!("normalizer: {e}"))?, &mut out)?;
    }
    Ok(out)
}

/// Every `precompiled_charsmap` string of a Precompiled normaliser in a tokenizer.json value.
fn find_charsmaps<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("type").and_then(|t| t.as_str()) == Some("Precompiled") {
                if let Some(s) = m.get("precompiled_charsmap").and_then(|s| s.as_str()) {
                    out.push(s);
                }
            }
            m.values().for_each(|x| find_charsmaps(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| find_charsmaps(x, out)),
        _ => {}
    }
}

/// Standard base64 (padding optional).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes().filter(|&b| b != b'=') {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Validation of a SentencePiece `precompiled_charsmap` (a Darts double-array trie plus a string blob),
/// following exactly the reads that `spm_precompiled` makes, so that a corrupt map is an error at load
/// time instead of an out-of-bounds panic while encoding.
mod charsmap {
    fn has_leaf(u: usize) -> bool {
        (u >> 8) & 1 == 1
    }
    fn value(u: usize) -> usize {
        u & ((1usize << 31) - 1)
    }
    fn label(u: usize) -> usize {
        u & ((1usize << 31) | 0xFF)
    }
    fn offset(u: usize) -> usize {
        (u >> 10) << ((u & (1usize << 9)) >> 6)
    }

    pub(super) fn check(map: &[u8]) -> Result<(), String> {
        let bad = |what: &str| Err(format!("corrupt precompiled_charsmap ({what})"));
        if map.len() < 4 {
            return bad("shorter than 4 bytes");
        }
        let trie_bytes = u32::from_le_bytes([map[0], map[1], map[2], map[3]]) as usize;
        let units = trie_bytes / 4;
        let end = units.checked_mul(4).and_then(|b| b.checked_add(4)).filter(|&e| e <= map.len());
        let end = match end {
            Some(e) => e,
            None => return bad("trie larger than the map"),
        };
        let array: Vec<usize> =
            map[4..end].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
        let normalized = match std::str::from_utf8(&map[end..]) {
            Ok(s) => s,
            Err(_) => return bad("replacement strings are not UTF-8"),
        };
        if array.is_empty() {
            return bad("empty trie");
        }
        let len = array.len();
        let mut visited = vec![false; len];
        let mut stack = vec![offset(array[0])];
        while let Some(p) = stack.pop() {
            if p >= len {
                return bad("node outside the trie");
            }
            if visited[p] {
                continue;
            }
            visited[p] = true;
            for c in 1usize..=255 {
                let child = p ^ c;
                if child >= len {
                    return bad("transition outside the trie");
                }
                let unit = array[child];
                if label(unit) != c {
                    continue;
                }
                let next = child ^ offset(unit);
                if has_leaf(unit) {
                    if next >= len {
                        return bad("leaf outside the trie");
                    }
                    if !normalized.is_char_boundary(value(array[next])) {
                        return bad("replacement offset out of range");
                    }
                }
                stack.push(next);
            }
        }
        Ok(())
    }
}

/// A minimal protobuf reader for SentencePiece's `ModelProto` (only the fields used here).
mod proto {
    pub const UNIGRAM: u64 = 1;
    pub const BPE: u64 = 2;
    pub const WORD: u64 = 3;
    pub const CHAR: u64 = 4;
    pub const TYPE_NORMAL: u64 = 1;
    pub const TYPE_UNKNOWN: u64 = 2;
    pub const TYPE_CONTROL: u64 = 3;
    pub const TYPE_USER_DEFINED: u64 = 4;

    pub struct Piece {
        pub piece: String,
        pub score: f32,
        /// NORMAL=1 UNKNOWN=2 CONTROL=3 USER_DEFINED=4 UNUSED=5 BYTE=6.
        pub kind: u64,
    }

    pub struct Normalizer {
        pub precompiled_charsmap: Vec<u8>,
        pub add_dummy_prefix: bool,
        pub remove_extra_whitespaces: bool,
        pub escape_whitespaces: bool,
    }

    pub struct Model {
        pub pieces: Vec<Piece>,
        pub model_type: u64,
        pub byte_fallback: bool,
        pub split_by_whitespace: bool,
        pub treat_whitespace_as_suffix: bool,
        pub normalizer: Normalizer,
    }

    enum Value<'a> {
        Varint(u64),
        Fixed64,
        Bytes(&'a [u8]),
        Fixed32(u32),
    }

    /// Calls `f(field_number, value)` for every field of one message.
    fn fields<'a>(buf: &'a [u8], mut f: impl FnMut(u64, Value<'a>) -> Result<(), String>) -> Result<(), String> {
        let mut pos = 0usize;
        while pos < buf.len() {
            let key = varint(buf, &mut pos)?;
            let number = key >> 3;
            if number == 0 {
                return Err(format!("invalid field number 0 at byte {pos}"));
            }
            let value = match key & 7 {
                0 => Value::Varint(varint(buf, &mut pos)?),
                1 => {
                    take(buf, &mut pos, 8)?;
                    Value::Fixed64
                }
                2 => {
                    let n = varint(buf, &mut pos)?;
                    let n = usize::try_from(n).map_err(|_| "length too large".to_string())?;
                    Value::Bytes(take(buf, &mut pos, n)?)
                }
                5 => {
                    let b = take(buf, &mut pos, 4)?;
                    Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }
                w => return Err(format!("unsupported wire type {w} (field {number})")),
            };
            f(number, value)?;
        }
        Ok(())
    }

    fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *buf.get(*pos).ok_or_else(|| format!("truncated (varint at byte {})", *pos))?;
            *pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("varint longer than 10 bytes before byte {}", *pos))
    }

    fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], String> {
        let end = pos.checked_add(n).filter(|&e| e <= buf.len());
        match end {
            Some(e) => {
                let s = &buf[*pos..e];
                *pos = e;
                Ok(s)
            }
            None => Err(format!("truncated ({n}-byte field at byte {} of {})", *pos, buf.len())),
        }
    }

    fn wrong(msg: &str, number: u64) -> String {
        format!("{msg}: field {number} has an unexpected wire type")
    }

    fn parse_piece(buf: &[u8]) -> Result<Piece, String> {
        let mut p = Piece { piece: String::new(), score: 0.0, kind: 1 };
        fields(buf, |n, v| {
            match (n, v) {
                (1, Value::Bytes(b)) => {
                    p.piece = String::from_utf8(b.to_vec()).map_err(|_| "a piece is not UTF-8".to_string())?
                }
                (2, Value::Fixed32(x)) => p.score = f32::from_bits(x),
                (3, Value::Varint(x)) => p.kind = x,
                (1..=3, _) => return Err(wrong("SentencePiece", n)),
                _ => {}
            }
            Ok(())
        })?;
        Ok(p)
    }

    pub fn parse_model(buf: &[u8]) -> Result<Model, String> {
        let mut m = Model {
            pieces: Vec::new(),
            model_type: UNIGRAM,
            byte_fallback: false,
            split_by_whitespace: true,
            treat_whitespace_as_suffix: false,
            normalizer: Normalizer {
                precompiled_charsmap: Vec::new(),
                add_dummy_prefix: true,
                remove_extra_whitespaces: true,
                escape_whitespaces: true,
            },
        };
        fields(buf, |n, v| {
            match (n, v) {
                (1, Value::Bytes(b)) => {
                    let id = m.pieces.len();
                    m.pieces.push(parse_piece(b).map_err(|e| format!("piece {id}: {e}"))?);
                }
                (2, Value::Bytes(b)) => fields(b, |n, v| {
                    match (n, v) {
                        (3, Value::Varint(x)) => m.model_type = x,
                        (22, Value::Varint(x)) => m.split_by_whitespace = x != 0,
                        (24, Value::Varint(x)) => m.treat_whitespace_as_suffix = x != 0,
                        (35, Value::Varint(x)) => m.byte_fallback = x != 0,
                        (3 | 22 | 24 | 35, _) => return Err(wrong("TrainerSpec", n)),
                        _ => {}
                    }
                    Ok(())
                })
                .map_err(|e| format!("trainer_spec: {e}"))?,
                (3, Value::Bytes(b)) => fields(b, |n, v| {
                    let nm = &mut m.normalizer;
                    match (n, v) {
                        (2, Value::Bytes(x)) => nm.precompiled_charsmap = x.to_vec(),
                        (3, Value::Varint(x)) => nm.add_dummy_prefix = x != 0,
                        (4, Value::Varint(x)) => nm.remove_extra_whitespaces = x != 0,
                        (5, Value::Varint(x)) => nm.escape_whitespaces = x != 0,
                        (2..=5, _) => return Err(wrong("NormalizerSpec", n)),
                        _ => {}
                    }
                    Ok(())
                })
                .map_err(|e| format!("normalizer_spec: {e}"))?,
                (1..=3, _) => return Err(wrong("ModelProto", n)),
                _ => {}
            }
            Ok(())
        })?;
        Ok(m)
    }
}

/// sentencepiece's unigram Viterbi (`unigram::Model::EncodeOptimized`, sentencepiece 0.2), ported with its
/// f32 arithmetic, tie-breaking (first best path kept), score re-basing and unknown handling, so that
/// near-ties (e.g. "0"+"00" against "00"+"0") resolve exactly as sentencepiece resolves them.
mod viterbi {
    /// How a piece takes part in matching.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Kind {
        Normal,
        /// Matched with sentencepiece's user-defined score `0.1 * (bytes - 1)`.
        UserDefined,
        /// Control and unknown pieces: never matched in text.
        Special,
        /// UNUSED and BYTE pieces: never matched in text.
        Unmatched,
    }

    #[derive(Clone, Default)]
    struct Node {
        /// (byte, child index), sorted by byte.
        children: Vec<(u8, u32)>,
        /// Piece id ending here.
        id: Option<u32>,
    }

    #[derive(Clone)]
    pub struct Viterbi {
        nodes: Vec<Node>,
        score: Vec<f32>,
        user_defined: Vec<bool>,
        unk: u32,
        unk_score: f32,
        byte_fallback: bool,
        /// id of `<0xXX>` for each byte (byte fallback).
        byte_ids: Vec<Option<u32>>,
        pieces: Vec<String>,
    }

    #[derive(Clone, Copy)]
    struct Best {
        id: u32,
        score: f32,
        start: Option<usize>,
    }

    impl Viterbi {
        pub fn new(pieces: &[(String, f64)], kinds: &[Kind], scores: &[f32], unk: u32, byte_fallback: bool) -> Self {
            let mut v = Viterbi {
                nodes: vec![Node::default()],
                score: scores.to_vec(),
                user_defined: kinds.iter().map(|k| *k == Kind::UserDefined).collect(),
                unk,
                unk_score: 0.0,
                byte_fallback,
                byte_ids: vec![None; 256],
                pieces: pieces.iter().map(|(p, _)| p.clone()).collect(),
            };
            let mut min_score = f32::MAX;
            for (id, ((piece, _), kind)) in pieces.iter().zip(kinds).enumerate() {
                if *kind == Kind::Normal {
                    min_score = min_score.min(scores[id]);
                }
                if matches!(kind, Kind::Normal | Kind::UserDefined) && !piece.is_empty() {
                    v.insert(piece.as_bytes(), id as u32);
                }
                if super::is_byte_piece(piece) {
                    if let Ok(b) = u8::from_str_radix(&piece[3..5], 16) {
                        v.byte_ids[b as usize] = Some(id as u32);
                    }
                }
            }
            v.unk_score = min_score - 10.0;
            v
        }

        fn insert(&mut self, key: &[u8], id: u32) {
            let mut node = 0usize;
            for &b in key {
                node = match self.nodes[node].children.binary_search_by_key(&b, |c| c.0) {
                    Ok(i) => self.nodes[node].children[i].1 as usize,
                    Err(i) => {
                        let child = self.nodes.len();
                        self.nodes.push(Node::default());
                        self.nodes[node].children.insert(i, (b, child as u32));
                        child
                    }
                };
            }
            self.nodes[node].id = Some(id);
        }

        fn child(&self, node: usize, b: u8) -> Option<usize> {
            let c = &self.nodes[node].children;
            c.binary_search_by_key(&b, |c| c.0).ok().map(|i| c[i].1 as usize)
        }

        /// Appends the pieces of one normalised string (already `▁`-escaped) to `out`.
        pub fn encode(&self, normalized: &str, out: &mut Vec<(u32, String)>) {
            let bytes = normalized.as_bytes();
            let size = bytes.len();
            if size == 0 {
                return;
            }
            const RESET: f32 = 100000.0;
            let mut best = vec![Best { id: 0, score: 0.0, start: None }; size + 1];
            let mut starts_at = 0usize;
            let mut max_frontier = 0usize;
            while starts_at < size {
                let mut till_here = best[starts_at].score;
                if !(-RESET..=RESET).contains(&till_here) {
                    let offset = till_here;
                    if starts_at <= max_frontier {
                        for (k, b) in best[starts_at..=max_frontier].iter_mut().enumerate() {
                            if k == 0 || b.start.is_some() {
                                b.score -= offset;
                            }
                        }
                    }
                    till_here = 0.0;
                }
                // `normalized` is a &str, so starts_at is a char boundary.
                let mblen = normalized[starts_at..].chars().next().map_or(1, char::len_utf8).min(size - starts_at);
                let mut has_single = false;
                let mut node = 0usize;
                let mut key_pos = starts_at;
                while key_pos < size {
                    match self.child(node, bytes[key_pos]) {
                        Some(n) => node = n,
                        None => break,
                    }
                    key_pos += 1;
                    let Some(id) = self.nodes[node].id else { continue };
                    max_frontier = max_frontier.max(key_pos);
                    let length = key_pos - starts_at;
                    let score = if self.user_defined[id as usize] {
                        (0.1f64 * (length as f64 - 1.0)) as f32
                    } else {
                        self.score[id as usize]
                    };
                    let candidate = score + till_here;
                    let target = &mut best[key_pos];
                    if target.start.is_none() || candidate > target.score {
                        *target = Best { id, score: candidate, start: Some(starts_at) };
                    }
                    if length == mblen {
                        has_single = true;
                    }
                }
                if !has_single {
                    max_frontier = max_frontier.max(starts_at + mblen);
                    let candidate = self.unk_score + till_here;
                    let target = &mut best[starts_at + mblen];
                    if target.start.is_none() || candidate > target.score {
                        *target = Best { id: self.unk, score: candidate, start: Some(starts_at) };
                    }
                }
                starts_at += mblen;
            }
            let mut path = Vec::new();
            let mut end = size;
            while end > 0 {
                let Some(start) = best[end].start.filter(|&s| s < end) else { break };
                path.push((best[end].id, start, end));
                end = start;
            }
            let mut prev_unk = false;
            for &(id, start, end) in path.iter().rev() {
                let surface = &normalized[start..end];
                let is_unk = id == self.unk;
                if is_unk && self.byte_fallback {
                    for b in surface.bytes() {
                        match self.byte_ids[b as usize] {
                            Some(bid) => out.push((bid, self.pieces[bid as usize].clone())),
                            None => out.push((self.unk, surface.to_string())),
                        }
                    }
                } else if is_unk && prev_unk {
                    // sentencepiece merges a run of unknown pieces into one.
                    if let Some(last) = out.last_mut() {
                        last.1.push_str(surface);
                    }
                } else {
                    out.push((id, surface.to_string()));
                }
                prev_unk = is_unk;
            }
        }
    }
}

/// sentencepiece's normaliser (`normalizer.cc`, sentencepiece 0.2): longest-match rewriting with the
/// model's precompiled charsmap (a Darts double-array trie), user-defined pieces kept verbatim, extra
/// whitespace removed, spaces escaped as `▁`, the dummy prefix added.
mod spm_norm {
    /// A parsed `precompiled_charsmap`. Every read is bounds-checked: a corrupt map cannot panic.
    #[derive(Clone)]
    pub struct CharsMap {
        array: Vec<u32>,
        normalized: Vec<u8>,
    }

    impl CharsMap {
        /// Parses a charsmap blob with sentencepiece's own checks.
        pub fn parse(blob: &[u8]) -> Result<CharsMap, String> {
            let bad = |what: &str| Err(format!("corrupt precompiled_charsmap ({what})"));
            if blob.len() <= 4 {
                return bad("shorter than 5 bytes");
            }
            let trie_size = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
            if trie_size >= blob.len() - 4 {
                return bad("trie larger than the map");
            }
            if trie_size < 1024 || trie_size & 0x3ff != 0 {
                return bad("trie size not a multiple of 1024");
            }
            let array =
                blob[4..4 + trie_size].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let normalized = blob[4 + trie_size..].to_vec();
            if normalized.last() != Some(&0) {
                return bad("replacement strings not NUL-terminated");
            }
            Ok(CharsMap { array, normalized })
        }

        fn unit(&self, pos: usize) -> Option<u32> {
            self.array.get(pos).copied()
        }

        /// Darts `commonPrefixSearch` keeping the longest of the first 32 matches: (length, value).
        fn longest_prefix(&self, key: &[u8]) -> Option<(usize, usize)> {
            const MAX_RESULTS: usize = 32;
            let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
            let mut node = offset(self.unit(0)?);
            let mut best = None;
            let mut found = 0;
            for (i, &c) in key.iter().enumerate() {
                node ^= c as usize;
                let unit = self.unit(node)?;
                if unit & ((1 << 31) | 0xFF) != c as u32 {
                    break;
                }
                node ^= offset(unit);
                if (unit >> 8) & 1 == 1 {
                    if found < MAX_RESULTS {
                        let value = (self.unit(node)? & ((1 << 31) - 1)) as usize;
                        best = Some((i + 1, value));
                    }
                    found += 1;
                }
            }
            best
        }

        /// The rewrite of the longest charsmap key at the start of `input` and the bytes it covers.
        pub fn rewrite<'a>(&'a self, input: &str) -> Option<(&'a str, usize)> {
            let (len, value) = self.longest_prefix(input.as_bytes())?;
            if len == 0 || !input.is_char_boundary(len) || value >= self.normalized.len() {
                return None;
            }
            let rest = &self.normalized[value..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            std::str::from_utf8(&rest[..end]).ok().map(|s| (s, len))
        }

        /// The charsmap alone over a whole string (what `tokenizers`' `Precompiled` step stands for).
        pub fn apply(&self, input: &str) -> String {
            let mut out = String::with_capacity(input.len());
            let mut rest = input;
            while let Some(c) = rest.chars().next() {
                match self.rewrite(rest) {
                    Some((s, n)) => {
                        out.push_str(s);
                        rest = &rest[n..];
                    }
                    None => {
                        out.push(c);
                        rest = &rest[c.len_utf8()..];
                    }
                }
            }
            out
        }
    }

    #[derive(Clone)]
    pub struct SpNormalizer {
        pub charsmap: Option<CharsMap>,
        pub user_defined: Vec<String>,
        pub add_dummy_prefix: bool,
        pub remove_extra_whitespaces: bool,
    }

    impl SpNormalizer {
        /// `NormalizePrefix`: (normalised text, input bytes consumed) for the start of `input`.
        fn prefix<'a>(&'a self, input: &'a str) -> (&'a str, usize) {
            let ud = self.user_defined.iter().filter(|u| input.starts_with(u.as_str())).map(|u| u.len()).max();
            if let Some(n) = ud {
                return (&input[..n], n);
            }
            if let Some(r) = self.charsmap.as_ref().and_then(|m| m.rewrite(input)) {
                return r;
            }
            let n = input.chars().next().map_or(0, char::len_utf8);
            (&input[..n], n)
        }

        /// `Normalizer::Normalize` with escape_whitespaces (spaces become `▁`).
        pub fn normalize(&self, text: &str) -> String {
            const WS: char = super::SPIECE_UNDERLINE;
            let mut input = text;
            if self.remove_extra_whitespaces {
                while !input.is_empty() {
                    let (p, n) = self.prefix(input);
                    if p != " " {
                        break;
                    }
                    input = &input[n..];
                }
            }
            let mut out = String::with_capacity(input.len() + 8);
            if input.is_empty() {
                return out;
            }
            if self.add_dummy_prefix {
                out.push(WS);
            }
            let mut prev_space = self.remove_extra_whitespaces;
            while !input.is_empty() {
                let (mut p, n) = self.prefix(input);
                while prev_space && p.starts_with(' ') {
                    p = &p[1..];
                }
                if !p.is_empty() {
                    out.extend(p.chars().map(|c| if c == ' ' { WS } else { c }));
                    prev_space = p.ends_with(' ');
                }
                input = &input[n..];
                if !self.remove_extra_whitespaces {
                    prev_space = false;
                }
            }
            if self.remove_extra_whitespaces {
                while out.ends_with(WS) {
                    out.truncate(out.len() - WS.len_utf8());
                }
            }
            out
        }
    }
}

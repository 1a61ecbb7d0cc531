//! Tokenizer tests: exact parity with sentencepiece (both loaders), ALBERT preprocessing, training,
//! save/load round trips, `is_word_start`, and errors for bad files.
//!
//! Fixtures: tests/fixtures/tokenizer/, made by tests/reference/gen_tokenizer_fixture.py.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use albert::tokenizer::{is_start_piece, SpecialIds, Tokenizer};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tokenizer")
}

/// Lines as Rust's `str::lines` gives them (the generator splits the same way).
fn read_lines(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    text.lines().map(str::to_string).collect()
}

fn read_ids(name: &str) -> Vec<Vec<u32>> {
    let file = std::fs::File::open(fixtures().join(name)).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).unwrap();
    text.lines().map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect()).collect()
}

fn botchan() -> &'static [String] {
    static LINES: OnceLock<Vec<String>> = OnceLock::new();
    LINES.get_or_init(|| read_lines("botchan.txt"))
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("albert-tokenizer-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compares every line; panics with the number of mismatches and the first few.
fn assert_parity(tok: &Tokenizer, lines: &[String], want: &[Vec<u32>], what: &str) {
    assert_eq!(lines.len(), want.len(), "{what}: line count");
    let bad: Vec<usize> = (0..lines.len()).filter(|&i| tok.encode(&lines[i]) != want[i]).collect();
    if let Some(&i) = bad.first() {
        panic!(
            "{what}: {} of {} lines differ; first: line {} {:?}\n got  {:?}\n want {:?}\n pieces {:?}",
            bad.len(),
            lines.len(),
            i + 1,
            lines[i],
            tok.encode(&lines[i]),
            want[i],
            tok.pieces(&lines[i])
        );
    }
}

const GOLDEN: &str = "I have never been so happy in my life.";
const GOLDEN_IDS: [u32; 13] = [9, 76, 398, 153, 71, 302, 29, 29, 34, 20, 45, 598, 6];
const GOLDEN_PIECES: [&str; 13] =
    ["▁I", "▁have", "▁never", "▁been", "▁so", "▁ha", "p", "p", "y", "▁in", "▁my", "▁life", "."];

fn botchan_model() -> Tokenizer {
    Tokenizer::from_spiece_model(&fixtures().join("botchan_en_unigram_1000.model")).unwrap()
}

fn botchan_json() -> Tokenizer {
    Tokenizer::from_tokenizer_json(&fixtures().join("botchan_en_unigram_1000.json")).unwrap()
}

#[test]
fn botchan_parity_spiece_model_every_line() {
    let want = read_ids("botchan_en_unigram_1000.ids.gz");
    assert_eq!(botchan().len(), 4288);
    assert_parity(&botchan_model(), botchan(), &want, "botchan_en_unigram_1000.model");
}

#[test]
fn botchan_parity_tokenizer_json_every_line() {
    let want = read_ids("botchan_en_unigram_1000.ids.gz");
    assert_parity(&botchan_json(), botchan(), &want, "botchan_en_unigram_1000.json");
}

#[test]
fn golden_example_both_loaders() {
    for tok in [botchan_model(), botchan_json()] {
        assert_eq!(tok.encode(GOLDEN), GOLDEN_IDS);
        assert_eq!(tok.pieces(GOLDEN), GOLDEN_PIECES);
        assert_eq!(tok.decode(&GOLDEN_IDS), GOLDEN);
        assert_eq!(tok.vocab_size(), 1000);
        assert_eq!(tok.id_to_piece(9), Some("▁I"));
        assert_eq!(tok.id_to_piece(1000), None);
        assert!(!tok.is_albert_style());
        // The test model has <unk> but none of ALBERT's other special pieces.
        let err = tok.special().unwrap_err();
        assert!(err.contains("<pad> [CLS] [SEP] [MASK]"), "{err}");
    }
}

#[test]
fn sentencepiece_edge_cases_both_loaders() {
    let text = std::fs::read_to_string(fixtures().join("sp_edge_cases.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    for tok in [botchan_model(), botchan_json()] {
        for case in cases.as_array().unwrap() {
            let input = case["text"].as_str().unwrap();
            let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let pieces: Vec<&str> = case["pieces"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(tok.encode(input), ids, "ids of {input:?}");
            assert_eq!(tok.pieces(input), pieces, "pieces of {input:?}");
        }
    }
}

#[test]
fn random_lines_parity_all_models() {
    let lines = read_lines("random_lines.txt");
    assert_eq!(lines.len(), 500);
    let ids = read_ids("random_lines.ids.gz");
    assert_eq!(ids.len(), 1000);
    assert_parity(&botchan_model(), &lines, &ids[..500], "random lines, botchan .model");
    assert_parity(&botchan_json(), &lines, &ids[..500], "random lines, botchan tokenizer.json");
    assert_parity(&albert_model(), &lines, &ids[500..], "random lines, ALBERT-style .model");
    let dir = temp_dir("random-albert");
    albert_model().save(&dir).unwrap();
    let back = Tokenizer::from_dir(&dir).unwrap();
    assert_parity(&back, &lines, &ids[500..], "random lines, ALBERT-style .model saved as tokenizer.json");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn whole_botchan_as_one_input() {
    // ~91k pieces in one Viterbi pass: exercises sentencepiece's score re-basing (|score| > 1e5).
    let text = botchan().join(" ");
    let want = read_ids("botchan_whole.ids.gz").remove(0);
    assert_eq!(want.len(), 91227);
    for tok in [botchan_model(), botchan_json()] {
        let got = tok.encode(&text);
        let first = got.iter().zip(&want).position(|(a, b)| a != b);
        assert!(got == want, "lengths {} vs {}, first difference at {first:?}", got.len(), want.len());
    }
}

#[test]
fn decode_skips_specials_and_unknown_ids() {
    let tok = botchan_model();
    // 0 = <unk>, 1 = <s>, 2 = </s> (control), 5000 out of range.
    let mut ids = vec![1];
    ids.extend(GOLDEN_IDS);
    ids.extend([0, 2, 5000]);
    assert_eq!(tok.decode(&ids), GOLDEN);
    assert_eq!(tok.decode(&[]), "");
    // Plain ASCII lines with single spaces and no unknown characters come back unchanged.
    let mut checked = 0;
    for line in botchan().iter().take(400) {
        let t = line.trim();
        if t.is_empty() || !t.is_ascii() || t.contains("  ") {
            continue;
        }
        let ids = tok.encode(t);
        if ids.contains(&0) {
            continue;
        }
        assert_eq!(tok.decode(&ids), t);
        checked += 1;
    }
    assert!(checked > 300, "{checked}");
}

fn albert_model() -> Tokenizer {
    Tokenizer::from_spiece_model(&fixtures().join("albert_style_1000.model")).unwrap()
}

fn albert_lines() -> Vec<String> {
    let mut lines = botchan().to_vec();
    lines.extend(read_lines("albert_extra.txt"));
    lines
}

#[test]
fn albert_style_spiece_model_matches_hf_slow_albert_tokenizer() {
    let tok = albert_model();
    assert!(tok.is_albert_style());
    assert_eq!(tok.special().unwrap(), SpecialIds { pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 });
    let want = read_ids("albert_style_1000.ids.gz");
    assert_parity(&tok, &albert_lines(), &want, "albert_style_1000.model (ALBERT preprocessing)");
}

#[test]
fn albert_style_spiece_model_round_trips_through_tokenizer_json() {
    let tok = albert_model();
    let dir = temp_dir("albert-style");
    tok.save(&dir).unwrap();
    assert!(dir.join("tokenizer.json").is_file());
    let back = Tokenizer::from_dir(&dir).unwrap();
    assert!(back.is_albert_style());
    assert_eq!(back.vocab_size(), tok.vocab_size());
    let want = read_ids("albert_style_1000.ids.gz");
    assert_parity(&back, &albert_lines(), &want, "albert_style_1000 saved as tokenizer.json");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn albert_digit_comma_rule() {
    let tok = albert_model();
    // The raw sentencepiece pipeline makes a digit-comma piece here; the ALBERT rule splits it.
    let text = "In 1,905, 1,906, and 1,907, he was 19, 20, and 21, years old.";
    let raw: Vec<String> = tok.inner().encode(text.to_lowercase(), false).unwrap().get_tokens().to_vec();
    let is_digit_comma = |p: &String| {
        let c: Vec<char> = p.chars().collect();
        c.len() > 1 && c[c.len() - 1] == ',' && c[c.len() - 2].is_ascii_digit()
    };
    assert!(raw.iter().any(is_digit_comma), "{raw:?}");
    let pieces = tok.pieces(text);
    assert!(!pieces.iter().any(is_digit_comma), "{pieces:?}");
    let joined: String = pieces.concat();
    assert_eq!(joined.replace('▁', " ").trim(), text.to_lowercase());
    // ids agree with the pieces (the re-encoded parts are looked up again).
    let ids = tok.encode(text);
    assert_eq!(ids.len(), pieces.len());
    for (id, p) in ids.iter().zip(&pieces) {
        assert_eq!(tok.id_to_piece(*id), Some(p.as_str()));
    }
}

#[test]
fn albert_preprocessing_lowercase_accents_quotes_whitespace() {
    let tok = albert_model();
    assert_eq!(tok.encode("HÉLLO   Wörld"), tok.encode("hello world"));
    assert_eq!(tok.encode("\u{2003} Café\tnaïve \n"), tok.encode("cafe naive"));
    assert_eq!(tok.encode("``quoted''"), tok.encode("\"quoted\""));
    assert_eq!(tok.encode("ﬁne"), tok.encode("fine")); // NFKD compatibility decomposition
    assert_eq!(tok.encode(""), Vec::<u32>::new());
    assert_eq!(tok.encode(" \t "), Vec::<u32>::new());
    // The plain sentencepiece model keeps case (and its own normalisation).
    let plain = botchan_model();
    assert_ne!(plain.encode("THE"), plain.encode("the"));
}

fn commas(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Lines with many "1,234,"-style numbers (as in the generator's training text for albert_style_1000).
fn number_lines() -> Vec<String> {
    (0..300u64)
        .map(|i| {
            format!(
                "in {}, about {}, or {},{} of {i}, them.",
                commas(1000 + 37 * i),
                commas(i * 1234567 % 99991),
                i % 10,
                i % 7
            )
        })
        .collect()
}

/// One trained tokenizer shared by the tests: the first 1,000 botchan lines plus number lines, 800 pieces.
fn trained() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let corpus: Vec<String> = botchan()[..1000].iter().cloned().chain(number_lines()).collect();
        Tokenizer::train(corpus.into_iter(), 800).unwrap()
    })
}

#[test]
fn train_specials_and_round_trip() {
    let tok = trained();
    assert!(tok.is_albert_style());
    assert_eq!(tok.special().unwrap(), SpecialIds { pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 });
    for (id, p) in ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"].iter().enumerate() {
        assert_eq!(tok.id_to_piece(id as u32), Some(*p));
    }
    assert!(tok.vocab_size() <= 800 && tok.vocab_size() > 500, "{}", tok.vocab_size());
    let dir = temp_dir("trained");
    tok.save(&dir).unwrap();
    let back = Tokenizer::from_dir(&dir).unwrap();
    assert_eq!(back.vocab_size(), tok.vocab_size());
    assert_eq!(back.special().unwrap(), tok.special().unwrap());
    for id in 0..tok.vocab_size() as u32 {
        assert_eq!(back.id_to_piece(id), tok.id_to_piece(id));
    }
    let mut lines = botchan().to_vec();
    lines.extend(read_lines("albert_extra.txt"));
    lines.extend(number_lines());
    let want: Vec<Vec<u32>> = lines.iter().map(|l| tok.encode(l)).collect();
    assert_parity(&back, &lines, &want, "trained tokenizer after save -> from_dir");
    // Saving again gives the same file.
    let dir2 = temp_dir("trained-again");
    back.save(&dir2).unwrap();
    let (a, b) =
        (std::fs::read(dir.join("tokenizer.json")).unwrap(), std::fs::read(dir2.join("tokenizer.json")).unwrap());
    if a != b {
        std::fs::write("/tmp/tok_a.json", &a).unwrap();
        std::fs::write("/tmp/tok_b.json", &b).unwrap();
    }
    assert!(a == b, "saving a loaded tokenizer changed tokenizer.json");
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["tokenizer.json"]);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

#[test]
fn trained_tokenizer_albert_behaviour() {
    let tok = trained();
    assert_eq!(tok.encode("The  QUICK Bröwn"), tok.encode("the quick brown"));
    assert_eq!(tok.encode("``Yes,'' he said"), tok.encode("\"yes,\" he said"));
    let text = "It was a long time ago, the school master said";
    let ids = tok.encode(text);
    assert!(!ids.contains(&1), "{:?}", tok.pieces(text));
    assert_eq!(tok.decode(&ids), text.to_lowercase());
    // [CLS] ... [SEP] and padding are skipped by decode.
    let mut framed = vec![2];
    framed.extend(&ids);
    framed.extend([3, 0, 0]);
    assert_eq!(tok.decode(&framed), text.to_lowercase());
    // Digit-comma rule: no piece ends in digit + ',' even where the trained vocabulary has such pieces.
    let has_dc_piece = (0..tok.vocab_size() as u32).filter_map(|i| tok.id_to_piece(i)).any(|p| {
        p.len() > 1 && p.ends_with(',') && {
            let c: Vec<char> = p.chars().collect();
            c[c.len() - 2].is_ascii_digit()
        }
    });
    let mut fired = false;
    for line in number_lines() {
        let raw = tok.inner().encode(albert::tokenizer::albert_preprocess(&line), false).unwrap();
        let pieces = tok.pieces(&line);
        for p in &pieces {
            let c: Vec<char> = p.chars().collect();
            assert!(!(c.len() > 1 && c[c.len() - 1] == ',' && c[c.len() - 2].is_ascii_digit()), "{line:?}: {pieces:?}");
        }
        if raw.get_tokens() != pieces.as_slice() {
            fired = true;
        }
    }
    assert_eq!(fired, has_dc_piece);
}

#[test]
fn tokenizer_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Tokenizer>();
    let t = botchan_model();
    let u = t.clone();
    assert_eq!(u.encode(GOLDEN), GOLDEN_IDS);
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let t = t.clone();
            std::thread::spawn(move || t.encode(GOLDEN))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), GOLDEN_IDS);
    }
}

#[test]
fn is_word_start_cases() {
    // Strings, following TF create_pretraining_data.py `_is_start_piece_sp`.
    for p in ["▁the", "▁", "<unk>", "<pad>", ",", ".", "(", "\"", "é", "ing2", "12", "€", "£", "a'", "日本", "ß"]
    {
        assert!(is_start_piece(p), "{p:?} should start a word");
    }
    for p in ["ing", "s", "ABC", "[CLS]", "[MASK]", "a-b", "x.", "", "don"] {
        assert!(!is_start_piece(p), "{p:?} should not start a word");
    }
    // Through ids, on a model and a trained tokenizer.
    let tok = albert_model();
    let id = |p: &str| tok.piece_to_id(p).unwrap_or_else(|| panic!("no piece {p:?}"));
    assert!(tok.is_word_start(id("▁the")));
    assert!(tok.is_word_start(id(",")));
    assert!(tok.is_word_start(0)); // <pad>
    assert!(tok.is_word_start(1)); // <unk>
    assert!(!tok.is_word_start(id("s")));
    assert!(!tok.is_word_start(99_999));
    let t = trained();
    let mut starts = 0;
    for i in 0..t.vocab_size() as u32 {
        let p = t.id_to_piece(i).unwrap();
        assert_eq!(t.is_word_start(i), is_start_piece(p), "{p:?}");
        if p.starts_with('▁') {
            assert!(t.is_word_start(i));
            starts += 1;
        }
    }
    assert!(starts > 100, "{starts}");
    let s = t.piece_to_id("s").expect("a trained vocabulary has the piece s");
    assert!(!t.is_word_start(s));
}

// ----------------------------------------------------------------------------------------------------
// Bad input.

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn field_bytes(n: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(n << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

fn piece(p: &str, score: f32, kind: u64) -> Vec<u8> {
    let mut m = Vec::new();
    field_bytes(1, p.as_bytes(), &mut m);
    varint(2 << 3 | 5, &mut m);
    m.extend_from_slice(&score.to_le_bytes());
    varint(3 << 3, &mut m);
    varint(kind, &mut m);
    m
}

/// A tiny hand-made ModelProto: <unk>, ▁, a, b, ▁ab; optional trainer_spec / normalizer_spec bytes.
fn tiny_model(trainer: Option<&[u8]>, normalizer: Option<&[u8]>) -> Vec<u8> {
    let mut m = Vec::new();
    for (p, s, k) in [("<unk>", 0.0, 2), ("▁", -1.0, 1), ("a", -2.0, 1), ("b", -2.0, 1), ("▁ab", -1.5, 1)] {
        field_bytes(1, &piece(p, s, k), &mut m);
    }
    if let Some(t) = trainer {
        field_bytes(2, t, &mut m);
    }
    if let Some(n) = normalizer {
        field_bytes(3, n, &mut m);
    }
    m
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn hand_made_model_loads() {
    let dir = temp_dir("tiny");
    let tok = Tokenizer::from_spiece_model(&write(&dir, "tiny.model", &tiny_model(None, None))).unwrap();
    assert_eq!(tok.pieces("ab  ba c"), ["▁ab", "▁", "b", "a", "▁", "c"]);
    assert_eq!(tok.encode("ab  ba c"), [4, 1, 3, 2, 1, 0]);
    assert_eq!(tok.decode(&[4, 1, 3, 2, 1, 0]), "ab ba");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_name_the_file_and_never_panic() {
    let dir = temp_dir("errors");
    let has = |r: Result<Tokenizer, String>, words: &[&str]| {
        let e = r.expect_err("expected an error");
        for w in words {
            assert!(e.contains(w), "error {e:?} should mention {w:?}");
        }
    };
    // Missing files and directories.
    let missing = dir.join("nope.model");
    has(Tokenizer::from_spiece_model(&missing), &["nope.model"]);
    has(Tokenizer::from_tokenizer_json(&dir.join("nope.json")), &["nope.json"]);
    let empty = dir.join("empty-dir");
    std::fs::create_dir_all(&empty).unwrap();
    has(Tokenizer::from_dir(&empty), &["empty-dir", "tokenizer.json", "spiece.model"]);

    // Truncated and corrupt .model files.
    let real = std::fs::read(fixtures().join("botchan_en_unigram_1000.model")).unwrap();
    for cut in [1, 7, 100, 5000, real.len() / 2, real.len() - 1] {
        let p = write(&dir, "truncated.model", &real[..cut]);
        has(Tokenizer::from_spiece_model(&p), &["truncated.model"]);
    }
    has(Tokenizer::from_spiece_model(&write(&dir, "empty.model", b"")), &["empty.model", "no pieces"]);
    let p = write(&dir, "text.model", b"this is not a protobuf at all, just some text\n");
    has(Tokenizer::from_spiece_model(&p), &["text.model"]);
    // Pseudo-random garbage of several lengths: an error or (unlikely) a tokenizer, never a panic.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for len in [3usize, 50, 999, 20_000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let p = write(&dir, "garbage.model", &bytes);
        if let Ok(t) = Tokenizer::from_spiece_model(&p) {
            let _ = t.encode("some text");
        }
    }
    // Flipped bytes all over a real model.
    for i in (0..real.len()).step_by(real.len() / 40) {
        let mut bad = real.clone();
        bad[i] ^= 0xa5;
        let p = write(&dir, "flipped.model", &bad);
        if let Ok(t) = Tokenizer::from_spiece_model(&p) {
            let _ = t.encode(GOLDEN);
            let _ = t.encode("ｈｅｌｌｏ ① é\u{301}");
        }
    }
    // Structurally valid protos with bad content.
    let mut bpe = Vec::new();
    varint(3 << 3, &mut bpe);
    varint(2, &mut bpe);
    has(Tokenizer::from_spiece_model(&write(&dir, "bpe.model", &tiny_model(Some(&bpe), None))), &["bpe.model", "BPE"]);
    let mut no_unk = Vec::new();
    field_bytes(1, &piece("a", -1.0, 1), &mut no_unk);
    has(Tokenizer::from_spiece_model(&write(&dir, "nounk.model", &no_unk)), &["nounk.model", "unknown"]);
    let mut dup = tiny_model(None, None);
    field_bytes(1, &piece("a", -3.0, 1), &mut dup);
    has(Tokenizer::from_spiece_model(&write(&dir, "dup.model", &dup)), &["dup.model", "twice"]);
    // A precompiled_charsmap whose trie points outside itself.
    for charsmap in [vec![1u8, 2], vec![8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], vec![200, 0, 0, 0, 1, 2, 3]] {
        let mut norm = Vec::new();
        field_bytes(2, &charsmap, &mut norm);
        let p = write(&dir, "charsmap.model", &tiny_model(None, Some(&norm)));
        has(Tokenizer::from_spiece_model(&p), &["charsmap.model", "precompiled_charsmap"]);
    }

    // Malformed tokenizer.json files.
    has(Tokenizer::from_tokenizer_json(&write(&dir, "a.json", b"{ not json")), &["a.json"]);
    has(Tokenizer::from_tokenizer_json(&write(&dir, "b.json", b"{\"model\": 5}")), &["b.json"]);
    has(Tokenizer::from_tokenizer_json(&write(&dir, "c.json", b"")), &["c.json"]);
    has(Tokenizer::from_tokenizer_json(&write(&dir, "d.json", &[0xff, 0xfe, 0x00])), &["d.json"]);
    // The real tokenizer.json with its charsmap replaced by a corrupt one (base64 of 8 0 0 0 ff ff ff ff).
    let json = std::fs::read_to_string(fixtures().join("botchan_en_unigram_1000.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["normalizer"]["normalizers"][0]["precompiled_charsmap"] = "CAAAAP////8=".into();
    let p = write(&dir, "corrupt-charsmap.json", v.to_string().as_bytes());
    has(Tokenizer::from_tokenizer_json(&p), &["corrupt-charsmap.json", "precompiled_charsmap"]);
    // A directory with a broken tokenizer.json reports that file (tokenizer.json wins over spiece.model).
    let both = dir.join("both");
    std::fs::create_dir_all(&both).unwrap();
    write(&both, "tokenizer.json", b"[]");
    std::fs::copy(fixtures().join("botchan_en_unigram_1000.model"), both.join("spiece.model")).unwrap();
    has(Tokenizer::from_dir(&both), &["tokenizer.json"]);
    std::fs::remove_file(both.join("tokenizer.json")).unwrap();
    assert_eq!(Tokenizer::from_dir(&both).unwrap().encode(GOLDEN), GOLDEN_IDS);

    // Training arguments.
    assert!(Tokenizer::train(std::iter::empty(), 100).is_err());
    assert!(Tokenizer::train(["  ".to_string()].into_iter(), 100).is_err());
    assert!(Tokenizer::train(["hello world".to_string()].into_iter(), 3).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

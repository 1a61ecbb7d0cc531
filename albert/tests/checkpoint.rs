//! Checkpoint I/O: safetensors round trips, dtype conversion, Hugging Face key handling, named
//! errors, robustness against corrupt files and atomic writes.

use albert::checkpoint::{
    load_into, load_model_dir, parse_tensors, read_tensors, save_model_dir, write_tensors, CheckpointError, LoadReport,
};
use albert::AlbertConfig;
use autograd::ParamStore;
use engine::{DType, Tensor};
use proptest::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("albert-ckpt-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// Names of every entry in the directory, sorted.
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic, varied f32 values (not all representable in bf16/f16).
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 + 1.0) * 0.731 + seed as f32 * 0.17).sin() * 1.9 + (i % 7) as f32 * 1e-3).collect()
}

fn tensor(shape: &[usize], seed: u32) -> Tensor {
    Tensor::from_vec(values(shape.iter().product(), seed), shape).unwrap()
}

/// HF names with small odd shapes (E=3, H=5, I=7, V=11, positions 13, 2 types).
const PRETRAINING: [(&str, &[usize]); 14] = [
    ("albert.embeddings.word_embeddings.weight", &[11, 3]),
    ("albert.embeddings.position_embeddings.weight", &[13, 3]),
    ("albert.embeddings.token_type_embeddings.weight", &[2, 3]),
    ("albert.embeddings.LayerNorm.weight", &[3]),
    ("albert.embeddings.LayerNorm.bias", &[3]),
    ("albert.encoder.embedding_hidden_mapping_in.weight", &[5, 3]),
    ("albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight", &[5, 5]),
    ("albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight", &[7, 5]),
    ("albert.pooler.weight", &[5, 5]),
    ("albert.pooler.bias", &[5]),
    ("predictions.bias", &[11]),
    ("predictions.dense.weight", &[3, 5]),
    ("sop_classifier.classifier.weight", &[2, 5]),
    ("sop_classifier.classifier.bias", &[2]),
];

/// A store with the given HF-named parameters, each with distinct values.
fn store_of(params: &[(&str, &[usize])]) -> ParamStore {
    let mut store = ParamStore::new();
    for (i, (name, shape)) in params.iter().enumerate() {
        store.add(name, tensor(shape, i as u32 + 1)).unwrap();
    }
    store
}

/// The same names and shapes, all zeros (a freshly built model to load into).
fn zero_store(params: &[(&str, &[usize])]) -> ParamStore {
    let mut store = ParamStore::new();
    for (name, shape) in params {
        store.add(name, Tensor::zeros(shape, DType::F32)).unwrap();
    }
    store
}

fn store_tensors(store: &ParamStore) -> Vec<(String, Tensor)> {
    store.iter().map(|(_, p)| (p.name.clone(), p.value.clone())).collect()
}

fn value<'a>(store: &'a ParamStore, name: &str) -> &'a Tensor {
    store.value(store.find(name).unwrap_or_else(|| panic!("no parameter {name}")))
}

fn assert_same_values(a: &ParamStore, b: &ParamStore) {
    assert_eq!(a.len(), b.len());
    for ((_, pa), (_, pb)) in a.iter().zip(b.iter()) {
        assert_eq!(pa.name, pb.name);
        assert_eq!(pa.value.shape(), pb.value.shape(), "{}", pa.name);
        assert_eq!(pa.value.dtype(), DType::F32, "{}", pa.name);
        assert_eq!(pa.value.to_bytes(), pb.value.to_bytes(), "{} differs", pa.name);
    }
}

fn tiny_config() -> AlbertConfig {
    AlbertConfig {
        vocab_size: 11,
        embedding_size: 3,
        hidden_size: 5,
        num_hidden_layers: 1,
        num_attention_heads: 1,
        intermediate_size: 7,
        max_position_embeddings: 13,
        ..AlbertConfig::default()
    }
}

fn err_text<T: std::fmt::Debug>(r: Result<T, CheckpointError>) -> String {
    r.expect_err("expected a CheckpointError").to_string()
}

/// A valid safetensors file's bytes with a few tensors of mixed dtypes (written once).
fn sample_file_bytes() -> Vec<u8> {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(write_sample_file).clone()
}

fn write_sample_file() -> Vec<u8> {
    let dir = TempDir::new("sample");
    let path = dir.join("sample.safetensors");
    let tensors = vec![
        ("a.weight".to_string(), tensor(&[3, 4], 1)),
        ("b.bias".to_string(), tensor(&[5], 2).to_dtype(DType::BF16)),
        ("c".to_string(), tensor(&[2, 2], 3).to_dtype(DType::F16)),
        ("albert.embeddings.position_ids".to_string(), Tensor::from_i64((0..6).collect(), &[1, 6]).unwrap()),
    ];
    write_tensors(&path, &tensors, None).unwrap();
    std::fs::read(&path).unwrap()
}

// ================================================================================ round trips

#[test]
fn save_and_load_model_dir_round_trips_bit_exactly() {
    let dir = TempDir::new("roundtrip");
    let model_dir = dir.join("nested/model");
    let config = tiny_config();
    let saved = store_of(&PRETRAINING);
    save_model_dir(&model_dir, &config, &saved).unwrap();

    let mut names = std::fs::read_dir(&model_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    names.sort();
    assert_eq!(names, ["config.json", "model.safetensors"], "no temp files left behind");

    let (loaded_config, tensors) = load_model_dir(&model_dir).unwrap();
    assert_eq!(loaded_config.hidden_size, 5);
    assert_eq!(loaded_config.extra["model_type"], "albert");
    assert_eq!(tensors.len(), PRETRAINING.len());

    let mut store = zero_store(&PRETRAINING);
    let report = load_into(&mut store, tensors, &model_dir.join("model.safetensors")).unwrap();
    assert_eq!(report, LoadReport { loaded: PRETRAINING.len(), ignored: vec![], unused_heads: vec![] });
    assert_same_values(&store, &saved);
}

#[test]
fn saved_file_is_plain_hf_safetensors() {
    let dir = TempDir::new("hf");
    save_model_dir(dir.path(), &tiny_config(), &store_of(&PRETRAINING)).unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("albert.pooler.weight").unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::F32);
    assert_eq!(view.shape(), &[5, 5]);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
}

#[test]
fn write_keeps_dtypes_and_metadata() {
    let dir = TempDir::new("dtypes");
    let path = dir.join("m.safetensors");
    let tensors = vec![
        ("f32".to_string(), tensor(&[2, 3], 1)),
        ("bf16".to_string(), tensor(&[4], 2).to_dtype(DType::BF16)),
        ("f16".to_string(), tensor(&[3, 1], 3).to_dtype(DType::F16)),
        ("f64".to_string(), tensor(&[2], 4).to_dtype(DType::F64)),
        ("ids".to_string(), Tensor::from_i64(vec![0, 1, 2, -5], &[1, 4]).unwrap()),
        // A non-contiguous view is written densely.
        ("t".to_string(), tensor(&[2, 3], 5).transpose(0, 1).unwrap()),
    ];
    let meta = HashMap::from([("note".to_string(), "hello".to_string())]);
    write_tensors(&path, &tensors, Some(meta)).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let dtype_of = |n: &str| st.tensor(n).unwrap().dtype();
    assert_eq!(dtype_of("f32"), safetensors::Dtype::F32);
    assert_eq!(dtype_of("bf16"), safetensors::Dtype::BF16);
    assert_eq!(dtype_of("f16"), safetensors::Dtype::F16);
    assert_eq!(dtype_of("f64"), safetensors::Dtype::F64);
    assert_eq!(dtype_of("ids"), safetensors::Dtype::I64);
    let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let m = m.metadata().clone().unwrap();
    assert_eq!((m["format"].as_str(), m["note"].as_str()), ("pt", "hello"));

    let read: HashMap<String, Tensor> = read_tensors(&path).unwrap().into_iter().collect();
    assert_eq!(read["f32"].to_bytes(), tensors[0].1.to_bytes());
    assert_eq!(read["ids"].dtype(), DType::I64);
    assert_eq!(read["ids"].ids("test").unwrap(), vec![0, 1, 2, -5]);
    assert_eq!(read["f64"].dtype(), DType::F32);
    assert_eq!(read["t"].shape(), &[3, 2]);
    assert_eq!(read["t"].to_vec_f32(), tensors[5].1.to_vec_f32());
}

#[test]
fn bf16_and_f16_files_load_as_f32_values() {
    let dir = TempDir::new("half");
    let params: [(&str, &[usize]); 2] = [("albert.pooler.weight", &[3, 5]), ("albert.pooler.bias", &[5])];
    let exact = [0.5f32, -2.0, 0.0, 1.25, 3.0];
    for dtype in [DType::BF16, DType::F16, DType::F64] {
        let path = dir.join(&format!("{dtype}.safetensors"));
        let weight = tensor(&[3, 5], 9);
        let bias = Tensor::from_vec(exact.to_vec(), &[5]).unwrap();
        let tensors = vec![
            ("albert.pooler.weight".to_string(), weight.to_dtype(dtype)),
            ("albert.pooler.bias".to_string(), bias.to_dtype(dtype)),
        ];
        write_tensors(&path, &tensors, None).unwrap();

        let read = read_tensors(&path).unwrap();
        assert!(read.iter().all(|(_, t)| t.dtype() == DType::F32), "{dtype} converts to f32");
        let mut store = zero_store(&params);
        load_into(&mut store, read, &path).unwrap();
        assert_eq!(value(&store, "albert.pooler.bias").to_vec_f32(), exact, "{dtype}: exact values");
        let want = weight.to_dtype(dtype).to_dtype(DType::F32).to_vec_f32();
        assert_eq!(value(&store, "albert.pooler.weight").to_vec_f32(), want, "{dtype}: rounded values");
        assert_eq!(value(&store, "albert.pooler.weight").dtype(), DType::F32);
    }
}

// ================================================================================ HF key handling

#[test]
fn bare_albert_model_keys_load_into_prefixed_store() {
    let dir = TempDir::new("bare");
    let path = dir.join("model.safetensors");
    // An AlbertModel checkpoint as HF saves it: no `albert.` prefix and no heads.
    let base: Vec<(&str, &[usize])> = PRETRAINING.iter().copied().filter(|(n, _)| n.starts_with("albert.")).collect();
    let source = store_of(&base);
    let bare: Vec<(String, Tensor)> =
        store_tensors(&source).into_iter().map(|(n, t)| (n["albert.".len()..].to_string(), t)).collect();
    assert!(bare.iter().any(|(n, _)| n == "embeddings.word_embeddings.weight"));
    write_tensors(&path, &bare, None).unwrap();

    let mut store = zero_store(&base);
    let report = load_into(&mut store, read_tensors(&path).unwrap(), &path).unwrap();
    assert_eq!(report.loaded, base.len());
    assert_same_values(&store, &source);
}

#[test]
fn buffers_and_tied_decoder_are_ignored_and_heads_reported() {
    let dir = TempDir::new("ignored");
    let path = dir.join("model.safetensors");
    let source = store_of(&PRETRAINING);
    let mut tensors = store_tensors(&source);
    tensors.push(("albert.embeddings.position_ids".into(), Tensor::from_i64((0..13).collect(), &[1, 13]).unwrap()));
    tensors.push(("albert.embeddings.token_type_ids".into(), Tensor::from_i64(vec![0; 13], &[1, 13]).unwrap()));
    tensors.push((
        "predictions.decoder.weight".into(),
        value(&source, "albert.embeddings.word_embeddings.weight").clone(),
    ));
    tensors.push(("predictions.decoder.bias".into(), value(&source, "predictions.bias").clone()));
    write_tensors(&path, &tensors, None).unwrap();

    // Into the full pretraining model: the buffers and decoder are skipped.
    let mut store = zero_store(&PRETRAINING);
    let mut report = load_into(&mut store, read_tensors(&path).unwrap(), &path).unwrap();
    report.ignored.sort();
    assert_eq!(report.loaded, PRETRAINING.len());
    assert_eq!(
        report.ignored,
        [
            "albert.embeddings.position_ids",
            "albert.embeddings.token_type_ids",
            "predictions.decoder.bias",
            "predictions.decoder.weight"
        ]
    );
    assert!(report.unused_heads.is_empty());
    assert_same_values(&store, &source);

    // Into a classifier: the pretraining heads are unused, not errors.
    let mut classifier_params: Vec<(&str, &[usize])> =
        PRETRAINING.iter().copied().filter(|(n, _)| n.starts_with("albert.")).collect();
    classifier_params.push(("classifier.weight", &[3, 5]));
    classifier_params.push(("classifier.bias", &[3]));
    let mut classifier = zero_store(&classifier_params);
    let head_names: Vec<&str> = classifier_params[classifier_params.len() - 2..].iter().map(|(n, _)| *n).collect();
    let mut tensors = read_tensors(&path).unwrap();
    for (i, name) in head_names.iter().enumerate() {
        tensors.push((name.to_string(), tensor(value(&classifier, name).shape(), 40 + i as u32)));
    }
    let mut report = load_into(&mut classifier, tensors, &path).unwrap();
    report.unused_heads.sort();
    assert_eq!(report.loaded, classifier_params.len());
    assert_eq!(
        report.unused_heads,
        [
            "predictions.bias",
            "predictions.dense.weight",
            "sop_classifier.classifier.bias",
            "sop_classifier.classifier.weight"
        ]
    );
    assert_eq!(report.ignored.len(), 4);
}

#[test]
fn integer_buffers_of_other_dtypes_are_accepted_and_ignored() {
    let dir = TempDir::new("i32buf");
    let path = dir.join("model.safetensors");
    let ids: Vec<u8> = (0..4i32).flat_map(|i| i.to_le_bytes()).collect();
    let w: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let views = vec![
        (
            "embeddings.position_ids",
            safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![1, 4], &ids).unwrap(),
        ),
        (
            "embeddings.LayerNorm.weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3], &w).unwrap(),
        ),
    ];
    std::fs::write(&path, safetensors::serialize(views, &None).unwrap()).unwrap();
    let read = read_tensors(&path).unwrap();
    let pos = &read.iter().find(|(n, _)| n == "embeddings.position_ids").unwrap().1;
    assert_eq!(pos.ids("test").unwrap(), vec![0, 1, 2, 3]);

    let mut store = zero_store(&[("albert.embeddings.LayerNorm.weight", &[3])]);
    let report = load_into(&mut store, read, &path).unwrap();
    assert_eq!(report.ignored, ["embeddings.position_ids"]);
    assert_eq!(value(&store, "albert.embeddings.LayerNorm.weight").to_vec_f32(), [1.0, 2.0, 3.0]);
}

// ================================================================================ named errors

#[test]
fn missing_tensor_is_named_with_shape_and_count() {
    let path = Path::new("model.safetensors");
    let source = store_of(&PRETRAINING);
    let tensors: Vec<_> = store_tensors(&source)
        .into_iter()
        .filter(|(n, _)| n != "albert.embeddings.LayerNorm.weight" && n != "albert.pooler.bias")
        .collect();
    let mut store = zero_store(&PRETRAINING);
    let msg = err_text(load_into(&mut store, tensors.clone(), path));
    assert_eq!(
        msg,
        "model.safetensors: missing tensor albert.embeddings.LayerNorm.weight (expected [3]) and 1 other missing tensor"
    );
    // Nothing was loaded.
    assert!(store.iter().all(|(_, p)| p.value.to_vec_f32().iter().all(|&x| x == 0.0)));

    let one_missing: Vec<_> =
        tensors.into_iter().chain([("albert.embeddings.LayerNorm.weight".into(), tensor(&[3], 1))]).collect();
    let msg = err_text(load_into(&mut store, one_missing, path));
    assert_eq!(msg, "model.safetensors: missing tensor albert.pooler.bias (expected [5])");
}

#[test]
fn unexpected_tensor_is_named_with_shape() {
    let path = Path::new("ckpt/model.safetensors");
    let mut tensors = store_tensors(&store_of(&PRETRAINING));
    tensors.insert(3, ("albert.encoder.foo.weight".into(), tensor(&[3, 4], 1)));
    let mut store = zero_store(&PRETRAINING);
    let msg = err_text(load_into(&mut store, tensors, path));
    assert_eq!(msg, "ckpt/model.safetensors: unexpected tensor albert.encoder.foo.weight [3,4]");
    assert!(store.iter().all(|(_, p)| p.value.to_vec_f32().iter().all(|&x| x == 0.0)), "store untouched");

    // A bare key that maps to nothing is unexpected too (under its own name).
    let mut tensors = store_tensors(&store_of(&PRETRAINING));
    tensors.push(("encoder.bar".into(), tensor(&[2], 1)));
    let msg = err_text(load_into(&mut store, tensors, path));
    assert_eq!(msg, "ckpt/model.safetensors: unexpected tensor encoder.bar [2]");
}

#[test]
fn wrong_shape_is_named_with_both_shapes_and_store_is_untouched() {
    let path = Path::new("model.safetensors");
    let mut tensors = store_tensors(&store_of(&PRETRAINING));
    // A later tensor is wrong: the earlier ones must not have been applied.
    let pooler = tensors.iter_mut().find(|(n, _)| n == "albert.pooler.weight").unwrap();
    pooler.1 = tensor(&[4, 4], 1);
    let mut store = zero_store(&PRETRAINING);
    let msg = err_text(load_into(&mut store, tensors, path));
    assert_eq!(msg, "model.safetensors: tensor albert.pooler.weight: expected shape [5,5], found [4,4]");
    assert!(store.iter().all(|(_, p)| p.value.to_vec_f32().iter().all(|&x| x == 0.0)), "store untouched");
}

#[test]
fn tied_decoder_shape_is_checked() {
    let path = Path::new("model.safetensors");
    let mut tensors = store_tensors(&store_of(&PRETRAINING));
    tensors.push(("predictions.decoder.weight".into(), tensor(&[11, 4], 1)));
    let msg = err_text(load_into(&mut zero_store(&PRETRAINING), tensors, path));
    assert_eq!(msg, "model.safetensors: tensor predictions.decoder.weight: expected shape [11,3], found [11,4]");

    let mut tensors = store_tensors(&store_of(&PRETRAINING));
    tensors.push(("predictions.decoder.bias".into(), tensor(&[12], 1)));
    let msg = err_text(load_into(&mut zero_store(&PRETRAINING), tensors, path));
    assert_eq!(msg, "model.safetensors: tensor predictions.decoder.bias: expected shape [11], found [12]");
}

#[test]
fn duplicate_keys_and_integer_parameters_are_errors() {
    let path = Path::new("model.safetensors");
    let params: [(&str, &[usize]); 1] = [("albert.pooler.bias", &[5])];
    let tensors =
        vec![("pooler.bias".to_string(), tensor(&[5], 1)), ("albert.pooler.bias".to_string(), tensor(&[5], 2))];
    let msg = err_text(load_into(&mut zero_store(&params), tensors, path));
    assert_eq!(
        msg,
        "model.safetensors: tensor albert.pooler.bias is provided twice (as pooler.bias and albert.pooler.bias)"
    );

    let tensors = vec![("albert.pooler.bias".to_string(), Tensor::from_i64(vec![1; 5], &[5]).unwrap())];
    let msg = err_text(load_into(&mut zero_store(&params), tensors, path));
    assert_eq!(msg, "model.safetensors: tensor albert.pooler.bias has dtype I64, expected F32/F16/BF16/F64");
}

#[test]
fn unsupported_dtype_is_named() {
    let dir = TempDir::new("i32");
    let path = dir.join("model.safetensors");
    let data: Vec<u8> = (0..6i32).flat_map(|i| i.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![2, 3], &data).unwrap();
    std::fs::write(&path, safetensors::serialize([("albert.pooler.weight", view)], &None).unwrap()).unwrap();
    let msg = err_text(read_tensors(&path));
    assert!(msg.starts_with(&format!("{}: ", path.display())), "{msg}");
    assert!(msg.contains("tensor albert.pooler.weight has dtype I32, expected F32/F16/BF16/F64"), "{msg}");
}

#[test]
fn missing_files_and_bad_config_are_named() {
    let dir = TempDir::new("nofile");
    let msg = err_text(read_tensors(&dir.join("absent.safetensors")));
    assert!(msg.contains("absent.safetensors: cannot read"), "{msg}");

    let msg = err_text(load_model_dir(dir.path()));
    assert!(msg.contains("config.json"), "{msg}");

    std::fs::write(dir.join("config.json"), tiny_config().to_json()).unwrap();
    let msg = err_text(load_model_dir(dir.path()));
    assert!(msg.contains("model.safetensors: cannot read"), "{msg}");

    let bad = AlbertConfig { hidden_size: 6, num_attention_heads: 4, ..tiny_config() };
    let msg = err_text(save_model_dir(&dir.join("out"), &bad, &ParamStore::new()));
    assert!(msg.contains("config.json") && msg.contains("not divisible"), "{msg}");
    assert!(!dir.join("out").exists(), "nothing written for an invalid config");
}

#[test]
fn invalid_names_are_rejected_before_writing() {
    let dir = TempDir::new("names");
    let path = dir.join("model.safetensors");
    let t = tensor(&[2], 1);
    let msg = err_text(write_tensors(&path, &[("a".into(), t.clone()), ("a".into(), t.clone())], None));
    assert!(msg.ends_with("model.safetensors: duplicate tensor name a"), "{msg}");
    let msg = err_text(write_tensors(&path, &[("__metadata__".into(), t)], None));
    assert!(msg.contains("invalid tensor name \"__metadata__\""), "{msg}");
    assert!(dir.entries().is_empty());
}

// ================================================================================ corrupt input

#[test]
fn truncated_files_are_errors_at_every_cut_point() {
    let dir = TempDir::new("trunc");
    let bytes = sample_file_bytes();
    assert_eq!(parse_tensors(&bytes, Path::new("x")).unwrap().len(), 4);
    let path = Path::new("model.safetensors");
    for cut in 0..bytes.len() {
        let err = parse_tensors(&bytes[..cut], path).expect_err("a truncated file must not parse");
        let msg = err.to_string();
        assert!(msg.starts_with("model.safetensors: truncated or corrupt safetensors file ("), "cut {cut}: {msg}");
    }
    // The same through the file system at a few cut points, the empty file included.
    let file = dir.join("cut.safetensors");
    for cut in [0, 1, 7, 8, 9, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&file, &bytes[..cut]).unwrap();
        assert!(matches!(read_tensors(&file), Err(CheckpointError::Corrupt { .. })), "cut {cut}");
    }
    // Trailing junk is corrupt too.
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"junk");
    assert!(parse_tensors(&longer, path).is_err());
}

#[test]
fn corrupt_headers_give_readable_reasons() {
    let path = Path::new("m.safetensors");
    let reason = |bytes: &[u8]| err_text(parse_tensors(bytes, path));
    assert_eq!(
        reason(b""),
        "m.safetensors: truncated or corrupt safetensors file (0 bytes, shorter than the 8-byte header length)"
    );
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    assert!(
        reason(&huge).ends_with("(header length 18446744073709551615 exceeds the 100 MB limit)"),
        "{}",
        reason(&huge)
    );
    let mut past_end = 100u64.to_le_bytes().to_vec();
    past_end.extend_from_slice(b"{}");
    assert!(
        reason(&past_end).ends_with("(header length 100 runs past the end of the 10-byte file)"),
        "{}",
        reason(&past_end)
    );
    let mut not_utf8 = 2u64.to_le_bytes().to_vec();
    not_utf8.extend_from_slice(&[0xff, 0xfe]);
    assert!(reason(&not_utf8).ends_with("(header is not valid UTF-8)"), "{}", reason(&not_utf8));
    let mut wrong_form = 2u64.to_le_bytes().to_vec();
    wrong_form.extend_from_slice(b"[]");
    assert!(
        reason(&wrong_form).ends_with("(header JSON does not describe safetensors tensors)"),
        "{}",
        reason(&wrong_form)
    );
    let mut bad_json = 4u64.to_le_bytes().to_vec();
    bad_json.extend_from_slice(b"{\"a\"");
    assert!(reason(&bad_json).contains("header is not valid JSON"), "{}", reason(&bad_json));
    let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut short_data = (header.len() as u64).to_le_bytes().to_vec();
    short_data.extend_from_slice(header);
    short_data.extend_from_slice(&[0; 4]);
    assert!(reason(&short_data).contains("tensor data does not end at the end of the"), "{}", reason(&short_data));
    // A zero-element shape whose other dimensions overflow the engine's strides.
    let header = br#"{"a":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}}"#;
    let mut overflow = (header.len() as u64).to_le_bytes().to_vec();
    overflow.extend_from_slice(header);
    assert!(reason(&overflow).contains("overflows"), "{}", reason(&overflow));
}

#[test]
fn random_garbage_is_an_error() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for len in [0usize, 3, 8, 9, 16, 100, 1000, 4096] {
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert!(parse_tensors(&garbage, Path::new("g")).is_err(), "len {len}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_tensors(&bytes, Path::new("p"));
    }

    /// Flipped bytes anywhere in a valid file (length prefix, JSON header, data) never panic; a
    /// result that still parses has the original tensor count.
    #[test]
    fn flipped_bytes_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)) {
        let mut bytes = sample_file_bytes();
        let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for (i, mask) in flips {
            // Mostly hit the header, where the structure is.
            let at = i.index(header_end.min(bytes.len()));
            bytes[at] ^= mask;
        }
        if let Ok(tensors) = parse_tensors(&bytes, Path::new("p")) {
            prop_assert!(tensors.len() <= 4);
        }
    }

    /// Truncation never parses.
    #[test]
    fn truncation_is_always_an_error(cut in any::<prop::sample::Index>()) {
        let bytes = sample_file_bytes();
        let cut = cut.index(bytes.len());
        prop_assert!(parse_tensors(&bytes[..cut], Path::new("p")).is_err());
    }
}

// ================================================================================ atomic writes

#[test]
fn atomic_write_leaves_no_temp_file_and_replaces_target() {
    let dir = TempDir::new("atomic");
    let path = dir.join("model.safetensors");
    write_tensors(&path, &[("a".into(), tensor(&[4], 1))], None).unwrap();
    write_tensors(&path, &[("b".into(), tensor(&[2, 2], 2))], None).unwrap();
    assert_eq!(dir.entries(), ["model.safetensors"]);
    let read = read_tensors(&path).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].0, "b");
    assert_eq!(read[0].1.to_bytes(), tensor(&[2, 2], 2).to_bytes());
}

#[test]
fn failed_write_keeps_existing_target_and_removes_temp_file() {
    let dir = TempDir::new("fail");
    // The target is a non-empty directory: the temp file is written in full, then the rename over
    // the target fails. The target must be intact and the temp file gone.
    let target = dir.join("model.safetensors");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"old").unwrap();
    let err = write_tensors(&target, &[("a".into(), tensor(&[4], 1))], None).expect_err("rename must fail");
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors: cannot rename"), "{err}");
    assert_eq!(dir.entries(), ["model.safetensors"], "temp file removed");
    assert_eq!(std::fs::read(target.join("keep")).unwrap(), b"old");

    // A write into a missing directory fails before touching anything.
    let err = write_tensors(&dir.join("absent/model.safetensors"), &[("a".into(), tensor(&[4], 1))], None);
    assert!(matches!(err, Err(CheckpointError::Io { .. })));

    // An existing file target survives a rejected write unchanged.
    let file = dir.join("ok.safetensors");
    write_tensors(&file, &[("a".into(), tensor(&[4], 1))], None).unwrap();
    let before = std::fs::read(&file).unwrap();
    let t = tensor(&[2], 3);
    assert!(write_tensors(&file, &[("x".into(), t.clone()), ("x".into(), t)], None).is_err());
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

#[test]
fn concurrent_writes_to_one_target_never_expose_partial_files() {
    let dir = TempDir::new("concurrent");
    let path = dir.join("model.safetensors");
    std::thread::scope(|s| {
        for k in 0..4u32 {
            let path = &path;
            s.spawn(move || {
                for _ in 0..5 {
                    write_tensors(path, &[("w".into(), tensor(&[64, 8], k))], None).unwrap();
                    let read = read_tensors(path).unwrap();
                    assert_eq!(read[0].1.shape(), &[64, 8]);
                }
            });
        }
    });
    assert_eq!(dir.entries(), ["model.safetensors"]);
}

//! Hugging Face compatible checkpoints: `model.safetensors` files and model directories
//! (`config.json` + `model.safetensors`).
//!
//! * [`read_tensors`] / [`parse_tensors`] read a safetensors file into engine tensors: F32, F16,
//!   BF16 and F64 become f32 tensors, I64 tensors (index buffers such as `position_ids`) stay i64.
//!   Corrupt or truncated input is an error, never a panic.
//! * [`write_tensors`] writes a safetensors file atomically (temp file in the same directory,
//!   fsync, rename), so a crash never leaves a truncated target behind.
//! * [`save_model_dir`] / [`load_model_dir`] handle a whole model directory.
//! * [`load_into`] checks a tensor list against a [`ParamStore`] registered under the Hugging Face
//!   state-dict names (`albert.embeddings.word_embeddings.weight`, `predictions.dense.weight`,
//!   ...) and replaces the values only if everything matches.
//!
//! Every [`CheckpointError`] names the file and, where relevant, the tensor and shapes, e.g.
//! `model.safetensors: tensor albert.pooler.weight: expected shape [768,768], found [256,256]`.

use crate::config::AlbertConfig;
use autograd::{ParamId, ParamStore};
use engine::{DType, Tensor};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The weights file of a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The configuration file of a model directory.
pub const CONFIG_FILE: &str = "config.json";

/// Prefix of the base-model parameters in AlbertForPreTraining / AlbertFor*Classification.
const BASE_PREFIX: &str = "albert.";
/// Non-persistent buffers that older checkpoints may still contain; never parameters.
const BUFFERS: [&str; 2] = ["albert.embeddings.position_ids", "albert.embeddings.token_type_ids"];
/// Tied MLM decoder tensors and the store parameters they are tied to.
const TIED: [(&str, &str); 2] = [
    ("predictions.decoder.weight", "albert.embeddings.word_embeddings.weight"),
    ("predictions.decoder.bias", "predictions.bias"),
];
/// Head prefixes: tensors under these that the store lacks are reported, not rejected.
const HEAD_PREFIXES: [&str; 5] = ["predictions.", "sop_classifier.", "nsp_classifier.", "classifier.", "qa_outputs."];

// ====================================================================================== errors

/// Why reading, writing or loading a checkpoint failed. `Display` always starts with the file.
#[derive(Debug)]
pub enum CheckpointError {
    /// An I/O operation on `path` failed; `action` says which (`read`, `write`, `rename to ...`).
    Io { path: PathBuf, action: String, source: std::io::Error },
    /// The bytes are not a valid safetensors file.
    Corrupt { path: PathBuf, reason: String },
    /// A tensor has a dtype we cannot use.
    DType { path: PathBuf, tensor: String, found: String, expected: &'static str },
    /// A store parameter has no tensor in the checkpoint; `others` more are missing too.
    Missing { path: PathBuf, tensor: String, expected: Vec<usize>, others: usize },
    /// The checkpoint has a tensor the model does not know.
    Unexpected { path: PathBuf, tensor: String, shape: Vec<usize> },
    /// A tensor's shape differs from the parameter's.
    Shape { path: PathBuf, tensor: String, expected: Vec<usize>, found: Vec<usize> },
    /// Any other invalid content or argument (duplicate names, ...).
    Invalid { path: PathBuf, message: String },
    /// `config.json` could not be read, parsed or validated (the message names the file).
    Config(String),
}

impl CheckpointError {
    /// The file the error is about (for `Config`, the message carries it instead).
    pub fn path(&self) -> Option<&Path> {
        match self {
            CheckpointError::Io { path, .. }
            | CheckpointError::Corrupt { path, .. }
            | CheckpointError::DType { path, .. }
            | CheckpointError::Missing { path, .. }
            | CheckpointError::Unexpected { path, .. }
            | CheckpointError::Shape { path, .. }
            | CheckpointError::Invalid { path, .. } => Some(path),
            CheckpointError::Config(_) => None,
        }
    }

    fn corrupt(path: &Path, reason: impl Into<String>) -> CheckpointError {
        CheckpointError::Corrupt { path: path.to_path_buf(), reason: reason.into() }
    }

    fn invalid(path: &Path, message: impl Into<String>) -> CheckpointError {
        CheckpointError::Invalid { path: path.to_path_buf(), message: message.into() }
    }

    fn io(path: &Path, action: impl Into<String>, source: std::io::Error) -> CheckpointError {
        CheckpointError::Io { path: path.to_path_buf(), action: action.into(), source }
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, action, source } => write!(f, "{}: cannot {action}: {source}", path.display()),
            CheckpointError::Corrupt { path, reason } => {
                write!(f, "{}: truncated or corrupt safetensors file ({reason})", path.display())
            }
            CheckpointError::DType { path, tensor, found, expected } => {
                write!(f, "{}: tensor {tensor} has dtype {found}, expected {expected}", path.display())
            }
            CheckpointError::Missing { path, tensor, expected, others } => {
                write!(f, "{}: missing tensor {tensor} (expected {})", path.display(), dims(expected))?;
                match others {
                    0 => Ok(()),
                    1 => write!(f, " and 1 other missing tensor"),
                    n => write!(f, " and {n} other missing tensors"),
                }
            }
            CheckpointError::Unexpected { path, tensor, shape } => {
                write!(f, "{}: unexpected tensor {tensor} {}", path.display(), dims(shape))
            }
            CheckpointError::Shape { path, tensor, expected, found } => write!(
                f,
                "{}: tensor {tensor}: expected shape {}, found {}",
                path.display(),
                dims(expected),
                dims(found)
            ),
            CheckpointError::Invalid { path, message } => write!(f, "{}: {message}", path.display()),
            CheckpointError::Config(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Formats a shape as `[768,128]`.
fn dims(shape: &[usize]) -> String {
    let inner: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(","))
}

// ====================================================================================== reading

/// What float parameters may be stored as.
const FLOAT_DTYPES: &str = "F32/F16/BF16/F64";

/// Reads a safetensors file: F32/F16/BF16/F64 tensors become f32 tensors, I64 tensors stay i64;
/// any other dtype is an error naming the tensor (except integer `position_ids`/`token_type_ids`
/// buffers, which are widened to i64 so that they can be ignored by [`load_into`]).
///
/// Tensors come back in file order. Truncated or corrupt files give
/// [`CheckpointError::Corrupt`], never a panic.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|e| CheckpointError::io(path, "read", e))?;
    parse_tensors(&bytes, path)
}

/// [`read_tensors`] on the bytes of a file already in memory; `path` is only used in errors.
pub fn parse_tensors(bytes: &[u8], path: &Path) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let (header_len, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::corrupt(path, describe(&e, bytes)))?;
    // `read_metadata` checked that the header fits and the data section ends exactly at the end of
    // the file, with contiguous offsets; slice defensively anyway.
    let data = bytes.get(8 + header_len..).ok_or_else(|| CheckpointError::corrupt(path, "header past end of file"))?;
    let mut infos: Vec<_> = metadata.tensors().into_iter().collect();
    infos.sort_by_key(|(_, info)| info.data_offsets);

    let mut out = Vec::with_capacity(infos.len());
    for (name, info) in infos {
        let (start, end) = info.data_offsets;
        let raw = data
            .get(start..end)
            .ok_or_else(|| CheckpointError::corrupt(path, format!("tensor {name}: data offsets past end of file")))?;
        let shape = &info.shape;
        // The engine computes strides as products of trailing dimensions; a shape with a zero
        // dimension passes safetensors' size check even when those products overflow.
        if shape.iter().filter(|&&d| d != 0).try_fold(1usize, |acc, &d| acc.checked_mul(d)).is_none() {
            return Err(CheckpointError::corrupt(path, format!("tensor {name}: shape {} overflows", dims(shape))));
        }
        let engine_err = |e: engine::Error| CheckpointError::corrupt(path, format!("tensor {name}: {e}"));
        let tensor = match info.dtype {
            Dtype::F32 => Tensor::from_bytes(raw, DType::F32, shape).map_err(engine_err)?,
            Dtype::F16 => Tensor::from_bytes(raw, DType::F16, shape).map_err(engine_err)?.to_dtype(DType::F32),
            Dtype::BF16 => Tensor::from_bytes(raw, DType::BF16, shape).map_err(engine_err)?.to_dtype(DType::F32),
            Dtype::F64 => Tensor::from_bytes(raw, DType::F64, shape).map_err(engine_err)?.to_dtype(DType::F32),
            Dtype::I64 => Tensor::from_bytes(raw, DType::I64, shape).map_err(engine_err)?,
            other => match widen_buffer(&name, other, raw) {
                Some(ids) => Tensor::from_i64(ids, shape).map_err(engine_err)?,
                None => {
                    return Err(CheckpointError::DType {
                        path: path.to_path_buf(),
                        tensor: name,
                        found: format!("{other:?}"),
                        expected: "F32/F16/BF16/F64 (or I64 for index buffers)",
                    })
                }
            },
        };
        out.push((name, tensor));
    }
    Ok(out)
}

/// Widens an integer `position_ids`/`token_type_ids` buffer to i64; None for anything else.
fn widen_buffer(name: &str, dtype: Dtype, raw: &[u8]) -> Option<Vec<i64>> {
    let bare = name.strip_prefix(BASE_PREFIX).unwrap_or(name);
    if !BUFFERS.iter().any(|b| b.strip_prefix(BASE_PREFIX) == Some(bare)) {
        return None;
    }
    fn le<const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> i64) -> Vec<i64> {
        raw.chunks_exact(N).map(|c| f(c.try_into().expect("chunk of N bytes"))).collect()
    }
    Some(match dtype {
        Dtype::BOOL | Dtype::U8 => raw.iter().map(|&b| i64::from(b)).collect(),
        Dtype::I8 => raw.iter().map(|&b| i64::from(b as i8)).collect(),
        Dtype::I16 => le(raw, |b| i64::from(i16::from_le_bytes(b))),
        Dtype::U16 => le(raw, |b| i64::from(u16::from_le_bytes(b))),
        Dtype::I32 => le(raw, |b| i64::from(i32::from_le_bytes(b))),
        Dtype::U32 => le(raw, |b| i64::from(u32::from_le_bytes(b))),
        _ => return None,
    })
}

/// A readable reason for a safetensors parse error (the crate's own Display is its Debug).
fn describe(e: &SafeTensorError, bytes: &[u8]) -> String {
    let len = bytes.len();
    let header_len = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    match e {
        SafeTensorError::HeaderTooSmall => {
            format!("{len} bytes, shorter than the 8-byte header length")
        }
        SafeTensorError::HeaderTooLarge => {
            format!("header length {} exceeds the 100 MB limit", header_len.unwrap_or(0))
        }
        SafeTensorError::InvalidHeaderLength => {
            format!("header length {} runs past the end of the {len}-byte file", header_len.unwrap_or(0))
        }
        SafeTensorError::InvalidHeader => "header is not valid UTF-8".to_string(),
        SafeTensorError::InvalidHeaderStart => "header does not start with '{'".to_string(),
        SafeTensorError::InvalidHeaderDeserialization => {
            // Re-parse to tell broken JSON (with its position) from JSON of the wrong form.
            let header = header_len
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| bytes.get(8..8usize.saturating_add(n)))
                .and_then(|h| std::str::from_utf8(h).ok())
                .unwrap_or("");
            match serde_json::from_str::<serde_json::Value>(header) {
                Err(json) => format!("header is not valid JSON: {json}"),
                Ok(_) => "header JSON does not describe safetensors tensors".to_string(),
            }
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            format!("tensor data does not end at the end of the {len}-byte file")
        }
        SafeTensorError::InvalidOffset(name) => format!("tensor {name}: data offsets are not contiguous"),
        SafeTensorError::TensorInvalidInfo => "a tensor's byte size does not match its shape and dtype".to_string(),
        SafeTensorError::ValidationOverflow => "a tensor's shape overflows".to_string(),
        other => other.to_string(),
    }
}

// ====================================================================================== writing

/// An engine tensor as a safetensors view; its bytes are produced one tensor at a time while the
/// file is written.
struct TensorBytes<'a> {
    tensor: &'a Tensor,
    dtype: Dtype,
    len: usize,
}

impl View for TensorBytes<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        self.tensor.shape()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.tensor.to_bytes())
    }
    fn data_len(&self) -> usize {
        self.len
    }
}

fn safetensors_dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::BF16 => Dtype::BF16,
        DType::F16 => Dtype::F16,
        DType::I64 => Dtype::I64,
    }
}

/// Writes tensors to a safetensors file, each in its own dtype (f32 as F32, bf16 as BF16, ...).
///
/// `metadata` goes to the header's `__metadata__`; its `format` entry defaults to `pt` (as Hugging
/// Face writes, and as `transformers` requires when loading). The write is atomic: the file is
/// written to a temporary file in the same directory, flushed and fsynced, then renamed over
/// `path`; on any error the temporary file is removed and an existing `path` is left untouched.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<(), CheckpointError> {
    let mut seen = HashMap::with_capacity(tensors.len());
    for (name, _) in tensors {
        if name.is_empty() || name == "__metadata__" {
            return Err(CheckpointError::invalid(path, format!("invalid tensor name {name:?}")));
        }
        if seen.insert(name.as_str(), ()).is_some() {
            return Err(CheckpointError::invalid(path, format!("duplicate tensor name {name}")));
        }
    }
    let mut metadata = metadata.unwrap_or_default();
    metadata.entry("format".to_string()).or_insert_with(|| "pt".to_string());
    let metadata = Some(metadata);
    let views = tensors.iter().map(|(name, t)| {
        let view =
            TensorBytes { tensor: t, dtype: safetensors_dtype(t.dtype()), len: t.numel() * t.dtype().size_in_bytes() };
        (name.as_str(), view)
    });
    write_atomically(path, |tmp| {
        safetensors::serialize_to_file(views, &metadata, tmp).map_err(|e| match e {
            SafeTensorError::IoError(source) => CheckpointError::io(tmp, "write", source),
            other => CheckpointError::invalid(path, format!("cannot serialise tensors: {other}")),
        })
    })
}

/// Distinguishes temporary files of concurrent writes within one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs `write` on a fresh temporary file next to `path` (`.NAME.tmp-PID-N`), fsyncs it, renames it
/// over `path` and fsyncs the directory (where the platform allows). The temporary file is removed
/// on any error.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), CheckpointError>,
) -> Result<(), CheckpointError> {
    let file_name = path
        .file_name()
        .ok_or_else(|| CheckpointError::invalid(path, "not a file path"))?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{file_name}.tmp-{}-{n}", std::process::id()));

    let result = write(&tmp)
        .and_then(|()| {
            // `write` may have used its own handle; reopen for writing (needed for fsync on some
            // platforms, without truncating) and flush the data to disk before the rename.
            let f = OpenOptions::new().write(true).open(&tmp).map_err(|e| CheckpointError::io(&tmp, "open", e))?;
            f.sync_all().map_err(|e| CheckpointError::io(&tmp, "fsync", e))
        })
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .map_err(|e| CheckpointError::io(path, format!("rename {} to it", tmp.display()), e))
        });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable. Directories cannot be opened (or fsynced) everywhere, and the
    // file is complete either way, so this is best effort.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes a text file atomically (see [`write_tensors`]).
pub fn write_text_atomically(path: &Path, text: &str) -> Result<(), CheckpointError> {
    write_atomically(path, |tmp| {
        let mut f = File::create(tmp).map_err(|e| CheckpointError::io(tmp, "create", e))?;
        f.write_all(text.as_bytes()).map_err(|e| CheckpointError::io(tmp, "write", e))?;
        f.flush().map_err(|e| CheckpointError::io(tmp, "write", e))
    })
}

// ====================================================================================== model dirs

/// Saves a model directory: `config.json` (the config's JSON, `model_type: albert`) and
/// `model.safetensors` with every store parameter under its store name, float values as F32.
/// Creates `dir` if needed; both files are written atomically. The config is validated first so
/// that a saved directory always loads.
pub fn save_model_dir(dir: &Path, config: &AlbertConfig, store: &ParamStore) -> Result<(), CheckpointError> {
    let config_path = dir.join(CONFIG_FILE);
    config.validate().map_err(|e| CheckpointError::Config(format!("{}: {e}", config_path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| CheckpointError::io(dir, "create directory", e))?;
    let tensors: Vec<(String, Tensor)> = store
        .iter()
        .map(|(_, p)| {
            let t = match p.value.dtype() {
                DType::I64 => p.value.clone(),
                DType::F32 | DType::F64 | DType::BF16 | DType::F16 => p.value.to_dtype(DType::F32),
            };
            (p.name.clone(), t)
        })
        .collect();
    write_text_atomically(&config_path, &config.to_json())?;
    write_tensors(&dir.join(WEIGHTS_FILE), &tensors, None)
}

/// Reads a model directory: the validated `config.json` and the tensors of `model.safetensors`
/// (see [`read_tensors`]); pass them to [`load_into`] once the model is built from the config.
pub fn load_model_dir(dir: &Path) -> Result<(AlbertConfig, Vec<(String, Tensor)>), CheckpointError> {
    let config = AlbertConfig::from_file(&dir.join(CONFIG_FILE)).map_err(CheckpointError::Config)?;
    let tensors = read_tensors(&dir.join(WEIGHTS_FILE))?;
    Ok((config, tensors))
}

// ====================================================================================== loading

/// What [`load_into`] did besides loading.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Number of store parameters replaced (all of them on success).
    pub loaded: usize,
    /// Checkpoint names skipped by design: `position_ids`/`token_type_ids` buffers and the tied
    /// `predictions.decoder.weight`/`.bias`.
    pub ignored: Vec<String>,
    /// Head tensors (`predictions.*`, `sop_classifier.*`, `classifier.*`) the model does not have,
    /// e.g. the pretraining heads when loading into a classifier.
    pub unused_heads: Vec<String>,
}

/// How [`load_into`] treats one checkpoint tensor.
enum Disposition {
    Load(ParamId),
    Ignore,
    UnusedHead,
    Unexpected,
}

/// A tensor in the file must have the shape the store expects; the error names both.
fn check_shape(file: &Path, key: &str, expected: &[usize], tensor: &Tensor) -> Result<(), CheckpointError> {
    if tensor.shape() != expected {
        return Err(CheckpointError::Shape {
            path: file.to_path_buf(),
            tensor: key.to_string(),
            expected: expected.to_vec(),
            found: tensor.shape().to_vec(),
        });
    }
    Ok(())
}

/// Loads checkpoint tensors into a store registered under Hugging Face names; `file` names the
/// checkpoint in errors.
///
/// * Keys of a bare `AlbertModel` (no `albert.` prefix) map to `albert.`-prefixed store names.
/// * `albert.embeddings.position_ids`/`token_type_ids` and the tied `predictions.decoder.weight`/
///   `.bias` are ignored (the decoder shapes are still checked against
///   `albert.embeddings.word_embeddings.weight`/`predictions.bias` when the store has them).
/// * Head tensors the store lacks are listed in `unused_heads`; any other unknown tensor, any
///   missing store parameter, a shape mismatch, an integer value for a parameter or two keys for
///   one parameter is an error.
///
/// Everything is checked before any value is replaced: on error the store is unchanged. Values
/// are stored as f32.
pub fn load_into(
    store: &mut ParamStore,
    tensors: Vec<(String, Tensor)>,
    file: &Path,
) -> Result<LoadReport, CheckpointError> {
    let mut report = LoadReport::default();
    // Parameter index -> (checkpoint key, value), filled during the checks.
    let mut plan: Vec<Option<(String, Tensor)>> = vec![None; store.len()];

    for (key, tensor) in tensors {
        let (canonical, disposition) = classify(store, &key);
        match disposition {
            Disposition::Load(id) => {
                let expected = store.value(id).shape();
                check_shape(file, &key, expected, &tensor)?;
                if tensor.dtype() == DType::I64 {
                    return Err(CheckpointError::DType {
                        path: file.to_path_buf(),
                        tensor: key,
                        found: "I64".to_string(),
                        expected: FLOAT_DTYPES,
                    });
                }
                if let Some((other, _)) = &plan[id.0] {
                    return Err(CheckpointError::invalid(
                        file,
                        format!("tensor {canonical} is provided twice (as {other} and {key})"),
                    ));
                }
                plan[id.0] = Some((key, tensor));
            }
            Disposition::Ignore => {
                if let Some((_, tied_to)) = TIED.iter().find(|(decoder, _)| *decoder == canonical) {
                    if let Some(id) = store.find(tied_to) {
                        let expected = store.value(id).shape();
                        check_shape(file, &key, expected, &tensor)?;
                    }
                }
                report.ignored.push(key);
            }
            Disposition::UnusedHead => report.unused_heads.push(key),
            Disposition::Unexpected => {
                return Err(CheckpointError::Unexpected {
                    path: file.to_path_buf(),
                    tensor: key,
                    shape: tensor.shape().to_vec(),
                })
            }
        }
    }

    {
        let mut missing = store.iter().filter(|(id, _)| plan[id.0].is_none());
        if let Some((_, first)) = missing.next() {
            return Err(CheckpointError::Missing {
                path: file.to_path_buf(),
                tensor: first.name.clone(),
                expected: first.value.shape().to_vec(),
                others: missing.count(),
            });
        }
    }

    for (i, entry) in plan.into_iter().enumerate() {
        let (_, tensor) = entry.expect("every parameter was checked above");
        let value = tensor.to_dtype(DType::F32).contiguous();
        // Shapes were checked above, so this cannot fail.
        store
            .set_value(ParamId(i), value)
            .map_err(|e| CheckpointError::invalid(file, format!("cannot set parameter: {e}")))?;
        report.loaded += 1;
    }
    Ok(report)
}

/// Normalises a checkpoint key (a bare `AlbertModel` key gains the `albert.` prefix when the
/// store, or the list of known buffers, has the prefixed name) and decides what to do with it.
fn classify(store: &ParamStore, key: &str) -> (String, Disposition) {
    let canonical = if store.find(key).is_some() || key.starts_with(BASE_PREFIX) {
        key.to_string()
    } else {
        let prefixed = format!("{BASE_PREFIX}{key}");
        if store.find(&prefixed).is_some() || BUFFERS.contains(&prefixed.as_str()) {
            prefixed
        } else {
            key.to_string()
        }
    };
    let disposition = if let Some(id) = store.find(&canonical) {
        Disposition::Load(id)
    } else if BUFFERS.contains(&canonical.as_str()) || TIED.iter().any(|(decoder, _)| *decoder == canonical) {
        Disposition::Ignore
    } else if HEAD_PREFIXES.iter().any(|p| canonical.starts_with(p)) {
        Disposition::UnusedHead
    } else {
        Disposition::Unexpected
    };
    (canonical, disposition)
}

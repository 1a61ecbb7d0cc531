//! The pretraining corpus: the standard text format, read one document at a time.
//!
//! Format (the one of the official BERT/ALBERT `create_pretraining_data.py`): UTF-8 text, one
//! sentence per line, a blank (or whitespace-only) line between documents. Lines are trimmed;
//! several blank lines in a row are one boundary; the end of a file also ends a document.
//!
//! A corpus is a single file, a folder (every regular file below it whose name does not start with
//! `.`, recursively, in sorted path order), or the default corpus embedded in the binary
//! (`data/corpus.txt.gz`: 233 State of the Union addresses and the 136 chapters of Moby-Dick, see
//! `data/README.md`). Files whose name ends in `.gz` are decompressed on the fly.
//!
//! Streaming: [`Documents`] holds one document and one line at a time, so a corpus of many GB is
//! never loaded whole. Two bounds keep that true for odd input:
//! - a line longer than [`MAX_LINE_BYTES`] keeps only its first `MAX_LINE_BYTES` (cut at a character
//!   boundary; one warning per file on stderr). Sentences are cut to `seq_len - 3` tokens later
//!   anyway, so nothing a model could see is lost;
//! - a document longer than [`MAX_DOCUMENT_SENTENCES`] lines is cut into consecutive documents of
//!   at most that many sentences (each counts as a document for the held-out rule).
//!
//! Bytes that are not UTF-8 are an error naming the file and line (not a lossy conversion: a corpus
//! in another encoding should be converted once, not silently garbled on every read).
//!
//! Held-out split: documents are numbered 0, 1, 2, ... in reading order over the whole corpus;
//! document `i` is held out when `i % HELD_OUT_EVERY == 0` (every 20th, starting with the first:
//! 5%). For the embedded corpus that is 19 of 369 documents (as in the reference calibration run),
//! leaving 350 for training. The rule depends only on the order, so it is the same on every run
//! and machine, and it needs no second pass over a large corpus.

use super::{DataError, Result};
use flate2::read::MultiGzDecoder;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Document `i` (in reading order) is held out when `i % HELD_OUT_EVERY == 0`.
pub const HELD_OUT_EVERY: usize = 20;
/// Longer lines are truncated to this many bytes (1 MiB) while reading.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Longer documents are split into consecutive documents of at most this many sentences.
pub const MAX_DOCUMENT_SENTENCES: usize = 10_000;

/// The default corpus (gzip of the text format), built by `data/extract_corpus.py`.
static EMBEDDED_CORPUS_GZ: &[u8] = include_bytes!("../../../data/corpus.txt.gz");

/// The gzip bytes of the embedded default corpus.
pub fn embedded_corpus_gz() -> &'static [u8] {
    EMBEDDED_CORPUS_GZ
}

/// Whether document `index` belongs to the held-out part.
pub fn is_held_out(index: usize) -> bool {
    index.is_multiple_of(HELD_OUT_EVERY)
}

/// Which documents to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    All,
    /// Documents with `index % 20 != 0`.
    Train,
    /// Documents with `index % 20 == 0`.
    HeldOut,
}

impl Split {
    pub fn contains(self, index: usize) -> bool {
        match self {
            Split::All => true,
            Split::Train => !is_held_out(index),
            Split::HeldOut => is_held_out(index),
        }
    }
}

/// Where the corpus comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorpusSource {
    /// `data/corpus.txt.gz`, compiled into the binary.
    Embedded,
    /// A corpus file (`.gz` or plain) or a folder of them.
    Path(PathBuf),
}

/// One document: its number in reading order (over all splits) and its sentences (trimmed, non-empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub index: usize,
    pub sentences: Vec<String>,
}

/// Document, sentence and word counts of a corpus (one full read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CorpusCounts {
    pub documents: usize,
    pub train_documents: usize,
    pub held_out_documents: usize,
    pub sentences: usize,
    /// Whitespace-separated words.
    pub words: usize,
}

impl CorpusSource {
    pub fn path(p: impl Into<PathBuf>) -> CorpusSource {
        CorpusSource::Path(p.into())
    }

    /// A short description for messages: `embedded corpus` or the path.
    pub fn describe(&self) -> String {
        match self {
            CorpusSource::Embedded => "the embedded corpus (data/corpus.txt.gz)".to_string(),
            CorpusSource::Path(p) => p.display().to_string(),
        }
    }

    /// The files a path source reads, in order (empty for the embedded corpus). Errors: the path does
    /// not exist, cannot be listed, or is a folder with no files.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let CorpusSource::Path(path) = self else { return Ok(Vec::new()) };
        let meta = std::fs::metadata(path)
            .map_err(|e| DataError::Io(format!("corpus path {}: {e} (does it exist?)", path.display())))?;
        if meta.is_file() {
            return Ok(vec![path.clone()]);
        }
        let mut files = Vec::new();
        collect_files(path, &mut files)?;
        if files.is_empty() {
            return Err(DataError::Corpus(format!(
                "corpus folder {} contains no files (expected text files, one sentence per line; .gz allowed)",
                path.display()
            )));
        }
        files.sort();
        Ok(files)
    }

    /// Streams the documents of `split`, one at a time. Path errors are reported here; read errors
    /// (unreadable file, bad UTF-8, a corpus without any document) come out of the iterator, after
    /// which it ends.
    pub fn documents(&self, split: Split) -> Result<Documents> {
        let inputs = match self {
            CorpusSource::Embedded => VecDeque::from([Input::Embedded]),
            CorpusSource::Path(_) => self.files()?.into_iter().map(Input::File).collect(),
        };
        Ok(Documents {
            inputs,
            current: None,
            split,
            next_index: 0,
            finished: false,
            label: self.describe(),
            buf: Vec::new(),
        })
    }

    /// Reads the whole corpus once and counts documents, sentences and words per split.
    pub fn count(&self) -> Result<CorpusCounts> {
        let mut c = CorpusCounts::default();
        for doc in self.documents(Split::All)? {
            let doc = doc?;
            c.documents += 1;
            match is_held_out(doc.index) {
                true => c.held_out_documents += 1,
                false => c.train_documents += 1,
            }
            c.sentences += doc.sentences.len();
            c.words += doc.sentences.iter().map(|s| s.split_whitespace().count()).sum::<usize>();
        }
        Ok(c)
    }
}

/// Every regular, non-hidden file below `dir` (unsorted; the caller sorts).
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| DataError::Io(format!("cannot list corpus folder {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::Io(format!("cannot list corpus folder {}: {e}", dir.display())))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // metadata() follows symbolic links, so a link to a file or folder counts as one.
        let meta =
            std::fs::metadata(&path).map_err(|e| DataError::Io(format!("corpus file {}: {e}", path.display())))?;
        if meta.is_dir() {
            collect_files(&path, out)?;
        } else if meta.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

enum Input {
    Embedded,
    File(PathBuf),
}

/// One open input and the number of the last line read from it (1-based, for messages).
struct LineReader {
    reader: Box<dyn BufRead + Send>,
    name: String,
    line: usize,
    warned_long_line: bool,
}

impl LineReader {
    fn open(input: Input) -> Result<LineReader> {
        let (reader, name): (Box<dyn BufRead + Send>, String) = match input {
            Input::Embedded => (
                Box::new(BufReader::new(MultiGzDecoder::new(EMBEDDED_CORPUS_GZ))),
                "embedded corpus (data/corpus.txt.gz)".to_string(),
            ),
            Input::File(path) => {
                let name = path.display().to_string();
                let file =
                    File::open(&path).map_err(|e| DataError::Io(format!("cannot open corpus file {name}: {e}")))?;
                let gz = path.extension().is_some_and(|e| e == "gz");
                match gz {
                    true => (Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(file))), name),
                    false => (Box::new(BufReader::with_capacity(1 << 16, file)), name),
                }
            }
        };
        Ok(LineReader { reader, name, line: 0, warned_long_line: false })
    }

    /// The next line, without its `\n` / `\r\n`, cut to [`MAX_LINE_BYTES`]; None at the end of input.
    fn next_line<'b>(&mut self, buf: &'b mut Vec<u8>) -> Result<Option<&'b str>> {
        buf.clear();
        let mut truncated = false;
        let mut any = false;
        loop {
            let avail = match self.reader.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(DataError::Io(format!("cannot read {} after line {}: {e}", self.name, self.line)));
                }
            };
            if avail.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let newline = avail.iter().position(|&b| b == b'\n');
            let content = &avail[..newline.unwrap_or(avail.len())];
            let room = MAX_LINE_BYTES.saturating_sub(buf.len());
            if content.len() > room {
                truncated = true;
            }
            buf.extend_from_slice(&content[..content.len().min(room)]);
            let used = newline.map_or(avail.len(), |i| i + 1);
            self.reader.consume(used);
            if newline.is_some() {
                break;
            }
        }
        self.line += 1;
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        let valid = match std::str::from_utf8(buf) {
            Ok(_) => buf.len(),
            // A cut through a multi-byte character at the truncation point: drop the partial character.
            Err(e) if truncated && e.error_len().is_none() => e.valid_up_to(),
            Err(e) => {
                return Err(DataError::Corpus(format!(
                    "{} line {}: bytes that are not UTF-8 (at byte {} of the line); the corpus must be UTF-8 text",
                    self.name,
                    self.line,
                    e.valid_up_to()
                )))
            }
        };
        if truncated && !self.warned_long_line {
            self.warned_long_line = true;
            eprintln!(
                "warning: {} line {}: longer than {MAX_LINE_BYTES} bytes; kept the first {MAX_LINE_BYTES} \
                 (further long lines in this file are truncated silently)",
                self.name, self.line
            );
        }
        buf.truncate(valid);
        Ok(Some(std::str::from_utf8(buf).expect("validated above")))
    }
}

/// Iterator over the documents of one split, read lazily (see the module docs).
pub struct Documents {
    inputs: VecDeque<Input>,
    current: Option<LineReader>,
    split: Split,
    /// The index the next document read (of any split) gets.
    next_index: usize,
    finished: bool,
    label: String,
    buf: Vec<u8>,
}

impl Documents {
    /// Number of documents (of all splits) read so far.
    pub fn documents_read(&self) -> usize {
        self.next_index
    }

    /// The sentences of the next document of any split; None at the end of the corpus.
    fn read_document(&mut self) -> Result<Option<Vec<String>>> {
        let mut sentences = Vec::new();
        loop {
            let reader = match &mut self.current {
                Some(r) => r,
                None => match self.inputs.pop_front() {
                    Some(input) => self.current.insert(LineReader::open(input)?),
                    None => return Ok((!sentences.is_empty()).then_some(sentences)),
                },
            };
            match reader.next_line(&mut self.buf)? {
                None => {
                    self.current = None; // the end of a file ends its last document
                    if !sentences.is_empty() {
                        return Ok(Some(sentences));
                    }
                }
                Some(line) => {
                    let line = line.trim();
                    if line.is_empty() {
                        if !sentences.is_empty() {
                            return Ok(Some(sentences));
                        }
                    } else {
                        sentences.push(line.to_string());
                        if sentences.len() == MAX_DOCUMENT_SENTENCES {
                            return Ok(Some(sentences));
                        }
                    }
                }
            }
        }
    }
}

impl Iterator for Documents {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Result<Document>> {
        while !self.finished {
            match self.read_document() {
                Ok(Some(sentences)) => {
                    let index = self.next_index;
                    self.next_index += 1;
                    if self.split.contains(index) {
                        return Some(Ok(Document { index, sentences }));
                    }
                }
                Ok(None) => {
                    self.finished = true;
                    if self.next_index == 0 {
                        return Some(Err(DataError::Corpus(format!(
                            "corpus {} contains no documents (no non-blank lines)",
                            self.label
                        ))));
                    }
                }
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

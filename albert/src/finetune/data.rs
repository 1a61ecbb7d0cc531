//! Labelled text for fine-tuning: TSV files of `sentence<TAB>label` (single sentences) or
//! `a<TAB>b<TAB>label` (sentence pairs), with or without a header line, and their encoding into
//! `[CLS] a [SEP] (b [SEP])` batches.

use crate::model::Inputs;
use crate::tokenizer::{SpecialIds, Tokenizer};
use engine::Tensor;
use std::path::Path;

/// One labelled example: the text (or pair) and its label as written in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub a: String,
    pub b: Option<String>,
    pub label: String,
    /// 1-based line number in its file (for messages).
    pub line: usize,
}

/// A parsed TSV file.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub examples: Vec<Example>,
    /// Whether the first line was a header (and was skipped).
    pub header: bool,
    /// True for `a<TAB>b<TAB>label` files.
    pub pairs: bool,
}

/// Column names that mark a header's label column (compared case-insensitively).
const LABEL_HEADERS: [&str; 7] = ["label", "labels", "class", "target", "y", "sentiment", "gold_label"];

fn split_line(line: &str) -> Vec<&str> {
    line.trim_end_matches('\r').split('\t').collect()
}

/// Parses TSV text; `file` names the source in errors ("FILE:LINE: ...").
///
/// The first non-empty line decides the layout (2 fields: sentences, 3: pairs); every other line
/// must have the same number of fields. The first line is a header when its last field is a usual
/// label-column name (`label`, `class`, ...), or when it is not a number while every other line's
/// label is. Blank lines are skipped; empty texts or labels are errors.
pub fn parse_tsv(text: &str, file: &Path) -> Result<Dataset, String> {
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty()).collect();
    let Some(&(first_no, first)) = lines.first() else {
        return Err(format!("{}: no examples (the file is empty)", file.display()));
    };
    let width = split_line(first).len();
    if width != 2 && width != 3 {
        return Err(format!(
            "{}:{first_no}: expected `sentence<TAB>label` or `a<TAB>b<TAB>label`, found {width} tab-separated field(s)",
            file.display()
        ));
    }
    let first_label = split_line(first)[width - 1].trim();
    let named = LABEL_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(first_label));
    let numeric = |x: &str| x.trim().parse::<f64>().is_ok();
    let others_numeric =
        lines.len() >= 2 && lines[1..].iter().all(|(_, l)| split_line(l).last().is_some_and(|x| numeric(x)));
    let header = named || (others_numeric && !numeric(first_label));
    let mut examples = Vec::with_capacity(lines.len());
    for &(no, line) in &lines[usize::from(header)..] {
        let f = split_line(line);
        if f.len() != width {
            return Err(format!(
                "{}:{no}: expected {width} tab-separated fields (as on line {first_no}), found {}",
                file.display(),
                f.len()
            ));
        }
        let label = f[width - 1].trim();
        if label.is_empty() {
            return Err(format!("{}:{no}: empty label", file.display()));
        }
        if f[..width - 1].iter().any(|t| t.trim().is_empty()) {
            return Err(format!("{}:{no}: empty text field", file.display()));
        }
        examples.push(Example {
            a: f[0].trim().to_string(),
            b: (width == 3).then(|| f[1].trim().to_string()),
            label: label.to_string(),
            line: no,
        });
    }
    if examples.is_empty() {
        return Err(format!("{}: no examples after the header line", file.display()));
    }
    Ok(Dataset { examples, header, pairs: width == 3 })
}

/// Reads and parses a TSV file.
pub fn read_tsv(path: &Path) -> Result<Dataset, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_tsv(&text, path)
}

/// The label vocabulary: index -> label as written. Integer labels sort numerically, others
/// lexicographically, so `0`/`1` files map to ids 0 and 1.
pub fn label_names(train: &Dataset) -> Vec<String> {
    let mut names: Vec<String> = train.examples.iter().map(|e| e.label.clone()).collect();
    names.sort();
    names.dedup();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or(0));
    }
    names
}

/// The label ids of a dataset; a label the training set never had is an error naming its line.
pub fn label_ids(data: &Dataset, names: &[String], file: &Path) -> Result<Vec<usize>, String> {
    data.examples
        .iter()
        .map(|e| {
            names.iter().position(|n| *n == e.label).ok_or_else(|| {
                format!(
                    "{}:{}: label {:?} does not occur in the training data (labels: {names:?})",
                    file.display(),
                    e.line,
                    e.label
                )
            })
        })
        .collect()
}

/// Token ids and token types of one example: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, the
/// longer segment cut first until the whole fits `max_len`.
pub fn encode_example(
    tok: &Tokenizer,
    special: SpecialIds,
    a: &str,
    b: Option<&str>,
    max_len: usize,
) -> (Vec<u32>, Vec<u32>) {
    let mut ta = tok.encode(a);
    let mut tb = b.map(|b| tok.encode(b)).unwrap_or_default();
    let reserved = if b.is_some() { 3 } else { 2 };
    let budget = max_len.saturating_sub(reserved);
    while ta.len() + tb.len() > budget {
        if ta.len() >= tb.len() {
            ta.pop();
        } else {
            tb.pop();
        }
    }
    let mut ids = vec![special.cls];
    ids.extend(&ta);
    ids.push(special.sep);
    let mut types = vec![0; ids.len()];
    if b.is_some() {
        ids.extend(&tb);
        ids.push(special.sep);
        types.resize(ids.len(), 1);
    }
    (ids, types)
}

/// An encoded dataset: per example, ids and token types.
pub struct Encoded {
    pub ids: Vec<Vec<u32>>,
    pub types: Vec<Vec<u32>>,
    pub labels: Vec<usize>,
}

pub fn encode(tok: &Tokenizer, special: SpecialIds, data: &Dataset, labels: Vec<usize>, max_len: usize) -> Encoded {
    let (ids, types) =
        data.examples.iter().map(|e| encode_example(tok, special, &e.a, e.b.as_deref(), max_len)).unzip();
    Encoded { ids, types, labels }
}

/// A padded batch of the examples `rows` (padded to the longest of them), with its labels.
pub fn batch(enc: &Encoded, rows: &[usize], pad: u32) -> Result<(Inputs, Tensor), String> {
    let s = rows.iter().map(|&r| enc.ids[r].len()).max().unwrap_or(1);
    let b = rows.len();
    let (mut ids, mut types, mut mask) = (vec![pad as i64; b * s], vec![0i64; b * s], vec![0i64; b * s]);
    for (i, &r) in rows.iter().enumerate() {
        for (j, (&id, &t)) in enc.ids[r].iter().zip(&enc.types[r]).enumerate() {
            ids[i * s + j] = id as i64;
            types[i * s + j] = t as i64;
            mask[i * s + j] = 1;
        }
    }
    let e = |e: engine::Error| e.to_string();
    let inputs = Inputs {
        input_ids: Tensor::from_i64(ids, &[b, s]).map_err(e)?,
        attention_mask: Some(Tensor::from_i64(mask, &[b, s]).map_err(e)?),
        token_type_ids: Some(Tensor::from_i64(types, &[b, s]).map_err(e)?),
    };
    let labels = Tensor::from_i64(rows.iter().map(|&r| enc.labels[r] as i64).collect(), &[b]).map_err(e)?;
    Ok((inputs, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_detection_and_layouts() {
        let p = Path::new("x.tsv");
        let d = parse_tsv("sentence\tlabel\ngood\t1\nbad\t0\n", p).unwrap();
        assert!(d.header && !d.pairs && d.examples.len() == 2 && d.examples[0].line == 2);
        let d = parse_tsv("good\t1\nbad\t0\nfine\t1\n", p).unwrap();
        assert!(!d.header && d.examples.len() == 3);
        // an unnamed header over numeric labels, and a named one over string labels
        let d = parse_tsv("text\tpolarity\nfine\t1\n", p).unwrap();
        assert!(d.header && d.examples.len() == 1);
        let d = parse_tsv("good\tpos\nbad\tneg\nugly\tneg\n", p).unwrap();
        assert!(!d.header && d.examples.len() == 3);
        let d = parse_tsv("a\tb\tLabel\nx\ty\tyes\nu\tv\tno\n", p).unwrap();
        assert!(d.header && d.pairs && d.examples[0].b.as_deref() == Some("y"));
        assert_eq!(label_names(&d), vec!["no".to_string(), "yes".to_string()]);
        let d = parse_tsv("a\t10\nb\t9\nc\t10\n", p).unwrap();
        assert_eq!(label_names(&d), vec!["9".to_string(), "10".to_string()]);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let p = Path::new("data/x.tsv");
        assert_eq!(
            parse_tsv("good\t1\n\nbad\n", p).unwrap_err(),
            "data/x.tsv:3: expected 2 tab-separated fields (as on line 1), found 1"
        );
        assert_eq!(parse_tsv("good\t1\n\t0\n", p).unwrap_err(), "data/x.tsv:2: empty text field");
        assert_eq!(parse_tsv("good\t1\nbad\t\n", p).unwrap_err(), "data/x.tsv:2: empty label");
        assert!(parse_tsv("", p).unwrap_err().contains("empty"));
        assert!(parse_tsv("a\tb\tc\td\n", p).unwrap_err().starts_with("data/x.tsv:1: expected"));
        let train = parse_tsv("good\t1\nbad\t0\n", p).unwrap();
        let dev = parse_tsv("ok\t1\nmeh\t2\n", p).unwrap();
        let err = label_ids(&dev, &label_names(&train), Path::new("dev.tsv")).unwrap_err();
        assert!(err.starts_with("dev.tsv:2: label \"2\" does not occur"), "{err}");
    }
}

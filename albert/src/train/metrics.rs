//! Per-step and per-evaluation metrics, kept in memory and appended to `metrics.csv`.

use std::io::Write;
use std::path::Path;

/// One row of metrics.csv. Training rows carry the step's numbers; evaluation rows (kind = "eval")
/// carry held-out accuracies and the most-frequent-token baseline at the same masked positions.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub step: usize,
    pub kind: &'static str,
    pub loss: f64,
    pub mlm_loss: f64,
    pub order_loss: f64,
    pub mlm_acc: f64,
    pub order_acc: f64,
    pub mlm_baseline_acc: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
}

pub const HEADER: &str =
    "step,kind,loss,mlm_loss,order_loss,mlm_acc,order_acc,mlm_baseline_acc,lr,grad_norm,tokens_per_s";

impl Row {
    pub fn csv(&self) -> String {
        format!(
            "{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6e},{:.6},{:.1}",
            self.step,
            self.kind,
            self.loss,
            self.mlm_loss,
            self.order_loss,
            self.mlm_acc,
            self.order_acc,
            self.mlm_baseline_acc,
            self.lr,
            self.grad_norm,
            self.tokens_per_s
        )
    }

    pub fn parse(line: &str) -> Option<Row> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 11 {
            return None;
        }
        let num = |i: usize| f[i].parse::<f64>().ok();
        Some(Row {
            step: f[0].parse().ok()?,
            kind: if f[1] == "eval" { "eval" } else { "train" },
            loss: num(2)?,
            mlm_loss: num(3)?,
            order_loss: num(4)?,
            mlm_acc: num(5)?,
            order_acc: num(6)?,
            mlm_baseline_acc: num(7)?,
            lr: num(8)?,
            grad_norm: num(9)?,
            tokens_per_s: num(10)?,
        })
    }
}

/// Reads metrics.csv, keeping only rows up to `max_step` (a resumed run rewrites what came after
/// its checkpoint, so the file never holds two versions of a step).
pub fn read(path: &Path, max_step: usize) -> Vec<Row> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines().skip(1).filter_map(Row::parse).filter(|r| r.step <= max_step).collect()
}

/// Rewrites metrics.csv with `rows` (atomically: temp file + rename).
pub fn write(path: &Path, rows: &[Row]) -> std::io::Result<()> {
    let tmp = path.with_extension("csv.tmp");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        writeln!(f, "{HEADER}")?;
        for r in rows {
            writeln!(f, "{}", r.csv())?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Top-1 accuracy of [rows, classes] logits against i64 targets.
pub fn accuracy(logits: &[f32], classes: usize, targets: &[i64]) -> f64 {
    if targets.is_empty() {
        return 0.0;
    }
    let hits = logits
        .chunks(classes)
        .zip(targets)
        .filter(|(row, &t)| {
            let best = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as i64);
            best == Some(t)
        })
        .count();
    hits as f64 / targets.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_accuracy() {
        let r = Row {
            step: 12,
            kind: "eval",
            loss: 1.5,
            mlm_loss: 1.0,
            order_loss: 0.5,
            mlm_acc: 0.25,
            order_acc: 0.75,
            mlm_baseline_acc: 0.1,
            lr: 1e-3,
            grad_norm: 0.9,
            tokens_per_s: 1234.5,
        };
        assert_eq!(Row::parse(&r.csv()), Some(r));
        assert_eq!(accuracy(&[0.1, 0.9, 0.8, 0.2], 2, &[1, 1]), 0.5);
    }
}

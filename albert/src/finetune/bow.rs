//! The bag-of-words baseline: multinomial logistic regression on binary word-presence features
//! (lowercased alphanumeric words and their bigrams, from the training set), trained with
//! AdaGrad and L2 on shuffled single examples. Plain f64 Rust; a few seconds on the polarity set.

use super::data::{self, Dataset};
use super::metrics::{self, Scores};
use engine::Rng;
use std::collections::HashMap;
use std::path::Path;

/// The baseline trained and scored on a train / dev split of TSV files.
pub struct SplitResult {
    pub dev: Scores,
    pub labels: Vec<String>,
    pub train_examples: usize,
    /// Dev accuracy of always answering the training set's most frequent label.
    pub majority_accuracy: f64,
}

/// Reads both files (only the first `max_train` training examples), trains for `epochs` passes
/// and scores the dev set.
pub fn train_on_split(
    train_path: &Path,
    dev_path: &Path,
    max_train: Option<usize>,
    epochs: usize,
    seed: u64,
) -> Result<SplitResult, String> {
    let mut tr = data::read_tsv(train_path)?;
    if let Some(n) = max_train {
        tr.examples.truncate(n);
    }
    let dv = data::read_tsv(dev_path)?;
    let labels = data::label_names(&tr);
    let ty = data::label_ids(&tr, &labels, train_path)?;
    let dy = data::label_ids(&dv, &labels, dev_path)?;
    let m = train(&tr, &ty, labels.len(), epochs, seed);
    let dev = metrics::scores(&dy, &m.predict(&dv), labels.len());
    let majority_accuracy = metrics::majority_accuracy(&ty, &dy, labels.len());
    Ok(SplitResult { dev, labels, train_examples: ty.len(), majority_accuracy })
}

/// Lowercased runs of letters, digits and apostrophes; pair texts are prefixed per segment so
/// the model can tell which sentence a word came from.
fn words(text: &str, prefix: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| format!("{prefix}{}", w.to_lowercase()))
        .collect()
}

fn features(a: &str, b: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for (text, prefix) in [(Some(a), "a:"), (b, "b:")] {
        let Some(t) = text else { continue };
        let w = words(t, prefix);
        out.extend(w.windows(2).map(|p| format!("{} {}", p[0], p[1])));
        out.extend(w);
    }
    out.sort();
    out.dedup();
    out
}

pub struct BowModel {
    vocab: HashMap<String, usize>,
    /// [features + 1 (bias), classes], row-major.
    weights: Vec<f64>,
    classes: usize,
}

impl BowModel {
    fn ids(&self, a: &str, b: Option<&str>) -> Vec<usize> {
        let mut ids: Vec<usize> = features(a, b).iter().filter_map(|f| self.vocab.get(f).copied()).collect();
        ids.push(self.vocab.len()); // bias
        ids
    }

    fn logits(&self, ids: &[usize]) -> Vec<f64> {
        let mut z = vec![0.0; self.classes];
        for &i in ids {
            z.iter_mut().zip(&self.weights[i * self.classes..(i + 1) * self.classes]).for_each(|(z, w)| *z += w);
        }
        z
    }

    /// The predicted class of each example.
    pub fn predict(&self, data: &Dataset) -> Vec<usize> {
        data.examples
            .iter()
            .map(|e| {
                let z = self.logits(&self.ids(&e.a, e.b.as_deref()));
                z.iter().enumerate().fold((0, f64::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
            })
            .collect()
    }
}

/// Trains on `train` (labels are class ids) for `epochs` passes.
pub fn train(train: &Dataset, labels: &[usize], classes: usize, epochs: usize, seed: u64) -> BowModel {
    let mut vocab = HashMap::new();
    let feats: Vec<Vec<String>> = train.examples.iter().map(|e| features(&e.a, e.b.as_deref())).collect();
    for f in feats.iter().flatten() {
        let n = vocab.len();
        vocab.entry(f.clone()).or_insert(n);
    }
    let dim = vocab.len() + 1;
    let mut model = BowModel { vocab, weights: vec![0.0; dim * classes], classes };
    let rows: Vec<Vec<usize>> = train.examples.iter().map(|e| model.ids(&e.a, e.b.as_deref())).collect();
    let (lr, l2) = (0.1, 1e-5);
    let mut g2 = vec![1e-8; dim * classes];
    let mut rng = Rng::new(seed);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    for _ in 0..epochs {
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for &r in &order {
            let z = model.logits(&rows[r]);
            let max = z.iter().fold(f64::MIN, |m, &x| m.max(x));
            let e: Vec<f64> = z.iter().map(|x| (x - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            for &i in &rows[r] {
                for (k, &ek) in e.iter().enumerate() {
                    let j = i * classes + k;
                    let g = ek / sum - f64::from(u8::from(k == labels[r])) + l2 * model.weights[j];
                    g2[j] += g * g;
                    model.weights[j] -= lr * g / g2[j].sqrt();
                }
            }
        }
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finetune::data::parse_tsv;

    #[test]
    fn learns_a_separable_toy_task() {
        let text = "a fine film\t1\ngreat and fine\t1\nawful mess\t0\na dull awful film\t0\nfine acting\t1\ndull\t0\n";
        let d = parse_tsv(text, std::path::Path::new("toy.tsv")).unwrap();
        let labels: Vec<usize> = d.examples.iter().map(|e| e.label.parse().unwrap()).collect();
        let m = train(&d, &labels, 2, 20, 0);
        assert_eq!(m.predict(&d), labels);
        assert_eq!(features("Not bad", None), vec!["a:bad", "a:not", "a:not a:bad"]);
    }
}

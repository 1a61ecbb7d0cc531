//! Classification metrics from a confusion matrix: accuracy, F1 and Matthews correlation.

/// Accuracy, F1 and MCC of predictions against gold labels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    pub accuracy: f64,
    /// Binary tasks: F1 of class 1 (the positive class, as GLUE reports it); more classes: the
    /// unweighted mean of the per-class F1 (macro F1).
    pub f1: f64,
    /// Matthews correlation coefficient (Gorodkin's multi-class form, equal to the usual binary
    /// formula for two classes); 0 when undefined (a constant prediction or gold column).
    pub mcc: f64,
    pub n: usize,
}

/// `confusion[gold][pred]` counts.
pub fn confusion(gold: &[usize], pred: &[usize], classes: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; classes]; classes];
    for (&g, &p) in gold.iter().zip(pred) {
        m[g][p] += 1;
    }
    m
}

/// Accuracy on `dev` of always answering the most frequent class of `train` (a tie goes to the
/// higher class id).
pub fn majority_accuracy(train: &[usize], dev: &[usize], classes: usize) -> f64 {
    let mut counts = vec![0usize; classes];
    train.iter().for_each(|&l| counts[l] += 1);
    let majority = counts.iter().enumerate().max_by_key(|(_, &c)| c).map_or(0, |(i, _)| i);
    dev.iter().filter(|&&y| y == majority).count() as f64 / dev.len().max(1) as f64
}

pub fn scores(gold: &[usize], pred: &[usize], classes: usize) -> Scores {
    assert_eq!(gold.len(), pred.len(), "gold and predicted labels differ in length");
    let m = confusion(gold, pred, classes);
    let n: u64 = m.iter().flatten().sum();
    let correct: u64 = (0..classes).map(|k| m[k][k]).sum();
    let f1_of = |k: usize| {
        let tp = m[k][k] as f64;
        let fp: f64 = (0..classes).filter(|&g| g != k).map(|g| m[g][k] as f64).sum();
        let fn_: f64 = (0..classes).filter(|&p| p != k).map(|p| m[k][p] as f64).sum();
        if tp == 0.0 {
            0.0
        } else {
            2.0 * tp / (2.0 * tp + fp + fn_)
        }
    };
    let f1 = if classes == 2 { f1_of(1) } else { (0..classes).map(f1_of).sum::<f64>() / classes as f64 };
    // Gorodkin (2004): MCC = (c s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2))
    let (c, s) = (correct as f64, n as f64);
    let t: Vec<f64> = (0..classes).map(|k| m[k].iter().sum::<u64>() as f64).collect();
    let p: Vec<f64> = (0..classes).map(|k| (0..classes).map(|g| m[g][k]).sum::<u64>() as f64).collect();
    let pt: f64 = p.iter().zip(&t).map(|(a, b)| a * b).sum();
    let den = ((s * s - p.iter().map(|x| x * x).sum::<f64>()) * (s * s - t.iter().map(|x| x * x).sum::<f64>())).sqrt();
    let mcc = if den > 0.0 { (c * s - pt) / den } else { 0.0 };
    Scores { accuracy: if n == 0 { 0.0 } else { c / s }, f1, mcc, n: n as usize }
}

/// Index of the largest value of each row of a [rows, classes] matrix.
pub fn argmax_rows(values: &[f32], classes: usize) -> Vec<usize> {
    values
        .chunks(classes)
        .map(|r| r.iter().enumerate().fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_accuracy_answers_the_most_frequent_training_class() {
        // train: class 1 three times, class 0 once; dev: two of five are class 1
        assert!((majority_accuracy(&[1, 0, 1, 1], &[0, 1, 0, 1, 0], 2) - 0.4).abs() < 1e-12);
        // a tie goes to the higher id
        assert!((majority_accuracy(&[0, 2, 2, 0], &[2, 0, 0], 3) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn binary_matches_the_textbook_formulas() {
        // tp 3, fn 1, fp 2, tn 4
        let gold = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
        let pred = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0];
        let s = scores(&gold, &pred, 2);
        assert!((s.accuracy - 0.7).abs() < 1e-12);
        assert!((s.f1 - 2.0 * 3.0 / (6.0 + 2.0 + 1.0)).abs() < 1e-12);
        let mcc = (3.0 * 4.0 - 2.0 * 1.0) / ((5.0f64) * 4.0 * 6.0 * 5.0).sqrt();
        assert!((s.mcc - mcc).abs() < 1e-12, "{} vs {mcc}", s.mcc);
        let constant = scores(&gold, &[1; 10], 2);
        assert_eq!(constant.mcc, 0.0);
        let perfect = scores(&[0, 1, 2, 2], &[0, 1, 2, 2], 3);
        assert_eq!((perfect.accuracy, perfect.f1, perfect.mcc), (1.0, 1.0, 1.0));
        assert_eq!(argmax_rows(&[0.1, 0.9, 2.0, -1.0], 2), vec![1, 0]);
    }
}

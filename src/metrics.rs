//! Classification metrics as pure functions over predictions and labels, and the summary
//! statistics of repeated measurements (runs, timings).

use serde::{Deserialize, Serialize};

/// A square confusion matrix: `counts[true][predicted]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Row = true class, column = predicted class.
    pub counts: Vec<Vec<u64>>,
}

impl Confusion {
    /// An all-zero matrix for `n` classes.
    pub fn new(n: usize) -> Self {
        Confusion { counts: vec![vec![0; n]; n] }
    }

    /// Adds predictions; labels or predictions outside `0..n` are a caller bug.
    pub fn add(&mut self, labels: &[i64], preds: &[i64]) {
        for (&t, &p) in labels.iter().zip(preds) {
            self.counts[t as usize][p as usize] += 1;
        }
    }

    /// Total number of samples.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Top-1 accuracy: trace / total (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        ratio(correct, self.total())
    }

    /// Per-class recall: diagonal / row sum (0 for a class with no samples).
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.counts.iter().enumerate().map(|(i, row)| ratio(row[i], row.iter().sum())).collect()
    }
}

/// Mean and sample standard deviation (0 for fewer than two values; mean 0 for none).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n.max(1.0);
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Median of a sample (the upper one for even sizes, a value that was measured); None when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied()
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The result of evaluating a model on a split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalResult {
    /// Mean cross-entropy loss (without label smoothing).
    pub loss: f64,
    /// Top-1 accuracy in [0, 1].
    pub acc: f64,
    /// Top-5 accuracy in [0, 1] (the label among the five highest logits; 1 with five classes
    /// or fewer), the usual second figure on CIFAR-100.
    #[serde(default)]
    pub acc_top5: f64,
    /// Per-class accuracy, in label order.
    pub per_class_acc: Vec<f64>,
    /// Confusion matrix.
    pub confusion: Confusion,
    /// Wall time of the evaluation.
    pub secs: f64,
    /// Predicted class of each sample, in dataset order.
    pub predictions: Vec<i64>,
    /// Softmax probability of each prediction (the model's confidence), in dataset order.
    pub confidences: Vec<f32>,
    /// Fraction of the images that got the test-time augmentation views (0 without TTA).
    pub tta_share: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_sample_std_and_median_by_hand() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12 && (s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[7.0]), (7.0, 0.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(3.0), "the upper median: a measured value");
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn hand_computed_confusion() {
        let mut c = Confusion::new(3);
        c.add(&[0, 0, 1, 2, 2, 2], &[0, 1, 1, 2, 0, 2]);
        assert_eq!(c.counts, vec![vec![1, 1, 0], vec![0, 1, 0], vec![1, 0, 2]]);
        assert!((c.accuracy() - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(c.per_class_accuracy(), vec![0.5, 1.0, 2.0 / 3.0]);
    }

    #[test]
    fn empty_is_zero_not_nan() {
        let c = Confusion::new(2);
        assert_eq!(c.accuracy(), 0.0);
        assert_eq!(c.per_class_accuracy(), vec![0.0, 0.0]);
    }
}

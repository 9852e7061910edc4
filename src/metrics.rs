//! Classification metrics as pure functions over predictions and labels.

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

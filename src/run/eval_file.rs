//! `eval*.json`: a checkpoint's test evaluation as the run directory keeps it, and the names
//! that keep evaluations of other settings apart.

use std::path::Path;

use crate::config::Tta;
use crate::error::{Error, Result};
use crate::metrics::EvalResult;

/// `eval.json`: final test metrics.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct EvalFile {
    /// Which checkpoint was evaluated.
    pub checkpoint: String,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Top-5 accuracy (absent in files of older versions).
    #[serde(default)]
    pub accuracy_top5: f64,
    /// Mean loss.
    pub loss: f64,
    /// Class names.
    pub classes: Vec<String>,
    /// Per-class accuracy.
    pub per_class_accuracy: Vec<f64>,
    /// Confusion matrix, rows = true class.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// Evaluation wall time.
    pub eval_secs: f64,
    /// Test-time augmentation level used (`train.tta`).
    #[serde(default)]
    pub tta: i64,
    /// Its cutoff (`train.tta_cutoff`; 0 = every image).
    #[serde(default)]
    pub tta_cutoff: f64,
    /// Fraction of the images that got the test-time augmentation views.
    #[serde(default)]
    pub tta_share: f64,
    /// Predicted class per test image, in dataset order (empty in files of older versions).
    #[serde(default)]
    pub predictions: Vec<i64>,
    /// Softmax probability of each prediction, in dataset order.
    #[serde(default)]
    pub confidences: Vec<f32>,
    /// The epoch the evaluated checkpoint was taken at (absent in files of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// Its optimizer step (absent in files of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
}

impl EvalFile {
    /// Packs an evaluation (made with test-time augmentation `tta`) for `eval.json`.
    pub fn new(r: &EvalResult, classes: &[String], checkpoint: &str, tta: Tta) -> Self {
        EvalFile {
            checkpoint: checkpoint.into(),
            accuracy: r.acc,
            accuracy_top5: r.acc_top5,
            loss: r.loss,
            classes: classes.to_vec(),
            per_class_accuracy: r.per_class_acc.clone(),
            confusion_matrix: r.confusion.counts.clone(),
            eval_secs: r.secs,
            tta: tta.level,
            tta_cutoff: tta.cutoff,
            tta_share: r.tta_share,
            predictions: r.predictions.clone(),
            confidences: r.confidences.clone(),
            epoch: None,
            step: None,
        }
    }
}

impl EvalFile {
    /// The same, recording the checkpoint's epoch and step.
    pub fn at(self, epoch: i64, step: i64) -> Self {
        EvalFile { epoch: Some(epoch), step: Some(step), ..self }
    }

    /// Reads an evaluation file (`run/eval.json`, `run/eval-best.json`, ...).
    pub fn read(path: &Path) -> Result<EvalFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            Error::Checkpoint(format!("{}: not a valid {name}: {e}", path.display()))
        })
    }
}

/// The name of the file an evaluation of checkpoint `checkpoint` writes: `eval-<checkpoint>`,
/// then what sets it apart from the run's own evaluation, so no setting replaces another's
/// figures: `-tta2[-cutoff0.7]` (TTA), `-bf16` (another precision than the run trained in),
/// `-data<CRC32C>` (another test set).
pub fn eval_file_name(
    checkpoint: &str,
    tta: Tta,
    other_precision: Option<&str>,
    other_test_set: Option<u32>,
) -> String {
    let precision = other_precision.map_or(String::new(), |p| format!("-{p}"));
    let data = other_test_set.map_or(String::new(), |crc| format!("-data{crc:08x}"));
    format!("eval-{checkpoint}{}{precision}{data}.json", tta.file_suffix())
}

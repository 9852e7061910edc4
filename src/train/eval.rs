//! Evaluation: loss, top-1, per-class accuracy and confusion matrix over a loader.

use std::time::Instant;
use tch::{Kind, Reduction, Tensor};

use crate::data::loader::Loader;
use crate::metrics::{Confusion, EvalResult};
use crate::models::layers::autocast;
use crate::models::Model;

/// Logits with test-time augmentation (airbench's `infer`, Jordan 2024, arXiv 2404.00498):
/// level 0 = the images as they are; 1 = the mean with their mirror images; 2 = half that, half
/// the mirrored mean over the two diagonal 1-pixel translations (reflect padding).
pub fn tta_logits(model: &Model, x: &Tensor, compute: Option<Kind>, level: i64) -> Tensor {
    let net = |x: &Tensor| autocast(compute, || model.forward(x, false)).to_kind(Kind::Float);
    let mirror = |x: &Tensor| (net(x) + net(&x.flip([3]))) * 0.5;
    match level {
        0 => net(x),
        1 => mirror(x),
        _ => {
            let (h, w) = (x.size()[2], x.size()[3]);
            let padded = x.reflection_pad2d([1, 1, 1, 1]);
            let shifted = |o: i64| mirror(&padded.narrow(2, o, h).narrow(3, o, w));
            mirror(x) * 0.5 + (shifted(0) + shifted(2)) * 0.25
        }
    }
}

/// Evaluates `model` (in eval mode) on every batch of `loader`, computing conv/linear in
/// `compute` (None = fp32), with test-time augmentation level `tta` (see [`tta_logits`]).
pub fn evaluate(model: &Model, loader: &Loader, compute: Option<Kind>, num_classes: usize, tta: i64) -> EvalResult {
    let start = Instant::now();
    let _guard = tch::no_grad_guard();
    let mut confusion = Confusion::new(num_classes);
    let mut loss_sum = 0.0;
    let (mut predictions, mut confidences) = (Vec::new(), Vec::new());
    for batch in loader.epoch(0) {
        let logits = tta_logits(model, &batch.images, compute, tta);
        let loss = logits.cross_entropy_loss::<Tensor>(&batch.labels, None, Reduction::Sum, -100, 0.0);
        loss_sum += loss.double_value(&[]);
        let (conf, preds) = logits.softmax(1, Kind::Float).max_dim(1, false);
        let preds = Vec::<i64>::try_from(preds.to_device(tch::Device::Cpu)).unwrap_or_default();
        let labels = Vec::<i64>::try_from(batch.labels.to_device(tch::Device::Cpu)).unwrap_or_default();
        confusion.add(&labels, &preds);
        predictions.extend_from_slice(&preds);
        confidences.extend(Vec::<f32>::try_from(conf.to_device(tch::Device::Cpu)).unwrap_or_default());
    }
    let n = confusion.total().max(1) as f64;
    EvalResult {
        loss: loss_sum / n,
        acc: confusion.accuracy(),
        per_class_acc: confusion.per_class_accuracy(),
        confusion,
        secs: start.elapsed().as_secs_f64(),
        predictions,
        confidences,
    }
}

/// `eval.json`: final test metrics.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct EvalFile {
    /// Which checkpoint was evaluated.
    pub checkpoint: String,
    /// Top-1 accuracy.
    pub accuracy: f64,
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
    /// Predicted class per test image, in dataset order (empty in files of older versions).
    #[serde(default)]
    pub predictions: Vec<i64>,
    /// Softmax probability of each prediction, in dataset order.
    #[serde(default)]
    pub confidences: Vec<f32>,
}

impl EvalFile {
    /// Packs an evaluation for `eval.json`.
    pub fn new(r: &EvalResult, classes: &[String], checkpoint: &str) -> Self {
        EvalFile {
            checkpoint: checkpoint.into(),
            accuracy: r.acc,
            loss: r.loss,
            classes: classes.to_vec(),
            per_class_accuracy: r.per_class_acc.clone(),
            confusion_matrix: r.confusion.counts.clone(),
            eval_secs: r.secs,
            predictions: r.predictions.clone(),
            confidences: r.confidences.clone(),
        }
    }
}

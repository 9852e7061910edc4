//! The loop's named callback points. Loggers (JSONL, console, TensorBoard...) implement
//! [`Callback`]; a failing logger warns and never stops training.

use serde::Serialize;

use crate::config::Config;
use crate::metrics::EvalResult;

/// A training step's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct StepInfo {
    /// 1-based epoch.
    pub epoch: i64,
    /// Optimizer steps completed so far.
    pub step: i64,
    /// Batch loss.
    pub loss: f64,
    /// Batch top-1 accuracy.
    pub acc: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Images per second over the epoch so far.
    pub img_per_s: f64,
}

/// One epoch's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct EpochInfo {
    /// 1-based epoch.
    pub epoch: i64,
    /// Optimizer steps completed so far.
    pub step: i64,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch (on augmented images).
    pub train_acc: f64,
    /// Validation metrics.
    pub val: EvalResult,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Training images per second.
    pub img_per_s: f64,
    /// Wall time of the epoch's training part.
    pub epoch_secs: f64,
    /// Whether this epoch set a new best validation accuracy.
    pub is_best: bool,
}

/// Context given at the start of `fit`.
#[derive(Debug, Clone)]
pub struct FitInfo<'a> {
    /// The resolved config.
    pub config: &'a Config,
    /// First epoch to run (1-based; > 1 when resuming).
    pub start_epoch: i64,
    /// Optimizer steps already taken (> 0 when resuming, possibly mid-epoch).
    pub start_step: i64,
    /// Optimizer steps per epoch (batches / `train.accumulate_steps`).
    pub steps_per_epoch: usize,
    /// Images per batch.
    pub batch_size: i64,
}

/// Named points of the training loop. Every method has an empty default.
pub trait Callback {
    /// Before the first epoch.
    fn fit_start(&mut self, _info: &FitInfo) {}
    /// Before each epoch.
    fn epoch_start(&mut self, _epoch: i64) {}
    /// After each optimizer step.
    fn batch_end(&mut self, _step: &StepInfo) {}
    /// After each epoch's evaluation and checkpoint.
    fn epoch_end(&mut self, _epoch: &EpochInfo) {}
    /// After the last epoch, with the final test evaluation.
    fn fit_end(&mut self, _test: &EvalResult) {}
    /// A divergence restore took the run back to optimizer step `step`: what was reported after
    /// it is void (the steps are trained again).
    fn rewound(&mut self, _step: i64) {}
}

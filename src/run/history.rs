//! A run's recorded history, read back from `metrics.jsonl` (epoch and step lines) and
//! `eval.json`: what the plots, the report and `compare` draw from.

use serde_json::Value;
use std::path::Path;

use super::EvalFile;
use crate::error::{Error, Result};
use crate::metrics::median;

/// One epoch's train and validation numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpochRow {
    /// 1-based epoch.
    pub epoch: i64,
    /// Optimizer steps completed at the end of the epoch.
    pub step: i64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (augmented images).
    pub train_acc: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_acc: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Training images/s.
    pub img_per_s: f64,
    /// Training seconds of the epoch.
    pub epoch_secs: f64,
}

/// A logged training step (every `train.log_every` steps).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepRow {
    /// Optimizer steps completed.
    pub step: i64,
    /// Batch loss.
    pub loss: f64,
    /// Learning rate used by the step.
    pub lr: f64,
}

/// Everything `metrics.jsonl` and `eval.json` hold about a run.
#[derive(Debug, Default)]
pub struct History {
    /// Epoch rows in order; a resumed epoch that was logged twice keeps its last line.
    pub epochs: Vec<EpochRow>,
    /// Step rows in order.
    pub steps: Vec<StepRow>,
    /// Final test evaluation, when the run finished.
    pub eval: Option<EvalFile>,
    /// Lines of `metrics.jsonl` that were not JSON and were skipped (a torn last line after a
    /// crash); the caller may warn.
    pub skipped_lines: usize,
}

impl History {
    /// Best validation accuracy over the epochs (None before the first validated epoch).
    pub fn best_val_acc(&self) -> Option<f64> {
        self.epochs.iter().map(|r| r.val_acc).filter(|a| a.is_finite()).reduce(f64::max)
    }

    /// Seconds spent training, summed over the epochs.
    pub fn train_secs(&self) -> f64 {
        self.epochs.iter().map(|r| r.epoch_secs).filter(|s| s.is_finite()).sum()
    }

    /// Median training throughput over the epochs (None before the first epoch).
    pub fn median_img_per_s(&self) -> Option<f64> {
        median(&self.epochs.iter().map(|r| r.img_per_s).filter(|v| v.is_finite()).collect::<Vec<_>>())
    }

    /// Reads `run/metrics.jsonl` (required) and `run/eval.json` (optional). Lines that are not
    /// JSON (a torn last line after a crash) are skipped.
    pub fn read(run: &Path) -> Result<History> {
        let path = run.join("metrics.jsonl");
        if !path.exists() {
            return Err(Error::Checkpoint(format!(
                "{} has no metrics.jsonl: expected a run directory written by `microvision train`",
                run.display()
            )));
        }
        // Bytes that are not UTF-8 (a torn write) spoil only their line, skipped as non-JSON.
        let bytes = std::fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        let text = String::from_utf8_lossy(&bytes);
        let parsed: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect();
        let mut h = History { skipped_lines: text.lines().count() - parsed.len(), ..History::default() };
        for v in parsed {
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            let (step, epoch) = (v["step"].as_i64().unwrap_or(0), v["epoch"].as_i64().unwrap_or(0));
            match (v["kind"].as_str(), v["split"].as_str()) {
                (Some("step"), _) => h.steps.push(StepRow { step, loss: f("loss"), lr: f("lr") }),
                (Some("epoch"), Some("train")) => {
                    h.epochs.retain(|r| r.epoch < epoch);
                    h.epochs.push(EpochRow {
                        epoch,
                        step,
                        train_loss: f("loss"),
                        train_acc: f("acc"),
                        lr: f("lr"),
                        img_per_s: f("img_per_s"),
                        epoch_secs: f("epoch_secs"),
                        val_loss: f64::NAN,
                        val_acc: f64::NAN,
                    });
                }
                (Some("epoch"), Some("val")) => {
                    if let Some(r) = h.epochs.iter_mut().rev().find(|r| r.epoch == epoch) {
                        (r.val_loss, r.val_acc) = (f("loss"), f("acc"));
                    }
                }
                _ => {}
            }
        }
        // An eval.json that cannot be read at all is as good as none; one that is not an
        // evaluation is an error.
        let eval_path = run.join("eval.json");
        if std::fs::read(&eval_path).is_ok() {
            h.eval = Some(EvalFile::read(&eval_path)?);
        }
        Ok(h)
    }

    /// `(epoch, value)` points of one epoch column.
    pub fn series(&self, f: impl Fn(&EpochRow) -> f64) -> Vec<(f64, f64)> {
        self.epochs.iter().map(|r| (r.epoch as f64, f(r))).filter(|p| p.1.is_finite()).collect()
    }
}

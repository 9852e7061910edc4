//! `metrics.jsonl`: one JSON object per line: an `"epoch"` line per epoch (train and validation
//! metrics) and a `"step"` line every `train.log_every` steps.

use serde_json::json;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::train::callbacks::{Callback, EpochInfo, StepInfo};

/// Appends metric lines to a file.
pub struct JsonlLogger {
    path: PathBuf,
    file: Option<File>,
    log_every: i64,
}

impl JsonlLogger {
    /// Appends to `path` (created if missing); step lines every `log_every` steps (0 = none).
    pub fn new(path: &Path, log_every: i64) -> Self {
        let file = OpenOptions::new().create(true).append(true).open(path);
        if let Err(e) = &file {
            eprintln!("warning: cannot open {}: {e}; metrics will not be logged there", path.display());
        }
        JsonlLogger { path: path.to_path_buf(), file: file.ok(), log_every }
    }

    fn write(&mut self, value: serde_json::Value) {
        if let Some(f) = &mut self.file {
            if let Err(e) = writeln!(f, "{value}").and_then(|_| f.flush()) {
                eprintln!("warning: cannot write {}: {e}", self.path.display());
            }
        }
    }
}

impl Callback for JsonlLogger {
    fn batch_end(&mut self, s: &StepInfo) {
        if self.log_every > 0 && s.step % self.log_every == 0 {
            self.write(json!({"kind": "step", "epoch": s.epoch, "step": s.step, "split": "train",
                "loss": s.loss, "acc": s.acc, "lr": s.lr, "img_per_s": s.img_per_s}));
        }
    }

    fn epoch_end(&mut self, e: &EpochInfo) {
        self.write(json!({"kind": "epoch", "epoch": e.epoch, "step": e.step, "split": "train",
            "loss": e.train_loss, "acc": e.train_acc, "lr": e.lr, "img_per_s": e.img_per_s, "epoch_secs": e.epoch_secs}));
        self.write(json!({"kind": "epoch", "epoch": e.epoch, "step": e.step, "split": "val",
            "loss": e.val.loss, "acc": e.val.acc, "eval_secs": e.val.secs, "is_best": e.is_best}));
    }
}

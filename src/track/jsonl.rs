//! `metrics.jsonl`: one JSON object per line: per epoch a `"train"` and a `"val"` line, a
//! `"step"` line every `train.log_every` steps, and a `"test"` line at the end. Each `"val"` line
//! says in `"scored_on"` which images it was scored on: `"val"` (held out of the training images),
//! or `"test"` when the run has no validation split (`data.val_split` = 0). This logger is
//! the file's only writer: it also drops the lines a resumed or rewound run trains again
//! (`run::History` reads it back).

use serde_json::{json, Map, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Logger, MetricKind, Metrics};
use crate::config::Config;
use crate::error::{Error, Result};

/// Appends metric lines to a file.
pub struct JsonlLogger {
    path: PathBuf,
    file: Option<File>,
    /// The split the per-epoch evaluation ran on: `"val"`, or `"test"` without a validation split.
    scored_on: &'static str,
}

impl JsonlLogger {
    /// Appends to `path` (created if missing).
    pub fn new(path: &Path) -> Self {
        let file = OpenOptions::new().create(true).append(true).open(path);
        if let Err(e) = &file {
            crate::notice::warn(format!("cannot open {}: {e}; metrics will not be logged there", path.display()));
        }
        JsonlLogger { path: path.to_path_buf(), file: file.ok(), scored_on: "val" }
    }

    fn write(&mut self, value: Value) -> Result<()> {
        match &mut self.file {
            Some(f) => {
                writeln!(f, "{value}").and_then(|_| f.flush()).map_err(|e| Error::io("cannot write", &self.path, e))
            }
            None => Ok(()),
        }
    }
}

/// One line: `{"kind", "epoch", "step", "split", <values without the split prefix>}`.
fn line(kind: &str, split: &str, m: &Metrics, values: &[(&str, f64)]) -> Value {
    let mut obj = Map::new();
    obj.insert("kind".into(), json!(kind));
    obj.insert("epoch".into(), json!(m.epoch));
    obj.insert("step".into(), json!(m.step));
    obj.insert("split".into(), json!(split));
    for (name, v) in values {
        let key = name.split_once('/').map_or(*name, |(_, k)| k);
        let value = if key == "is_best" { json!(*v != 0.0) } else { json!(v) };
        obj.insert(key.into(), value);
    }
    Value::Object(obj)
}

impl Logger for JsonlLogger {
    fn name(&self) -> &'static str {
        "metrics.jsonl"
    }

    fn log_params(&mut self, cfg: &Config) -> Result<()> {
        // The config itself is in the run's config.toml.
        self.scored_on = if cfg.data.val_split == 0.0 { "test" } else { "val" };
        Ok(())
    }

    /// The lines an interrupted session logged after the checkpoint the run resumes from are
    /// void: the steps are trained again.
    fn resume_after(&mut self, step: i64) -> Result<()> {
        self.rewind_to(step)
    }

    fn rewind_to(&mut self, step: i64) -> Result<()> {
        self.file = None; // the rewrite replaces the file: append to the new one
        truncate_after(&self.path, step)?;
        *self = JsonlLogger { scored_on: self.scored_on, ..JsonlLogger::new(&self.path) };
        Ok(())
    }

    fn log_metrics(&mut self, m: &Metrics) -> Result<()> {
        match m.kind {
            MetricKind::Step => self.write(line("step", "train", m, m.values)),
            MetricKind::Test => self.write(line("test", "test", m, m.values)),
            MetricKind::Epoch => {
                let (val, train): (Vec<_>, Vec<_>) = m.values.iter().partition(|(n, _)| n.starts_with("val/"));
                self.write(line("epoch", "train", m, &train))?;
                let mut val = line("epoch", "val", m, &val);
                val["scored_on"] = json!(self.scored_on);
                self.write(val)
            }
        }
    }

    fn log_artifact(&mut self, _path: &Path, _name: &str) -> Result<()> {
        Ok(()) // artifacts live in the run directory already
    }

    fn close(&mut self) -> Result<()> {
        self.file = None;
        Ok(())
    }
}

/// Drops the `metrics.jsonl` lines logged after optimizer step `step` (written by a run that was
/// interrupted after its last checkpoint), so a resumed run's log has no duplicates. Atomic.
fn truncate_after(path: &Path, step: i64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let keep: Vec<&str> = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("step").and_then(serde_json::Value::as_i64))
                .is_some_and(|s| s <= step)
        })
        .collect();
    let mut out = keep.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    crate::fsio::write_atomic(path, out.as_bytes())
}

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
        self.scored_on = cfg.data.scored_on();
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

/// One line of `metrics.jsonl` read back as the [`Metrics`] it was written from: names with
/// their split prefix again (`train/loss`, `val/acc`, `test/acc`; a step line's and the
/// run-level values without one), booleans as 1/0, text fields left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// What the values describe.
    pub kind: MetricKind,
    /// 1-based epoch.
    pub epoch: i64,
    /// Optimizer steps completed.
    pub step: i64,
    /// `(name, value)` in the file's order.
    pub values: Vec<(String, f64)>,
}

/// Values of an epoch's `"train"` line that are the run's, not the split's (see
/// [`super::epoch_values`]): written without a prefix.
const RUN_LEVEL: &[&str] = &["lr", "img_per_s", "epoch_secs"];

/// The records of the `metrics.jsonl` at `path`, in order; lines that do not parse are skipped
/// (as [`crate::run::History`] skips them).
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
    let records = text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter_map(|v| {
        let (kind, prefix) = match (v["kind"].as_str()?, v["split"].as_str()?) {
            ("step", _) => (MetricKind::Step, ""),
            ("epoch", "train") => (MetricKind::Epoch, "train/"),
            ("epoch", "val") => (MetricKind::Epoch, "val/"),
            ("test", _) => (MetricKind::Test, "test/"),
            _ => return None,
        };
        let values = v
            .as_object()?
            .iter()
            .filter(|(k, _)| !["kind", "split", "epoch", "step", "scored_on"].contains(&k.as_str()))
            .filter_map(|(k, x)| {
                let value = x.as_f64().or_else(|| x.as_bool().map(|b| if b { 1.0 } else { 0.0 }))?;
                let name = if kind == MetricKind::Step || (prefix == "train/" && RUN_LEVEL.contains(&k.as_str())) {
                    k.clone()
                } else {
                    format!("{prefix}{k}")
                };
                Some((name, value))
            })
            .collect();
        Some(Record { kind, epoch: v["epoch"].as_i64()?, step: v["step"].as_i64()?, values })
    });
    Ok(records.collect())
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

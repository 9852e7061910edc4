//! Weights & Biases sink. W&B has no logging API for other languages and its file format is
//! internal, so a helper process in the project's venv (`wandb_helper.py`, embedded) holds the
//! run through W&B's own SDK and this logger feeds it: the config, per-epoch metrics, `batch/*`
//! steps, `test/*`, the plots as images and `eval.json` / `config.toml` as files. The run's W&B
//! id is kept in `RUN/wandb_run_id`, so a resumed run continues its W&B run; offline runs are
//! written under `RUN/wandb/` (upload them with `wandb sync`). A run that ends without `close`
//! (an error, Ctrl-C) finishes with exit code 1, which W&B shows as failed.

use serde_json::{json, Map, Value};
use std::path::Path;

use super::{Logger, Metrics};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pyproc::{Helper, HelperKind};

const HELPER: &str = include_str!("wandb_helper.py");

/// The W&B SDK version the helper is written and tested against (requirements.lock).
pub const WANDB_VERSION: &str = "0.31.0";

const HOW: &str = "the wandb package is installed in the project's venv by `scripts/setup.sh --python` \
     (requirements.lock); elsewhere `pip install wandb==0.31.0`, or set MICROVISION_PYTHON to a Python that has it";

/// Where and how a run goes to W&B.
#[derive(Debug, Clone)]
pub struct WandbTarget {
    /// Project.
    pub project: String,
    /// Entity (empty: the default one).
    pub entity: String,
    /// "online" or "offline".
    pub mode: String,
}

impl WandbTarget {
    /// The target a config names; `WANDB_MODE` in the environment overrides its mode, as it
    /// does for every W&B program.
    pub fn from_config(cfg: &Config) -> WandbTarget {
        Self::with_mode(cfg, None)
    }

    /// [`WandbTarget::from_config`] with the mode `mode` instead of the config's when given
    /// (`sync wandb --mode`); `WANDB_MODE` still overrides both.
    pub fn with_mode(cfg: &Config, mode: Option<&str>) -> WandbTarget {
        let env_mode = std::env::var("WANDB_MODE").ok().filter(|m| !m.is_empty());
        let mode = env_mode.unwrap_or_else(|| mode.unwrap_or(&cfg.track.wandb_mode).to_string());
        WandbTarget { project: cfg.track.wandb_project.clone(), entity: cfg.track.wandb_entity.clone(), mode }
    }
}

/// A run on W&B, through the helper.
pub struct WandbLogger {
    helper: Helper,
    /// The W&B run id.
    pub run_id: String,
    /// Where the offline run was written (offline mode only).
    pub offline_dir: Option<String>,
    /// The run's page (online mode only).
    pub url: Option<String>,
    closed: bool,
    /// The highest optimizer step logged: where the plots go.
    last_step: i64,
    /// Whether a rewind was reported (once).
    warned_rewind: bool,
}

/// A fresh W&B run id: 8 characters of [a-z0-9], as W&B makes them.
fn new_run_id() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..8).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

impl WandbLogger {
    /// Starts (or, with `RUN/wandb_run_id`, continues) the W&B run of `run_dir`.
    pub fn start(target: &WandbTarget, run_dir: &Path) -> Result<Self> {
        let id_file = run_dir.join("wandb_run_id");
        let run_id = match std::fs::read_to_string(&id_file) {
            Ok(id) => id.trim().to_string(),
            Err(_) => new_run_id(),
        };
        let kind = HelperKind { name: "the W&B helper", module: "wandb", how: HOW };
        let mut helper = Helper::start(crate::pyproc::python(), HELPER, kind)?;
        let version = helper.call("version", json!({})).map_err(|e| Error::Runtime(format!("{e}; {HOW}")))?;
        let got = version["wandb"].as_str().unwrap_or("?");
        if got != WANDB_VERSION {
            crate::notice::warn(format!(
                "{} has wandb {got}; microvision is tested with {WANDB_VERSION}",
                helper.python().display()
            ));
        }
        let name = run_dir.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let init = json!({
            "project": target.project, "entity": target.entity, "mode": target.mode, "id": run_id,
            "name": name, "dir": run_dir, "tags": ["microvision"],
        });
        let ok = helper.call("init", init)?;
        crate::fsio::write_atomic(&id_file, run_id.as_bytes())?;
        let text = |k: &str| ok[k].as_str().map(String::from);
        Ok(WandbLogger {
            helper,
            run_id,
            offline_dir: text("offline_dir"),
            url: text("url"),
            closed: false,
            last_step: 0,
            warned_rewind: false,
        })
    }

    /// Ends the run with `exit_code` (0: finished; W&B shows others as failed).
    pub fn finish(&mut self, exit_code: i32) -> Result<()> {
        self.closed = true;
        self.helper.call("finish", json!({"exit_code": exit_code})).map(|_| ())
    }
}

impl Logger for WandbLogger {
    fn name(&self) -> &'static str {
        "W&B"
    }

    fn log_params(&mut self, cfg: &Config) -> Result<()> {
        let values: Map<String, Value> =
            cfg.leaves().into_iter().map(|(k, v)| (k, serde_json::to_value(v).unwrap_or(Value::Null))).collect();
        self.helper.call("config", json!({ "values": values })).map(|_| ())
    }

    fn log_metrics(&mut self, m: &Metrics) -> Result<()> {
        let mut values: Map<String, Value> =
            m.values.iter().filter(|(_, v)| v.is_finite()).map(|(k, v)| (m.tracker_name(k), json!(v))).collect();
        values.insert("epoch".into(), json!(m.epoch));
        self.last_step = self.last_step.max(m.step);
        self.helper.call("log", json!({"step": m.step, "values": values})).map(|_| ())
    }

    fn log_artifact(&mut self, path: &Path, name: &str) -> Result<()> {
        let base = path.ancestors().nth(Path::new(name).components().count()).unwrap_or(path);
        if name.ends_with(".png") {
            // plots/accuracy.png -> the image "plots/accuracy", at the run's last step.
            let key = name.trim_end_matches(".png");
            self.helper.call("image", json!({"key": key, "path": path, "step": self.last_step})).map(|_| ())
        } else if name.ends_with(".svg") {
            Ok(()) // the same plots as the PNGs
        } else {
            self.helper.call("file", json!({"path": path, "base": base})).map(|_| ())
        }
    }

    /// W&B keeps only increasing steps: the values a divergence restore voids stay in W&B, and
    /// the steps trained again are dropped there (metrics.jsonl and TensorBoard have the rewound
    /// history). Said once.
    fn rewind_to(&mut self, step: i64) -> Result<()> {
        if !self.warned_rewind && step < self.last_step {
            self.warned_rewind = true;
            crate::notice::warn(format!(
                "W&B keeps the steps after {step} that the divergence restore voided (it accepts only increasing \
                 steps); metrics.jsonl and TensorBoard hold the rewound history"
            ));
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        self.finish(0)
    }
}

impl Drop for WandbLogger {
    fn drop(&mut self) {
        // Dropped without `close`: training stopped early or logging failed.
        if !self.closed {
            let _ = self.finish(1);
        }
    }
}

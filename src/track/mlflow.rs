//! MLflow sink over MLflow's REST API (`/api/2.0/mlflow/...`): the config as params, metrics per
//! epoch (and per logged step, as `batch/*`), the plots as artifacts through the server's artifact
//! proxy (`mlflow-artifacts`), and the run's status. A resumed run continues its MLflow run (the
//! id is kept in `RUN/mlflow_run_id`). A run that ends without `close` (an error, Ctrl-C) is marked
//! KILLED. Every request has a timeout, so a hung server cannot hang training.

use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Logger, Metrics};
use crate::config::Config;
use crate::error::{Error, Result};

/// MLflow's limits per `log-batch` request (params; metrics).
const MAX_PARAMS: usize = 100;
const MAX_PARAM_CHARS: usize = 6000;

/// A run on an MLflow tracking server.
pub struct MlflowLogger {
    base: String,
    agent: ureq::Agent,
    run_id: String,
    /// `mlflow-artifacts:/<exp>/<run>/artifacts` → the part after the scheme; None when the server
    /// stores artifacts where we cannot upload them.
    artifact_path: Option<String>,
    warned_artifacts: bool,
    closed: bool,
    /// A request failed (the logger is then dropped): the run is marked FAILED, not KILLED.
    failed: std::cell::Cell<bool>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn err(uri: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Runtime(format!("MLflow server {uri}: {what}: {e}"))
}

impl MlflowLogger {
    /// Connects to `uri`, finds or creates `experiment`, and creates (or, for a resumed run,
    /// reopens) the MLflow run of `run_dir`, nested under run `parent` when not empty (a tuning
    /// study's run: MLflow's `mlflow.parentRunId` tag).
    pub fn start(uri: &str, experiment: &str, run_dir: &Path, parent: &str) -> Result<Self> {
        let id_file = run_dir.join("mlflow_run_id");
        if let Ok(id) = std::fs::read_to_string(&id_file) {
            return Self::open(uri, id.trim());
        }
        let name = run_dir.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let dir = run_dir.display().to_string();
        let mut tags = vec![("microvision.run_dir", dir.as_str())];
        if !parent.is_empty() {
            tags.push(("mlflow.parentRunId", parent));
        }
        let me = Self::create(uri, experiment, &name, &tags)?;
        crate::fsio::write_atomic(&id_file, me.run_id.as_bytes())?;
        Ok(me)
    }

    /// Creates a run named `name` with `tags` in `experiment` (created when missing).
    pub fn create(uri: &str, experiment: &str, name: &str, tags: &[(&str, &str)]) -> Result<Self> {
        let mut me = Self::client(uri);
        let exp = me.experiment_id(experiment)?;
        let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        let body = json!({"experiment_id": exp, "run_name": name, "start_time": now_ms(), "tags": tags});
        let run = me.call("POST", "runs/create", Some(body))?;
        me.attach(&run["run"]["info"]);
        Ok(me)
    }

    /// Reopens run `run_id` (marked RUNNING again).
    pub fn open(uri: &str, run_id: &str) -> Result<Self> {
        let mut me = Self::client(uri);
        let run = me.call("GET", &format!("runs/get?run_id={}", urlencode(run_id)), None)?;
        me.call("POST", "runs/update", Some(json!({"run_id": run_id, "status": "RUNNING"})))?;
        me.attach(&run["run"]["info"]);
        Ok(me)
    }

    fn client(uri: &str) -> Self {
        MlflowLogger {
            base: uri.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build(),
            run_id: String::new(),
            artifact_path: None,
            warned_artifacts: false,
            closed: false,
            failed: Default::default(),
        }
    }

    fn attach(&mut self, info: &Value) {
        self.run_id = info["run_id"].as_str().unwrap_or_default().to_string();
        let uri_field = info["artifact_uri"].as_str().unwrap_or_default();
        self.artifact_path = uri_field.strip_prefix("mlflow-artifacts:").map(|p| p.trim_start_matches('/').to_string());
    }

    /// Logs one metric value at `step`.
    pub fn log_value(&self, key: &str, value: f64, step: i64) -> Result<()> {
        let m = json!({"key": key, "value": value, "timestamp": now_ms(), "step": step});
        self.call("POST", "runs/log-batch", Some(json!({"run_id": self.run_id, "metrics": [m]}))).map(|_| ())
    }

    /// Marks the run FINISHED and lets it go.
    pub fn finish_ok(mut self) -> Result<()> {
        self.finish("FINISHED")
    }

    /// Lets the run go as it is (RUNNING), for another process to finish.
    pub fn detach(mut self) {
        self.closed = true;
    }

    /// Deletes the run (a study run made twice by racing workers).
    pub fn delete(mut self) -> Result<()> {
        self.closed = true;
        self.call("POST", "runs/delete", Some(json!({"run_id": self.run_id}))).map(|_| ())
    }

    /// The MLflow run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn experiment_id(&self, name: &str) -> Result<String> {
        let q = format!("experiments/get-by-name?experiment_name={}", urlencode(name));
        match self.call("GET", &q, None) {
            Ok(v) => Ok(v["experiment"]["experiment_id"].as_str().unwrap_or_default().to_string()),
            Err(_) => {
                self.failed.set(false); // "does not exist" is the expected answer for a new experiment
                let v = self.call("POST", "experiments/create", Some(json!({"name": name})))?;
                Ok(v["experiment_id"].as_str().unwrap_or_default().to_string())
            }
        }
    }

    /// One REST call to `/api/2.0/mlflow/<path>`; MLflow's error message on failure.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let req = self.agent.request(method, &url);
        let resp = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(&b.to_string()),
            None => req.call(),
        };
        match resp {
            Ok(r) => {
                let text = r.into_string().map_err(|e| err(&self.base, path, e))?;
                serde_json::from_str(&text).map_err(|e| err(&self.base, path, e))
            }
            Err(ureq::Error::Status(code, r)) => {
                self.failed.set(true);
                let text = r.into_string().unwrap_or_default();
                Err(err(&self.base, path, format!("HTTP {code}: {}", text.chars().take(300).collect::<String>())))
            }
            Err(e) => {
                self.failed.set(true);
                Err(err(&self.base, path, e))
            }
        }
    }

    fn finish(&mut self, status: &str) -> Result<()> {
        self.closed = true;
        let body = json!({"run_id": self.run_id, "status": status, "end_time": now_ms()});
        self.call("POST", "runs/update", Some(body)).map(|_| ())
    }
}

/// The config flattened to `section.key = value` pairs (text without its TOML quotes).
pub fn flatten_params(cfg: &Config) -> Vec<(String, String)> {
    cfg.leaves()
        .into_iter()
        .map(|(k, v)| match v {
            toml::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Logger for MlflowLogger {
    fn name(&self) -> &'static str {
        "MLflow"
    }

    fn log_params(&mut self, cfg: &Config) -> Result<()> {
        let params: Vec<Value> = flatten_params(cfg)
            .into_iter()
            .map(|(k, v)| json!({"key": k, "value": v.chars().take(MAX_PARAM_CHARS).collect::<String>()}))
            .collect();
        for chunk in params.chunks(MAX_PARAMS) {
            // A resumed run logs the same params again; MLflow accepts equal values.
            self.call("POST", "runs/log-batch", Some(json!({"run_id": self.run_id, "params": chunk})))?;
        }
        Ok(())
    }

    fn log_metrics(&mut self, m: &Metrics) -> Result<()> {
        let ts = now_ms();
        let metrics: Vec<Value> = m
            .values
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| json!({"key": m.tracker_name(k), "value": v, "timestamp": ts, "step": m.step}))
            .collect();
        self.call("POST", "runs/log-batch", Some(json!({"run_id": self.run_id, "metrics": metrics}))).map(|_| ())
    }

    fn log_artifact(&mut self, path: &Path, name: &str) -> Result<()> {
        let Some(root) = &self.artifact_path else {
            if !self.warned_artifacts {
                crate::notice::warn(format!("MLflow server {} does not proxy artifacts (start it with --serve-artifacts); plots stay in the run directory", self.base));
                self.warned_artifacts = true;
            }
            return Ok(());
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{root}/{name}", self.base);
        let ctype = if name.ends_with(".png") { "image/png" } else { "application/octet-stream" };
        self.agent
            .put(&url)
            .set("Content-Type", ctype)
            .send_bytes(&bytes)
            .map_err(|e| err(&self.base, &format!("upload {name}"), e))?;
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        self.finish("FINISHED")
    }
}

impl Drop for MlflowLogger {
    fn drop(&mut self) {
        // Dropped without `close`: logging failed (FAILED) or training stopped early (KILLED).
        if !self.closed && !self.run_id.is_empty() {
            let _ = self.finish(if self.failed.get() { "FAILED" } else { "KILLED" });
        }
    }
}

//! `env.json`, typed: the provenance a run records when it starts (code, libraries, machine,
//! data files, normalisation, seed) and its peak memory when it ends.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::fsio::write_json;

/// `env.json`: where and how the run was made (provenance). Every field has a default, so the
/// files of earlier versions, which lacked some, read back; unknown fields are ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Env {
    /// `git rev-parse HEAD` of the working directory ("unknown" outside a checkout).
    pub git_commit: String,
    /// Whether tracked files differ from that commit (`git status`), so the commit alone does
    /// not say what code ran; null outside a checkout.
    pub git_dirty: Option<bool>,
    /// microvision's version.
    pub microvision_version: String,
    /// tch crate version.
    pub tch_version: String,
    /// LibTorch version the binary was built against.
    pub libtorch_version: String,
    /// "cpu" or "cuda:N".
    pub device: String,
    /// fp32 / bf16 / fp16.
    pub precision: String,
    /// CPU model.
    pub cpu_model: String,
    /// Relevant CPU feature flags.
    pub cpu_flags: Vec<String>,
    /// Intra-op threads.
    pub threads: i64,
    /// Data directory and MD5 of each file.
    pub data_dir: PathBuf,
    /// MD5 sums (file, hex).
    pub data_md5: Vec<(String, String)>,
    /// Per-channel normalisation mean used (published, or computed from the training split).
    pub norm_mean: Vec<f64>,
    /// Per-channel normalisation std used.
    pub norm_std: Vec<f64>,
    /// Seed.
    pub seed: u64,
    /// Trainable parameters.
    pub num_params: i64,
    /// Multiply-accumulates per image.
    pub macs_per_image: u64,
    /// Peak resident memory of the process in bytes (filled at the end of training).
    pub peak_rss_bytes: u64,
    /// Where `model.init_from`'s weights came from: the file, its CRC32C, and for a run the
    /// checkpoint's epoch and step; absent for a random initialisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<InitFrom>,
    /// The resolved config the run started with (TOML), its recipe: a resume whose `config.toml`
    /// differs is refused. Absent in runs of earlier versions (not checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The overrides given to resumes (`train --resume RUN --set key=value`), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resume_overrides: Vec<super::recipe::ResumeOverride>,
}

/// Where `model.init_from`'s weights came from: a run's checkpoint (`run`, `checkpoint`, `epoch`,
/// `step`, the tensor files' CRC32Cs) or a safetensors file (`file`, `crc32c`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InitFrom {
    /// The source run directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<PathBuf>,
    /// Its checkpoint the weights were taken from (`last`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// The epoch the source had reached then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// The optimizer steps the source had taken then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    /// CRC32C of the checkpoint's weight file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights_crc32c: Option<String>,
    /// CRC32C of the checkpoint's optimizer-state file (which holds the weight average).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optim_crc32c: Option<String>,
    /// The source safetensors file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Its CRC32C.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
}

impl Env {
    /// Reads `run/env.json`; `None` when it is missing or not JSON (a run killed before
    /// writing it). A field that does not parse (a hand edit; a NaN written as `null`) takes its
    /// default and the others are still read, as per-field reads of the JSON would.
    pub fn read(run: &Path) -> Option<Env> {
        let Value::Object(file) = Env::read_value(run)? else { return None };
        let Ok(Value::Object(mut merged)) = serde_json::to_value(Env::default()) else { return None };
        for (key, value) in file {
            let mut candidate = merged.clone();
            candidate.insert(key.clone(), value.clone());
            if serde_json::from_value::<Env>(Value::Object(candidate)).is_ok() {
                merged.insert(key, value);
            }
        }
        serde_json::from_value(Value::Object(merged)).ok()
    }

    /// `run/env.json` as written, every key (earlier or later versions' too), for showing it
    /// whole (the report's environment table).
    pub fn read_value(run: &Path) -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(run.join("env.json")).ok()?).ok()
    }

    /// Writes `run/env.json` atomically.
    pub fn write(&self, run: &Path) -> Result<()> {
        write_json(&run.join("env.json"), self)
    }

    /// The normalisation statistics recorded (`norm_mean`, `norm_std`), when both are there and
    /// agree in length.
    pub fn normalisation(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        let (m, s) = (&self.norm_mean, &self.norm_std);
        (!m.is_empty() && m.len() == s.len()).then(|| (m.clone(), s.clone()))
    }
}

/// Rewrites `env.json`'s `peak_rss_bytes` with the process's peak so far (called at the end),
/// every other key as it was.
pub fn update_peak_memory(run: &Path) -> Result<()> {
    let Some(mut env) = Env::read_value(run) else { return Ok(()) };
    env["peak_rss_bytes"] = super::peak_rss_bytes().into();
    write_json(&run.join("env.json"), &env)
}

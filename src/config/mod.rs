//! The typed experiment config: one TOML file (see `configs/`) with sections for data,
//! augmentation, model, optimizer, schedule, training, output and tracking, plus `--set
//! section.key=value` overrides.
//!
//! Loading goes TOML text -> `toml::Value` -> unknown-key check (with did-you-mean) -> serde ->
//! range/consistency validation, so every error names the file, the key, the bad value and what
//! was expected.

mod choice;
mod data;
mod dataset;
mod load;
mod optim;
mod train;
mod validate;

pub use validate::{check_early_stopping, check_wandb_mode, is_valid_name, DEVICES, PRECISIONS};

pub use choice::{
    AugmentPolicy, DeviceChoice, EarlyStopMetric, FlipMode, OnCorrupt, OnNan, OptimName, PadMode, PrecisionChoice,
    ScheduleName,
};
pub use data::{AugmentConfig, DataConfig};
pub use dataset::{dataset_facts, DatasetFacts, DATASETS};
pub use load::{apply_override, suggest};
pub use optim::OptimConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
pub use train::{TrainConfig, Tta};

/// Appended to the run name of an `lr-find` sweep: its directory is `<name>-lrfind-<time>`, and
/// new runs may not use it in their names.
pub const LR_SWEEP_SUFFIX: &str = "-lrfind";

use crate::error::Result;

/// The whole experiment description. `Config::default()` is a valid config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Run name: the run directory is `<output.runs_dir>/<name>-<timestamp>`.
    pub name: String,
    /// Dataset and input pipeline.
    pub data: DataConfig,
    /// Recipe augmentations beyond crop and flip (all off by default).
    pub augment: AugmentConfig,
    /// Architecture, looked up by name in the model registry.
    pub model: ModelConfig,
    /// Optimizer and its hyper-parameters.
    pub optim: OptimConfig,
    /// Learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Training loop settings.
    pub train: TrainConfig,
    /// Where runs and checkpoints go.
    pub output: OutputConfig,
    /// Extra experiment trackers (metrics.jsonl and TensorBoard are always written).
    pub track: TrackConfig,
}

/// `[model]`: the architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Registry name (`microvision models` lists them).
    pub name: String,
    /// Dropout probability where the architecture has dropout.
    pub dropout: f64,
    /// Stochastic-depth rate of the last residual block, rising linearly from 0 (EfficientNet).
    pub drop_path: f64,
    /// Start from these trained weights instead of a random initialisation: a run directory (its
    /// `last` checkpoint; its EMA weights where it kept an EMA) or a safetensors file
    /// (`microvision export`). Tensors whose shape differs (another class count) keep their fresh
    /// initialisation. New runs only; empty for none.
    pub init_from: String,
    /// `searchnet`'s architecture (the searchable family); other models ignore it.
    pub arch: ArchConfig,
}

/// `[model.arch]`: the architecture of `searchnet`, three stages at 32, 16 and 8 pixels (for
/// 32x32 inputs), each a stack of blocks of one type; scalar keys, so that a search space can
/// give each its own distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchConfig {
    /// Output channels of stage 1 (and of the stem).
    pub width1: i64,
    /// Output channels of stage 2.
    pub width2: i64,
    /// Output channels of stage 3.
    pub width3: i64,
    /// Blocks in stage 1.
    pub depth1: i64,
    /// Blocks in stage 2.
    pub depth2: i64,
    /// Blocks in stage 3.
    pub depth3: i64,
    /// Block type: "basic" (two convs, He et al. 2016), "bottleneck" (1x1, kxk, 1x1 at a quarter
    /// of the width) or "inverted" (MobileNetV2's expand x4, depthwise kxk, project).
    pub block: String,
    /// Kernel size of the blocks' spatial convolutions (1, 3, 5 or 7).
    pub kernel: i64,
}

impl Default for ArchConfig {
    fn default() -> Self {
        ArchConfig {
            width1: 32,
            width2: 64,
            width3: 128,
            depth1: 1,
            depth2: 1,
            depth3: 1,
            block: "basic".into(),
            kernel: 3,
        }
    }
}

/// `[schedule]`: learning rate as a function of the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// "constant", "step", "multistep", "cosine", "linear", "onecycle" or "triangle"
    /// (linear from `peak / div_factor` up to the peak at `pct_start`, then linear down to
    /// `min_lr_ratio * peak`: airbench's schedule).
    pub name: ScheduleName,
    /// Linear warm-up length in epochs (constant, step, multistep, linear and cosine; onecycle and
    /// triangle rise by `pct_start` instead).
    pub warmup_epochs: f64,
    /// Step schedule: multiply the lr by `gamma` every `step_epochs` epochs.
    pub step_epochs: f64,
    /// Step and multi-step schedule factor.
    pub gamma: f64,
    /// Multi-step schedule: epochs (may be fractional) at which the lr is multiplied by `gamma`.
    pub milestones: Vec<f64>,
    /// Cosine and linear: final lr as a fraction of the peak.
    pub min_lr_ratio: f64,
    /// One-cycle: fraction of training spent rising to the peak.
    pub pct_start: f64,
    /// One-cycle: initial lr = peak / div_factor.
    pub div_factor: f64,
    /// One-cycle: final lr = initial lr / final_div_factor.
    pub final_div_factor: f64,
}

/// `[output]`: where a run writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Parent directory of run directories.
    pub runs_dir: PathBuf,
    /// Checkpoint directory, relative to the run directory.
    pub checkpoint_dir: PathBuf,
}

/// `[track]`: optional tracking sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackConfig {
    /// MLflow tracking server, e.g. `http://127.0.0.1:5000` (empty = off).
    pub mlflow_uri: String,
    /// MLflow experiment name (created when missing).
    pub mlflow_experiment: String,
    /// The MLflow run this run is nested under (its id; empty for none): `microvision tune`
    /// sets it to its study's run, so that the trials show under the study.
    pub mlflow_parent_run: String,
    /// Log the run to Weights & Biases through its Python SDK (the `wandb` package of the
    /// project's venv); a resumed run continues its W&B run (`RUN/wandb_run_id`).
    pub wandb: bool,
    /// W&B project (created when missing).
    pub wandb_project: String,
    /// W&B entity (user or team; empty = the logged-in user's default).
    pub wandb_entity: String,
    /// "online" (sent to the W&B server; needs `wandb login` or WANDB_API_KEY) or "offline"
    /// (written under `RUN/wandb/`, uploaded later with `wandb sync`). The environment
    /// variable WANDB_MODE, when set, overrides it.
    pub wandb_mode: String,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            mlflow_uri: String::new(),
            mlflow_experiment: "microvision".into(),
            mlflow_parent_run: String::new(),
            wandb: false,
            wandb_project: "microvision".into(),
            wandb_entity: String::new(),
            wandb_mode: "online".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "run".into(),
            data: DataConfig::default(),
            augment: AugmentConfig::default(),
            model: ModelConfig::default(),
            optim: OptimConfig::default(),
            schedule: ScheduleConfig::default(),
            train: TrainConfig::default(),
            output: OutputConfig::default(),
            track: TrackConfig::default(),
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            name: "simple_cnn".into(),
            dropout: 0.5,
            drop_path: 0.0,
            init_from: String::new(),
            arch: ArchConfig::default(),
        }
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            name: ScheduleName::OneCycle,
            warmup_epochs: 0.0,
            step_epochs: 10.0,
            gamma: 0.1,
            milestones: Vec::new(),
            min_lr_ratio: 0.0,
            pct_start: 0.25,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { runs_dir: PathBuf::from("runs"), checkpoint_dir: PathBuf::from("checkpoints") }
    }
}

/// The `MICROVISION_DATA` environment variable, when it is set and not empty.
pub fn data_env() -> Option<PathBuf> {
    std::env::var_os("MICROVISION_DATA").filter(|v| !v.is_empty()).map(PathBuf::from)
}

impl Config {
    /// Reads a TOML file, applies `--set` overrides (`section.key=value`) and the
    /// `MICROVISION_DATA` environment variable, and validates the result.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Config> {
        load::load_file(path, overrides, data_env())
    }

    /// The default config with `--set` overrides, as a new run sees it (`MICROVISION_DATA` applies).
    pub fn defaults(overrides: &[String]) -> Result<Config> {
        load::load_str("", "(defaults)", overrides, data_env(), true)
    }

    /// Parses TOML text (`origin` names it in errors) with overrides as [`Config::load`] reads a
    /// file: `MICROVISION_DATA` applies (a config built in memory, e.g. from a Python dict).
    pub fn from_text(text: &str, origin: &str, overrides: &[String]) -> Result<Config> {
        load::load_str(text, origin, overrides, data_env(), true)
    }

    /// Parses TOML text (`origin` names it in errors) with overrides, as a new run's config; no
    /// environment lookup.
    pub fn from_toml_str(text: &str, origin: &str, overrides: &[String]) -> Result<Config> {
        load::load_str(text, origin, overrides, None, true)
    }

    /// Parses a saved run's `config.toml` with overrides: the checks of [`Config::from_toml_str`]
    /// except those for new runs only (an earlier version may have allowed those values).
    pub fn from_saved_toml(text: &str, origin: &str, overrides: &[String]) -> Result<Config> {
        load::load_str(text, origin, overrides, None, false)
    }

    /// Checks ranges and option consistency; the error names the key, value and expectation.
    pub fn validate(&self) -> Result<()> {
        validate::validate(self)
    }

    /// Every key of the config as `(section.key, value)`, in TOML's order: the one flattening that
    /// MLflow's parameters, `compare`'s columns and the resume check each format their way.
    pub fn leaves(&self) -> Vec<(String, toml::Value)> {
        fn walk(prefix: &str, v: toml::Value, out: &mut Vec<(String, toml::Value)>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, x) in t {
                        walk(&if prefix.is_empty() { k } else { format!("{prefix}.{k}") }, x, out);
                    }
                }
                other => out.push((prefix.to_string(), other)),
            }
        }
        let mut out = Vec::new();
        walk("", toml::Value::try_from(self).expect("a Config always serialises to TOML"), &mut out);
        out
    }

    /// The config as TOML text (written into each run directory).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a Config always serialises to TOML")
    }
}

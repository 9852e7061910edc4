//! A run's recipe is fixed when it starts: `env.json` keeps the resolved config it started with,
//! and a resume whose `config.toml` differs from it is refused, naming the keys, so a finished
//! run cannot be extended (or an interrupted one spliced) by editing the file. The few settings a
//! resume may change (a lower learning rate after a divergence, threads) are given as explicit
//! overrides, recorded in `env.json`.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};

/// Keys a resume may override (`train --resume RUN --set key=value`): the remedies a divergence
/// calls for, and settings that do not change what is computed.
pub const RESUMABLE_KEYS: &[&str] = &[
    "optim.lr",
    "train.grad_clip",
    "train.grad_clip_value",
    "train.on_nan",
    "train.nan_lr_factor",
    "train.threads",
    "train.dist_timeout_secs",
    "train.progress",
    "data.workers",
];

/// Overrides given to a resume, as `env.json` records them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResumeOverride {
    /// The optimizer step the run resumed from.
    pub step: i64,
    /// The `key=value` overrides.
    pub set: Vec<String>,
}

/// The keys whose values differ between two configs, as `key: old -> new`.
pub fn differences(started: &Config, now: &Config) -> Vec<String> {
    let old = started.leaves();
    now.leaves()
        .into_iter()
        .filter_map(|(k, new)| {
            let was = old.iter().find(|(ko, _)| *ko == k).map(|(_, v)| v);
            (was != Some(&new)).then(|| format!("{k}: {} -> {new}", was.map_or("(absent)".into(), |v| v.to_string())))
        })
        .collect()
}

/// Refuses a resume whose `config.toml` (`now`) is not the recipe the run started with.
pub fn check_unchanged(run: &std::path::Path, started: &Config, now: &Config) -> Result<()> {
    let changed = differences(started, now);
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{} was edited since the run started ({}); a run's recipe is fixed at its start, so resuming would \
         mix two recipes in one run. Restore the file; give a remedy as a recorded override instead \
         (`microvision train --resume {} --set optim.lr=...`; allowed: {}); or start a new run from this one's \
         weights (`--set model.init_from={}`)",
        run.join("config.toml").display(),
        changed.join("; "),
        run.display(),
        RESUMABLE_KEYS.join(", "),
        run.display()
    )))
}

/// Refuses overrides of keys a resume may not change.
pub fn check_resumable(overrides: &[String]) -> Result<()> {
    for ov in overrides {
        let key = ov.split_once('=').map_or(ov.as_str(), |(k, _)| k).trim();
        if !RESUMABLE_KEYS.contains(&key) {
            return Err(Error::Config(format!(
                "--set {ov}: `{key}` cannot change when a run resumes (it would change what the epochs already \
                 trained computed); a resume may override {}. To train with another {key}, start a new run \
                 from this one's weights (--set model.init_from=RUN)",
                RESUMABLE_KEYS.join(", ")
            )));
        }
    }
    Ok(())
}

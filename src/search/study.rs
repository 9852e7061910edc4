//! A study as microvision sees it: the choices that define it (sampler, pruner, objectives),
//! and its trials as the Optuna storage holds them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::optuna::Optuna;
use super::space::Space;
use crate::error::{Error, Result};

/// Optuna's samplers that `--sampler` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    /// Tree-structured Parzen estimator (multivariate, constant liar for parallel workers).
    Tpe,
    /// Independent uniform sampling.
    Random,
    /// Every point of a discrete space exactly once.
    Grid,
    /// CMA-ES (continuous parameters; others sampled independently).
    Cmaes,
    /// NSGA-II, for several objectives (a Pareto front).
    Nsga2,
}

/// Optuna's pruners that `--pruner` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pruner {
    /// Stop a trial whose value is below the median of earlier trials at the same epoch.
    Median,
    /// Asynchronous successive halving (rungs at 1, 3, 9... epochs).
    Asha,
    /// Hyperband over successive-halving brackets.
    Hyperband,
    /// Never stop a trial early.
    None,
}

/// What a trial is scored by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Validation accuracy (%) of the last epoch, maximised.
    ValAcc,
    /// Validation loss of the last epoch, minimised.
    ValLoss,
    /// Multiply-accumulates per image (the model's cost), minimised.
    Macs,
    /// Trainable parameters, minimised.
    Params,
}

macro_rules! named {
    ($t:ty, $what:literal, [$($v:ident = $n:literal),*]) => {
        impl $t {
            /// Every value with its name.
            pub const ALL: &'static [($t, &'static str)] = &[$((<$t>::$v, $n)),*];

            /// The name the command line and the study use.
            pub fn name(self) -> &'static str {
                Self::ALL.iter().find(|(v, _)| *v == self).map(|(_, n)| *n).unwrap_or("?")
            }

            /// Parses a name; an unknown one lists the valid names.
            pub fn parse(s: &str) -> Result<Self> {
                Self::ALL.iter().find(|(_, n)| *n == s).map(|(v, _)| *v).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|(_, n)| *n).collect();
                    Error::Config(format!("{} {s:?}: expected one of {}", $what, names.join(", ")))
                })
            }
        }
    };
}

named!(Sampler, "--sampler", [Tpe = "tpe", Random = "random", Grid = "grid", Cmaes = "cmaes", Nsga2 = "nsga2"]);
named!(Pruner, "--pruner", [Median = "median", Asha = "asha", Hyperband = "hyperband", None = "none"]);
named!(Objective, "--objective", [ValAcc = "val_acc", ValLoss = "val_loss", Macs = "macs", Params = "params"]);

impl Objective {
    /// Optuna's direction for it.
    pub fn direction(self) -> &'static str {
        match self {
            Objective::ValAcc => "maximize",
            Objective::ValLoss | Objective::Macs | Objective::Params => "minimize",
        }
    }

    /// Whether the value changes from epoch to epoch (what a pruner can watch).
    pub fn per_epoch(self) -> bool {
        matches!(self, Objective::ValAcc | Objective::ValLoss)
    }
}

/// Everything that defines a study, as its creator records it and a joining worker must match.
#[derive(Debug, Clone)]
pub struct StudySpec {
    /// Study name.
    pub name: String,
    /// Storage URL (`sqlite:///...`, `postgresql://...`) or journal file path.
    pub storage: String,
    /// The sampler.
    pub sampler: Sampler,
    /// The pruner.
    pub pruner: Pruner,
    /// Objectives, in order.
    pub objectives: Vec<Objective>,
    /// The search space.
    pub space: Space,
    /// The budget: trials the study holds (the grid's size for the grid sampler).
    pub trials: usize,
    /// Sampler seed (each worker adds its index, so parallel workers do not propose the same).
    pub seed: u64,
    /// Epochs of a trial (the pruners' maximum resource).
    pub epochs: i64,
    /// The base config file, as given.
    pub config: PathBuf,
    /// The user's overrides of it.
    pub overrides: Vec<String>,
    /// The base config's trackers (MLflow: the study's run and its nested trials).
    pub track: crate::config::TrackConfig,
    /// The base config's resolved TOML (a trial is it plus the sampled values).
    pub base: String,
    /// Where the trials' run directories go.
    pub runs_dir: PathBuf,
}

/// A trial as the storage holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// Optuna's trial number (0-based, unique in the study).
    pub number: i64,
    /// Its state.
    pub state: TrialState,
    /// Objective values (complete trials).
    pub values: Option<Vec<f64>>,
    /// Sampled values by config key.
    pub params: BTreeMap<String, Value>,
    /// `(epoch, value)` reported while training.
    pub intermediate: Vec<(i64, f64)>,
    /// What microvision recorded: `run_dir`, `test_acc`, `error`, `worker`...
    pub attrs: BTreeMap<String, Value>,
    /// Wall time of a finished trial.
    pub seconds: Option<f64>,
}

/// Optuna's trial states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Finished with its values.
    Complete,
    /// Stopped early by the pruner.
    Pruned,
    /// Failed (an error, a killed worker, an interruption).
    Fail,
    /// Being trained now.
    Running,
    /// Enqueued, not yet started.
    Waiting,
}

/// A study read back: its recorded settings, directions and trials.
#[derive(Debug, Clone)]
pub struct Study {
    /// Study name.
    pub name: String,
    /// Storage it was read from.
    pub storage: String,
    /// `maximize` / `minimize` per objective.
    pub directions: Vec<String>,
    /// Settings recorded by its creator (`space`, `objectives`, `base`, `sampler`, `pruner`,
    /// `runs_dir`, `trials`).
    pub settings: BTreeMap<String, Value>,
    /// Every trial, by number.
    pub trials: Vec<TrialRecord>,
    /// Parameter importances per objective (empty where Optuna could not compute them).
    pub importance: Vec<BTreeMap<String, f64>>,
}

impl StudySpec {
    /// The `open` request for the driver.
    pub fn request(&self, worker: usize) -> Value {
        json!({
            "study": self.name,
            "storage": self.storage,
            "sampler": self.sampler.name(),
            "pruner": self.pruner.name(),
            "seed": self.seed + worker as u64,
            "worker": worker,
            "epochs": self.epochs,
            "directions": self.objectives.iter().map(|o| o.direction()).collect::<Vec<_>>(),
            "objectives": self.objectives.iter().map(|o| o.name()).collect::<Vec<_>>(),
            "space": self.space,
            "trials": self.trials,
            "base": self.base,
            "runs_dir": self.runs_dir,
            "config": self.config,
            "overrides": self.overrides,
        })
    }
}

impl Study {
    /// Reads study `name` from `storage` through a driver.
    pub fn read(optuna: &mut Optuna, name: &str, storage: &str) -> Result<Study> {
        optuna.call("load", json!({ "study": name, "storage": storage }))?;
        let t = optuna.call("trials", json!({}))?;
        let trials: Vec<TrialRecord> = serde_json::from_value(t["trials"].clone())
            .map_err(|e| Error::Runtime(format!("study {name}: unexpected trial records: {e}")))?;
        let directions = serde_json::from_value(t["directions"].clone()).unwrap_or_default();
        let settings = serde_json::from_value(t["study"].clone()).unwrap_or_default();
        let imp = optuna.call("importance", json!({}))?;
        let importance = imp["importance"]
            .as_array()
            .map(|a| a.iter().map(|m| serde_json::from_value(m.clone()).unwrap_or_default()).collect())
            .unwrap_or_default();
        Ok(Study { name: name.into(), storage: storage.into(), directions, settings, trials, importance })
    }

    /// Complete trials, best first by the first objective.
    pub fn ranked(&self) -> Vec<&TrialRecord> {
        let maximize = self.directions.first().is_none_or(|d| d == "maximize");
        let mut done: Vec<&TrialRecord> =
            self.trials.iter().filter(|t| t.state == TrialState::Complete && t.values.is_some()).collect();
        done.sort_by(|a, b| {
            let (x, y) = (first(a), first(b));
            if maximize {
                y.total_cmp(&x)
            } else {
                x.total_cmp(&y)
            }
        });
        done
    }

    /// How many trials are in each state.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for t in &self.trials {
            *out.entry(state_name(t.state)).or_default() += 1;
        }
        out
    }

    /// The objectives' names, as recorded (`val_acc`, `macs`...).
    pub fn objective_names(&self) -> Vec<String> {
        self.settings
            .get("objectives")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_else(|| vec!["value".into()])
    }
}

/// A trial's first objective value (NaN when it has none).
pub fn first(t: &TrialRecord) -> f64 {
    t.values.as_ref().and_then(|v| v.first().copied()).unwrap_or(f64::NAN)
}

/// The state's name.
pub fn state_name(s: TrialState) -> &'static str {
    match s {
        TrialState::Complete => "complete",
        TrialState::Pruned => "pruned",
        TrialState::Fail => "fail",
        TrialState::Running => "running",
        TrialState::Waiting => "waiting",
    }
}

/// An objective value for tables: millions for counts (MACs, parameters), else four decimals.
pub fn format_value(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// A storage URL with its password replaced by `***`, for what is printed or recorded.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            format!("{scheme}://{}:***@{host}", user.split_once(':').map_or(user, |u| u.0))
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_storage_urls_are_hidden() {
        assert_eq!(redact("postgresql://mv:s3cret@db:5432/optuna"), "postgresql://mv:***@db:5432/optuna");
        assert_eq!(redact("postgresql://mv@127.0.0.1:5432/postgres"), "postgresql://mv@127.0.0.1:5432/postgres");
        assert_eq!(redact("runs/a/study.journal"), "runs/a/study.journal");
        assert_eq!(format_value(44_567_040.0), "44.57M");
        assert_eq!(format_value(81.25), "81.2500");
    }
}

//! `tune`: a search over config keys on an Optuna study. Each trial is an ordinary run
//! (`RUNS/<study>/trialNNN-<timestamp>/`) trained with the standard loggers, reporting its
//! validation accuracy every epoch; a trial the pruner stops ends as Ctrl-C ends a run (its
//! `last` checkpoint kept) and is marked pruned. Several workers (processes, here or on other
//! machines) share a study through its storage.

mod report;
mod trial;

pub use report::{
    locate_study, redact, rerun_command, shell_quote, trial_overrides, tune_report, tune_reseed, tune_study,
    StudyReport,
};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::search::optuna::Optuna;
use crate::search::study::StudySpec;
use crate::search::{Objective, Pruner, Sampler, Space, TrialState};
use crate::track::mlflow::MlflowLogger;
use crate::train::Trainer;
use trial::{lock, run_trial, TrialContext};

/// What `microvision tune` was asked.
#[derive(Debug, Clone)]
pub struct TuneArgs {
    /// The base config file.
    pub config: PathBuf,
    /// `key=value` overrides of the base config.
    pub overrides: Vec<String>,
    /// The search-space file.
    pub space: PathBuf,
    /// Trials the study holds (None: the grid's size with the grid sampler, else required).
    pub trials: Option<usize>,
    /// Study name (default: `<config name>-<space file stem>`).
    pub study: Option<String>,
    /// Storage URL or journal file (default: `RUNS/<study>/study.journal`).
    pub storage: Option<String>,
    /// Sampler.
    pub sampler: Sampler,
    /// Pruner (None: median for one objective, none for several).
    pub pruner: Option<Pruner>,
    /// Objectives.
    pub objectives: Vec<Objective>,
    /// Start no trial after this many seconds.
    pub timeout_secs: Option<f64>,
    /// Sampler seed.
    pub seed: u64,
    /// This worker's index among those started together (offsets the sampler seed).
    pub worker: usize,
    /// Progress on the console: the training's own (bar, a line per epoch) when `console`, a
    /// line per trial always.
    pub console: bool,
    /// Threads per trial (`train.threads`; None: the base config's).
    pub threads: Option<i64>,
    /// SIGINT/SIGTERM stop the running trial as they stop a run ([`TrainOptions`]); a shell that
    /// handles interrupts itself (Python) leaves this off and stops trials through a hook.
    pub stop_on_signals: bool,
    /// Run on each trial's trainer before it trains (a notebook's interrupt check).
    pub hook: Option<TrialHook>,
    /// A worker a shell started for `--workers` after opening the study itself (which said the
    /// notes already).
    pub child: bool,
}

/// Something done to each trial's trainer before it trains: add a callback, keep its stop flag.
#[derive(Clone)]
pub struct TrialHook(pub Arc<dyn Fn(&mut Trainer) + Send + Sync>);

impl std::fmt::Debug for TrialHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrialHook")
    }
}

/// A study opened for work: what it is and where its trials go.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// The study's definition.
    pub spec: StudySpec,
    /// Whether this call created the study.
    pub created: bool,
    /// Notes for the user (the validation split the tuner chose...).
    pub notes: Vec<String>,
}

/// What one worker did.
#[derive(Debug, Clone)]
pub struct Tuned {
    /// The study.
    pub spec: StudySpec,
    /// The trials this worker ran.
    pub trials: Vec<TrialOutcome>,
}

/// One trial run by this worker.
#[derive(Debug, Clone)]
pub struct TrialOutcome {
    /// Optuna's trial number.
    pub number: i64,
    /// How it ended.
    pub state: TrialState,
    /// Objective values (complete trials).
    pub values: Vec<f64>,
    /// Its run directory (None when it failed before one was made).
    pub run_dir: Option<PathBuf>,
    /// The sampled values as `key=value` overrides.
    pub overrides: Vec<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl TrialOutcome {
    /// One line saying how the trial ended.
    pub fn line(&self) -> String {
        let how = match (self.state, &self.error) {
            (TrialState::Complete, _) => {
                format!(
                    "complete, {}",
                    self.values.iter().map(|v| crate::search::study::format_value(*v)).collect::<Vec<_>>().join(", ")
                )
            }
            (_, Some(e)) => format!("failed: {e}"),
            (state, None) => crate::search::study::state_name(state).to_string(),
        };
        let dir = self.run_dir.as_ref().map(|d| format!(" ({})", d.display())).unwrap_or_default();
        format!("trial {}: {how}{dir}", self.number)
    }
}

/// Resolves the study `args` describe without touching the storage: base config (with a
/// validation split: tuning on the test set would select on it), space checked against it,
/// names and defaults.
pub fn tune_spec(args: &TuneArgs) -> Result<(StudySpec, Vec<String>)> {
    crate::dist::refuse_in_group("`tune` (parallel trials: --workers)")?;
    let mut base = Config::load(&args.config, &args.overrides)?;
    let mut notes = Vec::new();
    if !base.data.has_val_split() {
        base = Config::from_toml_str(&base.to_toml(), "the base config", &["data.val_split=0.1".into()])?;
        notes.push(
            "data.val_split = 0.1: trials are scored on a validation split held out of the training images, \
             never on the test set (--set data.val_split=... to choose another)"
                .into(),
        );
    }
    let space = Space::load(&args.space, &base)?;
    let objectives = if args.objectives.is_empty() { vec![Objective::ValAcc] } else { args.objectives.clone() };
    let pruner = args.pruner.unwrap_or(if objectives.len() > 1 { Pruner::None } else { Pruner::Median });
    if objectives.len() > 1 && pruner != Pruner::None {
        return Err(Error::Config(format!(
            "--pruner {}: Optuna prunes single-objective studies only; use --pruner none with {} objectives",
            pruner.name(),
            objectives.len()
        )));
    }
    if !objectives.iter().any(|o| o.per_epoch()) {
        return Err(Error::Config(
            "--objective: expected val_acc or val_loss among the objectives (macs and params alone need no training)"
                .into(),
        ));
    }
    let trials = match (args.sampler, args.trials, space.grid_size()) {
        (Sampler::Grid, None, Some(n)) => n,
        (Sampler::Grid, Some(n), Some(g)) if n != g => {
            return Err(Error::Config(format!("--trials {n}: the grid of {} has {g} points", args.space.display())))
        }
        (Sampler::Grid, _, None) => {
            return Err(Error::Config(format!(
                "--sampler grid: every parameter of {} must take finitely many values without conditions \
                 (categorical, int, or float with a step)",
                args.space.display()
            )))
        }
        (_, Some(0), _) => return Err(Error::Config("--trials 0: expected at least one trial".into())),
        (_, Some(n), _) => n,
        (_, None, _) => return Err(Error::Config("--trials N: how many trials the study holds".into())),
    };
    let stem = args.space.file_stem().and_then(|s| s.to_str()).unwrap_or("space").replace('.', "-");
    let name = args.study.clone().unwrap_or_else(|| format!("{}-{stem}", base.name));
    if !crate::config::is_valid_name(&name) {
        return Err(Error::Config(format!(
            "--study {name:?}: expected a name of 1 to 100 bytes without '/', control characters or a leading '.'"
        )));
    }
    let runs_dir = std::path::absolute(base.output.runs_dir.join(&name)).unwrap_or(base.output.runs_dir.join(&name));
    let storage = args.storage.clone().unwrap_or_else(|| runs_dir.join("study.journal").display().to_string());
    let epochs = base.train.epochs;
    let config = std::path::absolute(&args.config).unwrap_or(args.config.clone());
    let spec = StudySpec {
        config,
        overrides: args.overrides.clone(),
        name,
        storage,
        sampler: args.sampler,
        pruner,
        objectives,
        space,
        trials,
        seed: args.seed,
        epochs,
        track: base.track.clone(),
        base: base.to_toml(),
        runs_dir,
    };
    Ok((spec, notes))
}

/// Creates the study (or joins it, checking it is the same search) and returns it; enqueues the
/// budget when it creates it. [`tune`] calls it; a shell starting several workers calls it
/// first, once.
pub fn tune_open(args: &TuneArgs) -> Result<Tuning> {
    let (spec, notes) = tune_spec(args)?;
    let mut optuna = open_driver(&spec)?;
    let (created, _) = open_study(&mut optuna, &spec, args.worker)?;
    Ok(Tuning { spec, created, notes })
}

/// Opens the study in the driver; returns whether this call created it and the MLflow run the
/// trials nest under (with MLflow on: made by the study's creator, its id kept in the study).
fn open_study(optuna: &mut Optuna, spec: &StudySpec, worker: usize) -> Result<(bool, Option<String>)> {
    let track = &spec.track;
    let mut request = spec.request(worker);
    let mut made = None;
    if !track.mlflow_uri.is_empty() {
        let exists = optuna.call("exists", json!({ "study": spec.name, "storage": spec.storage }))?["exists"].as_bool();
        if exists == Some(false) {
            let storage = crate::search::study::redact(&spec.storage);
            let tags = [("microvision.study", spec.name.as_str()), ("microvision.storage", storage.as_str())];
            match MlflowLogger::create(&track.mlflow_uri, &track.mlflow_experiment, &spec.name, &tags) {
                Ok(run) => {
                    request["mlflow_parent"] = run.run_id().into();
                    made = Some(run);
                }
                Err(e) => crate::notice::warn(format!("MLflow: no run for the study ({e}); trials log without it")),
            }
        }
    }
    let answer = optuna.call("open", request)?;
    let parent = answer["mlflow_parent"].as_str().map(String::from);
    if let Some(run) = made {
        // Another worker created the study first: its run is the study's, ours goes.
        if parent.as_deref() == Some(run.run_id()) {
            run.detach();
        } else {
            let _ = run.delete();
        }
    }
    Ok((answer["created"].as_bool().unwrap_or(false), parent))
}

fn open_driver(spec: &StudySpec) -> Result<Optuna> {
    if !spec.storage.contains("://") {
        let dir = Path::new(spec.storage.strip_prefix("journal:").unwrap_or(&spec.storage)).parent();
        if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
            crate::error::create_dir_all(dir, "cannot create the study's directory")?;
        }
    }
    Optuna::start(crate::pyproc::python())
}

/// Runs trials of the study until none is left to start (or the timeout): asks Optuna for the
/// next trial, trains it, reports each epoch and tells the result.
pub fn tune(args: &TuneArgs) -> Result<Tuned> {
    let (spec, notes) = tune_spec(args)?;
    if !args.child {
        notes.iter().for_each(crate::notice::note);
    }
    let optuna = Arc::new(Mutex::new(open_driver(&spec)?));
    let (_, parent) = open_study(&mut lock(&optuna), &spec, args.worker)?;
    let study_run = parent.as_deref().and_then(|id| open_study_run(&spec, id));
    let context = TrialContext {
        console: args.console,
        threads: args.threads,
        parent,
        stop_on_signals: args.stop_on_signals,
        hook: args.hook.clone(),
    };
    let started = Instant::now();
    let mut trials: Vec<TrialOutcome> = Vec::new();
    while args.timeout_secs.is_none_or(|t| started.elapsed().as_secs_f64() < t) {
        if let Some(e) = failing_in_a_row(&trials) {
            return Err(e);
        }
        let asked = lock(&optuna).call("ask", json!({}))?;
        let Some(number) = asked["trial"].as_i64() else { break };
        let params = asked["params"].as_object().cloned().unwrap_or_default();
        let outcome = run_trial(&optuna, &spec, number, &params, &context)?;
        crate::notice::info(outcome.line());
        if let Some(run) = &study_run {
            for (o, v) in spec.objectives.iter().zip(&outcome.values) {
                let _ = run.log_value(&format!("trial/{}", o.name()), *v, number);
            }
        }
        trials.push(outcome);
    }
    if let Some(run) = study_run {
        let _ = run.finish_ok();
    }
    Ok(Tuned { spec, trials })
}

/// Trials that fail in a row fail for a reason of their own no more: a missing dataset, a bad
/// setting. After [`FAILURES_IN_A_ROW`], stop instead of spending the budget; the queued trials
/// wait for the next command.
const FAILURES_IN_A_ROW: usize = 3;

fn failing_in_a_row(trials: &[TrialOutcome]) -> Option<Error> {
    let last = trials.iter().rev().take(FAILURES_IN_A_ROW).collect::<Vec<_>>();
    if last.len() < FAILURES_IN_A_ROW || last.iter().any(|t| t.state != TrialState::Fail) {
        return None;
    }
    Some(Error::Runtime(format!(
        "the last {FAILURES_IN_A_ROW} trials failed, the last with: {}; stopping (the queued trials wait for \
         the same command)",
        last[0].error.as_deref().unwrap_or("no message")
    )))
}

/// The study's MLflow run, reopened to log each trial's values (None, with a warning, when the
/// server cannot be reached: the trials still log on their own).
fn open_study_run(spec: &StudySpec, id: &str) -> Option<MlflowLogger> {
    MlflowLogger::open(&spec.track.mlflow_uri, id)
        .map_err(|e| crate::notice::warn(format!("MLflow: cannot reopen the study's run {id}: {e}")))
        .ok()
}

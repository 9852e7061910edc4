//! One trial: its config from the base and the sampled values, trained as an ordinary run
//! while a callback reports each epoch to Optuna and stops the run when the pruner says so;
//! then Optuna is told how it ended.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::super::train::{stop_flag, train_with, TrainOptions};
use super::{TrialHook, TrialOutcome};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::search::optuna::Optuna;
use crate::search::study::StudySpec;
use crate::search::{Objective, Pruner, Space, TrialState};
use crate::train::callbacks::{Callback, EpochInfo};
use crate::train::Trainer;

/// How a worker runs its trials.
pub(super) struct TrialContext {
    pub console: bool,
    pub threads: Option<i64>,
    /// The study's MLflow run, which the trials nest under.
    pub parent: Option<String>,
    pub stop_on_signals: bool,
    pub hook: Option<TrialHook>,
}

pub(super) fn lock(o: &Arc<Mutex<Optuna>>) -> std::sync::MutexGuard<'_, Optuna> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

/// Trains trial `number` with the sampled `params` and tells Optuna how it ended. A user's
/// interruption fails the trial and is returned (the tuning stops); any other failure of the
/// trial is recorded and the tuning goes on.
pub(super) fn run_trial(
    optuna: &Arc<Mutex<Optuna>>,
    spec: &StudySpec,
    number: i64,
    params: &serde_json::Map<String, Value>,
    context: &TrialContext,
) -> Result<TrialOutcome> {
    let (console, threads) = (context.console, context.threads);
    let overrides = Space::overrides(params);
    let mut outcome =
        TrialOutcome { number, state: TrialState::Fail, values: Vec::new(), run_dir: None, overrides, error: None };
    crate::notice::info(format!("trial {number}: {}", outcome.overrides.join(" ")));
    let mut sets = outcome.overrides.clone();
    sets.push(format!("name=\"trial{number:03}\""));
    if let Some(t) = threads {
        sets.push(format!("train.threads={t}"));
    }
    if let Some(p) = &context.parent {
        sets.push(format!("track.mlflow_parent_run={}", toml::Value::String(p.clone())));
    }
    sets.push(format!("output.runs_dir={}", toml::Value::String(spec.runs_dir.display().to_string())));
    let trainer = Config::from_toml_str(&spec.base, "the trial's config", &sets).and_then(Trainer::new);
    let mut trainer = match trainer {
        Ok(t) => t,
        Err(e) => return tell_failed(optuna, outcome, e),
    };
    outcome.run_dir = Some(trainer.run_dir.clone());
    if let Some(hook) = &context.hook {
        (hook.0)(&mut trainer);
    }
    // The flag that stops the run: the signals' when they stop it, else the trainer's own.
    let stop = if context.stop_on_signals { stop_flag() } else { trainer.stop.clone() };
    let watch = Watch::new(optuna.clone(), spec.objectives[0], spec.pruner != Pruner::None, stop);
    let (pruned, last) = (watch.pruned.clone(), watch.last.clone());
    trainer.add_callback(Box::new(watch));
    let trained = train_with(trainer, &TrainOptions { console, stop_on_signals: context.stop_on_signals });

    let run_dir = outcome.run_dir.clone().unwrap_or_default();
    let mut attrs = json!({ "run_dir": run_dir, "overrides": outcome.overrides });
    match trained {
        _ if pruned.load(Ordering::SeqCst) => {
            outcome.state = TrialState::Pruned;
            lock(optuna).call("tell", json!({ "state": "pruned", "attrs": attrs }))?;
        }
        Ok(t) => {
            let (acc, loss) = *last.lock().unwrap_or_else(|p| p.into_inner());
            let env = crate::run::Env::read(&run_dir);
            let macs = env.as_ref().map_or(f64::NAN, |e| e.macs_per_image as f64);
            let params_n = env.as_ref().map_or(f64::NAN, |e| e.num_params as f64);
            outcome.values = spec
                .objectives
                .iter()
                .map(|o| match o {
                    Objective::ValAcc => acc,
                    Objective::ValLoss => loss,
                    Objective::Macs => macs,
                    Objective::Params => params_n,
                })
                .collect();
            if let Some(test) = &t.test {
                attrs["test_acc"] = (100.0 * test.acc).into();
            }
            if let Some((o, v)) = spec.objectives.iter().zip(&outcome.values).find(|(_, v)| !v.is_finite()) {
                let e = Error::Runtime(format!("objective {} is {v} (not a number Optuna can rank)", o.name()));
                return tell_failed(optuna, outcome, e);
            }
            outcome.state = TrialState::Complete;
            lock(optuna).call("tell", json!({ "state": "complete", "values": outcome.values, "attrs": attrs }))?;
        }
        Err(e @ Error::Interrupted(_)) => {
            attrs["error"] = "interrupted (Ctrl-C or SIGTERM)".into();
            lock(optuna).call("tell", json!({ "state": "fail", "attrs": attrs }))?;
            return Err(e);
        }
        Err(e) => return tell_failed(optuna, outcome, e),
    }
    Ok(outcome)
}

fn tell_failed(optuna: &Arc<Mutex<Optuna>>, mut outcome: TrialOutcome, e: Error) -> Result<TrialOutcome> {
    crate::notice::warn(format!("trial {} failed: {e}", outcome.number));
    let attrs = json!({ "error": e.to_string(), "run_dir": outcome.run_dir, "overrides": outcome.overrides });
    lock(optuna).call("tell", json!({ "state": "fail", "attrs": attrs }))?;
    outcome.error = Some(e.to_string());
    Ok(outcome)
}

/// The trial's eyes on the training: keeps the last validation accuracy and loss, reports the
/// objective to Optuna each epoch and, when the pruner says so, stops the run as Ctrl-C would.
struct Watch {
    optuna: Arc<Mutex<Optuna>>,
    objective: Objective,
    prune: bool,
    stop: Arc<AtomicBool>,
    pruned: Arc<AtomicBool>,
    last: Arc<Mutex<(f64, f64)>>,
}

impl Watch {
    fn new(optuna: Arc<Mutex<Optuna>>, objective: Objective, prune: bool, stop: Arc<AtomicBool>) -> Watch {
        let (pruned, last) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new((f64::NAN, f64::NAN))));
        Watch { optuna, objective, prune, stop, pruned, last }
    }
}

impl Callback for Watch {
    fn epoch_end(&mut self, e: &EpochInfo) {
        let (acc, loss) = (100.0 * e.val.acc, e.val.loss);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = (acc, loss);
        // Reported with or without a pruner: the values are the trial's learning curve.
        let value = if self.objective == Objective::ValLoss { loss } else { acc };
        let answer = lock(&self.optuna).call("report", json!({ "step": e.epoch, "value": value, "prune": self.prune }));
        match answer {
            Ok(a) if a["prune"].as_bool() == Some(true) => {
                crate::notice::info(format!("pruned after epoch {} ({value:.2})", e.epoch));
                self.pruned.store(true, Ordering::SeqCst);
                self.stop.store(true, Ordering::SeqCst);
            }
            Ok(_) => {}
            Err(err) => crate::notice::warn(format!("cannot report epoch {} to Optuna: {err}", e.epoch)),
        }
    }
}

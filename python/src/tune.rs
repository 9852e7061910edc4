//! Searching from Python: `microvision tune` as a function (one worker, in this process), and a
//! study read back and drawn. The kernel's interrupt stops the running trial as Ctrl-C does on
//! the command line: the trial is failed, the queued ones wait, `Interrupted` is raised.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use serde_json::json;

use crate::errors::guard;
use crate::train::Progress;
use microvision::lab::{self, TrialHook, TuneArgs};
use microvision::search::{Objective, Pruner, Sampler};

/// Runs the trials of a study (creating it, or joining it with the same settings) until none is
/// left or `timeout` seconds have passed; returns `(study name, storage)`. `progress`, if given,
/// gets each trial's training events (as `train`'s).
#[pyfunction]
#[pyo3(signature = (config, space, trials = None, study = None, storage = None, sampler = "tpe", pruner = None,
    objectives = vec!["val_acc".to_string()], timeout = None, seed = 0, set = None, threads = None, progress = None))]
#[allow(clippy::too_many_arguments)]
pub fn tune(
    py: Python<'_>,
    config: PathBuf,
    space: PathBuf,
    trials: Option<usize>,
    study: Option<String>,
    storage: Option<String>,
    sampler: &str,
    pruner: Option<String>,
    objectives: Vec<String>,
    timeout: Option<f64>,
    seed: u64,
    set: Option<&Bound<'_, PyAny>>,
    threads: Option<i64>,
    progress: Option<PyObject>,
) -> PyResult<(String, String)> {
    let pending = Arc::new(Mutex::new(None::<PyErr>));
    let callback = Arc::new(progress);
    let hook_pending = pending.clone();
    let hook = TrialHook(Arc::new(move |trainer| {
        let callback = Python::with_gil(|py| callback.as_ref().as_ref().map(|c| c.clone_ref(py)));
        let stop = trainer.stop.clone();
        trainer.add_callback(Box::new(Progress { callback, stop, pending: hook_pending.clone() }));
    }));
    let args = TuneArgs {
        config,
        overrides: crate::convert::overrides(set)?,
        space,
        trials,
        study,
        storage,
        sampler: guard(|| Sampler::parse(sampler))?,
        pruner: pruner.map(|p| guard(|| Pruner::parse(&p))).transpose()?,
        objectives: objectives.iter().map(|o| guard(|| Objective::parse(o))).collect::<PyResult<_>>()?,
        timeout_secs: timeout,
        seed,
        worker: 0,
        console: false,
        threads,
        stop_on_signals: false,
        hook: Some(hook),
        child: false,
    };
    let tuned = py.allow_threads(|| guard(|| lab::tune(&args)));
    // As `train`: an interrupt raises `Interrupted` (a KeyboardInterrupt); another exception
    // that stopped a trial is raised itself, chained to what the tuning said.
    if let Some(cause) = pending.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(match tuned {
            Err(e) if cause.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => e,
            Err(e) => {
                cause.set_cause(py, Some(e));
                cause
            }
            Ok(_) => cause,
        });
    }
    let tuned = tuned?;
    Ok((tuned.spec.name, tuned.spec.storage))
}

/// Study `study` (a name or its directory) read back: `{name, storage, directions, settings,
/// trials: [...], importance: [...], command}`.
#[pyfunction]
#[pyo3(signature = (study, storage = None))]
pub fn study_read(py: Python<'_>, study: &str, storage: Option<String>) -> PyResult<PyObject> {
    let s = py.allow_threads(|| guard(|| lab::tune_study(study, storage)))?;
    let command = s.ranked().first().map(|best| lab::rerun_command(&s, best));
    let v = json!({
        "name": s.name, "storage": s.storage, "directions": s.directions, "settings": s.settings,
        "trials": s.trials, "importance": s.importance, "command": command,
    });
    crate::convert::to_py(py, &v)
}

/// Draws study `study`'s plots and page into `out` (default: the study directory's `report/`);
/// returns `{files, html, command}`.
#[pyfunction]
#[pyo3(signature = (study, storage = None, out = None))]
pub fn study_report(py: Python<'_>, study: &str, storage: Option<String>, out: Option<PathBuf>) -> PyResult<PyObject> {
    let r = py.allow_threads(|| guard(|| lab::tune_report(study, storage, out)))?;
    crate::convert::to_py(py, &json!({ "files": r.plots.files, "html": r.plots.html, "command": r.command }))
}

//! Training from Python: the GIL released while the Rust core trains, progress handed to a
//! Python callable (the package's tqdm bar), and the kernel's interrupt (KeyboardInterrupt)
//! stopping the run as Ctrl-C does on the command line: the step finishes, `last` is saved,
//! and `Interrupted` says how to resume.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::PyConfig;
use crate::errors::guard;
use crate::run::PyRun;
use microvision::lab::{self, TrainOptions};
use microvision::metrics::EvalResult;
use microvision::train::callbacks::{Callback, EpochInfo, FitInfo, StepInfo};
use microvision::train::Trainer;

/// Hands the trainer's events to a Python callable and turns a pending interrupt into a stop
/// request. The exception that stopped it (a KeyboardInterrupt, or whatever a signal handler or
/// the callback raised) is kept in `pending`, to be raised once the trainer has returned.
pub struct Progress {
    /// Called with each event (None: only the interrupt check).
    pub callback: Option<PyObject>,
    /// The trainer's stop flag.
    pub stop: Arc<AtomicBool>,
    /// The exception that stopped the run.
    pub pending: Arc<Mutex<Option<PyErr>>>,
}

impl Progress {
    /// Calls `callback(event)` with the GIL held, after running Python's signal handlers. An
    /// exception from either stops the run (the step finishes and `last` is saved); the first
    /// one is kept. A callback that raises is dropped.
    fn emit(&mut self, event: impl FnOnce(Python<'_>) -> PyResult<Bound<'_, PyDict>>) {
        Python::with_gil(|py| {
            let mut raised = py.check_signals().err();
            if let (None, Some(cb)) = (&raised, &self.callback) {
                raised = event(py).and_then(|e| cb.call1(py, (e,))).err();
                if raised.is_some() {
                    self.callback = None;
                }
            }
            if let Some(e) = raised {
                self.stop.store(true, Ordering::SeqCst);
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            }
        });
    }
}

/// A dict of `kind` and the given items.
fn event<'py>(py: Python<'py>, kind: &str, items: &[(&str, f64)]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("kind", kind)?;
    for (k, v) in items {
        d.set_item(*k, *v)?;
    }
    Ok(d)
}

impl Callback for Progress {
    fn fit_start(&mut self, info: &FitInfo) {
        let items = [
            ("start_epoch", info.start_epoch as f64),
            ("start_step", info.start_step as f64),
            ("steps_per_epoch", info.steps_per_epoch as f64),
            ("epochs", info.config.train.epochs as f64),
        ];
        self.emit(|py| event(py, "start", &items));
    }

    fn batch_end(&mut self, s: &StepInfo) {
        let items = [
            ("epoch", s.epoch as f64),
            ("step", s.step as f64),
            ("loss", s.loss),
            ("acc", s.acc),
            ("lr", s.lr),
            ("img_per_s", s.img_per_s),
        ];
        self.emit(|py| event(py, "step", &items));
    }

    fn epoch_end(&mut self, e: &EpochInfo) {
        let items = [
            ("epoch", e.epoch as f64),
            ("step", e.step as f64),
            ("train_loss", e.train_loss),
            ("train_acc", e.train_acc),
            ("val_loss", e.val.loss),
            ("val_acc", e.val.acc),
            ("lr", e.lr),
            ("img_per_s", e.img_per_s),
            ("epoch_secs", e.epoch_secs),
        ];
        self.emit(|py| event(py, "epoch", &items));
    }

    fn fit_end(&mut self, test: &EvalResult) {
        let items = [("test_acc", test.acc), ("test_loss", test.loss), ("test_acc_top5", test.acc_top5)];
        self.emit(|py| event(py, "end", &items));
    }
}

/// Trains `trainer` (built inside, with the GIL released) and opens the run. A stop asked for
/// from Python raises `Interrupted` with the run directory as its `run_dir` (the exception that
/// asked, when it was not a KeyboardInterrupt, is raised instead, chained); one that came too late
/// to stop anything (during the final test) raises the KeyboardInterrupt once the run is done.
fn fit(
    py: Python<'_>,
    build: impl FnOnce() -> microvision::Result<Trainer> + Send,
    progress: Option<PyObject>,
) -> PyResult<PyRun> {
    let (mut run_dir, pending) = (None, Arc::new(Mutex::new(None::<PyErr>)));
    let trained = py.allow_threads(|| {
        guard(|| {
            let mut trainer = build()?;
            run_dir = Some(trainer.run_dir.clone());
            let stop = trainer.stop.clone();
            // In a multi-process run (torchrun), rank 0 alone shows the progress.
            let callback = if trainer.writes_run() { progress } else { None };
            trainer.add_callback(Box::new(Progress { callback, stop, pending: pending.clone() }));
            lab::train_with(trainer, &TrainOptions::default())
        })
    });
    let pending = pending.lock().unwrap_or_else(|p| p.into_inner()).take();
    let trained = match (trained, pending) {
        (Ok(trained), None) => trained,
        (Ok(_), Some(late)) => return Err(late),
        (Err(e), Some(cause)) if !cause.is_instance_of::<PyKeyboardInterrupt>(py) => {
            cause.set_cause(py, Some(e));
            return Err(cause);
        }
        (Err(e), _) => {
            if let Some(dir) = &run_dir {
                let _ = e.value(py).setattr("run_dir", dir.display().to_string());
            }
            return Err(e);
        }
    };
    for w in &trained.warnings {
        microvision::notice::warn(w);
    }
    PyRun::open(trained.run_dir)
}

/// Trains a new run of `config` to the end and evaluates it on the test split; `progress`, if
/// given, is called with a dict per event (`kind`: start, step, epoch, end).
#[pyfunction]
#[pyo3(signature = (config, progress = None))]
pub fn train(py: Python<'_>, config: &PyConfig, progress: Option<PyObject>) -> PyResult<PyRun> {
    let cfg = config.inner.clone();
    fit(py, move || Trainer::new(cfg), progress)
}

/// Continues the run in `run_dir` from its last checkpoint (a finished run is left as it is),
/// with `set` overrides of the settings a resume may change (recorded in env.json).
#[pyfunction]
#[pyo3(signature = (run_dir, progress = None, set = None))]
pub fn resume(
    py: Python<'_>,
    run_dir: PathBuf,
    progress: Option<PyObject>,
    set: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyRun> {
    let overrides = crate::convert::overrides(set)?;
    fit(py, move || Trainer::resume_with(&run_dir, &overrides), progress)
}

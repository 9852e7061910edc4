//! Experiment tracking. Loggers implement one small trait, [`Logger`] (log params, log metrics,
//! log an artifact, close), so `metrics.jsonl`, TensorBoard, MLflow and W&B are peers. [`Loggers`] fans a run's events out to all of them and is the
//! trainer's callback; a logger that fails is reported once and dropped: training never stops
//! for a logger. The console (progress bars) is a plain callback beside them.

pub mod console;
pub mod jsonl;
pub mod mlflow;
pub mod tensorboard;
pub mod wandb;

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::Path;
use std::rc::Rc;

use crate::config::Config;
use crate::error::Result;
use crate::metrics::EvalResult;
use crate::train::callbacks::{Callback, EpochInfo, FitInfo, StepInfo};

/// What a set of metrics describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A logged training step (every `train.log_every` steps).
    Step,
    /// The end of an epoch: `train/*`, `val/*` and run-level values.
    Epoch,
    /// The final evaluation on the test split: `test/*`.
    Test,
}

/// Named values at one point of the run.
#[derive(Debug, Clone)]
pub struct Metrics<'a> {
    /// What they describe.
    pub kind: MetricKind,
    /// 1-based epoch.
    pub epoch: i64,
    /// Optimizer steps completed.
    pub step: i64,
    /// `(name, value)`, names like `train/loss`, `val/acc`, `lr`.
    pub values: &'a [(&'a str, f64)],
}

impl Metrics<'_> {
    /// The name a tracker shows value `name` under: a logged step's values as `batch/<name>`
    /// (beside the epoch's `train/loss`, ...), the others as they are.
    pub fn tracker_name(&self, name: &str) -> String {
        match self.kind {
            MetricKind::Step => format!("batch/{name}"),
            MetricKind::Epoch | MetricKind::Test => name.to_string(),
        }
    }
}

/// A tracking sink.
pub trait Logger {
    /// Short name for warnings ("tensorboard").
    fn name(&self) -> &'static str;
    /// The resolved config, once at the start.
    fn log_params(&mut self, cfg: &Config) -> Result<()>;
    /// Training starts after optimizer step `step` (0 for a new run, or for a resumed run that
    /// had no checkpoint yet): anything an interrupted earlier session of this run logged after
    /// it is void (metrics.jsonl drops those lines; TensorBoard marks a restart).
    fn resume_after(&mut self, _step: i64) -> Result<()> {
        Ok(())
    }
    /// A divergence restore went back to optimizer step `step` within this session: void what
    /// was logged after it.
    fn rewind_to(&mut self, _step: i64) -> Result<()> {
        Ok(())
    }
    /// Metric values.
    fn log_metrics(&mut self, m: &Metrics) -> Result<()>;
    /// A file of the run (`path`), known to the run as `name` (`plots/loss.png`).
    fn log_artifact(&mut self, path: &Path, name: &str) -> Result<()>;
    /// The run is over (flush, mark finished).
    fn close(&mut self) -> Result<()>;
}

/// The loggers of a run, shared between the trainer (as its callback) and the caller (which logs
/// the plots drawn after training and closes them).
#[derive(Clone, Default)]
pub struct Loggers {
    inner: Rc<RefCell<Vec<Box<dyn Logger>>>>,
    /// Loggers that failed: they log nothing more, and are dropped when the run closes (not at
    /// their failure), so that a tracking server that was down for a while and is back by then
    /// still learns the run failed.
    stopped: Rc<RefCell<Vec<Box<dyn Logger>>>>,
    log_every: i64,
    /// Epoch and step of the last epoch logged (where the test metrics are placed).
    last: (i64, i64),
}

impl Loggers {
    /// A set of loggers; step metrics go out every `log_every` steps (0 = never).
    pub fn new(loggers: Vec<Box<dyn Logger>>, log_every: i64) -> Self {
        Loggers { inner: Rc::new(RefCell::new(loggers)), stopped: Rc::default(), log_every, last: (0, 0) }
    }

    /// The standard set: `metrics.jsonl`, TensorBoard, MLflow when `track.mlflow_uri` is set, and
    /// W&B when `track.wandb` is on.
    pub fn standard(run_dir: &Path, cfg: &Config) -> Self {
        let mut list: Vec<Box<dyn Logger>> = vec![Box::new(jsonl::JsonlLogger::new(&run_dir.join("metrics.jsonl")))];
        match tensorboard::TensorBoardLogger::new(run_dir) {
            Ok(tb) => list.push(Box::new(tb)),
            Err(e) => crate::notice::warn(format!("TensorBoard logging is off: {e}")),
        }
        if !cfg.track.mlflow_uri.is_empty() {
            match mlflow::MlflowLogger::start(
                &cfg.track.mlflow_uri,
                &cfg.track.mlflow_experiment,
                run_dir,
                &cfg.track.mlflow_parent_run,
            ) {
                Ok(m) => list.push(Box::new(m)),
                Err(e) => crate::notice::warn(format!("MLflow logging is off: {e}")),
            }
        }
        if cfg.track.wandb {
            match wandb::WandbLogger::start(&wandb::WandbTarget::from_config(cfg), run_dir) {
                Ok(w) => list.push(Box::new(w)),
                Err(e) => crate::notice::warn(format!("W&B logging is off: {e}")),
            }
        }
        Loggers::new(list, cfg.train.log_every)
    }

    /// Calls `f` on every logger; one that fails is reported and removed.
    fn each(&self, what: &str, mut f: impl FnMut(&mut dyn Logger) -> Result<()>) {
        let mut active = self.inner.borrow_mut();
        for mut l in std::mem::take(&mut *active) {
            match f(l.as_mut()) {
                Ok(()) => active.push(l),
                Err(e) => {
                    crate::notice::warn(format!("{} logging stopped ({what}): {e}", l.name()));
                    self.stopped.borrow_mut().push(l);
                }
            }
        }
    }

    /// Logs metric values to every logger.
    pub fn log_metrics(&self, m: &Metrics) {
        self.each("metrics", |l| l.log_metrics(m));
    }

    /// Logs files of the run directory (paths under `run_dir`).
    pub fn log_artifacts(&self, run_dir: &Path, files: &[std::path::PathBuf]) {
        for f in files {
            let name = f.strip_prefix(run_dir).unwrap_or(f).to_string_lossy().into_owned();
            self.each("artifacts", |l| l.log_artifact(f, &name));
        }
    }

    /// Closes every logger.
    pub fn close(&self) {
        self.each("close", |l| l.close());
        self.inner.borrow_mut().clear();
        self.stopped.borrow_mut().clear(); // their Drop says how they ended (MLflow: FAILED)
    }

    /// The trainer's callback for these loggers.
    pub fn callback(&self) -> Box<dyn Callback> {
        Box::new(self.clone())
    }
}

/// The values of an epoch, by name (TensorBoard tags; also checked against metrics.jsonl).
pub fn epoch_values(e: &EpochInfo) -> Vec<(&'static str, f64)> {
    vec![
        ("train/loss", e.train_loss),
        ("train/acc", e.train_acc),
        ("val/loss", e.val.loss),
        ("val/acc", e.val.acc),
        ("lr", e.lr),
        ("img_per_s", e.img_per_s),
        ("epoch_secs", e.epoch_secs),
        ("val/eval_secs", e.val.secs),
        ("val/is_best", if e.is_best { 1.0 } else { 0.0 }),
    ]
}

impl Callback for Loggers {
    fn fit_start(&mut self, info: &FitInfo) {
        self.each("resume", |l| l.resume_after(info.start_step));
        self.each("params", |l| l.log_params(info.config));
    }

    fn batch_end(&mut self, s: &StepInfo) {
        if self.log_every > 0 && s.step % self.log_every == 0 {
            let values = [("loss", s.loss), ("acc", s.acc), ("lr", s.lr), ("img_per_s", s.img_per_s)];
            self.log_metrics(&Metrics { kind: MetricKind::Step, epoch: s.epoch, step: s.step, values: &values });
        }
    }

    fn epoch_end(&mut self, e: &EpochInfo) {
        let values = epoch_values(e);
        self.last = (e.epoch, e.step);
        self.log_metrics(&Metrics { kind: MetricKind::Epoch, epoch: e.epoch, step: e.step, values: &values });
    }

    fn fit_end(&mut self, test: &EvalResult) {
        let values = [("test/loss", test.loss), ("test/acc", test.acc)];
        self.log_metrics(&Metrics { kind: MetricKind::Test, epoch: self.last.0, step: self.last.1, values: &values });
    }

    fn rewound(&mut self, step: i64) {
        self.each("rewind", |l| l.rewind_to(step));
    }
}

/// The console callback: progress bars on a terminal, one line per epoch otherwise.
pub fn console(cfg: &Config) -> Box<dyn Callback> {
    Box::new(console::ConsoleLogger::new(cfg.train.progress && std::io::stderr().is_terminal()))
}

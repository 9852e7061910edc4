//! `microvision.Run`: a run directory, opened once; its config, provenance and history, and the
//! verbs that act on it (evaluate, predict, export, plot, report).

use std::cell::RefCell;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_tch::PyTensor;

use crate::config::PyConfig;
use crate::convert;
use crate::errors::guard;
use microvision::lab::{self, Checkpoint, Predictor};
use microvision::run::{Env, Run};

/// A training run's directory (`runs/<name>-<timestamp>`).
#[pyclass(name = "Run", module = "microvision._core", unsendable)]
pub struct PyRun {
    run: Run,
    /// The last predictor loaded, reused by `predict` while its checkpoint's state file (which
    /// names the weights by CRC32C) is unchanged: a resume or a longer training replaces `last`.
    predictor: RefCell<Option<(Checkpoint, String, Predictor)>>,
}

impl PyRun {
    /// Opens the run in `dir`.
    pub fn open(dir: PathBuf) -> PyResult<PyRun> {
        let run = guard(|| Run::open(&dir))?;
        Ok(PyRun { run, predictor: RefCell::new(None) })
    }

    fn checkpoint(name: &str) -> PyResult<Checkpoint> {
        guard(|| name.parse())
    }
}

#[pymethods]
impl PyRun {
    /// Opens the run directory `path` (an error names what is wrong with it).
    #[new]
    fn new(path: PathBuf) -> PyResult<PyRun> {
        PyRun::open(path)
    }

    /// The run directory.
    #[getter]
    fn dir(&self) -> PathBuf {
        self.run.dir().to_path_buf()
    }

    /// The directory's name.
    #[getter]
    fn name(&self) -> String {
        self.run.name()
    }

    /// The run's resolved config (`config.toml`).
    #[getter]
    fn config(&self) -> PyConfig {
        PyConfig { inner: self.run.config().clone() }
    }

    /// `env.json` as written (code, libraries, machine, data MD5s, normalisation, seed), or None.
    #[getter]
    fn env(&self, py: Python<'_>) -> PyResult<PyObject> {
        match Env::read_value(self.run.dir()) {
            Some(v) => convert::json_to_py(py, &v),
            None => Ok(py.None()),
        }
    }

    /// Whether the run has its final test evaluation (`eval.json`).
    #[getter]
    fn finished(&self) -> bool {
        self.run.finished()
    }

    /// `metrics.jsonl` and `eval.json`: `{"epochs": [...], "steps": [...], "eval": {...} | None}`.
    fn history(&self, py: Python<'_>) -> PyResult<PyObject> {
        let h = guard(|| self.run.history())?;
        let d = PyDict::new(py);
        let epochs: Vec<serde_json::Value> = h
            .epochs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "epoch": r.epoch, "step": r.step, "train_loss": r.train_loss, "train_acc": r.train_acc,
                    "val_loss": r.val_loss, "val_acc": r.val_acc, "lr": r.lr, "img_per_s": r.img_per_s,
                    "epoch_secs": r.epoch_secs,
                })
            })
            .collect();
        let steps: Vec<serde_json::Value> =
            h.steps.iter().map(|s| serde_json::json!({"step": s.step, "loss": s.loss, "lr": s.lr})).collect();
        d.set_item("epochs", convert::to_py(py, &epochs)?)?;
        d.set_item("steps", convert::to_py(py, &steps)?)?;
        d.set_item("eval", convert::to_py(py, &h.eval)?)?;
        Ok(d.into_any().unbind())
    }

    /// Evaluates `checkpoint` on the test split, with `set` overrides for this evaluation only
    /// (`{"train.tta": 2}`); writes `eval-<checkpoint>[...].json` and returns its contents with
    /// `file`, `epoch` and `averaged`.
    #[pyo3(signature = (checkpoint = "last", set = None))]
    fn eval(&self, py: Python<'_>, checkpoint: &str, set: Option<&Bound<'_, PyAny>>) -> PyResult<PyObject> {
        let (which, overrides) = (PyRun::checkpoint(checkpoint)?, convert::overrides(set)?);
        let dir = self.run.dir().to_path_buf();
        let e = py.allow_threads(|| guard(|| lab::eval(&dir, which, &overrides)))?;
        let file = guard(|| microvision::run::EvalFile::read(&e.file))?;
        let d = convert::to_py(py, &file)?;
        let d = d.bind(py).downcast::<PyDict>()?.clone();
        d.set_item("file", &e.file)?;
        d.set_item("epoch", e.epoch)?;
        d.set_item("averaged", e.averaged)?;
        Ok(d.into_any().unbind())
    }

    /// Class probabilities `(N, classes)` of images `(N, C, H, W)` (a torch tensor, shared
    /// without a copy): uint8 pixels 0..255 or floats in [0, 1], at the run's input size.
    #[pyo3(signature = (images, checkpoint = "last"))]
    fn predict(&self, images: PyTensor, checkpoint: &str) -> PyResult<PyTensor> {
        let which = PyRun::checkpoint(checkpoint)?;
        let state =
            std::fs::read_to_string(self.run.checkpoint_dir().join(format!("{which}.state.json"))).unwrap_or_default();
        let mut cached = self.predictor.borrow_mut();
        if cached.as_ref().is_none_or(|(w, s, _)| *w != which || *s != state) {
            let p = guard(|| Predictor::open(self.run.dir(), which))?;
            *cached = Some((which, state, p));
        }
        let (_, _, p) = cached.as_ref().expect("loaded above");
        guard(|| p.probabilities(&images)).map(PyTensor)
    }

    /// The `top` classes of each image file: a list per image of `(class, probability)`.
    #[pyo3(signature = (paths, checkpoint = "last", top = 5))]
    fn predict_files(
        &self,
        py: Python<'_>,
        paths: Vec<PathBuf>,
        checkpoint: &str,
        top: usize,
    ) -> PyResult<Vec<Vec<(String, f32)>>> {
        let (which, dir) = (PyRun::checkpoint(checkpoint)?, self.run.dir().to_path_buf());
        let preds = py.allow_threads(|| guard(|| lab::predict(&dir, &paths, which, top)))?;
        Ok(preds.into_iter().map(|p| p.top.into_iter().map(|c| (c.name, c.probability)).collect()).collect())
    }

    /// The class names, in label order.
    #[getter]
    fn classes(&self) -> Vec<String> {
        lab::class_names(&self.run)
    }

    /// Exports `checkpoint` as `"safetensors"` or `"torchscript"` into `out` (default
    /// `RUN/export`); returns `{"file": ..., "description": ...}` (model.json).
    #[pyo3(signature = (format = "safetensors", checkpoint = "last", out = None))]
    fn export(&self, py: Python<'_>, format: &str, checkpoint: &str, out: Option<PathBuf>) -> PyResult<PyObject> {
        let which = PyRun::checkpoint(checkpoint)?;
        let format = guard(|| format.parse::<lab::Format>())?;
        let dir = self.run.dir().to_path_buf();
        let e = py.allow_threads(|| guard(|| lab::export(&dir, which, format, out.as_deref())))?;
        let d = PyDict::new(py);
        d.set_item("file", e.file)?;
        d.set_item("description", e.description)?;
        Ok(d.into_any().unbind())
    }

    /// Explains `checkpoint` on the test images (see `microvision explain`): the maps of
    /// `methods` (names as on the command line; `None`: all but Score-CAM, with the embeddings
    /// and their t-SNE) at `layer`, for class `cls` or the predicted one. Writes `RUN/explain/`,
    /// `RUN/plots/explain_*` and the projector files; returns this call's summary as a dict.
    #[pyo3(signature = (methods = None, layer = None, cls = None, per_class = 3, wrong = 12, test_images = 0, limit = 0, perplexity = 30.0, checkpoint = "best"))]
    #[allow(clippy::too_many_arguments)]
    fn explain(
        &self,
        py: Python<'_>,
        methods: Option<Vec<String>>,
        layer: Option<String>,
        cls: Option<String>,
        per_class: usize,
        wrong: usize,
        test_images: usize,
        limit: usize,
        perplexity: f64,
        checkpoint: &str,
    ) -> PyResult<PyObject> {
        let mut args = guard(|| lab::ExplainArgs::with_methods(&methods.unwrap_or_default()))?;
        args.layer = layer;
        args.class = cls;
        (args.per_class, args.wrong, args.test_images, args.limit) = (per_class, wrong, test_images, limit);
        args.tsne.perplexity = perplexity;
        args.checkpoint = PyRun::checkpoint(checkpoint)?;
        let dir = self.run.dir().to_path_buf();
        let e = py.allow_threads(|| guard(|| lab::explain(&dir, &args)))?;
        convert::to_py(py, &e.summary)
    }

    /// Draws the run's plots into `RUN/plots/`; returns the files.
    fn plots(&self, py: Python<'_>) -> PyResult<Vec<PathBuf>> {
        let dir = self.run.dir().to_path_buf();
        let p = py.allow_threads(|| guard(|| lab::plot(&dir)))?;
        for w in &p.warnings {
            microvision::notice::warn(w);
        }
        Ok(p.files)
    }

    /// Writes the run's HTML report (to `out`, a file or directory; default `RUN/report.html`).
    #[pyo3(signature = (out = None))]
    fn report(&self, py: Python<'_>, out: Option<PathBuf>) -> PyResult<PathBuf> {
        let dir = self.run.dir().to_path_buf();
        let r = py.allow_threads(|| guard(|| lab::report(&dir, out.as_deref())))?;
        for w in &r.warnings {
            microvision::notice::warn(w);
        }
        Ok(r.path)
    }

    fn __repr__(&self) -> String {
        format!("Run({:?})", self.run.dir().display().to_string())
    }

    fn __fspath__(&self) -> String {
        self.run.dir().display().to_string()
    }
}

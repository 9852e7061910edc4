//! `microvision._core`: the Python extension over microvision's library verbs. The package
//! `microvision` (python/microvision/) wraps it with DataFrames, progress bars and NumPy input.
//! Tensors cross to and from PyTorch without a copy (both sides use the same LibTorch).

mod config;
mod convert;
mod errors;
mod run;
mod train;
mod tune;

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_tch::PyTensor;

use errors::guard;
use microvision::lab;
use microvision::models::{Model, ModelArgs};

/// Compares runs as `microvision compare --format csv` does: seeds grouped (mean and std), one
/// number per cell; draws the overlaid curves into `plot_dir` (default: the first run's parent).
#[pyfunction]
#[pyo3(signature = (runs, plot_dir = None))]
fn compare_csv(py: Python<'_>, runs: Vec<PathBuf>, plot_dir: Option<PathBuf>) -> PyResult<String> {
    let c = py.allow_threads(|| guard(|| lab::compare(&runs, plot_dir.as_deref())))?;
    for (dir, why) in &c.skipped {
        microvision::notice::warn(format!("skipping {}: {why}", dir.display()));
    }
    for w in &c.warnings {
        microvision::notice::warn(w);
    }
    Ok(c.table(true))
}

/// Sends run directories to W&B as `microvision sync wandb` does; one dict per run: `run`,
/// `run_id`, `url` (online), `offline_dir` (offline), `records`, `finished`.
#[pyfunction]
#[pyo3(signature = (runs, project = None, entity = None, mode = None))]
fn sync_wandb(
    py: Python<'_>,
    runs: Vec<PathBuf>,
    project: Option<String>,
    entity: Option<String>,
    mode: Option<String>,
) -> PyResult<Vec<PyObject>> {
    let to = lab::WandbSync { project, entity, mode };
    let synced = py.allow_threads(|| guard(|| lab::sync_wandb(&runs, &to)))?;
    synced
        .iter()
        .map(|s| {
            let d = PyDict::new(py);
            d.set_item("run", &s.run)?;
            d.set_item("run_id", &s.run_id)?;
            d.set_item("url", &s.url)?;
            d.set_item("offline_dir", &s.offline_dir)?;
            d.set_item("records", s.records)?;
            d.set_item("finished", s.finished)?;
            Ok(d.into_any().unbind())
        })
        .collect()
}

/// One split of a dataset on disk: `(images uint8 (N, C, H, W), labels int64 (N,), classes)`.
#[pyfunction]
#[pyo3(signature = (name, split = "train", root = None))]
fn load_data(
    py: Python<'_>,
    name: &str,
    split: &str,
    root: Option<PathBuf>,
) -> PyResult<(PyTensor, PyTensor, Vec<String>)> {
    let train = match split {
        "train" => true,
        "test" => false,
        other => return Err(errors::ConfigError::new_err(format!("split {other:?}: expected \"train\" or \"test\""))),
    };
    let d = py.allow_threads(|| guard(|| lab::load_split(name, root, train)))?;
    Ok((PyTensor(d.images), PyTensor(d.labels), d.classes))
}

/// The registered models: name, parameters, MFLOPs per 32x32 image, source.
#[pyfunction]
fn list_models(py: Python<'_>) -> PyResult<Vec<PyObject>> {
    let models = guard(|| lab::models(false))?;
    models
        .iter()
        .map(|m| {
            let d = PyDict::new(py);
            d.set_item("name", m.name)?;
            d.set_item("params", m.params)?;
            d.set_item("mflops", m.mflops_per_image)?;
            d.set_item("about", m.about)?;
            Ok(d.into_any().unbind())
        })
        .collect()
}

/// Builds registered model `name` (freshly initialised) and saves its evaluation-mode forward
/// pass as TorchScript at `path`, for `torch.jit.load`.
#[pyfunction]
#[pyo3(signature = (name, path, num_classes = 10, in_channels = 3, input_size = 32))]
fn save_model_torchscript(
    name: &str,
    path: PathBuf,
    num_classes: i64,
    in_channels: i64,
    input_size: i64,
) -> PyResult<()> {
    let args = ModelArgs { num_classes, in_channels, input_size, ..ModelArgs::default() };
    guard(|| {
        let model = Model::new(name, &args, tch::Device::Cpu)?;
        microvision::models::torchscript::save(&model, &args, &path)
    })
}

/// A grid of `count` training images as the config's augmentation draws them (the first batch
/// of epoch 1), saved as `augment_preview.png` and `.svg` in `out`; returns the files.
#[pyfunction]
#[pyo3(signature = (config, count = 40, out = PathBuf::from(".")))]
fn augment_preview(py: Python<'_>, config: &config::PyConfig, count: usize, out: PathBuf) -> PyResult<Vec<PathBuf>> {
    let cfg = config.inner.clone();
    py.allow_threads(|| guard(|| lab::augment_preview(&cfg, count, &out)))
}

/// The tensor it is given, passed through Rust and back (a shallow copy: the same storage).
/// The package's tests use it to check that tensors cross without a copy.
#[pyfunction]
fn share_tensor(t: PyTensor) -> PyTensor {
    PyTensor(t.shallow_clone())
}

/// Routes the library's warnings to Python's `warnings` and its notes to `sys.stderr`, where a
/// notebook shows them (the process's own stderr it does not).
fn route_notices() {
    microvision::notice::set_sink(Box::new(|level, message| {
        Python::with_gil(|py| {
            let shown = match level {
                microvision::notice::Level::Warning => py
                    .import("warnings")
                    .and_then(|w| w.call_method1("warn", (message, py.get_type::<pyo3::exceptions::PyUserWarning>()))),
                microvision::notice::Level::Note => py
                    .import("sys")
                    .and_then(|s| s.getattr("stderr")?.call_method1("write", (format!("note: {message}\n"),))),
                microvision::notice::Level::Info => {
                    py.import("sys").and_then(|s| s.getattr("stderr")?.call_method1("write", (format!("{message}\n"),)))
                }
            };
            if shown.is_err() {
                eprintln!("{message}");
            }
        })
    }));
}

/// The extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    route_notices();
    errors::quiet_torch_panics();
    errors::register(m)?;
    m.add_class::<config::PyConfig>()?;
    m.add_class::<run::PyRun>()?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(train::resume, m)?)?;
    m.add_function(wrap_pyfunction!(compare_csv, m)?)?;
    m.add_function(wrap_pyfunction!(sync_wandb, m)?)?;
    m.add_function(wrap_pyfunction!(load_data, m)?)?;
    m.add_function(wrap_pyfunction!(list_models, m)?)?;
    m.add_function(wrap_pyfunction!(save_model_torchscript, m)?)?;
    m.add_function(wrap_pyfunction!(share_tensor, m)?)?;
    m.add_function(wrap_pyfunction!(augment_preview, m)?)?;
    m.add_function(wrap_pyfunction!(tune::tune, m)?)?;
    m.add_function(wrap_pyfunction!(tune::study_read, m)?)?;
    m.add_function(wrap_pyfunction!(tune::study_report, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

//! `microvision.Config`: a resolved, validated config, loaded from a TOML file or built from a
//! dict, with `set=` overrides checked as the command line's `--set`.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert;
use crate::errors::guard;
use microvision::Config;

/// A resolved, validated run config (every key, defaults filled in).
#[pyclass(name = "Config", module = "microvision._core", frozen)]
#[derive(Clone)]
pub struct PyConfig {
    pub inner: Config,
}

#[pymethods]
impl PyConfig {
    /// Reads a TOML file and applies `set` (a dict `{"train.epochs": 3}` or a list of
    /// `"train.epochs=3"`); `MICROVISION_DATA` sets `data.root` unless `set` does.
    #[staticmethod]
    #[pyo3(signature = (path, set = None))]
    fn load(path: PathBuf, set: Option<&Bound<'_, PyAny>>) -> PyResult<PyConfig> {
        let overrides = convert::overrides(set)?;
        guard(|| Config::load(&path, &overrides)).map(|inner| PyConfig { inner })
    }

    /// A config from a nested dict (`{"model": {"name": "resnet18"}, "train": {"epochs": 3}}`),
    /// the keys the TOML files have; missing keys take their defaults.
    #[staticmethod]
    #[pyo3(signature = (d, set = None))]
    fn from_dict(d: &Bound<'_, PyDict>, set: Option<&Bound<'_, PyAny>>) -> PyResult<PyConfig> {
        let text = toml::to_string(&convert::to_toml(d.as_any())?)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("config dict: {e}")))?;
        let overrides = convert::overrides(set)?;
        guard(|| Config::from_text(&text, "(dict)", &overrides)).map(|inner| PyConfig { inner })
    }

    /// The default config, with `set` applied.
    #[staticmethod]
    #[pyo3(signature = (set = None))]
    fn defaults(set: Option<&Bound<'_, PyAny>>) -> PyResult<PyConfig> {
        let overrides = convert::overrides(set)?;
        guard(|| Config::defaults(&overrides)).map(|inner| PyConfig { inner })
    }

    /// A copy with `set` applied (checked as on loading).
    fn with_set(&self, set: &Bound<'_, PyAny>) -> PyResult<PyConfig> {
        let overrides = convert::overrides(Some(set))?;
        let text = self.inner.to_toml();
        guard(|| Config::from_toml_str(&text, "(config)", &overrides)).map(|inner| PyConfig { inner })
    }

    /// The value of `"section.key"` (e.g. `"train.epochs"`).
    fn get(&self, py: Python<'_>, key: &str) -> PyResult<PyObject> {
        let mut v =
            serde_json::to_value(&self.inner).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        for part in key.split('.') {
            v = v.get(part).cloned().ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(key.to_string()))?;
        }
        convert::json_to_py(py, &v)
    }

    /// The config as TOML, as a run's `config.toml` records it.
    fn to_toml(&self) -> String {
        self.inner.to_toml()
    }

    /// The config as a nested dict.
    fn to_dict(&self, py: Python<'_>) -> PyResult<PyObject> {
        convert::to_py(py, &self.inner)
    }

    /// The run name.
    #[getter]
    fn name(&self) -> String {
        self.inner.name.clone()
    }

    fn __repr__(&self) -> String {
        let c = &self.inner;
        format!(
            "Config(name={:?}, model={:?}, dataset={:?}, epochs={}, seed={})",
            c.name, c.model.name, c.data.dataset, c.train.epochs, c.train.seed
        )
    }
}

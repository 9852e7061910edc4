//! Values between Python and the library: Python dicts and scalars to TOML (configs and `set=`
//! overrides), JSON values (env.json, evaluations, histories) to Python objects.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;

/// A Python value as TOML: bool, int, float, str (or a path), list/tuple, dict with str keys.
pub fn to_toml(obj: &Bound<'_, PyAny>) -> PyResult<toml::Value> {
    Ok(if obj.is_instance_of::<PyBool>() {
        toml::Value::Boolean(obj.extract()?)
    } else if obj.is_instance_of::<PyInt>() {
        toml::Value::Integer(obj.extract()?)
    } else if obj.is_instance_of::<PyFloat>() {
        toml::Value::Float(obj.extract()?)
    } else if obj.is_instance_of::<PyString>() {
        toml::Value::String(obj.extract()?)
    } else if let Ok(dict) = obj.downcast::<PyDict>() {
        let mut table = toml::map::Map::new();
        for (k, v) in dict.iter() {
            let key: String =
                k.extract().map_err(|_| PyTypeError::new_err(format!("config key {k}: expected a str")))?;
            table.insert(key, to_toml(&v)?);
        }
        toml::Value::Table(table)
    } else if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        toml::Value::Array(obj.try_iter()?.map(|v| to_toml(&v?)).collect::<PyResult<_>>()?)
    } else if obj.hasattr("__fspath__")? {
        toml::Value::String(obj.call_method0("__fspath__")?.extract()?)
    } else {
        return Err(PyTypeError::new_err(format!(
            "config value {obj} of type {}: expected a bool, int, float, str, path, list or dict",
            obj.get_type().name()?
        )));
    })
}

/// `set=` overrides as the command line's `key=value` strings: a dict `{"train.epochs": 3}`, a
/// list of `"train.epochs=3"` strings, or one such string.
pub fn overrides(set: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(set) = set.filter(|s| !s.is_none()) else { return Ok(Vec::new()) };
    if set.is_instance_of::<PyString>() {
        return Ok(vec![set.extract()?]); // one "key=value", not its characters
    }
    if let Ok(dict) = set.downcast::<PyDict>() {
        return dict
            .iter()
            .map(|(k, v)| {
                let key: String = k.extract()?;
                Ok(format!("{key}={}", to_toml(&v)?))
            })
            .collect();
    }
    set.try_iter()
        .map_err(|_| {
            PyTypeError::new_err("set: expected a dict {\"section.key\": value} or a list of \"section.key=value\"")
        })?
        .map(|item| item?.extract::<String>())
        .collect()
}

/// A JSON value as a Python object (dicts, lists, str, int, float, bool, None).
pub fn json_to_py(py: Python<'_>, v: &serde_json::Value) -> PyResult<PyObject> {
    use serde_json::Value;
    match v {
        Value::Null => Ok(py.None()),
        Value::Bool(b) => b.into_py_any(py),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into_py_any(py),
            None => n.as_f64().unwrap_or(f64::NAN).into_py_any(py),
        },
        Value::String(s) => s.into_py_any(py),
        Value::Array(a) => {
            let items = a.iter().map(|x| json_to_py(py, x)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_py_any(py)
        }
        Value::Object(o) => {
            let dict = PyDict::new(py);
            for (k, x) in o {
                dict.set_item(k, json_to_py(py, x)?)?;
            }
            dict.into_py_any(py)
        }
    }
}

/// Any serialisable value as a Python object, through JSON.
pub fn to_py(py: Python<'_>, v: &impl serde::Serialize) -> PyResult<PyObject> {
    let json = serde_json::to_value(v).map_err(|e| PyTypeError::new_err(e.to_string()))?;
    json_to_py(py, &json)
}

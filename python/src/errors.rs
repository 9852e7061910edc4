//! microvision's errors as Python exceptions, with the command line's messages: a config error
//! is a `ConfigError` (a `ValueError`), missing data a `DataError`, a bad run or checkpoint a
//! `CheckpointError`, an interrupted training `Interrupted` (a `KeyboardInterrupt`, whose
//! message says how to resume). LibTorch's errors, which tch raises as panics, become
//! `RuntimeError`s instead of crashing the interpreter.

use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use microvision::Error;

pyo3::create_exception!(microvision, MicrovisionError, PyException, "Any error of microvision.");
pyo3::create_exception!(microvision, ConfigError, PyValueError, "A bad config file, key or value.");
pyo3::create_exception!(microvision, DataError, MicrovisionError, "Missing, truncated or corrupt dataset files.");
pyo3::create_exception!(
    microvision,
    CheckpointError,
    MicrovisionError,
    "A missing, locked or corrupt run directory or checkpoint."
);
pyo3::create_exception!(
    microvision,
    Interrupted,
    PyKeyboardInterrupt,
    "Training stopped by an interrupt; `last` is saved and the message says how to resume."
);

/// The Python exception for a microvision error.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Config(_) => ConfigError::new_err(msg),
        Error::Data(_) => DataError::new_err(msg),
        Error::Checkpoint(_) => CheckpointError::new_err(msg),
        Error::Interrupted(_) => Interrupted::new_err(msg),
        _ => MicrovisionError::new_err(msg),
    }
}

/// Runs a library call, turning its error and a LibTorch panic into Python exceptions.
pub fn guard<T>(f: impl FnOnce() -> microvision::Result<T>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(to_py),
        Err(payload) => match microvision::cli::torch_message(payload.as_ref()) {
            Some(msg) => Err(PyRuntimeError::new_err(format!("libtorch: {msg}"))),
            None => std::panic::resume_unwind(payload),
        },
    }
}

/// Registers the exception classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("MicrovisionError", py.get_type::<MicrovisionError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    m.add("Interrupted", py.get_type::<Interrupted>())?;
    Ok(())
}

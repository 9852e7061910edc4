//! microvision's errors as Python exceptions, with the command line's messages: each is a
//! `MicrovisionError` (a config error a `ConfigError`, missing data a `DataError`, a bad run or
//! checkpoint a `CheckpointError`), except an interrupted training, `Interrupted` (a
//! `KeyboardInterrupt`, whose message says how to resume), and LibTorch's own errors, which tch
//! raises as panics: they become `RuntimeError`s instead of crashing the interpreter.

use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;

use microvision::Error;

pyo3::create_exception!(
    microvision,
    MicrovisionError,
    PyException,
    "An error of microvision (not an interrupt, nor LibTorch's own RuntimeError)."
);
pyo3::create_exception!(microvision, ConfigError, MicrovisionError, "A bad config file, key or value.");
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
            Some(msg) => Err(PyRuntimeError::new_err(format!(
                "libtorch: {msg} (if this is an out-of-memory error, lower data.batch_size)"
            ))),
            None => std::panic::resume_unwind(payload),
        },
    }
}

/// Keeps LibTorch's errors (panics in tch, which [`guard`] turns into exceptions) from printing
/// a Rust panic report on the process's stderr; every other panic is reported as before.
pub fn quiet_torch_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if microvision::cli::torch_message(info.payload()).is_none() {
                previous(info);
            }
        }));
    });
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

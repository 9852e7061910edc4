//! The Optuna side of a tuning worker: a long-lived Python process (`driver.py`, embedded in
//! the binary) that owns the study, spoken to in JSON lines. Optuna's own CLI cannot prune, and
//! its samplers, pruners and storages are what users already trust, so we drive it rather than
//! re-implement it.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::error::Result;
use crate::pyproc::{Helper, HelperKind};

/// The driver's source, run with `python -c`.
const DRIVER: &str = include_str!("driver.py");

/// The Optuna version the driver is written and tested against (requirements.lock).
pub const OPTUNA_VERSION: &str = "5.1.0";

/// A running driver process.
#[derive(Debug)]
pub struct Optuna(Helper);

impl Optuna {
    /// Starts the driver with `python` and checks it imports the expected Optuna.
    pub fn start(python: PathBuf) -> Result<Optuna> {
        let kind = HelperKind { name: "the Optuna driver", module: "optuna", how: HOW };
        let mut o = Optuna(Helper::start(python, DRIVER, kind)?);
        let version = o.call("version", json!({}))?;
        let got = version["optuna"].as_str().unwrap_or("?");
        if got != OPTUNA_VERSION {
            crate::notice::warn(format!(
                "{} has Optuna {got}; microvision is tested with {OPTUNA_VERSION} (scripts/setup.sh --python installs it)",
                o.0.python().display()
            ));
        }
        Ok(o)
    }

    /// Sends request `op` with the fields of `args` (an object) and returns the answer. When
    /// the driver's input closes (this value dropped) it first fails a trial still running.
    pub fn call(&mut self, op: &str, args: Value) -> Result<Value> {
        self.0.call(op, args)
    }
}

const HOW: &str = "Optuna is installed in the project's venv by `scripts/setup.sh --python` (requirements.lock); \
     elsewhere `pip install optuna==5.1.0`, or set MICROVISION_PYTHON to a Python that has it.";

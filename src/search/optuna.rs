//! The Optuna side of a tuning worker: a long-lived Python process (`driver.py`, embedded in
//! the binary) that owns the study, spoken to in JSON lines. Optuna's own CLI cannot prune, and
//! its samplers, pruners and storages are what users already trust, so we drive it rather than
//! re-implement it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The driver's source, run with `python -c`.
const DRIVER: &str = include_str!("driver.py");

/// The Optuna version the driver is written and tested against (requirements.lock).
pub const OPTUNA_VERSION: &str = "5.1.0";

/// A running driver process.
#[derive(Debug)]
pub struct Optuna {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    python: PathBuf,
    /// The driver's last lines of standard error (read by a thread, so that a chatty driver
    /// never blocks on a full pipe): what to show when it dies.
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// The Python that runs the driver: `$MICROVISION_PYTHON`, else the project's `.venv` (beside
/// the working directory or two levels above the executable, as `target/release/` is), else
/// `python3` on the PATH.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MICROVISION_PYTHON").filter(|p| !p.is_empty()) {
        return p.into();
    }
    let exe_root = std::env::current_exe().ok().and_then(|e| e.parent()?.parent()?.parent().map(PathBuf::from));
    [Some(PathBuf::from(".")), exe_root]
        .into_iter()
        .flatten()
        .map(|d| d.join(".venv/bin/python"))
        .find(|p| p.exists())
        .unwrap_or_else(|| "python3".into())
}

impl Optuna {
    /// Starts the driver with `python` and checks it imports the expected Optuna.
    pub fn start(python: PathBuf) -> Result<Optuna> {
        let mut child = Command::new(&python)
            .args(["-u", "-c", DRIVER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Runtime(format!("cannot start {} for Optuna: {e}; {}", python.display(), HOW)))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let tail = stderr.clone();
        let err = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(std::result::Result::ok) {
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                if t.len() == 8 {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        let mut o = Optuna { child, stdin: Some(stdin), stdout, python, stderr };
        let version = o.call("version", json!({}))?;
        let got = version["optuna"].as_str().unwrap_or("?");
        if got != OPTUNA_VERSION {
            crate::notice::warn(format!(
                "{} has Optuna {got}; microvision is tested with {OPTUNA_VERSION} (scripts/setup.sh --python installs it)",
                o.python.display()
            ));
        }
        Ok(o)
    }

    /// Sends request `op` with the fields of `args` (an object) and returns the answer.
    pub fn call(&mut self, op: &str, mut args: Value) -> Result<Value> {
        args["op"] = op.into();
        let line = serde_json::to_string(&args).expect("JSON values serialise");
        let stdin = self.stdin.as_mut().expect("open until dropped");
        let sent = writeln!(stdin, "{line}").and_then(|_| stdin.flush());
        let mut answer = String::new();
        let read = sent.and_then(|_| self.stdout.read_line(&mut answer));
        if read.is_err() || answer.is_empty() {
            return Err(self.died(op));
        }
        let v: Value = serde_json::from_str(&answer)
            .map_err(|e| Error::Runtime(format!("the Optuna driver answered {op} with {answer:?}: {e}")))?;
        if v["ok"].as_bool() != Some(true) {
            return Err(Error::Runtime(format!("Optuna ({op}): {}", v["error"].as_str().unwrap_or("no reason given"))));
        }
        Ok(v)
    }

    /// The error for a driver that ended: its stderr says why (most often: no Optuna).
    fn died(&mut self, op: &str) -> Error {
        let _ = self.child.kill(); // most often it has ended already
        let _ = self.child.wait();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let tail: Vec<String> = self.stderr.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        let hint = if tail.iter().any(|l| l.contains("No module named 'optuna'")) { HOW } else { "" };
        Error::Runtime(format!(
            "the Optuna driver ({}) ended during `{op}`: {} {hint}",
            self.python.display(),
            tail.join(" | ")
        ))
    }
}

impl Drop for Optuna {
    fn drop(&mut self) {
        // End of input ends the driver, which first fails a trial still running.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

const HOW: &str = "Optuna is installed in the project's venv by `scripts/setup.sh --python` (requirements.lock); \
     elsewhere `pip install optuna==5.1.0`, or set MICROVISION_PYTHON to a Python that has it.";

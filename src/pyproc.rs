//! A helper process in the project's Python: a script embedded in the binary, run with
//! `python -u -c`, spoken to in JSON lines (one request `{"op": ..., ...}` per line, one answer
//! `{"ok": true, ...}` or `{"ok": false, "error": ...}` per line). The engines users already run
//! (Optuna, the W&B SDK) have no API for other languages, so we drive them rather than rewrite
//! them.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::error::{Error, Result};

/// The Python that runs helpers: `$MICROVISION_PYTHON`, else the project's `.venv` (beside the
/// working directory or two levels above the executable, as `target/release/` is), else
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

/// Writes `bytes` to a helper's input with SIGPIPE blocked in this thread, so that a helper that
/// died makes the write fail with EPIPE instead of killing the process (the binary restores
/// SIGPIPE's default disposition, so that `microvision models | head` ends quietly); the
/// SIGPIPE the failed write raised is taken before the mask is restored.
fn write_without_sigpipe(stdin: &mut ChildStdin, bytes: &[u8]) -> std::io::Result<()> {
    // SAFETY: plain signal-mask calls on this thread's mask, restored before returning.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        let result = stdin.write_all(bytes).and_then(|_| stdin.flush());
        if result.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) {
            let now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            libc::sigtimedwait(&pipe, std::ptr::null_mut(), &now);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        result
    }
}

/// What a helper is, for its messages.
#[derive(Debug, Clone, Copy)]
pub struct HelperKind {
    /// Its name in messages ("the Optuna driver").
    pub name: &'static str,
    /// The Python module it needs ("optuna"): its absence is reported with `how`.
    pub module: &'static str,
    /// How to install that module.
    pub how: &'static str,
}

/// A running helper process.
#[derive(Debug)]
pub struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    python: PathBuf,
    kind: HelperKind,
    /// The helper's last lines of standard error (read by a thread, so that a chatty helper
    /// never blocks on a full pipe): what to show when it dies.
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Helper {
    /// Starts `source` with `python`.
    pub fn start(python: PathBuf, source: &str, kind: HelperKind) -> Result<Helper> {
        let mut child = Command::new(&python)
            .args(["-u", "-c", source])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::Runtime(format!("cannot start {} for {}: {e}; {}", python.display(), kind.name, kind.how))
            })?;
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
        Ok(Helper { child, stdin: Some(stdin), stdout, python, kind, stderr })
    }

    /// The interpreter it runs in.
    pub fn python(&self) -> &std::path::Path {
        &self.python
    }

    /// Sends request `op` with the fields of `args` (an object) and returns the answer.
    pub fn call(&mut self, op: &str, mut args: Value) -> Result<Value> {
        args["op"] = op.into();
        let line = serde_json::to_string(&args).expect("JSON values serialise");
        let stdin = self.stdin.as_mut().expect("open until dropped");
        let sent = write_without_sigpipe(stdin, format!("{line}\n").as_bytes());
        let mut answer = String::new();
        let read = sent.and_then(|_| self.stdout.read_line(&mut answer));
        if read.is_err() || answer.is_empty() {
            return Err(self.died(op));
        }
        let name = self.kind.name;
        let v: Value = serde_json::from_str(&answer)
            .map_err(|e| Error::Runtime(format!("{name} answered {op} with {answer:?}: {e}")))?;
        if v["ok"].as_bool() != Some(true) {
            return Err(Error::Runtime(format!("{name} ({op}): {}", v["error"].as_str().unwrap_or("no reason given"))));
        }
        Ok(v)
    }

    /// The error for a helper that ended: its stderr says why (most often: its module missing).
    fn died(&mut self, op: &str) -> Error {
        let _ = self.child.kill(); // most often it has ended already
        let _ = self.child.wait();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let tail: Vec<String> = self.stderr.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        let missing = format!("No module named '{}'", self.kind.module);
        let hint = if tail.iter().any(|l| l.contains(&missing)) { self.kind.how } else { "" };
        Error::Runtime(format!(
            "{} ({}) ended during `{op}`: {} {hint}",
            self.kind.name,
            self.python.display(),
            tail.join(" | ")
        ))
    }

    /// Closes the helper's input (its signal to finish) and waits for it to end.
    pub fn close(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.close();
    }
}

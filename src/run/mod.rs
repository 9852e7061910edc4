//! The run directory: `runs/<name>-<timestamp>/` with `config.toml`, `env.json`, `metrics.jsonl`,
//! `checkpoints/` and `eval*.json`, and [`Run`], which reads them typed. Creation is atomic
//! (`create_dir` fails if the directory exists), so two runs started in the same second get
//! distinct directories and nothing is overwritten.
//!
//! This layer knows files, not tensors: it sits above `config` and below `data`, `train` and
//! `analysis`, which all read runs through it.

mod env;
mod eval_file;
mod history;
pub mod recipe;

pub use env::{update_peak_memory, Env, InitFrom};
pub use eval_file::{eval_file_name, EvalFile};
pub use history::{EpochRow, History, StepRow};

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};

/// An existing run directory, opened once: its resolved config, and typed access to the files
/// beside it. Opening checks that the directory is a training run (not a file, a missing path
/// or an `lr-find` sweep) with a readable `config.toml`.
#[derive(Debug, Clone)]
pub struct Run {
    dir: PathBuf,
    config: Config,
}

impl Run {
    /// Opens the run in `dir`.
    pub fn open(dir: &Path) -> Result<Run> {
        Run::open_with(dir, &[])
    }

    /// Opens the run in `dir` with `key=value` overrides applied to its config (as `train
    /// --set`; e.g. `train.tta=2` for an evaluation). The files are not changed.
    pub fn open_with(dir: &Path, overrides: &[String]) -> Result<Run> {
        Ok(Run { dir: dir.to_path_buf(), config: read_config_with(dir, overrides)? })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory's name (`simple_cnn-20261126-174140`).
    pub fn name(&self) -> String {
        self.dir.file_name().map_or_else(|| self.dir.display().to_string(), |n| n.to_string_lossy().into_owned())
    }

    /// The run's resolved config (with the overrides it was opened with).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `env.json`, when the run wrote it (a run killed at once may not have).
    pub fn env(&self) -> Option<Env> {
        Env::read(&self.dir)
    }

    /// `metrics.jsonl` and `eval.json`, read back.
    pub fn history(&self) -> Result<History> {
        History::read(&self.dir)
    }

    /// The final test evaluation (`eval.json`) once the run has finished.
    pub fn eval(&self) -> Option<Result<EvalFile>> {
        let path = self.dir.join("eval.json");
        path.exists().then(|| EvalFile::read(&path))
    }

    /// Whether the run has its final test evaluation (`eval.json`).
    pub fn finished(&self) -> bool {
        self.dir.join("eval.json").exists()
    }

    /// The directory of its checkpoints (`output.checkpoint_dir`).
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.dir.join(&self.config.output.checkpoint_dir)
    }

    /// Its `plots/` directory.
    pub fn plots_dir(&self) -> PathBuf {
        self.dir.join("plots")
    }
}

/// Creates a fresh run directory under `cfg.output.runs_dir`.
pub fn create(cfg: &Config) -> Result<PathBuf> {
    let parent = &cfg.output.runs_dir;
    crate::error::create_dir_all(parent, "cannot create runs directory")?;
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    for n in 1..1000 {
        let name = if n == 1 { format!("{}-{stamp}", cfg.name) } else { format!("{}-{stamp}-{n}", cfg.name) };
        let dir = parent.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("cannot create run directory", &dir, e)),
        }
    }
    Err(Error::Runtime(format!("too many runs named {} in {}", cfg.name, parent.display())))
}

/// An exclusive lock on a run directory, held while a process trains it. The operating system
/// releases it when the process ends, however it ends (kill -9 included).
#[derive(Debug)]
pub struct RunLock(#[allow(dead_code)] std::fs::File);

/// Locks `run` for training: a second process (e.g. `--resume` of a run that is still training)
/// would interleave checkpoint writes and truncate the metrics the first one appends to.
pub fn lock(run: &Path) -> Result<RunLock> {
    use std::io::Write;
    let path = run.join(".lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("cannot create", &path, e))?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.set_len(0).and_then(|_| write!(file, "{}", std::process::id()));
            Ok(RunLock(file))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            Err(Error::Checkpoint(format!(
                "{} is being trained by another process (pid {}); wait for it to finish, or stop it \
                 (Ctrl-C, or kill {}) and resume then",
                run.display(),
                pid.trim(),
                pid.trim()
            )))
        }
        // Some network file systems cannot lock: train unguarded rather than not at all.
        Err(std::fs::TryLockError::Error(e)) => {
            crate::notice::warn(format!(
                "cannot lock {} ({e}); make sure no other process trains this run",
                path.display()
            ));
            Ok(RunLock(file))
        }
    }
}

pub use crate::config::LR_SWEEP_SUFFIX;

/// Whether `run` is the directory of an `lr-find` sweep rather than of a training run: named
/// `<name>-lrfind-<time>` without checkpoints, with lr_find.json once the sweep has finished.
pub fn is_lr_sweep(run: &Path) -> bool {
    let named = run.file_name().is_some_and(|n| n.to_string_lossy().contains(&format!("{LR_SWEEP_SUFFIX}-")));
    // Earlier versions allowed `-lrfind` in run names: a training run has checkpoints.
    (named && !run.join("checkpoints").exists()) || run.join("lr_find.json").is_file()
}

/// Reads the resolved config of a run directory.
pub fn read_config(run: &Path) -> Result<Config> {
    read_config_with(run, &[])
}

/// [`read_config`] with `key=value` overrides applied (as `train --set`).
pub fn read_config_with(run: &Path, overrides: &[String]) -> Result<Config> {
    let path = run.join("config.toml");
    if run.is_dir() && is_lr_sweep(run) {
        return Err(Error::Checkpoint(format!(
            "{} holds a learning-rate sweep (lr-find), not a training run: its results are lr_find.json and \
             lr_find.png there",
            run.display()
        )));
    }
    if !run.is_dir() {
        return Err(Error::Checkpoint(if run.exists() {
            format!("{} is a file; expected a run directory (runs/<name>-<time>)", run.display())
        } else {
            format!("run directory {} does not exist", run.display())
        }));
    }
    Config::from_saved_toml(
        &std::fs::read_to_string(&path).map_err(|e| {
            Error::Checkpoint(format!("{} is not a run directory: cannot read {}: {e}", run.display(), path.display()))
        })?,
        &path.display().to_string(),
        overrides,
    )
}

/// The git commit of the current directory, or "unknown".
pub fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether the checkout of the current directory has uncommitted changes to tracked files, or
/// None outside a checkout.
pub fn git_dirty() -> Option<bool> {
    std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| !o.stdout.is_empty())
}

/// Peak resident set size of this process (VmHWM), in bytes.
pub fn peak_rss_bytes() -> u64 {
    proc_status_bytes("VmHWM:")
}

/// A memory field of `/proc/self/status` (e.g. `"VmRSS:"`), in bytes; 0 where unavailable.
pub fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The last epoch the run's `metrics.jsonl` records (0: none). An epoch's records are written
/// just before its checkpoints, so the last one may lack its checkpoint after a crash.
pub fn last_epoch_record(run: &Path) -> i64 {
    let Ok(text) = std::fs::read_to_string(run.join("metrics.jsonl")) else { return 0 };
    let lines = text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    lines.filter(|v| v["kind"] == "epoch").filter_map(|v| v["epoch"].as_i64()).max().unwrap_or(0)
}

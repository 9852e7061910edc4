//! The run directory: `runs/<name>-<timestamp>/` with `config.toml`, `env.json`, `metrics.jsonl`,
//! `checkpoints/` and `eval.json`. Creation is atomic (`create_dir` fails if the directory exists),
//! so two runs started in the same second get distinct directories and nothing is overwritten.

use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::fsio::{write_atomic, write_json};

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
            eprintln!("warning: cannot lock {} ({e}); make sure no other process trains this run", path.display());
            Ok(RunLock(file))
        }
    }
}

/// Appended to the run name of an `lr-find` sweep: its directory is `<name>-lrfind-<time>`.
pub const LR_SWEEP_SUFFIX: &str = "-lrfind";

/// Whether `run` is the directory of an `lr-find` sweep rather than of a training run: named
/// `<name>-lrfind-<time>` without checkpoints, with lr_find.json once the sweep has finished.
pub fn is_lr_sweep(run: &Path) -> bool {
    let named = run.file_name().is_some_and(|n| n.to_string_lossy().contains(&format!("{LR_SWEEP_SUFFIX}-")));
    // Earlier versions allowed `-lrfind` in run names: a training run has checkpoints.
    (named && !run.join("checkpoints").exists()) || run.join("lr_find.json").is_file()
}

/// The normalisation statistics the run trained with (env.json), else the dataset's published
/// ones (runs of versions that did not record them); None when neither is known.
pub fn normalisation(run: &Path, cfg: &Config) -> Option<(Vec<f64>, Vec<f64>)> {
    let env = read_env(run).unwrap_or_default();
    let stats = |key: &str| env[key].as_array().map(|a| a.iter().filter_map(|v| v.as_f64()).collect::<Vec<_>>());
    match (stats("norm_mean"), stats("norm_std")) {
        (Some(m), Some(s)) if !m.is_empty() && m.len() == s.len() => Some((m, s)),
        _ => crate::data::source::source(&cfg.data.dataset).ok()?.known_stats(),
    }
}

/// Loads the data of the existing run `run`; a data error says where such a run takes its data
/// from: its own `config.toml`, whatever MICROVISION_DATA says now.
pub fn load_run_data(run: &Path, cfg: &Config) -> Result<crate::data::DataSplits> {
    crate::data::load(&cfg.data, cfg.train.seed).map_err(|e| match e {
        Error::Data(msg) => Error::Data(format!(
            "{msg}\nThis run reads its data from `data.root` in {} (MICROVISION_DATA applies to new runs only): edit \
             it there, or give `eval` --set data.root=DIR.",
            run.join("config.toml").display()
        )),
        other => other,
    })
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

/// Provenance written to `env.json`.
#[derive(Debug, Serialize)]
pub struct Provenance {
    /// `git rev-parse HEAD` of the working directory ("unknown" outside a checkout).
    pub git_commit: String,
    /// Whether tracked files differ from that commit (`git status`), so the commit alone does
    /// not say what code ran; null outside a checkout.
    pub git_dirty: Option<bool>,
    /// microvision's version.
    pub microvision_version: &'static str,
    /// tch crate version.
    pub tch_version: &'static str,
    /// LibTorch version the binary was built against.
    pub libtorch_version: &'static str,
    /// "cpu" or "cuda:N".
    pub device: String,
    /// fp32 / bf16 / fp16.
    pub precision: String,
    /// CPU model.
    pub cpu_model: String,
    /// Relevant CPU feature flags.
    pub cpu_flags: Vec<String>,
    /// Intra-op threads.
    pub threads: i64,
    /// Data directory and MD5 of each file.
    pub data_dir: PathBuf,
    /// MD5 sums (file, hex).
    pub data_md5: Vec<(String, String)>,
    /// Per-channel normalisation mean used (published, or computed from the training split).
    pub norm_mean: Vec<f64>,
    /// Per-channel normalisation std used.
    pub norm_std: Vec<f64>,
    /// Seed.
    pub seed: u64,
    /// Trainable parameters.
    pub num_params: i64,
    /// Multiply-accumulates per image.
    pub macs_per_image: u64,
    /// Peak resident memory of the process in bytes (filled at the end of training).
    pub peak_rss_bytes: u64,
    /// Where `model.init_from`'s weights came from: the file, its CRC32C, and for a run the
    /// checkpoint's epoch and step; absent for a random initialisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<serde_json::Value>,
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

/// Drops the `metrics.jsonl` lines logged after optimizer step `step` (written by a run that was
/// interrupted after its last checkpoint), so a resumed run's log has no duplicates. Atomic.
pub fn truncate_metrics_after(path: &Path, step: i64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let keep: Vec<&str> = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("step").and_then(serde_json::Value::as_i64))
                .is_some_and(|s| s <= step)
        })
        .collect();
    let mut out = keep.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())
}

/// Whether the run's `metrics.jsonl` records a finished epoch (written after its checkpoint).
pub fn has_epoch_records(run: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(run.join("metrics.jsonl")) else { return false };
    text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).any(|v| v["kind"] == "epoch")
}

/// The run's `env.json` as JSON (`None` when missing or unreadable: a run killed before writing it).
pub fn read_env(run: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(run.join("env.json")).ok()?).ok()
}

/// Rewrites `env.json`'s `peak_rss_bytes` with the process's peak so far (called at the end).
pub fn update_peak_memory(run: &Path) -> Result<()> {
    let Some(mut v) = read_env(run) else { return Ok(()) };
    v["peak_rss_bytes"] = peak_rss_bytes().into();
    write_json(&run.join("env.json"), &v)
}

//! `microvision sync wandb RUN...`: run directories into W&B after the fact (runs trained
//! without W&B, old runs), from their own files: the config, every line of `metrics.jsonl`, the
//! plots and `eval.json` / `config.toml`, through the same W&B sink that logs live.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::run::Run;
use crate::track::jsonl::{read_records, Record};
use crate::track::wandb::{WandbLogger, WandbTarget};
use crate::track::{Logger, Metrics};

/// Where `sync_wandb` sends runs; `None` fields take the run's own `track.wandb_*` values.
#[derive(Debug, Clone, Default)]
pub struct WandbSync {
    /// W&B project.
    pub project: Option<String>,
    /// W&B entity.
    pub entity: Option<String>,
    /// "online" or "offline" (`WANDB_MODE` overrides both).
    pub mode: Option<String>,
}

/// One synced run.
#[derive(Debug, Clone)]
pub struct Synced {
    /// The run directory.
    pub run: PathBuf,
    /// Its W&B run id (kept in `RUN/wandb_run_id`).
    pub run_id: String,
    /// The run's W&B page (online).
    pub url: Option<String>,
    /// The offline run directory (offline): upload it with `wandb sync`.
    pub offline_dir: Option<String>,
    /// Lines of metrics.jsonl sent.
    pub records: usize,
    /// Whether the run had finished (its `eval.json`); an unfinished one ends as failed in W&B.
    pub finished: bool,
}

/// Sends each run of `runs` to W&B. A run that already has a W&B run (`wandb_run_id`: trained
/// with `track.wandb`, or synced before) continues it; W&B keeps the steps it already has.
pub fn sync_wandb(runs: &[PathBuf], to: &WandbSync) -> Result<Vec<Synced>> {
    let opened: Vec<Run> = runs.iter().map(|r| Run::open(r)).collect::<Result<_>>()?;
    opened.iter().map(|run| sync_one(run, to)).collect()
}

fn sync_one(run: &Run, to: &WandbSync) -> Result<Synced> {
    let cfg = run.config();
    if let Some(mode) = &to.mode {
        crate::config::check_wandb_mode(mode)?;
    }
    let mut target = WandbTarget::with_mode(cfg, to.mode.as_deref());
    target.project = to.project.clone().unwrap_or(target.project);
    target.entity = to.entity.clone().unwrap_or(target.entity);
    let dir = run.dir();
    // Not while it trains: its W&B run would get two writers and a partial history.
    let _lock = crate::run::lock(dir)?;
    let records = read_records(&dir.join("metrics.jsonl"))?;
    let mut w = WandbLogger::start(&target, dir)?;
    w.log_params(cfg)?;
    for r in &records {
        log_record(&mut w, r)?;
    }
    for file in artifacts(dir) {
        let name = file.strip_prefix(dir).unwrap_or(&file).to_string_lossy().into_owned();
        w.log_artifact(&file, &name)?;
    }
    let finished = dir.join("eval.json").exists();
    w.finish(if finished { 0 } else { 1 })?;
    let (run_id, url, offline_dir) = (w.run_id.clone(), w.url.clone(), w.offline_dir.clone());
    Ok(Synced { run: dir.to_path_buf(), run_id, url, offline_dir, records: records.len(), finished })
}

fn log_record(w: &mut WandbLogger, r: &Record) -> Result<()> {
    let values: Vec<(&str, f64)> = r.values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    w.log_metrics(&Metrics { kind: r.kind, epoch: r.epoch, step: r.step, values: &values })
}

/// The run's files W&B gets: its plots (PNG), `eval.json` and `config.toml`, as training sends them.
fn artifacts(dir: &Path) -> Vec<PathBuf> {
    let mut plots: Vec<PathBuf> = std::fs::read_dir(dir.join("plots"))
        .map(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "png")).collect()
        })
        .unwrap_or_default();
    plots.sort();
    plots.extend(["eval.json", "config.toml"].map(|f| dir.join(f)).into_iter().filter(|p| p.exists()));
    plots
}

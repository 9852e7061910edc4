//! `microvision tune`: a search on an Optuna study, with one or several worker processes; and
//! `microvision tune report STUDY`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::lab::{self, TuneArgs};
use crate::search::{Objective, Pruner, Sampler};

/// Arguments of `microvision tune`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TuneCmd {
    /// `report STUDY`: the study's best trials, plots and page.
    #[command(subcommand)]
    report: Option<ReportCmd>,
    /// The base config (TOML); each trial is it plus the sampled values.
    #[arg(short, long, required = true)]
    config: Option<PathBuf>,
    /// Override a base config value: section.key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// The search space (TOML): per config key a distribution, e.g.
    /// `optim.lr = { log_float = [1e-3, 0.3] }`.
    #[arg(long, required = true)]
    space: Option<PathBuf>,
    /// Trials the study holds (the grid's size by default with --sampler grid).
    #[arg(long)]
    trials: Option<usize>,
    /// Study name (default: <config name>-<space file stem>); the same command elsewhere with
    /// the same --storage joins it.
    #[arg(long)]
    study: Option<String>,
    /// Storage: a journal file (default RUNS/<study>/study.journal), sqlite:///FILE, or
    /// postgresql://USER@HOST/DB (and mysql://) for studies shared across machines.
    #[arg(long)]
    storage: Option<String>,
    /// Sampler: tpe, random, grid, cmaes, nsga2.
    #[arg(long, default_value = "tpe")]
    sampler: String,
    /// Pruner: median, asha, hyperband, none (default median; none with several objectives).
    #[arg(long)]
    pruner: Option<String>,
    /// Objectives, comma-separated: val_acc, val_loss, macs, params (several: a Pareto front).
    #[arg(long, value_delimiter = ',', default_value = "val_acc")]
    objective: Vec<String>,
    /// Worker processes on this machine, splitting its cores (one GPU each when several are
    /// visible).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    workers: u64,
    /// Start no trial after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads per trial (default: the base config's train.threads; with --workers, the cores
    /// shared out).
    #[arg(long)]
    threads: Option<i64>,
    /// This worker's index (set by the parent of --workers).
    #[arg(long, hide = true, default_value_t = 0)]
    worker_index: usize,
    /// A worker started by --workers: a line per trial, no progress bars.
    #[arg(long, hide = true)]
    child: bool,
}

/// `microvision tune report`.
#[derive(clap::Subcommand, Debug)]
enum ReportCmd {
    /// The study's best trials as a table, parameter importances, optimisation history,
    /// learning curves and Pareto plots (PNG, SVG, report.html), and the command that re-runs
    /// the best trial.
    Report {
        /// Study name, or its directory (RUNS/<study>, holding study.journal).
        study: String,
        /// Storage (default: the study directory's study.journal).
        #[arg(long)]
        storage: Option<String>,
        /// Where to write the plots and page (default: the study directory's report/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Re-train the best configuration on this many seeds and compare them (mean +- std).
        #[arg(long, default_value_t = 0)]
        seeds: usize,
        /// Rows in the table.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
}

/// Runs `microvision tune`.
pub fn tune(c: TuneCmd) -> Result<()> {
    if let Some(ReportCmd::Report { study, storage, out, seeds, top }) = c.report {
        return super::tune_report::report(&study, storage, out, seeds, top);
    }
    let args = TuneArgs {
        config: c.config.clone().expect("required by clap"),
        overrides: c.overrides.clone(),
        space: c.space.clone().expect("required by clap"),
        trials: c.trials,
        study: c.study.clone(),
        storage: c.storage.clone(),
        sampler: Sampler::parse(&c.sampler)?,
        pruner: c.pruner.as_deref().map(Pruner::parse).transpose()?,
        objectives: c.objective.iter().map(|o| Objective::parse(o)).collect::<Result<_>>()?,
        timeout_secs: c.timeout,
        seed: c.seed,
        worker: c.worker_index,
        console: c.workers == 1 && !c.child,
        threads: c.threads,
        stop_on_signals: true,
        hook: None,
        child: c.child,
    };
    if c.workers > 1 {
        return workers(&c, &args);
    }
    let tuned = lab::tune(&args)?;
    print_done(&tuned.spec.name, &tuned.spec.storage, tuned.trials.len());
    Ok(())
}

/// Opens the study once, then starts `--workers` copies of this command with one worker each
/// and the cores (or GPUs) shared out, and waits for them.
fn workers(c: &TuneCmd, args: &TuneArgs) -> Result<()> {
    let opened = lab::tune_open(args)?;
    for n in &opened.notes {
        crate::notice::note(n);
    }
    let k = c.workers as usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or((cores / k).max(1) as i64);
    let gpus = visible_gpus();
    // Ctrl-C reaches every worker (one process group): each fails its trial and stops, and this
    // process waits for them. A SIGTERM sent to this process alone is passed on to them.
    let (interrupted, terminated) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, interrupted.clone());
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, terminated.clone());
    let exe = std::env::current_exe().map_err(|e| Error::Runtime(format!("cannot find this program: {e}")))?;
    let mut children = Vec::new();
    for i in 0..k {
        let mut cmd = Command::new(&exe);
        cmd.arg("tune").args(child_args(c, &opened.spec, i, threads));
        if gpus.len() > 1 {
            cmd.env("CUDA_VISIBLE_DEVICES", &gpus[i % gpus.len()]);
        }
        match cmd.spawn() {
            Ok(child) => children.push(child),
            Err(e) => {
                stop_all(&mut children);
                return Err(Error::Runtime(format!("cannot start worker {i}: {e}")));
            }
        }
    }
    let failed = wait_all(&mut children, &terminated);
    if interrupted.load(Ordering::SeqCst) || terminated.load(Ordering::SeqCst) {
        return Err(Error::Interrupted(format!(
            "tuning interrupted; the trials not started wait in study {} (run the same command to go on)",
            opened.spec.name
        )));
    }
    print_done(&opened.spec.name, &opened.spec.storage, 0);
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Runtime(format!("{}; the other workers finished", failed.join("; "))))
    }
}

/// The GPUs the workers share: `CUDA_VISIBLE_DEVICES`'s list when set, else every device.
fn visible_gpus() -> Vec<String> {
    if !tch::Cuda::is_available() {
        return Vec::new();
    }
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(list) => list.split(',').map(|d| d.trim().to_string()).filter(|d| !d.is_empty()).collect(),
        Err(_) => (0..tch::Cuda::device_count()).map(|d| d.to_string()).collect(),
    }
}

/// Waits for every worker, passing a SIGTERM this process got on to them once.
fn wait_all(children: &mut [std::process::Child], terminated: &AtomicBool) -> Vec<String> {
    let mut failed = Vec::new();
    let mut done = vec![false; children.len()];
    let mut passed_on = false;
    while done.iter().any(|d| !d) {
        if terminated.load(Ordering::SeqCst) && !passed_on {
            for (child, _) in children.iter().zip(&done).filter(|(_, d)| !**d) {
                // SAFETY: kill(2) on a child this process started and has not reaped yet.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            }
            passed_on = true;
        }
        for (i, child) in children.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            match child.try_wait() {
                Ok(Some(s)) => {
                    done[i] = true;
                    if !s.success() {
                        failed.push(format!("worker {i} exited with {s}"));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    done[i] = true;
                    failed.push(format!("worker {i}: {e}"));
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    failed
}

/// Stops the workers started so far (each fails its trial) and waits for them.
fn stop_all(children: &mut [std::process::Child]) {
    for child in children.iter_mut() {
        // SAFETY: kill(2) on a child this process started and has not reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    }
}

/// The arguments of worker `i`: the same search, one worker, its thread share.
fn child_args(c: &TuneCmd, spec: &crate::search::study::StudySpec, i: usize, threads: i64) -> Vec<String> {
    let mut a = vec![
        "-c".into(),
        c.config.as_ref().expect("required").display().to_string(),
        "--space".into(),
        c.space.as_ref().expect("required").display().to_string(),
        "--trials".into(),
        spec.trials.to_string(),
        "--study".into(),
        spec.name.clone(),
        "--storage".into(),
        spec.storage.clone(),
        "--sampler".into(),
        c.sampler.clone(),
        "--pruner".into(),
        spec.pruner.name().into(),
        "--objective".into(),
        c.objective.join(","),
        "--seed".into(),
        c.seed.to_string(),
        "--threads".into(),
        threads.to_string(),
        "--child".into(),
        "--worker-index".into(),
        (c.worker_index * c.workers as usize + i).to_string(),
    ];
    if let Some(t) = c.timeout {
        a.extend(["--timeout".into(), t.to_string()]);
    }
    for o in &c.overrides {
        a.extend(["--set".into(), o.clone()]);
    }
    a
}

fn print_done(study: &str, storage: &str, ran: usize) {
    if ran > 0 {
        println!("ran {ran} trials of study {study}");
    }
    let (study, storage) = (lab::shell_quote(study), lab::shell_quote(&lab::redact(storage)));
    println!("study {study} in {storage}");
    println!("  microvision tune report {study} --storage {storage}");
    println!("  optuna-dashboard {storage}");
}

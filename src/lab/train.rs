//! Training as `microvision train` does it: the trainer with the standard loggers
//! (`metrics.jsonl`, TensorBoard, MLflow when configured) and, on request, the console; then the
//! plots drawn from the finished run and handed to the loggers as artifacts.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::Result;
use crate::metrics::EvalResult;
use crate::track::{self, Loggers};
use crate::train::Trainer;

/// How [`train`] and [`resume`] behave around the training itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainOptions {
    /// Report on stderr as the command line does: a banner naming the run, model, device and
    /// precision, then a progress bar and a line per epoch.
    pub console: bool,
    /// On SIGINT/SIGTERM finish the current step, save `last` and return
    /// [`crate::Error::Interrupted`] (resume with [`resume`]); a second signal ends the process at
    /// once with status 130. Outside training the signals keep their default action (the
    /// process's handlers, installed on first use, pass them on).
    pub stop_on_signals: bool,
}

/// What [`train`] or [`resume`] did.
#[derive(Debug)]
pub struct Trained {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The final test evaluation (written to `eval.json`); `None` when the run had already
    /// finished with its evaluation and nothing was trained.
    pub test: Option<EvalResult>,
    /// The last epoch trained.
    pub epoch: i64,
    /// Problems that did not fail the run (plots that could not be drawn).
    pub warnings: Vec<String>,
}

/// What [`fit`] returns: the final test evaluation and the warnings.
#[derive(Debug)]
pub struct Fitted {
    /// The final test evaluation.
    pub test: EvalResult,
    /// Problems that did not fail the run (plots that could not be drawn).
    pub warnings: Vec<String>,
}

/// Trains a new run from `cfg` (a fresh `runs/<name>-<timestamp>/`) to the end, with the
/// standard loggers, and evaluates it on the test split.
pub fn train(cfg: Config, opts: &TrainOptions) -> Result<Trained> {
    train_with(Trainer::new(cfg)?, opts)
}

/// Continues the run in `run_dir` from its last checkpoint (a finished run with `eval.json`
/// is left as it is: [`Trained::test`] is `None`), with `key=value` overrides of the settings a
/// resume may change (`crate::run::recipe::RESUMABLE_KEYS`, recorded in `env.json`).
pub fn resume(run_dir: &Path, overrides: &[String], opts: &TrainOptions) -> Result<Trained> {
    train_with(Trainer::resume_with(run_dir, overrides)?, opts)
}

/// [`train`] or [`resume`] of a trainer the caller built (`Trainer::new`, `Trainer::resume`)
/// and gave callbacks of its own (a notebook's progress bar, a tuner's pruning).
pub fn train_with(mut trainer: Trainer, opts: &TrainOptions) -> Result<Trained> {
    let run_dir = trainer.run_dir.clone();
    if trainer.training_done() && run_dir.join("eval.json").exists() {
        let warnings = if trainer.writes_run() { finish_plots(&run_dir)? } else { Vec::new() };
        return Ok(Trained { run_dir, test: None, epoch: trainer.state.epoch, warnings });
    }
    if opts.stop_on_signals {
        trainer.stop = signals::stop_flag();
    }
    if opts.console && trainer.writes_run() {
        for line in banner(&trainer) {
            crate::notice::info(line);
        }
    }
    let fitted = signals::while_training(opts.stop_on_signals, || fit_logged(&mut trainer, opts.console));
    let Fitted { test, warnings } = fitted?;
    Ok(Trained { run_dir, test: Some(test), epoch: trainer.state.epoch, warnings })
}

/// Fits `trainer` with `metrics.jsonl`, TensorBoard and MLflow (when configured), then draws
/// the plots into `RUN/plots/` and logs them (with `eval.json` and `config.toml`) as
/// artifacts. A plotting failure is a warning: it never fails a finished run.
pub fn fit(trainer: &mut Trainer) -> Result<Fitted> {
    fit_logged(trainer, false)
}

/// The stop flag that SIGINT and SIGTERM set while [`train_with`] trains with
/// `stop_on_signals` (cleared by this call). A callback that sets it stops the run as Ctrl-C
/// does: `last` saved, [`crate::Error::Interrupted`] returned (the tuner's pruning).
pub fn stop_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    signals::stop_flag()
}

/// Draws the plots a finished run lacks (it was stopped while drawing them); says so.
fn finish_plots(run_dir: &Path) -> Result<Vec<String>> {
    let missing = crate::analysis::plots::missing_plots(run_dir);
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let plotted = super::report::plot(run_dir)?;
    let mut warnings = plotted.warnings;
    warnings.push(format!(
        "{} lacked {} of its plot files (stopped while drawing them?): drew the plots again ({} files)",
        run_dir.join("plots").display(),
        missing.len(),
        plotted.files.len()
    ));
    Ok(warnings)
}

/// [`fit`], with the console's progress on stderr when `console`.
fn fit_logged(trainer: &mut Trainer, console: bool) -> Result<Fitted> {
    if !trainer.writes_run() {
        // A rank after the first of a multi-process run: rank 0 logs, plots and reports.
        return Ok(Fitted { test: trainer.fit()?, warnings: Vec::new() });
    }
    let loggers = Loggers::standard(&trainer.run_dir, &trainer.cfg);
    trainer.add_callback(loggers.callback());
    if console {
        trainer.add_callback(track::console(&trainer.cfg));
    }
    let test = trainer.fit()?;
    let mut files = vec![trainer.run_dir.join("eval.json"), trainer.run_dir.join("config.toml")];
    let mut warnings = Vec::new();
    match crate::analysis::plots::draw_run(&trainer.run_dir, Some(trainer.test_split())) {
        Ok(plots) => {
            warnings.extend(super::model::skipped_lines_warning(&trainer.run_dir, plots.skipped_lines));
            files.extend(plots.files);
        }
        Err(e) => warnings.push(format!("plots not drawn: {e}")),
    }
    loggers.log_artifacts(&trainer.run_dir, &files);
    loggers.close();
    Ok(Fitted { test, warnings })
}

/// The lines the console starts a run with: the run, the model, the device and precision, and
/// the part of the model's recipe that no config key shows (airbench's whitening bias).
fn banner(trainer: &Trainer) -> Vec<String> {
    let mut lines = vec![format!(
        "run {}  model {} ({} params)  device {}  precision {}",
        trainer.run_dir.display(),
        trainer.cfg.model.name,
        trainer.model.num_params(),
        crate::device::label(trainer.device),
        trainer.precision.name()
    )];
    for (name, epochs) in trainer.model.net.trained_for_epochs() {
        lines.push(format!(
            "note: {} trains `{name}` for the first {epochs} epochs only, then freezes it",
            trainer.cfg.model.name
        ));
    }
    lines
}

/// SIGINT and SIGTERM while a run trains: the first stops the run after its current step (it
/// saves `last` and returns the resume command); a second ends the process at once with status
/// 130 (e.g. during an evaluation), the last checkpoint intact. Outside training a signal does
/// what it does by default. The handlers are installed once per process and never removed (a
/// removed handler would leave the signal ignored).
mod signals {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, OnceLock};

    /// Whether a run with `stop_on_signals` is training now.
    static TRAINING: AtomicBool = AtomicBool::new(false);

    /// The process's stop flag, cleared; the handlers are installed on the first call.
    pub fn stop_flag() -> Arc<AtomicBool> {
        static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
        let stop = STOP.get_or_init(|| {
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                let flag = stop.clone();
                let action = move || {
                    if !TRAINING.load(Ordering::SeqCst) {
                        let _ = signal_hook::low_level::emulate_default_handler(signal);
                    } else if flag.swap(true, Ordering::SeqCst) {
                        const SECOND: &[u8] = b"\nsecond interrupt: quitting at once; the last checkpoint is intact \
                            (microvision train --resume RUN_DIR continues from it)\n";
                        // SAFETY: write(2) is async-signal-safe; the buffer is a static.
                        unsafe { libc::write(2, SECOND.as_ptr().cast(), SECOND.len()) };
                        signal_hook::low_level::exit(130);
                    }
                };
                // SAFETY: the action only touches atomics and calls async-signal-safe functions
                // (signal-hook's emulate_default_handler and exit).
                if let Err(e) = unsafe { signal_hook::low_level::register(signal, action) } {
                    crate::notice::warn(format!(
                        "cannot handle signal {signal} ({e}): Ctrl-C will not save a checkpoint"
                    ));
                }
            }
            stop
        });
        stop.store(false, Ordering::SeqCst);
        stop.clone()
    }

    /// Runs `train` with the signals stopping it when `on`.
    pub fn while_training<T>(on: bool, train: impl FnOnce() -> T) -> T {
        if !on {
            return train();
        }
        /// Clears the flag however `train` ends, unwinding included.
        struct Done;
        impl Drop for Done {
            fn drop(&mut self) {
                TRAINING.store(false, Ordering::SeqCst);
            }
        }
        TRAINING.store(true, Ordering::SeqCst);
        let _done = Done;
        train()
    }
}

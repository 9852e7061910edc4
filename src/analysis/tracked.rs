//! A run as `microvision train` does it: the trainer with the standard loggers and the console,
//! then the plots drawn from the finished run and handed to the loggers as artifacts.

use crate::error::Result;
use crate::metrics::EvalResult;
use crate::track::{self, Loggers};
use crate::train::Trainer;

/// Fits `trainer` with `metrics.jsonl`, TensorBoard, MLflow (when configured) and the console,
/// then draws the plots into `RUN/plots/` and logs them (with `eval.json` and `config.toml`) as
/// artifacts. A plotting failure is a warning: it never fails a finished run.
pub fn fit(trainer: &mut Trainer) -> Result<EvalResult> {
    let loggers = Loggers::standard(&trainer.run_dir, &trainer.cfg);
    trainer.add_callback(loggers.callback());
    trainer.add_callback(track::console(&trainer.cfg));
    let test = trainer.fit()?;
    let mut files = vec![trainer.run_dir.join("eval.json"), trainer.run_dir.join("config.toml")];
    match super::plots::draw_run(&trainer.run_dir, Some(trainer.test_split())) {
        Ok(plots) => files.extend(plots.files),
        Err(e) => eprintln!("warning: plots not drawn: {e}"),
    }
    loggers.log_artifacts(&trainer.run_dir, &files);
    loggers.close();
    Ok(test)
}

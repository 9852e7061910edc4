//! Experiment tracking: loggers implement [`crate::train::callbacks::Callback`] so JSONL, the
//! console (and later TensorBoard, MLflow) are peers.

pub mod console;
pub mod jsonl;
pub mod tensorboard;

use std::io::IsTerminal;
use std::path::Path;

use crate::config::Config;
use crate::train::callbacks::Callback;

/// The loggers every run gets: `metrics.jsonl`, TensorBoard event files and the console.
pub fn standard(run_dir: &Path, cfg: &Config) -> Vec<Box<dyn Callback>> {
    let bars = cfg.train.progress && std::io::stderr().is_terminal();
    vec![
        Box::new(jsonl::JsonlLogger::new(&run_dir.join("metrics.jsonl"), cfg.train.log_every)),
        Box::new(tensorboard::TensorBoardLogger::new(run_dir)),
        Box::new(console::ConsoleLogger::new(bars)),
    ]
}

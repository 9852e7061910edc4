//! Evaluating a run's checkpoint on the test split, with the run's or other settings, into an
//! evaluation file that never replaces one of other settings.

use std::path::{Path, PathBuf};

use super::model::{load_model, Checkpoint};
use crate::config::{Config, Tta};
use crate::data::loader::Loader;
use crate::error::Result;
use crate::fsio;
use crate::metrics::EvalResult;
use crate::run::{eval_file_name, EvalFile, Run};
use crate::train::eval::evaluate;
use crate::train::trainer::loader_spec;

/// What [`eval`] measured and where it wrote it.
#[derive(Debug)]
pub struct Evaluation {
    /// The checkpoint evaluated.
    pub checkpoint: Checkpoint,
    /// The epoch it was taken at.
    pub epoch: i64,
    /// Loss, accuracies, per-class accuracy, confusion matrix, predictions.
    pub result: EvalResult,
    /// The class names, in label order.
    pub classes: Vec<String>,
    /// The test-time augmentation used.
    pub tta: Tta,
    /// Whether the weights were the run's exponential moving average.
    pub averaged: bool,
    /// The evaluation file written into the run directory.
    pub file: PathBuf,
}

/// Evaluates checkpoint `which` of the run in `run_dir` on its test split, with `key=value`
/// overrides of its config for this evaluation only (`train.tta=2`, `train.precision=fp32`,
/// `data.root=...`), and writes `eval-<which>[-tta..][-<precision>][-data<CRC32C>].json` (see
/// [`eval_file_name`]): an evaluation with other settings never replaces the run's own.
pub fn eval(run_dir: &Path, which: Checkpoint, overrides: &[String]) -> Result<Evaluation> {
    let run = Run::open_with(run_dir, overrides)?;
    if let Err(e @ crate::Error::Checkpoint(_)) = crate::run::lock(run_dir) {
        // Still training: `last` moves on; the file records which epoch it evaluated.
        crate::notice::warn(format!("{e}; evaluating checkpoint `{which}` as it is now"));
    }
    let cfg = run.config();
    let (device, precision) = crate::device::resolve(&cfg.train)?;
    let data = crate::data::load_for_run(run_dir, cfg)?;
    let loaded = load_model(&run, which, device)?;
    let loader = Loader::new(&data.test.to_device(device), loader_spec(cfg, &data, false));
    let tta = Tta::from_config(&cfg.train);
    let result = evaluate(&loaded.model, &loader, precision.autocast_kind(), data.test.classes.len(), tta);
    // Another precision than the one the run trained in (env.json) gives other numbers: keep both.
    let trained_in = run.env().map(|env| env.precision).filter(|p| !p.is_empty());
    let other_precision = trained_in.filter(|p| p != precision.name()).map(|_| precision.name());
    let file =
        run_dir.join(eval_file_name(which.as_str(), tta, other_precision, other_test_set(run_dir, cfg, overrides)?));
    let state = &loaded.loaded.state;
    let record = EvalFile::new(&result, &data.test.classes, which.as_str(), tta).at(state.epoch, state.step);
    fsio::write_json(&file, &record)?;
    Ok(Evaluation {
        checkpoint: which,
        epoch: loaded.loaded.state.epoch,
        result,
        classes: data.test.classes,
        tta,
        averaged: loaded.averaged,
        file,
    })
}

/// The CRC32C naming the test set when the overrides chose another one than the run's own
/// (`data.dataset`, `data.root` or `data.limit_test`), so its evaluation is kept apart.
fn other_test_set(run_dir: &Path, cfg: &Config, overrides: &[String]) -> Result<Option<u32>> {
    if overrides.is_empty() {
        return Ok(None); // the run's own config: its own test set
    }
    let saved = Run::open(run_dir)?;
    let test_set = |c: &Config| format!("{}\n{}\n{}", c.data.dataset, c.data.root.display(), c.data.limit_test);
    let chosen = test_set(cfg);
    Ok((test_set(saved.config()) != chosen).then(|| crc32c::crc32c(chosen.as_bytes())))
}

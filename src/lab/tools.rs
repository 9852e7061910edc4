//! Recipe tools: the learning-rate range test and a preview of the configured augmentation.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::Result;
use crate::fsio;
use crate::train::trainer::{loader_spec, LrFind};
use crate::train::Trainer;

/// The range of an [`lr_find`] sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSweep {
    /// First learning rate (at least 1e-12).
    pub start: f64,
    /// Last learning rate (above `start`, at most 1e4).
    pub end: f64,
    /// Steps of the sweep (at least 5; it stops early when the loss explodes).
    pub steps: usize,
}

impl LrSweep {
    /// Checks the range: 1e-12 <= start < end <= 1e4 and steps >= 5 (beyond 1e4 no learning
    /// rate trains, and the geometric sweep would overflow to inf for end / start beyond f64).
    pub fn check(&self) -> Result<()> {
        let LrSweep { start, end, steps } = *self;
        if start >= 1e-12 && end > start && end <= 1e4 && steps >= 5 {
            return Ok(());
        }
        Err(crate::Error::Config(format!(
            "lr-find: expected 1e-12 <= --start < --end <= 1e4 and --steps >= 5 (got {start:e}, {end:e}, {steps})"
        )))
    }
}

impl Default for LrSweep {
    fn default() -> Self {
        LrSweep { start: 1e-7, end: 10.0, steps: 100 }
    }
}

/// What [`lr_find`] measured and wrote.
#[derive(Debug)]
pub struct LrFound {
    /// The sweep: learning rates, losses, smoothed losses and the suggestions.
    pub record: LrFind,
    /// The sweep's directory (`runs/<name>-lrfind-<time>`).
    pub run_dir: PathBuf,
    /// `lr_find.json` and the plot's PNG and SVG.
    pub files: Vec<PathBuf>,
}

/// The learning-rate range test: trains from the initial weights with the learning rate
/// growing exponentially over `sweep`, records the loss, suggests a rate; writes
/// `lr_find.json` and a plot into a sweep directory of its own.
pub fn lr_find(mut cfg: Config, sweep: LrSweep) -> Result<LrFound> {
    sweep.check()?;
    let LrSweep { start, end, steps } = sweep;
    cfg.name = format!("{}{}", cfg.name, crate::run::LR_SWEEP_SUFFIX);
    cfg.train.on_nan = crate::config::OnNan::Stop;
    let mut trainer = Trainer::new(cfg)?;
    let record = trainer.lr_find(start, end, steps)?;
    if !trainer.writes_run() {
        // A rank after the first of a multi-process sweep: rank 0 writes the files.
        return Ok(LrFound { record, run_dir: trainer.run_dir.clone(), files: Vec::new() });
    }
    let json = trainer.run_dir.join("lr_find.json");
    fsio::write_json(&json, &record)?;
    let chart = crate::analysis::plots::lr_find_chart(&record, &trainer.cfg.model.name);
    let mut files = vec![json];
    files.extend(crate::analysis::plots::save(&chart, &trainer.run_dir, "lr_find")?);
    Ok(LrFound { record, run_dir: trainer.run_dir.clone(), files })
}

/// A grid of `count` training images as the configured augmentation draws them (the first
/// batch of epoch 1), saved as `augment_preview.png` and `.svg` in `out`; returns the files.
pub fn augment_preview(cfg: &Config, count: usize, out: &Path) -> Result<Vec<PathBuf>> {
    let data = crate::data::load(&cfg.data, cfg.train.seed)?;
    if data.train.is_empty() {
        return Err(crate::Error::Data("the training split is empty".into()));
    }
    let mut spec = loader_spec(cfg, &data, true);
    spec.batch_size = count.clamp(1, data.train.len() as usize) as i64;
    spec.prefetch = 0;
    let loader = crate::data::loader::Loader::new(&data.train, spec);
    let batch = loader.epoch(1).next().ok_or_else(|| crate::Error::Config("the training split is empty".into()))?;
    let grid = crate::analysis::plots::augment_grid(&batch, &data.train.classes, &data.mean, &data.std);
    crate::analysis::plots::save(&grid, out, "augment_preview")
}

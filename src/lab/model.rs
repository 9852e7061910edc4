//! A run's trained model, ready to run: which checkpoint, its weights (or their average), the
//! input normalisation and the class names. Shared by `eval`, `predict` and `export`.

use tch::Device;

use crate::config::Config;
use crate::error::Result;
use crate::models::Model;
use crate::run::Run;
use crate::train::checkpoint::{self, Loaded};
use crate::train::trainer::model_args;

/// Which of a run's checkpoints: the one of the best validation accuracy, or the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checkpoint {
    /// `best`: the epoch of the highest validation accuracy. Only runs with a validation split
    /// (`data.val_split` > 0) keep one: without it the epochs are scored on the test split.
    Best,
    /// `last`: the end of the latest finished epoch.
    #[default]
    Last,
}

impl Checkpoint {
    /// Its name in the checkpoint directory and in file names (`best`, `last`).
    pub fn as_str(self) -> &'static str {
        match self {
            Checkpoint::Best => "best",
            Checkpoint::Last => "last",
        }
    }
}

impl std::str::FromStr for Checkpoint {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Checkpoint> {
        match s {
            "best" => Ok(Checkpoint::Best),
            "last" => Ok(Checkpoint::Last),
            other => Err(crate::config_err!("checkpoint {other:?}: expected best or last")),
        }
    }
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run's model with a checkpoint loaded.
pub struct LoadedModel {
    /// The network, its weights loaded (in channels-last memory when the run trained so).
    pub model: Model,
    /// The checkpoint: its training state and tensors.
    pub loaded: Loaded,
    /// Whether the weights are the run's exponential moving average (`train.ema_decay`), which
    /// is what the run evaluated, rather than the trained weights.
    pub averaged: bool,
}

/// The run's model with `which` loaded onto `device`: its weight average when the run kept
/// one (that is what was evaluated). Checksums and tensor names and shapes are checked.
pub fn load_model(run: &Run, which: Checkpoint, device: Device) -> Result<LoadedModel> {
    let cfg = run.config();
    let mut model = Model::new(&cfg.model.name, &model_args(cfg), device)?;
    if cfg.train.channels_last {
        model.to_channels_last(); // as in training: the batches are channels-last too
    }
    let dir = run.checkpoint_dir();
    let files = checkpoint::files(&dir, which.as_str());
    if which == Checkpoint::Best && !cfg.data.has_val_split() {
        // Refused even where an earlier version wrote one: it was chosen on test images.
        return Err(crate::ckpt_err!(
            "{} keeps no `best` checkpoint: it trained without a validation split (data.val_split = 0), so its \
             epochs were scored on the test split and choosing one on them would leak the test set; expected \
             --checkpoint last (or train with data.val_split > 0)",
            run.dir().display()
        ));
    }
    if !files.state.exists() {
        return Err(crate::ckpt_err!(
            "{} has no `{which}` checkpoint yet ({} is missing): the run has not finished an epoch",
            run.dir().display(),
            files.state.display()
        ));
    }
    let loaded = checkpoint::load(&dir, which.as_str())?;
    checkpoint::load_weights(&model.vs, &loaded.weights, &files.weights)?;
    let average = crate::train::ema::weights_from_checkpoint(&loaded.optim);
    if let Some(avg) = &average {
        checkpoint::load_weights(&model.vs, avg, &files.optim)?;
    }
    // NaN weights would give NaN probabilities and losses with a success status.
    let bad: Vec<String> = model
        .vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.is_floating_point() && !bool::try_from(t.isfinite().all()).unwrap_or(false))
        .map(|(name, _)| name)
        .collect();
    if !bad.is_empty() {
        return Err(crate::ckpt_err!(
            "checkpoint `{which}` of {} holds non-finite weights ({}{}); expected finite ones: the run diverged \
             before it was written",
            run.dir().display(),
            bad.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            if bad.len() > 3 { format!(" and {} more", bad.len() - 3) } else { String::new() }
        ));
    }
    Ok(LoadedModel { model, loaded, averaged: average.is_some() })
}

/// The normalisation statistics the run trained with (`env.json`), else its dataset's published
/// ones (runs of versions that did not record them); an error naming `env.json` when neither is
/// known.
pub fn normalisation(run: &Run) -> Result<(Vec<f64>, Vec<f64>)> {
    run.env()
        .and_then(|env| env.normalisation())
        .or_else(|| crate::data::source::source(&run.config().data.dataset).ok()?.known_stats())
        .ok_or_else(|| {
            crate::ckpt_err!(
                "{}: expected norm_mean and norm_std (the normalisation the model trained with)",
                run.dir().join("env.json").display()
            )
        })
}

/// The class names: from the run's eval.json, else from the dataset's test split, else numbers.
pub fn class_names(run: &Run) -> Vec<String> {
    let cfg: &Config = run.config();
    let from_eval = run.eval().and_then(|e| e.ok()).map(|e| e.classes);
    from_eval
        .or_else(|| crate::data::load_test(&cfg.data).ok().map(|d| d.classes))
        .filter(|c| c.len() as i64 == cfg.data.num_classes)
        .unwrap_or_else(|| (0..cfg.data.num_classes).map(|i| i.to_string()).collect())
}

/// The warning for `skipped` lines of the run's `metrics.jsonl` that were not JSON (a torn last
/// line after a crash), which the plots, the report and `compare` leave out; none for 0.
pub(super) fn skipped_lines_warning(run_dir: &std::path::Path, skipped: usize) -> Option<String> {
    (skipped > 0)
        .then(|| format!("{}: skipped {skipped} line(s) that are not JSON", run_dir.join("metrics.jsonl").display()))
}

//! `microvision export`: a checkpoint's model for use outside microvision, as safetensors weights
//! (PyTorch `state_dict` names, for the transcription in `bench/models.py`) or as a traced
//! TorchScript module (`torch.jit.load`, no model code needed), each with `model.json`
//! describing the model, its input and its classes.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::data;
use crate::error::{Error, Result};
use crate::fsio;
use crate::models::{torchscript, Model, ModelArgs};
use crate::train::checkpoint;
use crate::train::checkpoint::TrainState;
use crate::train::run_dir;
use crate::train::trainer::model_args;

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `model.safetensors`: the weights.
    Safetensors,
    /// `model.pt`: the evaluation-mode forward pass traced to TorchScript, weights included.
    TorchScript,
}

impl Format {
    /// The format named on the command line (`safetensors` or `torchscript`).
    pub fn parse(name: &str) -> Result<Format> {
        match name {
            "safetensors" => Ok(Format::Safetensors),
            "torchscript" => Ok(Format::TorchScript),
            other => Err(crate::config_err!("unknown export format {other:?}; expected safetensors or torchscript")),
        }
    }

    /// The file the format writes into the export directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Safetensors => "model.safetensors",
            Format::TorchScript => "model.pt",
        }
    }
}

/// Exports checkpoint `which` (`best` or `last`) of `run` to `out` (default `RUN/export`).
pub fn export(run: &Path, which: &str, format: Format, out: Option<PathBuf>) -> Result<()> {
    let cfg = run_dir::read_config(run)?;
    let dir = run.join(&cfg.output.checkpoint_dir);
    // Verifies the checksums; the JSON names the config's model, so the weights must be that
    // model's, tensor by tensor.
    let loaded = checkpoint::load(&dir, which)?;
    let args = model_args(&cfg);
    let model = Model::new(&cfg.model.name, &args, tch::Device::Cpu)?;
    let files = checkpoint::files(&dir, which);
    checkpoint::load_weights(&model.vs, &loaded.weights, &files.weights)?;
    // With train.ema_decay > 0 the weight average is what was evaluated, so it is what ships.
    let ema = crate::train::ema::weights_from_checkpoint(&loaded.optim);
    if let Some(avg) = &ema {
        checkpoint::load_weights(&model.vs, avg, &files.optim)?;
    }
    let mut meta = describe(run, &cfg, &args, which, &loaded.state, ema.is_some())?;
    let out = out.unwrap_or_else(|| run.join("export"));
    crate::error::create_dir_all(&out, "cannot create")?;
    check_companion(&out, format, &meta)?;
    let file = out.join(format.file_name());
    match (format, &ema) {
        (Format::Safetensors, Some(avg)) => checkpoint::write_tensors_atomic(&file, avg)?,
        (Format::Safetensors, None) => {
            let bytes = std::fs::read(&files.weights).map_err(|e| Error::io("cannot read", &files.weights, e))?;
            fsio::write_atomic(&file, &bytes)?;
        }
        (Format::TorchScript, _) => torchscript::save(&model, &args, &file)?,
    }
    let present = [Format::Safetensors, Format::TorchScript].map(Format::file_name);
    meta["files"] = present.iter().filter(|f| out.join(f).is_file()).copied().collect::<Vec<_>>().into();
    fsio::write_json(&out.join("model.json"), &meta)?;
    println!("wrote {} and {}", file.display(), out.join("model.json").display());
    Ok(())
}

/// `model.json`: the model, the checkpoint the weights come from, the input and the classes.
fn describe(
    run: &Path,
    cfg: &Config,
    args: &ModelArgs,
    which: &str,
    state: &TrainState,
    averaged: bool,
) -> Result<serde_json::Value> {
    let src = data::source::source(&cfg.data.dataset)?;
    let (mean, std) = run_dir::normalisation(run, cfg)
        .map_or((serde_json::Value::Null, serde_json::Value::Null), |(m, s)| (m.into(), s.into()));
    let classes = src.locate(&cfg.data.root).and_then(|d| src.read_split(&d, false).ok()).map(|t| t.classes);
    Ok(serde_json::json!({
        "model": cfg.model.name,
        "args": args,
        "checkpoint": which,
        "weights": if averaged { "exponential moving average" } else { "trained" },
        "epoch": state.epoch,
        "step": state.step,
        "best_val_acc": state.best_acc,
        "input": {"channels": src.channels(), "size": cfg.data.input_size, "mean": mean, "std": std, "layout": "NCHW float32"},
        "classes": classes,
    }))
}

/// One `model.json` describes every file of an export directory: the other format's file may
/// stay beside this export only if it holds the same weights (model, step, average or not).
fn check_companion(out: &Path, format: Format, meta: &serde_json::Value) -> Result<()> {
    let other = match format {
        Format::Safetensors => Format::TorchScript,
        Format::TorchScript => Format::Safetensors,
    }
    .file_name();
    if !out.join(other).exists() {
        return Ok(());
    }
    let json = out.join("model.json");
    let old: Option<serde_json::Value> = std::fs::read(&json).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let same = |m: &serde_json::Value| ["model", "step", "weights"].iter().all(|k| m[k] == meta[k]);
    if old.as_ref().is_some_and(same) {
        return Ok(());
    }
    let weights = |m: &serde_json::Value| {
        let text = |k: &str| m[k].as_str().unwrap_or("?").to_string();
        format!("the {} weights of checkpoint {} at step {}", text("weights"), text("checkpoint"), m["step"])
    };
    let held = old.as_ref().map_or("weights that model.json does not describe".to_string(), weights);
    Err(crate::config_err!(
        "{} holds {other} with {held}, not {}: export into another directory (--out DIR), or remove {other} first",
        out.display(),
        weights(meta)
    ))
}

//! `microvision export`: a checkpoint's model for use outside microvision, as safetensors weights
//! (PyTorch `state_dict` names, for the transcription in `bench/models.py`) or as a traced
//! TorchScript module (`torch.jit.load`, no model code needed), each with `model.json`
//! describing the model, its input and its classes.

use std::path::{Path, PathBuf};

use crate::data;
use crate::error::{Error, Result};
use crate::fsio;
use crate::models::{torchscript, Model};
use crate::train::checkpoint;
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
    let weights_file = checkpoint::files(&dir, which).weights;
    checkpoint::load_weights(&model.vs, &loaded.weights, &weights_file)?;
    // With train.ema_decay > 0 the weight average is what was evaluated, so it is what ships.
    let ema = crate::train::ema::weights_from_checkpoint(&loaded.optim);
    let out = out.unwrap_or_else(|| run.join("export"));
    crate::error::create_dir_all(&out, "cannot create")?;
    let file = match format {
        Format::Safetensors => {
            let file = out.join("model.safetensors");
            match &ema {
                Some(avg) => checkpoint::write_tensors_atomic(&file, avg)?,
                None => {
                    let bytes = std::fs::read(&weights_file).map_err(|e| Error::io("cannot read", &weights_file, e))?;
                    fsio::write_atomic(&file, &bytes)?;
                }
            }
            file
        }
        Format::TorchScript => {
            if let Some(avg) = &ema {
                checkpoint::copy_into_store(&model.vs, avg);
            }
            let file = out.join("model.pt");
            torchscript::save(&model, &args, &file)?;
            file
        }
    };
    let src = data::source::source(&cfg.data.dataset)?;
    let (mean, std) = run_dir::normalisation(run, &cfg)
        .map_or((serde_json::Value::Null, serde_json::Value::Null), |(m, s)| (m.into(), s.into()));
    let classes = src.locate(&cfg.data.root).and_then(|d| src.read_split(&d, false).ok()).map(|t| t.classes);
    let meta = serde_json::json!({
        "model": cfg.model.name,
        "args": args,
        "checkpoint": which,
        "weights": if ema.is_some() { "exponential moving average" } else { "trained" },
        "epoch": loaded.state.epoch,
        "best_val_acc": loaded.state.best_acc,
        "input": {"channels": src.channels(), "size": cfg.data.input_size, "mean": mean, "std": std, "layout": "NCHW float32"},
        "classes": classes,
    });
    fsio::write_json(&out.join("model.json"), &meta)?;
    println!("wrote {} and {}", file.display(), out.join("model.json").display());
    Ok(())
}

//! Exporting a run's model: a checkpoint's model for use outside microvision, as safetensors weights
//! (PyTorch `state_dict` names, for the transcription in `pytorch/models.py`) or as a traced
//! TorchScript module (`torch.jit.load`, no model code needed), each with `model.json`
//! describing the model, its input and its classes.

use std::path::{Path, PathBuf};

use super::model::{class_names, load_model, normalisation, Checkpoint};
use crate::data;
use crate::error::{Error, Result};
use crate::fsio;
use crate::models::torchscript;
use crate::run::Run;
use crate::train::checkpoint;
use crate::train::checkpoint::TrainState;
use crate::train::trainer::model_args;

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `model.safetensors`: the weights.
    Safetensors,
    /// `model.pt`: the evaluation-mode forward pass traced to TorchScript, weights included.
    TorchScript,
}

impl std::str::FromStr for Format {
    type Err = Error;

    /// The format by name (`safetensors` or `torchscript`).
    fn from_str(name: &str) -> Result<Format> {
        match name {
            "safetensors" => Ok(Format::Safetensors),
            "torchscript" => Ok(Format::TorchScript),
            other => Err(crate::config_err!("unknown export format {other:?}; expected safetensors or torchscript")),
        }
    }
}

impl Format {
    /// The file the format writes into the export directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Safetensors => "model.safetensors",
            Format::TorchScript => "model.pt",
        }
    }
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The model file (`model.safetensors` or `model.pt`).
    pub file: PathBuf,
    /// `model.json`, describing it.
    pub description: PathBuf,
    /// Whether the weights are the run's exponential moving average.
    pub averaged: bool,
}

/// Exports checkpoint `which` of the run in `run_dir` as `format` into `out` (default
/// `RUN/export`), with `model.json`. It replaces only an earlier export there (see the rules of
/// `check_out_dir`); anything else in the way is refused, naming it.
pub fn export(run_dir: &Path, which: Checkpoint, format: Format, out: Option<&Path>) -> Result<Exported> {
    let run = Run::open(run_dir)?;
    let cfg = run.config();
    let dir = run.checkpoint_dir();
    // Verifies the checksums; the JSON names the config's model, so the weights must be that
    // model's, tensor by tensor. With train.ema_decay > 0 the model holds the weight average:
    // that is what was evaluated, so it is what ships.
    let loaded = load_model(&run, which, tch::Device::Cpu)?;
    let ema = crate::train::ema::weights_from_checkpoint(&loaded.loaded.optim);
    let mut meta = describe(&run, which, &loaded.loaded.state, ema.is_some())?;
    let out = out.map_or_else(|| run_dir.join("export"), Path::to_path_buf);
    crate::error::create_dir_all(&out, "cannot create")?;
    let kept = check_out_dir(&out, format, &meta)?;
    let file = out.join(format.file_name());
    match (format, &ema) {
        (Format::Safetensors, Some(avg)) => checkpoint::write_tensors_atomic(&file, avg)?,
        (Format::Safetensors, None) => {
            let weights = checkpoint::files(&dir, which.as_str()).weights;
            let bytes = std::fs::read(&weights).map_err(|e| Error::io("cannot read", &weights, e))?;
            fsio::write_atomic(&file, &bytes)?;
        }
        (Format::TorchScript, _) => torchscript::save(&loaded.model, &model_args(cfg), &file)?,
    }
    let mut files = kept;
    files.insert(format.file_name().to_string(), format!("{:08x}", checkpoint::crc_file(&file)?).into());
    meta["files"] = files.into();
    let description = out.join("model.json");
    fsio::write_json(&description, &meta)?;
    Ok(Exported { file, description, averaged: loaded.averaged })
}

/// `model.json`: the model, the run and checkpoint the weights come from, the input and the
/// classes (the file list is added once the files are written).
fn describe(run: &Run, which: Checkpoint, state: &TrainState, averaged: bool) -> Result<serde_json::Value> {
    let cfg = run.config();
    let src = data::source::source(&cfg.data.dataset)?;
    let (mean, std) = normalisation(run).map_err(|_| {
        crate::ckpt_err!(
            "{}: expected norm_mean and norm_std (the normalisation the model trained with, which model.json gives)",
            run.dir().join("env.json").display()
        )
    })?;
    let classes = class_names(run);
    // Resolved, so that `runs/x`, `./runs/x/` and a link to it name one run.
    let dir = std::fs::canonicalize(run.dir()).unwrap_or_else(|_| run.dir().to_path_buf());
    Ok(serde_json::json!({
        "model": cfg.model.name,
        "args": model_args(cfg),
        "run": dir,
        "checkpoint": which.as_str(),
        "weights": if averaged { "exponential moving average" } else { "trained" },
        "epoch": state.epoch,
        "step": state.step,
        // The checkpoint tensor file the weights come from: their identity.
        "checkpoint_crc32c": format!("{:08x}", if averaged { state.optim_crc32c } else { state.weights_crc32c }),
        // None without a validation split (nothing is chosen on the test split).
        "best_val_acc": (cfg.data.has_val_split() && state.best_acc >= 0.0).then_some(state.best_acc),
        "input": {"channels": src.channels(), "size": cfg.data.input_size, "mean": mean, "std": std, "layout": "NCHW float32"},
        "classes": classes,
    }))
}

/// What an export may replace in `out`: only an earlier export (its `model.json`, and the file
/// of the format being written). The other format's file may stay if `model.json` lists it
/// unchanged and it holds the same weights (model, checkpoint file CRC, average or not); its
/// entry is returned, to be listed again.
fn check_out_dir(
    out: &Path,
    format: Format,
    meta: &serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let refuse = |what: String| {
        crate::config_err!(
            "{} holds {what}: export into another directory (--out DIR), or remove it first",
            out.display()
        )
    };
    let old = earlier_export(out).map_err(refuse)?;
    let mut kept = serde_json::Map::new();
    for f in [Format::Safetensors, Format::TorchScript] {
        let name = f.file_name();
        if !out.join(name).exists() {
            continue;
        }
        let Some(old) = &old else {
            return Err(refuse(format!("{name}, which no model.json describes")));
        };
        if f == format {
            continue; // replaced by this export
        }
        let now = format!("{:08x}", checkpoint::crc_file(&out.join(name))?);
        // Exports of earlier versions listed no files: trust theirs.
        let listed = old.get("files").map_or(Some(now.as_str()), |files| files[name].as_str());
        if listed != Some(now.as_str()) {
            return Err(refuse(format!("{name}, which its model.json does not describe (changed or added since)")));
        }
        if !same_weights(old, meta) {
            let of = |m: &serde_json::Value| {
                let text = |k: &str| m[k].as_str().unwrap_or("?").to_string();
                format!(
                    "the {} weights of {} (checkpoint {}, epoch {})",
                    text("weights"),
                    text("run"),
                    text("checkpoint"),
                    m["epoch"]
                )
            };
            return Err(refuse(format!("{name} with {}, not {}", of(old), of(meta))));
        }
        kept.insert(name.to_string(), now.into());
    }
    Ok(kept)
}

/// The `model.json` of an earlier export in `out` (`None`: there is none); an error text when the
/// file there is something else.
fn earlier_export(out: &Path) -> std::result::Result<Option<serde_json::Value>, String> {
    let json = out.join("model.json");
    if !json.exists() {
        return Ok(None);
    }
    let text = std::fs::read(&json).map_err(|e| format!("a model.json that cannot be read ({e})"))?;
    match serde_json::from_slice::<serde_json::Value>(&text) {
        Ok(v) if v["model"].is_string() && v["input"].is_object() => Ok(Some(v)),
        _ => Err("a model.json that is not a microvision export's".into()),
    }
}

/// Whether two exports' descriptions name the same weights: by the CRC32C of the checkpoint file
/// they came from (wherever the run lies now), or, for exports of earlier versions that did not
/// record it, by checkpoint and epoch.
fn same_weights(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    let keys: &[&str] = if a["checkpoint_crc32c"].is_string() {
        &["model", "weights", "checkpoint_crc32c"]
    } else {
        &["model", "weights", "checkpoint", "epoch"]
    };
    keys.iter().all(|k| a[*k] == b[*k])
}

//! Checkpoints: `<tag>.safetensors` (model weights, PyTorch `state_dict` names),
//! `<tag>.optim.safetensors` (optimizer buffers) and `<tag>.state.json` (epoch, step, best
//! accuracy, seed, and CRC32C checksums of both tensor files).
//!
//! Writes are atomic: each file goes to a temporary name, is fsynced, then renamed; the state file
//! is renamed last and names the checksums of the tensor files it belongs to, so a crash at any
//! point leaves either the previous checkpoint or the new one, and a mixed or corrupt set is
//! detected on load instead of being loaded silently.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::Tensor;

use crate::ckpt_err;
use crate::error::{Error, Result};
use crate::fsio::{sync_dir, tmp_path, write_synced};

/// Where a run stands; saved beside the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed epochs.
    pub epoch: i64,
    /// Completed optimizer steps.
    pub step: i64,
    /// Best validation accuracy so far.
    pub best_acc: f64,
    /// Epoch that reached it.
    pub best_epoch: i64,
    /// The run's seed (shuffling, augmentation and dropout of epoch `e` derive from it and `e`).
    pub seed: u64,
    /// Model registry name.
    pub model: String,
    /// Classes the head predicts.
    pub num_classes: i64,
    /// Seconds spent training so far.
    pub train_secs: f64,
    /// Factor on the scheduled learning rate (lowered by divergence restores).
    #[serde(default = "one")]
    pub lr_scale: f64,
    /// fp16 loss-scaler state (unused in fp32/bf16).
    #[serde(default)]
    pub loss_scaler: super::step::LossScaler,
    /// Early stopping: the best value of the watched metric so far (higher is better: the
    /// validation loss is stored negated), and epochs since it last improved.
    #[serde(default = "no_score")]
    pub early_stop: (f64, i64),
    /// Early stopping ended the run (a resume then goes straight to the final evaluation).
    #[serde(default)]
    pub early_stopped: bool,
    /// Totals of the epoch in progress when the run was interrupted mid-epoch (zero at epoch
    /// ends), so the resumed epoch's line covers all its steps.
    #[serde(default)]
    pub partial: EpochTotals,
    /// CRC32C of the weights file.
    pub weights_crc32c: u32,
    /// CRC32C of the optimizer file.
    pub optim_crc32c: u32,
}

impl TrainState {
    /// The state of a run that has not trained yet.
    pub fn new(seed: u64, model: &str, num_classes: i64) -> Self {
        TrainState {
            epoch: 0,
            step: 0,
            best_acc: -1.0,
            best_epoch: 0,
            seed,
            model: model.to_string(),
            num_classes,
            train_secs: 0.0,
            lr_scale: 1.0,
            loss_scaler: Default::default(),
            early_stop: no_score(),
            early_stopped: false,
            partial: Default::default(),
            weights_crc32c: 0,
            optim_crc32c: 0,
        }
    }
}

/// Running sums over an epoch's training steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochTotals {
    /// Sum of loss x batch size.
    pub loss_sum: f64,
    /// Correct predictions (soft for mixed batches).
    pub correct: f64,
    /// Images.
    pub seen: i64,
    /// Seconds.
    pub secs: f64,
}

fn one() -> f64 {
    1.0
}

fn no_score() -> (f64, i64) {
    (f64::MIN, 0)
}

/// The three files of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// Model tensors (`<tag>.safetensors`, PyTorch state_dict names).
    pub weights: PathBuf,
    /// Optimizer state and weight averages (`<tag>.optim.safetensors`).
    pub optim: PathBuf,
    /// [`TrainState`] with the CRC32C of both tensor files (`<tag>.state.json`).
    pub state: PathBuf,
}

/// The files of checkpoint `tag` in `dir`.
pub fn files(dir: &Path, tag: &str) -> Files {
    Files {
        weights: dir.join(format!("{tag}.safetensors")),
        optim: dir.join(format!("{tag}.optim.safetensors")),
        state: dir.join(format!("{tag}.state.json")),
    }
}

/// Writes checkpoint `tag` atomically.
pub fn save(dir: &Path, tag: &str, vs: &VarStore, optim: &[(String, Tensor)], state: &TrainState) -> Result<()> {
    crate::error::create_dir_all(dir, "cannot create checkpoint directory")?;
    let Files { weights: w, optim: o, state: s } = files(dir, tag);
    let mut weights: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    let w_tmp = tmp_path(&w);
    let o_tmp = tmp_path(&o);
    write_tensors(&w_tmp, &weights)?;
    write_tensors(&o_tmp, optim).inspect_err(|_| {
        let _ = std::fs::remove_file(&w_tmp);
    })?;
    let mut state = state.clone();
    state.weights_crc32c = crc_file(&w_tmp)?;
    state.optim_crc32c = crc_file(&o_tmp)?;
    let s_tmp = tmp_path(&s);
    let json = serde_json::to_vec_pretty(&state).expect("state serialises");
    write_synced(&s_tmp, &json).inspect_err(|_| {
        let _ = std::fs::remove_file(&w_tmp);
        let _ = std::fs::remove_file(&o_tmp);
    })?;
    crate::failpoint::hit("checkpoint.before_rename");
    for (i, (tmp, dst)) in [(&w_tmp, &w), (&o_tmp, &o), (&s_tmp, &s)].into_iter().enumerate() {
        if i == 1 {
            crate::failpoint::hit("checkpoint.mid_rename");
        }
        std::fs::rename(tmp, dst).map_err(|e| Error::io("cannot rename checkpoint to", dst, e))?;
    }
    sync_dir(dir);
    Ok(())
}

/// Writes `tensors` (contiguous, on the CPU) as a safetensors file at `path`, atomically.
pub fn write_tensors_atomic(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let tmp = tmp_path(path);
    write_tensors(&tmp, tensors)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("cannot write", path, e)
    })
}

fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let cpu: Vec<(String, Tensor)> =
        tensors.iter().map(|(n, t)| (n.clone(), t.to_device(tch::Device::Cpu).contiguous())).collect();
    Tensor::write_safetensors(&cpu, path).map_err(|e| {
        let _ = std::fs::remove_file(path);
        ckpt_err!("cannot write checkpoint {}: {e}", path.display())
    })?;
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| Error::io("cannot sync", path, e))
}

/// CRC32C of a whole file (as recorded in checkpoint state files).
pub fn crc_file(path: &Path) -> Result<u32> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    Ok(crc32c::crc32c(&bytes))
}

/// A loaded, verified checkpoint.
#[derive(Debug)]
pub struct Loaded {
    /// Model tensors by name.
    pub weights: Vec<(String, Tensor)>,
    /// Optimizer tensors by name.
    pub optim: Vec<(String, Tensor)>,
    /// Metadata.
    pub state: TrainState,
}

/// Reads checkpoint `tag` and verifies its checksums.
pub fn load(dir: &Path, tag: &str) -> Result<Loaded> {
    let Files { weights: w, optim: o, state: s } = files(dir, tag);
    let text = std::fs::read_to_string(&s).map_err(|e| ckpt_err!("cannot read checkpoint {}: {e}", s.display()))?;
    let state: TrainState =
        serde_json::from_str(&text).map_err(|e| ckpt_err!("checkpoint {} is corrupt: {e}", s.display()))?;
    for (path, want) in [(&w, state.weights_crc32c), (&o, state.optim_crc32c)] {
        let got = crc_file(path).map_err(|e| ckpt_err!("cannot read checkpoint file {}: {e}", path.display()))?;
        if got != want {
            return Err(ckpt_err!(
                "checkpoint file {} is corrupt or incomplete (CRC32C {got:08x}, expected {want:08x})",
                path.display()
            ));
        }
    }
    let read = |p: &Path| {
        let mut t = Tensor::read_safetensors(p).map_err(|e| ckpt_err!("cannot read {}: {e}", p.display()))?;
        t.sort_by(|a, b| a.0.cmp(&b.0));
        Ok::<_, Error>(t)
    };
    Ok(Loaded { weights: read(&w)?, optim: read(&o)?, state })
}

/// The newest checkpoint of `dir` that passes verification (`last` or `best`, by step), with its
/// tag. Corrupt ones are reported as warnings; `None` when there is no usable checkpoint.
pub fn load_newest_valid(dir: &Path) -> Option<(&'static str, Loaded)> {
    let mut best: Option<(&'static str, Loaded)> = None;
    for tag in ["last", "best"] {
        let f = files(dir, tag);
        if !f.state.exists() {
            // The state file is renamed into place last: tensors without it are a write that
            // did not finish (or a deleted state file), not a checkpoint.
            if f.weights.exists() || f.optim.exists() {
                crate::notice::warn(format!(
                    "{} is missing, so checkpoint `{tag}` was not completely written; ignoring it",
                    f.state.display()
                ));
            }
            continue;
        }
        match load(dir, tag) {
            Ok(l) if best.as_ref().is_none_or(|(_, b)| l.state.step > b.state.step) => best = Some((tag, l)),
            Ok(_) => {}
            Err(e) => crate::notice::warn(format!("{e}; ignoring checkpoint `{tag}`")),
        }
    }
    best
}

/// Whether a checkpoint in `dir`, readable or not, was written after a finished epoch: a state
/// file that says so, or one that cannot be parsed (assume it did). `save` renames the state file
/// last, so a write killed midway leaves none.
pub fn records_finished_epoch(dir: &Path) -> bool {
    ["last", "best"].iter().map(|tag| files(dir, tag).state).filter(|p| p.exists()).any(|p| {
        let state = std::fs::read(&p).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        state.and_then(|s| s["epoch"].as_i64()).is_none_or(|epoch| epoch >= 1)
    })
}

/// Removes the temporary files of checkpoint writes that were killed (`.tmp-*` in `dir`).
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// How named tensors line up with a model's variables, each list sorted: variables with no
/// tensor (`missing`), tensors with no variable (`unexpected`), and names whose shapes differ
/// (`name: shape [..] in file, model expects [..]`).
pub struct NameMatch {
    /// Variables of the model that have no tensor.
    pub missing: Vec<String>,
    /// Tensors that name no variable.
    pub unexpected: Vec<String>,
    /// Present in both, with another shape, described.
    pub other_shape: Vec<String>,
}

impl NameMatch {
    /// `missing <name>` for each missing variable, then `unexpected <name>` for each extra tensor.
    pub fn unmatched_names(&self) -> impl Iterator<Item = String> + '_ {
        let missing = self.missing.iter().map(|n| format!("missing {n}"));
        missing.chain(self.unexpected.iter().map(|n| format!("unexpected {n}")))
    }
}

/// Matches `weights` to the variables of `vs` by name and shape.
pub fn match_names(vs: &VarStore, weights: &[(String, Tensor)]) -> NameMatch {
    let vars = vs.variables();
    let given: HashMap<&str, &Tensor> = weights.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let (mut missing, mut other_shape) = (Vec::new(), Vec::new());
    for (name, var) in &vars {
        match given.get(name.as_str()) {
            None => missing.push(name.clone()),
            Some(t) if t.size() != var.size() => {
                other_shape.push(format!("{name}: shape {:?} in file, model expects {:?}", t.size(), var.size()))
            }
            _ => {}
        }
    }
    let mut unexpected: Vec<String> = given.keys().filter(|n| !vars.contains_key(**n)).map(|n| n.to_string()).collect();
    for list in [&mut missing, &mut unexpected, &mut other_shape] {
        list.sort();
    }
    NameMatch { missing, unexpected, other_shape }
}

/// Copies `weights` into the variables of `vs`. Every variable must be present with its shape and
/// no extra tensor may be left over: a checkpoint of another model or class count is reported
/// tensor by tensor, never partially loaded.
pub fn load_weights(vs: &VarStore, weights: &[(String, Tensor)], origin: &Path) -> Result<()> {
    let m = match_names(vs, weights);
    if !(m.missing.is_empty() && m.other_shape.is_empty() && m.unexpected.is_empty()) {
        let summary = format!(
            "{} missing, {} unexpected, {} of another shape",
            m.missing.len(),
            m.unexpected.len(),
            m.other_shape.len()
        );
        // Shape mismatches first: they are the usual cause (another class count).
        let all: Vec<String> = m.other_shape.iter().cloned().chain(m.unmatched_names()).collect();
        let shown = all.iter().take(12).cloned().collect::<Vec<_>>().join("\n  ");
        let more = all.len().saturating_sub(12);
        let tail = if more > 0 { format!("\n  ... and {more} more") } else { String::new() };
        return Err(ckpt_err!("{} does not fit this model ({summary}):\n  {shown}{tail}", origin.display()));
    }
    copy_into_store(vs, weights);
    Ok(())
}

/// Copies each named tensor into the variable of that name (which must exist, with its shape).
pub fn copy_into_store(vs: &VarStore, weights: &[(String, Tensor)]) {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (name, tensor) in weights {
            vars[name].shallow_clone().copy_(tensor);
        }
    });
}

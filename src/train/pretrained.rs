//! `model.init_from`: a new run starts from trained weights instead of a random initialisation
//! (fine-tuning, transfer to another dataset). The source is a run directory (its `last`
//! checkpoint; the weight average where the run kept one, as `eval` uses) or a safetensors file
//! with the model's tensor names (`microvision export`'s `model.safetensors`).
//!
//! Every tensor name must match the model's (the same architecture); tensors whose shape differs
//! (the classifier of a model for another class count, the stem of one for another channel count)
//! keep their fresh initialisation and are listed, as timm does for a new `num_classes`.

use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::Tensor;

use super::checkpoint;
use crate::ckpt_err;
use crate::error::{Error, Result};
use crate::run::{self, InitFrom};

/// Weights read from `model.init_from`, checked against the model they will initialise.
pub struct Pretrained {
    /// Where they came from, for messages (the checkpoint or safetensors file).
    pub origin: PathBuf,
    /// Tensors copied into the model, by name.
    pub weights: Vec<(String, Tensor)>,
    /// Tensors left at their fresh initialisation, with why (`name: shape [..] in file, model
    /// expects [..]`).
    pub fresh: Vec<String>,
    /// What pins the source down, for `env.json`: a file's path and CRC32C, or a run's directory,
    /// checkpoint epoch and step and the CRC32Cs of its tensor files.
    pub record: InitFrom,
}

/// Reads the weights at `source` and matches them to the variables of `vs` (a model built as the
/// run's): an error names the tensors of another architecture; shape mismatches are kept fresh.
pub fn read(source: &Path, vs: &VarStore) -> Result<Pretrained> {
    let Pretrained { origin, weights, record, .. } = read_source(source)?;
    let matched = checkpoint::match_names(vs, &weights);
    let (missing, unexpected) = (&matched.missing, &matched.unexpected);
    if !(unexpected.is_empty() && missing.is_empty()) {
        let names: Vec<String> = matched.unmatched_names().take(8).collect();
        return Err(ckpt_err!(
            "model.init_from = {:?}: {} holds another architecture's weights ({} missing, {} unexpected):\n  {}",
            source.display(),
            origin.display(),
            missing.len(),
            unexpected.len(),
            names.join("\n  ")
        ));
    }
    let vars = vs.variables();
    let kept: Vec<(String, Tensor)> = weights.into_iter().filter(|(n, t)| t.size() == vars[n].size()).collect();
    let fresh = matched.other_shape;
    // Integer buffers (BatchNorm's num_batches_tracked) fit any model of the architecture.
    if !kept.iter().any(|(_, t)| t.is_floating_point()) {
        return Err(ckpt_err!(
            "model.init_from = {:?}: no weight of {} fits this model",
            source.display(),
            origin.display()
        ));
    }
    Ok(Pretrained { origin, weights: kept, fresh, record })
}

/// Copies the matched tensors into `vs`.
pub fn apply(p: &Pretrained, vs: &VarStore) {
    checkpoint::copy_into_store(vs, &p.weights);
}

/// Every tensor at `source` (a run directory or a safetensors file), none yet marked fresh.
fn read_source(source: &Path) -> Result<Pretrained> {
    let at = |e: Error| ckpt_err!("model.init_from = {:?}: {e}", source.display());
    if source.is_dir() {
        if let Err(e @ Error::Checkpoint(_)) = run::lock(source) {
            return Err(at(e)); // still training: its `last` would be a snapshot of the moment
        }
        let cfg = run::read_config(source).map_err(|e| {
            let export = source.join("model.safetensors");
            if export.is_file() {
                return ckpt_err!(
                    "model.init_from = {:?} holds an exported model, not a run: use {:?}",
                    source.display(),
                    export.display()
                );
            }
            ckpt_err!("model.init_from = {:?}: expected a run directory or a .safetensors file: {e}", source.display())
        })?;
        let dir = source.join(&cfg.output.checkpoint_dir);
        let loaded = checkpoint::load(&dir, "last").map_err(at)?;
        let files = checkpoint::files(&dir, "last");
        let record = InitFrom {
            run: Some(source.to_path_buf()),
            checkpoint: Some("last".into()),
            epoch: Some(loaded.state.epoch),
            step: Some(loaded.state.step),
            weights_crc32c: Some(format!("{:08x}", loaded.state.weights_crc32c)),
            optim_crc32c: Some(format!("{:08x}", loaded.state.optim_crc32c)),
            ..InitFrom::default()
        };
        let (origin, weights) = match super::ema::weights_from_checkpoint(&loaded.optim) {
            Some(average) => (files.optim, average),
            None => (files.weights, loaded.weights),
        };
        return Ok(Pretrained { origin, weights, fresh: Vec::new(), record });
    }
    if !source.is_file() {
        // A device file, a socket or a dangling (or looping) link exists without being either.
        let what = match std::fs::symlink_metadata(source) {
            Err(_) => "does not exist",
            Ok(m) if m.file_type().is_symlink() => "is a link to nothing readable",
            Ok(_) => "is not a regular file or directory",
        };
        return Err(ckpt_err!(
            "model.init_from = {:?} {what}; expected a run directory or a .safetensors file",
            source.display()
        ));
    }
    let weights = Tensor::read_safetensors(source)
        .map_err(|e| ckpt_err!("model.init_from = {:?}: cannot read it as safetensors ({e})", source.display()))?;
    let record = InitFrom {
        file: Some(source.to_path_buf()),
        crc32c: Some(format!("{:08x}", checkpoint::crc_file(source)?)),
        ..InitFrom::default()
    };
    Ok(Pretrained { origin: source.to_path_buf(), weights, fresh: Vec::new(), record })
}

//! One run on several processes, with PyTorch `DistributedDataParallel`'s semantics, over the
//! c10d Gloo group of [`crate::dist`]:
//! - rank 0's parameters and buffers are broadcast at the start, and its buffers (BatchNorm
//!   running statistics) before every step, as DDP's `broadcast_buffers`;
//! - each rank trains its consecutive slice of every global batch (the loader's shard) and the
//!   gradients of the slices' mean losses, each weighted by its share of the global batch, are
//!   summed by bucketed all-reduces: the gradient of the global batch's mean loss;
//! - BatchNorm normalises each rank's slice by the slice's own statistics (DDP without
//!   `SyncBatchNorm`);
//! - the step's loss and accuracy, and the stop requests, are summed with the gradients, so
//!   every rank logs, diverges and stops at the same step;
//! - evaluation is split among the ranks and the logits gathered, so every rank holds the same
//!   result.
//!
//! The all-reduces run after the backward pass, not overlapped with it: tch exposes no
//! gradient hooks to start a bucket as soon as its gradients are ready.

use std::collections::BTreeMap;
use std::time::Duration;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::dist::{ProcessGroup, Rendezvous};
use crate::error::{Error, Result};

/// Bytes per all-reduce bucket (DDP's default `bucket_cap_mb` = 25).
const BUCKET_BYTES: i64 = 25 << 20;

/// Longest run directory path rank 0 can hand the others.
const MAX_PATH_BYTES: i64 = 4096;

/// This process's membership of a multi-process run.
#[derive(Debug)]
pub struct Dist {
    group: ProcessGroup,
}

impl Dist {
    /// Joins the group the `torchrun` variables describe, when `WORLD_SIZE` > 1; collectives
    /// that wait longer than `timeout` for another rank fail.
    pub fn from_env(timeout: Duration) -> Result<Option<Dist>> {
        match Rendezvous::from_env()? {
            Some(r) if r.world > 1 => Ok(Some(Dist { group: ProcessGroup::join(&r, timeout)? })),
            _ => Ok(None),
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.group.rank as usize
    }

    /// Processes in the run.
    pub fn world(&self) -> usize {
        self.group.world as usize
    }

    /// Names this rank in messages.
    pub fn label(&self) -> String {
        format!("rank {} of {}", self.rank(), self.world())
    }

    /// A failed collective, said so that the user knows where to look: another rank stopped
    /// (its own output says why) or the network failed.
    fn lost(&self, during: &str, e: Error) -> Error {
        Error::Runtime(format!(
            "{} lost the group {during} ({e}): another rank stopped or cannot be reached; its output says why. \
             The run's last checkpoint is intact: resume every rank with `microvision train --resume RUN_DIR`",
            self.label()
        ))
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self, during: &str) -> Result<()> {
        self.group.barrier().map_err(|e| self.lost(during, e))
    }

    /// Rank 0's `text` on every rank (the run directory it created).
    pub fn broadcast_text(&self, text: &str) -> Result<String> {
        let mut bytes = vec![0u8; MAX_PATH_BYTES as usize];
        if self.rank() == 0 {
            if text.len() >= bytes.len() {
                return Err(Error::Config(format!("{text:?}: longer than {MAX_PATH_BYTES} bytes")));
            }
            bytes[..text.len()].copy_from_slice(text.as_bytes());
        }
        let mut t = Tensor::from_slice(&bytes);
        self.group.broadcast(&mut t, 0).map_err(|e| self.lost("while starting the run", e))?;
        let bytes = Vec::<u8>::try_from(&t).map_err(|e| Error::Runtime(e.to_string()))?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8(bytes[..end].to_vec()).map_err(|e| Error::Runtime(format!("run directory from rank 0: {e}")))
    }

    /// Overwrites every variable (parameters and buffers) with rank 0's.
    pub fn broadcast_variables(&self, vs: &VarStore) -> Result<()> {
        let vars: Vec<Tensor> = sorted(vs).into_values().collect();
        self.broadcast_all(&vars, "while sharing rank 0's weights")
    }

    /// Overwrites the buffers (variables that do not train: BatchNorm's running statistics,
    /// frozen layers) with rank 0's.
    pub fn broadcast_buffers(&self, vs: &VarStore) -> Result<()> {
        let vars: Vec<Tensor> = sorted(vs).into_values().filter(|v| !v.requires_grad()).collect();
        self.broadcast_all(&vars, "while sharing rank 0's buffers")
    }

    fn broadcast_all(&self, vars: &[Tensor], during: &str) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for bucket in buckets(vars) {
            let mut flat = flatten(&bucket);
            self.group.broadcast(&mut flat, 0).map_err(|e| self.lost(during, e))?;
            unflatten_into(&flat, &bucket);
        }
        Ok(())
    }

    /// Sums every trainable variable's gradient over the ranks (bucketed, in name order), and
    /// `stats` with them. A parameter the step left without a gradient gets a zero one first, so
    /// that every rank reduces the same list of tensors.
    pub fn all_reduce_step(&self, vs: &VarStore, stats: &mut [f64]) -> Result<()> {
        ensure_grads(vs);
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = sorted(vs).into_values().filter(|v| v.requires_grad()).map(|v| v.grad()).collect();
        for bucket in buckets(&grads) {
            let mut flat = flatten(&bucket);
            self.group.all_reduce_sum(&mut flat).map_err(|e| self.lost("while summing gradients", e))?;
            unflatten_into(&flat, &bucket);
        }
        self.sum_values(stats, "while summing the step's loss")
    }

    /// Sums `values` over the ranks, in place.
    pub fn sum_values(&self, values: &mut [f64], during: &str) -> Result<()> {
        let mut t = Tensor::from_slice(values);
        self.group.all_reduce_sum(&mut t).map_err(|e| self.lost(during, e))?;
        values.copy_from_slice(&Vec::<f64>::try_from(&t).map_err(|e| Error::Runtime(e.to_string()))?);
        Ok(())
    }

    /// Every rank's rows of an `(N, ...)` tensor on every rank: this rank's `part` holds rows
    /// `start..start + part.len()` of `total`. (Summed into zeros: adding zeros is exact.)
    pub fn gather_rows(&self, part: &Tensor, start: i64, total: i64) -> Result<Tensor> {
        let mut size = part.size();
        size[0] = total;
        let mut all = Tensor::zeros(size.as_slice(), (part.kind(), Device::Cpu));
        all.narrow(0, start, part.size()[0]).copy_(&part.to_device(Device::Cpu));
        self.group.all_reduce_sum(&mut all).map_err(|e| self.lost("while gathering the evaluation", e))?;
        Ok(all.to_device(part.device()))
    }
}

/// Gives every trainable variable without a gradient a zero one (the optimizer keeps defined
/// gradients defined, so after the first step this finds none).
fn ensure_grads(vs: &VarStore) {
    let vars = vs.trainable_variables();
    let missing: Vec<&Tensor> = vars.iter().filter(|v| !v.grad().defined()).collect();
    if let Some(sum) = missing.iter().map(|v| v.sum(Kind::Float) * 0.0).reduce(|a, b| a + b) {
        sum.backward();
    }
}

/// The store's variables by name: the same order on every rank.
fn sorted(vs: &VarStore) -> BTreeMap<String, Tensor> {
    vs.variables().into_iter().collect()
}

/// Consecutive runs of tensors of one kind and device, each up to [`BUCKET_BYTES`].
fn buckets(tensors: &[Tensor]) -> Vec<Vec<Tensor>> {
    let mut out: Vec<Vec<Tensor>> = Vec::new();
    let mut bytes = 0;
    for t in tensors {
        let size = t.numel() as i64 * t.kind().elt_size_in_bytes() as i64;
        let fits = out.last().is_some_and(|b| {
            let first = &b[0];
            first.kind() == t.kind() && first.device() == t.device() && bytes + size <= BUCKET_BYTES
        });
        if !fits {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        out.last_mut().expect("a bucket was just pushed").push(t.shallow_clone());
    }
    out
}

/// A bucket's tensors as one contiguous CPU vector (Gloo reduces host memory).
fn flatten(bucket: &[Tensor]) -> Tensor {
    Tensor::cat(&bucket.iter().map(|t| t.reshape([-1])).collect::<Vec<_>>(), 0).to_device(Device::Cpu).contiguous()
}

/// Copies a reduced bucket back into its tensors.
fn unflatten_into(flat: &Tensor, bucket: &[Tensor]) {
    let mut offset = 0;
    for t in bucket {
        let n = t.numel() as i64;
        let part = flat.narrow(0, offset, n).view(t.size().as_slice()).to_device(t.device());
        t.shallow_clone().copy_(&part);
        offset += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_split_by_size_and_kind_and_round_trip() {
        let a = Tensor::ones([4], (Kind::Float, Device::Cpu));
        let b = Tensor::ones([2, 3], (Kind::Double, Device::Cpu));
        let c = Tensor::ones([1], (Kind::Double, Device::Cpu));
        let big = Tensor::zeros([BUCKET_BYTES / 4], (Kind::Float, Device::Cpu));
        let bs = buckets(&[a.shallow_clone(), b.shallow_clone(), c.shallow_clone(), big, a.shallow_clone()]);
        let lens: Vec<usize> = bs.iter().map(Vec::len).collect();
        assert_eq!(lens, [1, 2, 1, 1], "kind changes and the 25 MiB cap start buckets");
        let bucket = [b.shallow_clone(), c.shallow_clone()];
        let flat = flatten(&bucket) * 3.0;
        unflatten_into(&flat, &bucket);
        assert_eq!(Vec::<f64>::try_from(b.reshape([-1])).unwrap(), [3.0; 6]);
        assert_eq!(Vec::<f64>::try_from(&c).unwrap(), [3.0]);
    }
}

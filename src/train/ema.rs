//! Exponential moving average of the weights (Polyak averaging; as timm's `ModelEmaV2`, over every
//! floating-point tensor of the state_dict, BatchNorm statistics included). The average is what
//! gets evaluated when it is on; the raw weights keep training.
//!
//! The decay warms up as `min(decay, (1 + n) / (10 + n))` after `n` updates (TensorFlow's
//! `ExponentialMovingAverage(num_updates)`), so short runs are not dominated by the initial weights.

use tch::nn::VarStore;
use tch::Tensor;

use super::shadow::{copy_into, Shadow};

/// Name prefix of the average's tensors in the optimizer checkpoint file.
pub const PREFIX: &str = "ema.";

/// The averaged copy of a model's tensors.
pub struct Ema {
    decay: f64,
    /// The average of every variable of the store (integer buffers follow the model).
    shadow: Shadow,
}

/// The decay used for update number `updates` (0-based).
pub fn decay_at(decay: f64, updates: i64) -> f64 {
    decay.min((1.0 + updates as f64) / (10.0 + updates as f64))
}

impl Ema {
    /// Starts the average at the current weights of `vs`.
    pub fn new(vs: &VarStore, decay: f64) -> Self {
        Ema { decay, shadow: Shadow::of(vs, PREFIX, false) }
    }

    /// Folds the current weights in after update number `updates` (0-based).
    pub fn update(&mut self, vs: &VarStore, updates: i64) {
        let d = decay_at(self.decay, updates);
        let vars = vs.variables();
        tch::no_grad(|| {
            for (avg, w) in self.shadow.pairs_mut(&vars) {
                if avg.is_floating_point() {
                    // avg = d * avg + (1 - d) * w, in place.
                    let _ = avg.g_mul_scalar_(d).g_add_(&(w * (1.0 - d)));
                } else {
                    avg.copy_(w); // integer buffers (num_batches_tracked) follow the model
                }
            }
        });
    }

    /// The average's tensors, named `ema.<variable>` for the checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.shadow.state_tensors()
    }

    /// Restores the average from checkpoint tensors (those named `ema.*`); false if absent.
    pub fn load(&mut self, tensors: &[(String, Tensor)]) -> bool {
        self.shadow.load(tensors)
    }

    /// Runs `f` with the averaged weights in the model, then puts the trained weights back.
    pub fn with_averaged<T>(&self, vs: &VarStore, f: impl FnOnce() -> T) -> T {
        let vars = vs.variables();
        let backup: Vec<(String, Tensor)> = self
            .shadow
            .tensors()
            .iter()
            .filter_map(|(n, _)| vars.get(n).map(|w| (n.clone(), w.detach().copy())))
            .collect();
        copy_into(&vars, self.shadow.tensors());
        let out = f();
        copy_into(&vars, &backup);
        out
    }
}

/// The `ema.*` tensors of a checkpoint's optimizer file as model weights (names without the
/// prefix), for evaluating or exporting the average; None when the run had no EMA.
pub fn weights_from_checkpoint(optim: &[(String, Tensor)]) -> Option<Vec<(String, Tensor)>> {
    let w: Vec<(String, Tensor)> =
        optim.iter().filter_map(|(n, t)| n.strip_prefix(PREFIX).map(|n| (n.to_string(), t.shallow_clone()))).collect();
    (!w.is_empty()).then_some(w)
}

//! Lookahead as airbench uses it (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1
//! step back"; schedule from Jordan 2024, arXiv 2404.00498): every `every` steps a slow copy of
//! the state_dict's floating-point tensors (BatchNorm statistics included) moves towards the
//! weights, `slow = lerp(slow, w, 1 - decay)`, and the weights are reset to it. The decay rises
//! as `0.95^every * (step / total)^3`: no averaging early, strong averaging at the end. After the
//! last step (and its regular update, when it falls on one) the weights become the slow copy.

use tch::nn::VarStore;
use tch::Tensor;

use super::shadow::Shadow;

/// Name prefix of the slow weights in the optimizer checkpoint file.
pub const PREFIX: &str = "lookahead.";

/// The slow weights.
pub struct Lookahead {
    every: u64,
    /// The slow copy of every floating-point variable.
    slow: Shadow,
}

/// The decay applied after step `step` (1-based count of steps taken) of `total`.
pub fn decay_at(step: u64, total: u64, every: u64) -> f64 {
    0.95f64.powi(every as i32) * (step as f64 / total.max(1) as f64).powi(3)
}

impl Lookahead {
    /// Starts the slow copy at the current weights.
    pub fn new(vs: &VarStore, every: u64) -> Self {
        Lookahead { every: every.max(1), slow: Shadow::of(vs, PREFIX, true) }
    }

    /// Called after every optimizer step with the number of steps taken so far: on every
    /// `every`-th step synchronises the two; after the last one (`step == total`) the weights
    /// become the slow copy (airbench's final update with decay 1).
    pub fn after_step(&mut self, vs: &VarStore, step: u64, total: u64) {
        if step.is_multiple_of(self.every) {
            self.sync(vs, decay_at(step, total, self.every));
        }
        if step >= total {
            self.sync(vs, 1.0);
        }
    }

    fn sync(&mut self, vs: &VarStore, decay: f64) {
        let vars = vs.variables();
        tch::no_grad(|| {
            for (slow, w) in self.slow.pairs_mut(&vars) {
                let _ = slow.lerp_(w, 1.0 - decay);
                w.shallow_clone().copy_(slow);
            }
        });
    }

    /// The slow weights, named `lookahead.<variable>` for the checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.slow.state_tensors()
    }

    /// Restores the slow weights from checkpoint tensors; false (nothing changed) if any is
    /// missing or has another shape.
    pub fn load(&mut self, tensors: &[(String, Tensor)]) -> bool {
        self.slow.load(tensors)
    }
}

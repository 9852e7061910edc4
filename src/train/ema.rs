//! Exponential moving average of the weights (Polyak averaging; as timm's `ModelEmaV2`, over every
//! floating-point tensor of the state_dict, BatchNorm statistics included). The average is what
//! gets evaluated when it is on; the raw weights keep training.
//!
//! The decay warms up as `min(decay, (1 + n) / (10 + n))` after `n` updates (TensorFlow's
//! `ExponentialMovingAverage(num_updates)`), so short runs are not dominated by the initial weights.

use tch::nn::VarStore;
use tch::Tensor;

/// Name prefix of the average's tensors in the optimizer checkpoint file.
pub const PREFIX: &str = "ema.";

/// The averaged copy of a model's tensors.
pub struct Ema {
    decay: f64,
    /// `(name, average)` for every variable of the store, in the store's order.
    shadow: Vec<(String, Tensor)>,
}

/// The decay used for update number `updates` (0-based).
pub fn decay_at(decay: f64, updates: i64) -> f64 {
    decay.min((1.0 + updates as f64) / (10.0 + updates as f64))
}

impl Ema {
    /// Starts the average at the current weights of `vs`.
    pub fn new(vs: &VarStore, decay: f64) -> Self {
        let mut shadow: Vec<(String, Tensor)> =
            vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
        shadow.sort_by(|a, b| a.0.cmp(&b.0));
        Ema { decay, shadow }
    }

    /// Folds the current weights in after update number `updates` (0-based).
    pub fn update(&mut self, vs: &VarStore, updates: i64) {
        let d = decay_at(self.decay, updates);
        let vars = vs.variables();
        tch::no_grad(|| {
            for (name, avg) in &mut self.shadow {
                let Some(w) = vars.get(name) else { continue };
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
        self.shadow.iter().map(|(n, t)| (format!("{PREFIX}{n}"), t.shallow_clone())).collect()
    }

    /// Restores the average from checkpoint tensors (those named `ema.*`); false if absent.
    pub fn load(&mut self, tensors: &[(String, Tensor)]) -> bool {
        let map: std::collections::HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let all = self
            .shadow
            .iter()
            .all(|(n, t)| map.get(format!("{PREFIX}{n}").as_str()).is_some_and(|s| s.size() == t.size()));
        if all {
            tch::no_grad(|| {
                for (n, t) in &mut self.shadow {
                    t.copy_(map[format!("{PREFIX}{n}").as_str()]);
                }
            });
        }
        all
    }

    /// Runs `f` with the averaged weights in the model, then puts the trained weights back.
    pub fn with_averaged<T>(&self, vs: &VarStore, f: impl FnOnce() -> T) -> T {
        let vars = vs.variables();
        let backup: Vec<(String, Tensor)> =
            self.shadow.iter().filter_map(|(n, _)| vars.get(n).map(|w| (n.clone(), w.detach().copy()))).collect();
        tch::no_grad(|| swap_in(&vars, &self.shadow));
        let out = f();
        tch::no_grad(|| swap_in(&vars, &backup));
        out
    }
}

fn swap_in(vars: &std::collections::HashMap<String, Tensor>, from: &[(String, Tensor)]) {
    for (n, t) in from {
        if let Some(w) = vars.get(n) {
            w.shallow_clone().copy_(t);
        }
    }
}

/// The `ema.*` tensors of a checkpoint's optimizer file as model weights (names without the
/// prefix), for evaluating or exporting the average; None when the run had no EMA.
pub fn weights_from_checkpoint(optim: &[(String, Tensor)]) -> Option<Vec<(String, Tensor)>> {
    let w: Vec<(String, Tensor)> =
        optim.iter().filter_map(|(n, t)| n.strip_prefix(PREFIX).map(|n| (n.to_string(), t.shallow_clone()))).collect();
    (!w.is_empty()).then_some(w)
}

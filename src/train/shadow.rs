//! A named copy of a model's state_dict tensors kept beside the model: the weight average of
//! [`super::ema::Ema`] and the slow weights of [`super::lookahead::Lookahead`]. It is saved into
//! the optimizer checkpoint file under a prefix (`ema.`, `lookahead.`) and restored from it.

use std::collections::HashMap;
use tch::nn::VarStore;
use tch::Tensor;

/// `(name, copy)` for the variables of a store, sorted by name, saved as `<prefix><name>`.
pub struct Shadow {
    prefix: &'static str,
    tensors: Vec<(String, Tensor)>,
}

impl Shadow {
    /// Copies the current variables of `vs` (only the floating-point ones if `floating_only`).
    pub fn of(vs: &VarStore, prefix: &'static str, floating_only: bool) -> Self {
        let mut tensors: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| !floating_only || t.is_floating_point())
            .map(|(n, t)| (n, t.detach().copy()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Shadow { prefix, tensors }
    }

    /// The copies with the model variable of the same name, for in-place updates.
    pub fn pairs_mut<'a>(
        &'a mut self,
        vars: &'a HashMap<String, Tensor>,
    ) -> impl Iterator<Item = (&'a mut Tensor, &'a Tensor)> + 'a {
        self.tensors.iter_mut().filter_map(move |(n, t)| vars.get(n).map(|w| (t, w)))
    }

    /// The copies, as `(name, tensor)` without the prefix.
    pub fn tensors(&self) -> &[(String, Tensor)] {
        &self.tensors
    }

    /// The copies named `<prefix><variable>`, for the checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.tensors.iter().map(|(n, t)| (format!("{}{n}", self.prefix), t.shallow_clone())).collect()
    }

    /// Restores the copies from checkpoint tensors; false (nothing changed) if any is missing or
    /// has another shape.
    pub fn load(&mut self, tensors: &[(String, Tensor)]) -> bool {
        let map: HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let key = |n: &str| format!("{}{n}", self.prefix);
        let found: Option<Vec<&Tensor>> = self
            .tensors
            .iter()
            .map(|(n, t)| map.get(key(n).as_str()).copied().filter(|s| s.size() == t.size()))
            .collect();
        let Some(found) = found else { return false };
        tch::no_grad(|| self.tensors.iter_mut().zip(found).for_each(|((_, t), s)| t.copy_(s)));
        true
    }
}

/// Writes `from`'s tensors into the variables of the same name.
pub fn copy_into(vars: &HashMap<String, Tensor>, from: &[(String, Tensor)]) {
    tch::no_grad(|| {
        for (n, t) in from {
            if let Some(w) = vars.get(n) {
                w.shallow_clone().copy_(t);
            }
        }
    });
}

//! The learning-rate range test (Smith 2017, "Cyclical Learning Rates", sec. 3.3; the fastai
//! `lr_find` procedure): train from the initial weights with the learning rate growing
//! exponentially from `start` to `end`, record the smoothed loss, stop once it explodes, and
//! suggest the rate where the loss falls fastest.

use super::{loader_spec, Trainer};
use crate::data::loader::Loader;
use crate::data::loader::LoaderSpec;
use crate::error::{Error, Result};

/// The sweep's record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LrFind {
    /// Learning rate of each step.
    pub lrs: Vec<f64>,
    /// Batch loss of each step.
    pub losses: Vec<f64>,
    /// Exponentially smoothed loss (beta 0.98, bias-corrected).
    pub smoothed: Vec<f64>,
    /// Rate of the steepest descent of the smoothed loss (the suggestion).
    pub suggested_lr: Option<f64>,
    /// Rate of the lowest smoothed loss (a tenth of it is the other common choice).
    pub min_loss_lr: Option<f64>,
}

/// The `i`-th of `n` rates spaced geometrically from `start` to `end`.
pub fn sweep_lr(i: usize, n: usize, start: f64, end: f64) -> f64 {
    start * (end / start).powf(i as f64 / (n.max(2) - 1) as f64)
}

/// The rate where the smoothed loss decreases fastest per unit of log(lr), ignoring the noisy
/// first and last tenth of the sweep; None for fewer than 5 points.
pub fn suggest_lr(lrs: &[f64], smoothed: &[f64]) -> Option<f64> {
    let n = lrs.len().min(smoothed.len());
    if n < 5 {
        return None;
    }
    let (lo, hi) = (n / 10, n - n / 10 - 1);
    (lo.max(1)..=hi.min(n - 2))
        .map(|i| {
            let slope = (smoothed[i + 1] - smoothed[i - 1]) / (lrs[i + 1].ln() - lrs[i - 1].ln());
            (i, slope)
        })
        .filter(|(_, s)| s.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| lrs[i])
}

impl Trainer {
    /// Runs the range test for at most `steps` steps (cycling through epochs as needed). The
    /// weights are trained by the sweep: use a fresh trainer for the real run.
    pub fn lr_find(&mut self, start: f64, end: f64, steps: usize) -> Result<LrFind> {
        let mut rec = LrFind { lrs: vec![], losses: vec![], smoothed: vec![], suggested_lr: None, min_loss_lr: None };
        let (beta, mut avg, mut best) = (0.98, 0.0, f64::INFINITY);
        let mut epoch = 1u64;
        // At the full image size throughout: progressive resizing would change the input size
        // (and the loss level) at each epoch boundary of the sweep.
        let spec = LoaderSpec { train_sizes: Vec::new(), ..loader_spec(&self.cfg, &self.data, true) };
        // The loader expects the images on the compute device, as in `assemble`.
        let train = self.data.train.to_device(self.device);
        let loader = super::shard(Loader::new(&train, spec), &self.dist);
        'sweep: loop {
            for batch in loader.epoch(epoch) {
                let i = rec.lrs.len();
                if i == steps {
                    break 'sweep;
                }
                let lr = sweep_lr(i, steps, start, end);
                self.lr_override = Some(lr);
                let loss = match self.train_step(std::slice::from_ref(&batch)) {
                    Ok(step) => step.loss,
                    Err(Error::Diverged { .. }) => break 'sweep, // the loss exploded: the sweep is over
                    Err(e) => return Err(e),
                };
                avg = beta * avg + (1.0 - beta) * loss;
                let smooth = avg / (1.0 - beta.powi(i as i32 + 1));
                rec.lrs.push(lr);
                rec.losses.push(loss);
                rec.smoothed.push(smooth);
                best = best.min(smooth);
                if smooth > 4.0 * best && i > 10 {
                    break 'sweep;
                }
            }
            epoch += 1;
        }
        self.lr_override = None;
        rec.suggested_lr = suggest_lr(&rec.lrs, &rec.smoothed);
        let min_at = (0..rec.smoothed.len()).min_by(|&a, &b| rec.smoothed[a].total_cmp(&rec.smoothed[b]));
        rec.min_loss_lr = min_at.map(|i| rec.lrs[i]);
        Ok(rec)
    }
}

//! The inner loop: an epoch of optimizer steps, each over `train.accumulate_steps` micro-batches
//! whose gradients add up (effective batch = `data.batch_size` x `accumulate_steps`).

use std::time::Instant;

use std::sync::atomic::Ordering;
use tch::Device;

use super::Trainer;
use crate::data::loader::Batch;
use crate::device::Precision;
use crate::error::{Error, Result};
use crate::seed::{mix, DROPOUT_SALT};
use crate::train::callbacks::StepInfo;
use crate::train::checkpoint::EpochTotals;
use crate::train::replicas::Pass;
use crate::train::step;

/// What an optimizer step did.
#[derive(Debug, Clone, Copy)]
pub struct StepResult {
    /// Mean loss over the step's images.
    pub loss: f64,
    /// Correct top-1 predictions among them.
    pub correct: f64,
    /// Images trained (every rank's, in a multi-process run).
    pub images: i64,
    /// A multi-process run: whether some rank was asked to stop (every rank stops after this
    /// step).
    pub stop: bool,
}

/// Optimizer steps in an epoch of `batches` batches, `accumulate_steps` batches per step.
pub(super) fn per_epoch(batches: usize, accumulate_steps: i64) -> usize {
    batches / accumulate_steps.max(1) as usize
}

impl Trainer {
    /// Optimizer steps per epoch: the loader's batches grouped by `train.accumulate_steps` (an
    /// incomplete last group is dropped, like an incomplete batch).
    pub fn steps_per_epoch(&self) -> usize {
        per_epoch(self.train_loader.num_batches(), self.cfg.train.accumulate_steps)
    }

    /// Optimizer steps of the whole run (the schedules' and lookahead's horizon).
    pub(super) fn total_steps(&self) -> u64 {
        self.steps_per_epoch() as u64 * self.cfg.train.epochs as u64
    }

    fn accumulate(&self) -> usize {
        self.cfg.train.accumulate_steps.max(1) as usize
    }

    /// Trains the (rest of the) epoch; returns the whole epoch's totals (steps trained before an
    /// interruption included) and the seconds this call trained.
    pub(super) fn train_epoch(&mut self, epoch: i64) -> Result<(EpochTotals, f64)> {
        let (accum, per_epoch) = (self.accumulate(), self.steps_per_epoch());
        // Steps of this epoch already trained before an interruption (0 unless resuming mid-epoch).
        let done = (self.state.step - (epoch - 1) * per_epoch as i64).clamp(0, per_epoch as i64) as usize;
        let start = Instant::now();
        // Resumed mid-epoch: continue the sums of the steps trained before the interruption.
        let mut t = if done > 0 { self.state.partial } else { EpochTotals::default() };
        let (seen_before, secs_before) = (t.seen, t.secs);
        self.optim.freeze_trained_out(&self.model.net.trained_for_epochs(), epoch);
        let mut batches = self.train_loader.epoch_from(epoch as u64, done * accum);
        for _ in done..per_epoch {
            let group: Vec<Batch> = batches.by_ref().take(accum).collect();
            let StepResult { loss, correct, images: b, stop } = self.train_step(&group)?;
            crate::failpoint::hit_step(self.state.step);
            t.loss_sum += loss * b as f64;
            t.correct += correct;
            t.seen += b;
            let step = StepInfo {
                epoch,
                step: self.state.step,
                loss,
                acc: correct / b as f64,
                lr: self.lr_at(self.state.step as u64 - 1),
                img_per_s: (t.seen - seen_before) as f64 / start.elapsed().as_secs_f64().max(1e-9),
            };
            self.callbacks.iter_mut().for_each(|c| c.batch_end(&step));
            // Ranks stop at the step they agreed on; a request after it counts at the next step.
            let stop = if self.dist.is_some() { stop } else { self.stop.load(Ordering::Relaxed) };
            if stop {
                self.state.partial = EpochTotals { secs: secs_before + start.elapsed().as_secs_f64(), ..t };
                return Err(self.interrupt(start.elapsed().as_secs_f64()));
            }
        }
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64); // the last step's update belongs to this epoch's time
        }
        self.state.partial = EpochTotals::default();
        let secs_here = start.elapsed().as_secs_f64();
        Ok((EpochTotals { secs: secs_before + secs_here, ..t }, secs_here))
    }

    /// One optimizer step over a group of micro-batches: forward, loss, backward for each
    /// (gradients add up, each loss weighted 1 / group size), then clip and update once. Returns
    /// the step's result. The loss uses a batch's soft targets when it was mixed (LibTorch's
    /// cross-entropy takes class probabilities, label smoothing included).
    ///
    /// In a multi-process run each rank's batches are its slices of the global batches: a
    /// slice's loss is weighted by its share of the global batch, the gradients summed over the
    /// ranks ([`Dist::all_reduce_step`](crate::train::distributed::Dist::all_reduce_step)), and
    /// the result is the global batch's.
    pub fn train_step(&mut self, group: &[Batch]) -> Result<StepResult> {
        let n = group.len().max(1);
        let fp16 = self.precision == Precision::Fp16;
        let scale = if fp16 { self.state.loss_scaler.scale } else { 1.0 } / n as f64;
        let (rank, world) = self.rank();
        if let Some(d) = &self.dist {
            d.broadcast_buffers(&self.model.vs)?; // DDP's broadcast_buffers: rank 0's statistics
        }
        self.optim.zero_grad();
        let (mut loss_sum, mut weighted_sum, mut correct, mut images) = (0.0, 0.0, 0.0, 0);
        for (i, batch) in group.iter().enumerate() {
            let b = batch.labels.size()[0];
            // A slice's mean loss counts by its share of the global batch (drop_last: full).
            let share = if world > 1 { b as f64 / self.cfg.data.batch_size as f64 } else { 1.0 };
            let pass = Pass {
                compute: self.compute_kind(),
                smoothing: self.cfg.train.label_smoothing,
                scale: scale * share,
                checkpointing: self.cfg.train.grad_checkpointing,
            };
            // Dropout masks derive from (seed, micro-batch number, chunk of the global batch):
            // resuming needs no generator state.
            let micro = self.state.step as u64 * n as u64 + i as u64;
            let seeds = (mix(self.cfg.train.seed ^ DROPOUT_SALT, micro), rank * self.replicas.count());
            let (loss, c) = self.replicas.forward_backward(&mut self.model, batch, pass, seeds);
            if world == 1 && !loss.is_finite() {
                return Err(self.diverged(loss));
            }
            loss_sum += loss;
            weighted_sum += loss * b as f64;
            correct += c;
            images += b;
        }
        let mut stop = false;
        let mut mean_loss = loss_sum / n as f64;
        if let Some(d) = &self.dist {
            let mut stats =
                [weighted_sum, correct, images as f64, f64::from(u8::from(self.stop.load(Ordering::Relaxed)))];
            d.all_reduce_step(&self.model.vs, &mut stats)?;
            (correct, images, stop) = (stats[1], stats[2] as i64, stats[3] > 0.0);
            mean_loss = stats[0] / images.max(1) as f64;
            if !mean_loss.is_finite() {
                return Err(self.diverged(mean_loss)); // on every rank, at the same step
            }
        }
        let lr = self.lr_at(self.state.step as u64);
        let scaler = fp16.then_some(&mut self.state.loss_scaler);
        let clip = step::Clip { norm: self.cfg.train.grad_clip, value: self.cfg.train.grad_clip_value };
        step::update(&mut self.optim, clip, lr, scaler);
        if let Some(ema) = &mut self.ema {
            ema.update(&self.model.vs, self.state.step);
        }
        self.state.step += 1;
        let total = self.total_steps();
        if let Some(la) = &mut self.lookahead {
            la.after_step(&self.model.vs, self.state.step as u64, total);
        }
        Ok(StepResult { loss: mean_loss, correct, images, stop })
    }

    /// The error for a non-finite loss, with the remedies that fit the config.
    fn diverged(&self, loss: f64) -> Error {
        let remedies = if self.cfg.train.on_nan == crate::config::OnNan::Restore {
            "Set a lower optim.lr or train.grad_clip" // the restores did not help
        } else {
            "Set a lower optim.lr, train.grad_clip or train.on_nan = \"restore\""
        };
        Error::Diverged {
            what: format!(
                "loss became {loss} at step {} (epoch {}); no checkpoint was written for it",
                self.state.step + 1,
                self.state.epoch + 1
            ),
            advice: self.resume_advice(remedies),
        }
    }
}

//! The inner loop: an epoch of optimizer steps, each over `train.accumulate_steps` micro-batches
//! whose gradients add up (effective batch = `data.batch_size` x `accumulate_steps`).

use std::time::Instant;

use super::*;
use crate::train::checkpoint::EpochTotals;

impl Trainer {
    /// Optimizer steps per epoch: the loader's batches grouped by `train.accumulate_steps` (an
    /// incomplete last group is dropped, like an incomplete batch).
    pub fn steps_per_epoch(&self) -> usize {
        self.train_loader.num_batches() / self.accumulate()
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
            let (loss, n_correct) = self.train_step(&group)?;
            let b: i64 = group.iter().map(|g| g.labels.size()[0]).sum();
            t.loss_sum += loss * b as f64;
            t.correct += n_correct;
            t.seen += b;
            let step = StepInfo {
                epoch,
                step: self.state.step,
                loss,
                acc: n_correct / b as f64,
                lr: self.lr_at(self.state.step as u64 - 1),
                img_per_s: (t.seen - seen_before) as f64 / start.elapsed().as_secs_f64().max(1e-9),
            };
            self.callbacks.iter_mut().for_each(|c| c.batch_end(&step));
            if self.stop.load(Ordering::Relaxed) {
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
    /// (mean loss, correct count). The loss uses a batch's soft targets when it was mixed
    /// (LibTorch's cross-entropy takes class probabilities, label smoothing included).
    pub fn train_step(&mut self, group: &[Batch]) -> Result<(f64, f64)> {
        let n = group.len().max(1);
        let fp16 = self.precision == Precision::Fp16;
        let scale = if fp16 { self.state.loss_scaler.scale } else { 1.0 } / n as f64;
        self.optim.zero_grad();
        let (mut loss_sum, mut correct) = (0.0, 0.0);
        for (i, batch) in group.iter().enumerate() {
            // Dropout masks derive from (seed, micro-batch number): resuming needs no generator state.
            let micro = self.state.step as u64 * n as u64 + i as u64;
            crate::models::layers::seed_dropout(mix(self.cfg.train.seed ^ DROPOUT_SALT, micro));
            let (loss, c) = self.forward_backward(batch, scale)?;
            loss_sum += loss;
            correct += c;
        }
        let lr = self.lr_at(self.state.step as u64);
        let scaler = fp16.then_some(&mut self.state.loss_scaler);
        let clip = step::Clip { norm: self.cfg.train.grad_clip, value: self.cfg.train.grad_clip_value };
        step::update(&mut self.optim, clip, lr, scaler);
        if let Some(ema) = &mut self.ema {
            ema.update(&self.model.vs, self.state.step);
        }
        self.state.step += 1;
        let total = self.steps_per_epoch() as u64 * self.cfg.train.epochs as u64;
        if let Some(la) = &mut self.lookahead {
            la.after_step(&self.model.vs, self.state.step as u64, total);
        }
        Ok((loss_sum / n as f64, correct))
    }

    /// Forward and backward of one micro-batch, the loss scaled by `scale` for the backward pass
    /// (fp16 loss scale / group size). Returns (loss, correct count).
    fn forward_backward(&mut self, batch: &Batch, scale: f64) -> Result<(f64, f64)> {
        let (smoothing, compute) = (self.cfg.train.label_smoothing, self.compute_kind());
        let (images, labels) = (&batch.images, &batch.labels);
        let target = batch.targets.as_ref().unwrap_or(labels);
        let checkpointed = if self.cfg.train.grad_checkpointing {
            step::forward_backward_checkpointed(&self.model, images, target, compute, smoothing, scale)
        } else {
            None
        };
        let (loss, logits) = match &checkpointed {
            Some((loss, logits)) => (loss.shallow_clone(), logits.shallow_clone()),
            None => step::forward_loss(&self.model, images, target, compute, smoothing),
        };
        let loss_value = loss.double_value(&[]);
        if !loss_value.is_finite() {
            let remedies = if self.cfg.train.on_nan == "restore" {
                "Set a lower optim.lr or train.grad_clip" // the restores did not help
            } else {
                "Set a lower optim.lr, train.grad_clip or train.on_nan = \"restore\""
            };
            return Err(Error::Diverged {
                what: format!(
                    "loss became {loss_value} at step {} (epoch {}); no checkpoint was written for it",
                    self.state.step + 1,
                    self.state.epoch + 1
                ),
                advice: self.resume_advice(remedies),
            });
        }
        if checkpointed.is_none() {
            if scale == 1.0 {
                loss.backward();
            } else {
                (&loss * scale).backward();
            }
        }
        let correct = tch::no_grad(|| logits.argmax(1, false).eq_tensor(labels).sum(Kind::Float).double_value(&[]));
        Ok((loss_value, correct))
    }
}

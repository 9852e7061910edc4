//! The two halves of a training step, shared by the trainer and the throughput benchmark, and the
//! dynamic loss scaler that fp16 training needs.

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use super::optim::Optimizer;
use crate::models::context::{self, autocast};
use crate::models::Model;

/// Forward pass in training mode (conv/linear in `compute`, None = fp32) and the mean
/// cross-entropy with label smoothing. `labels` are class indices, int64 `(B,)`, or class
/// probabilities, float `(B, classes)` (Mixup/CutMix targets; LibTorch's cross-entropy takes
/// either). Returns `(loss, logits)`, both fp32.
pub fn forward_loss(
    model: &Model,
    images: &Tensor,
    labels: &Tensor,
    compute: Option<Kind>,
    smoothing: f64,
) -> (Tensor, Tensor) {
    let logits = autocast(compute, || model.forward(images, true)).to_kind(Kind::Float);
    let loss = logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, smoothing);
    (loss, logits)
}

/// Gradient clipping: element-wise to `[-value, value]`, then the global norm to `norm` (0 = off).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Clip {
    /// Maximum global gradient norm (0 = off).
    pub norm: f64,
    /// Maximum absolute gradient element (0 = off).
    pub value: f64,
}

/// Backward pass, optional gradient clipping and one optimizer update.
/// With a loss scaler (fp16), the loss is scaled before backward and the gradients unscaled
/// after; a step whose gradients overflowed is skipped. Returns whether the update was applied.
pub fn backward_update(
    optim: &mut Optimizer,
    loss: &Tensor,
    clip: Clip,
    lr: f64,
    scaler: Option<&mut LossScaler>,
) -> bool {
    optim.zero_grad();
    match &scaler {
        Some(s) => (loss * s.scale).backward(),
        None => loss.backward(),
    }
    update(optim, clip, lr, scaler)
}

/// The update half alone, for gradients already in `.grad()` (computed with the loss scaled by
/// `scaler.scale` when there is a scaler): unscale, clip, step. Returns whether it was applied.
pub fn update(optim: &mut Optimizer, clip: Clip, lr: f64, scaler: Option<&mut LossScaler>) -> bool {
    if let Some(s) = scaler {
        if !s.unscale(optim) {
            return false;
        }
    }
    if clip.value > 0.0 {
        optim.clip_grad_value(clip.value);
    }
    if clip.norm > 0.0 {
        optim.clip_grad_norm(clip.norm);
    }
    optim.step(lr);
    true
}

/// Forward and backward with gradient checkpointing: a first pass without autograd keeps only
/// each segment's input; the backward pass then recomputes one segment at a time (with the same
/// dropout masks, and BatchNorm statistics not updated twice) and backpropagates through it, so
/// only one segment's activations live at a time. Gradients accumulate into the parameters as
/// with `loss.backward()` (the loss scaled by `loss_scale`). Returns `None` for models without
/// segments, else `(loss, logits)`.
pub fn forward_backward_checkpointed(
    model: &Model,
    images: &Tensor,
    labels: &Tensor,
    compute: Option<Kind>,
    smoothing: f64,
    loss_scale: f64,
) -> Option<(Tensor, Tensor)> {
    let segments = model.net.segments()?;
    let mut inputs = Vec::with_capacity(segments.len());
    let mut x = images.shallow_clone();
    tch::no_grad(|| {
        for s in &segments {
            inputs.push((x.shallow_clone(), context::dropout_rng_state()));
            x = autocast(compute, || s.forward_t(&x, true));
        }
    });
    let after_forward = context::dropout_rng_state();
    let (mut result, mut grad) = (None, None::<Tensor>);
    for (i, s) in segments.iter().enumerate().rev() {
        let (x, rng) = &inputs[i];
        let x = x.detach().set_requires_grad(i > 0);
        context::set_dropout_rng_state(rng.clone());
        let y = context::recomputing(|| autocast(compute, || s.forward_t(&x, true)));
        match grad.take() {
            None => {
                let logits = y.to_kind(Kind::Float);
                let loss = logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, smoothing);
                (&loss * loss_scale).backward();
                result = Some((loss.detach(), logits.detach()));
            }
            // d(sum(y * g))/dy = g: backpropagates the output gradient through this segment.
            Some(g) => (y * g).sum(Kind::Float).backward(),
        }
        if i > 0 {
            grad = Some(x.grad());
        }
    }
    context::set_dropout_rng_state(after_forward);
    result
}

/// Dynamic loss scaling for fp16 (as `torch.amp.GradScaler`): gradients of `loss * scale` stay
/// above fp16's underflow; on overflow the step is skipped and the scale halved, and after
/// `GROWTH_INTERVAL` clean steps it doubles. Powers of two keep the unscaling itself exact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// Current scale.
    pub scale: f64,
    /// Clean steps since the last change.
    pub good_steps: u32,
}

/// Clean steps before the scale doubles (PyTorch's default).
pub const GROWTH_INTERVAL: u32 = 2000;

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler { scale: 65536.0, good_steps: 0 }
    }
}

impl LossScaler {
    /// Divides the gradients by the scale; returns false (and adapts the scale) on inf/NaN.
    pub fn unscale(&mut self, optim: &mut Optimizer) -> bool {
        let _guard = tch::no_grad_guard();
        let mut finite = true;
        for p in &optim.params {
            let mut g = p.tensor.grad();
            if g.defined() {
                let _ = g.g_mul_scalar_(1.0 / self.scale);
                finite &= bool::try_from(g.isfinite().all()).unwrap_or(false);
            }
        }
        if finite {
            self.good_steps += 1;
            if self.good_steps >= GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
            optim.zero_grad();
        }
        finite
    }
}

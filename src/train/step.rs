//! The two halves of a training step, shared by the trainer and the throughput benchmark.

use tch::{Kind, Reduction, Tensor};

use super::optim::Optimizer;
use crate::models::layers::autocast;
use crate::models::Model;

/// Forward pass in training mode (conv/linear in `compute`, None = fp32) and the mean
/// cross-entropy with label smoothing. Returns `(loss, logits)`, both fp32.
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

/// Backward pass, optional gradient-norm clipping (`grad_clip > 0`) and one optimizer update.
pub fn backward_update(optim: &mut Optimizer, loss: &Tensor, grad_clip: f64, lr: f64) {
    optim.zero_grad();
    loss.backward();
    if grad_clip > 0.0 {
        optim.clip_grad_norm(grad_clip);
    }
    optim.step(lr);
}

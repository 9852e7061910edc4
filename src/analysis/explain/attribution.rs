//! Running a model for its explanations: the activations and gradients at a tap point, the
//! input gradients (saliency, SmoothGrad), Score-CAM's masked passes, the attention weights and
//! the penultimate features. Always in fp32 and evaluation mode, whatever the run trained in.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64;
use tch::{Kind, Tensor};

use super::cam;
use crate::config_err;
use crate::error::Result;
use crate::models::context::{catch, catch_kind, tap_points, TapKind, TapPoint};
use crate::models::Model;

/// The tap points of one forward pass of a `(1, channels, size, size)` input.
pub fn layers(model: &Model, channels: i64, size: i64) -> Vec<TapPoint> {
    let x = Tensor::zeros([1, channels, size, size], (Kind::Float, model.vs.device()));
    tap_points(|| {
        let _ = tch::no_grad(|| model.forward(&x, false));
    })
}

/// The layers class activation maps can use: block and layer outputs with a spatial grid.
pub fn cam_layers(points: &[TapPoint]) -> Vec<&TapPoint> {
    points
        .iter()
        .filter(|p| matches!(p.kind, TapKind::Block | TapKind::Layer))
        .filter(|p| p.shape.len() == 4 || p.shape.len() == 3)
        .collect()
}

/// The model's default CAM layer: its own choice, else its last block.
pub fn default_cam_layer(model: &Model, points: &[TapPoint]) -> Result<String> {
    if let Some(name) = model.net.cam_layer() {
        return Ok(name);
    }
    let last = points.iter().rfind(|p| p.kind == TapKind::Block && p.shape.len() == 4);
    last.map(|p| p.name.clone()).ok_or_else(|| config_err!("model {}: no convolutional block to explain", model.name))
}

/// Checks that `layer` is one of the CAM layers; otherwise an error listing them.
pub fn check_layer(model: &Model, points: &[TapPoint], layer: &str) -> Result<()> {
    let valid = cam_layers(points);
    if valid.iter().any(|p| p.name == layer) {
        return Ok(());
    }
    let names: Vec<&str> = valid.iter().map(|p| p.name.as_str()).collect();
    Err(config_err!("--layer {layer:?}: not a layer of {}; valid layers: {}", model.name, names.join(", ")))
}

/// Logits `(B, classes)`, the `layer`'s activations as maps `(B, K, h, w)` and the gradients of
/// the scores of `classes` (`(B,)`, int64) with respect to them.
pub fn activations_and_grads(model: &Model, layer: &str, x: &Tensor, classes: &Tensor) -> Result<[Tensor; 3]> {
    let (logits, caught) = catch(&[layer.to_string()], || model.forward(x, false));
    let act = caught.into_iter().next().flatten().ok_or_else(|| config_err!("layer {layer:?} was not reached"))?;
    if !act.requires_grad() {
        return Err(config_err!("layer {layer:?}: its output does not depend on trained weights"));
    }
    let score = logits.gather(1, &classes.view([-1, 1]), false).sum(Kind::Float);
    let grads = Tensor::run_backward(&[score], &[&act], false, false);
    Ok([logits.detach(), cam::to_grid(&act.detach())?, cam::to_grid(&grads[0])?])
}

/// The gradients of the scores of `classes` with respect to the input `x` `(B, C, H, W)`.
pub fn input_grads(model: &Model, x: &Tensor, classes: &Tensor) -> Tensor {
    let x = x.detach().set_requires_grad(true);
    let logits = model.forward(&x, false);
    let score = logits.gather(1, &classes.view([-1, 1]), false).sum(Kind::Float);
    Tensor::run_backward(&[score], &[&x], false, false).remove(0)
}

/// Saliency (Simonyan et al. 2014): `|d score / d x|`, `(B, C, H, W)` (captum's `Saliency`).
pub fn saliency(model: &Model, x: &Tensor, classes: &Tensor) -> Tensor {
    input_grads(model, x, classes).abs()
}

/// SmoothGrad (Smilkov et al. 2017): the mean saliency of `samples` copies of each image with
/// Gaussian noise of standard deviation `noise` x (the image's max - min), drawn from `seed`.
pub fn smooth_grad(model: &Model, x: &Tensor, classes: &Tensor, samples: usize, noise: f64, seed: u64) -> Tensor {
    let flat = x.flatten(1, -1);
    let range = flat.amax([1i64].as_slice(), false) - flat.amin([1i64].as_slice(), false);
    let sigma = (range * noise).view([-1, 1, 1, 1]);
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut total = x.zeros_like();
    for _ in 0..samples.max(1) {
        let draws: Vec<f32> = (0..x.numel()).map(|_| StandardNormal.sample(&mut rng)).collect();
        let eps = Tensor::from_slice(&draws).view(x.size().as_slice()).to_device(x.device());
        total += saliency(model, &(x + eps * &sigma), classes);
    }
    total / samples.max(1) as f64
}

/// Score-CAM (Wang et al. 2020) maps `(B, h, w)`: each channel of the layer, as a mask on the
/// input, scored by the class logit of the masked image; `batch` masked images per pass.
pub fn score_cam(model: &Model, layer: &str, x: &Tensor, classes: &Tensor, batch: i64) -> Result<Tensor> {
    tch::no_grad(|| {
        let (_, caught) = catch(&[layer.to_string()], || model.forward(x, false));
        let act = caught.into_iter().next().flatten().ok_or_else(|| config_err!("layer {layer:?} was not reached"))?;
        let acts = cam::to_grid(&act)?; // (B, K, h, w)
        let (h, w) = (x.size()[2], x.size()[3]);
        let masks = cam::score_cam_masks(&acts, [h, w]); // (B, K, H, W)
        let k = acts.size()[1];
        let mut rows = Vec::new();
        for b in 0..x.size()[0] {
            let class = classes.int64_value(&[b]);
            let masked = x.get(b).unsqueeze(0) * masks.get(b).unsqueeze(1); // (K, C, H, W)
            let scores: Vec<Tensor> = (0..k)
                .step_by(batch.max(1) as usize)
                .map(|i| model.forward(&masked.narrow(0, i, batch.min(k - i)), false).select(1, class))
                .collect();
            rows.push(Tensor::cat(&scores, 0));
        }
        let weights = cam::score_cam_weights(&Tensor::stack(&rows, 0));
        Ok(cam::weighted_sum(&acts, &weights))
    })
}

/// The attention probabilities of every transformer block, in order (`(B, heads, N, N)` each);
/// empty for a model without attention.
pub fn attention(model: &Model, x: &Tensor) -> Vec<Tensor> {
    tch::no_grad(|| catch_kind(TapKind::Attention, || model.forward(x, false))).1
}

/// The penultimate features `(B, D)` (the input of the last linear layer) and the logits.
pub fn features(model: &Model, x: &Tensor, head: &str) -> Result<(Tensor, Tensor)> {
    let (logits, caught) = tch::no_grad(|| catch(&[head.to_string()], || model.forward(x, false)));
    let f = caught.into_iter().next().flatten().ok_or_else(|| config_err!("layer {head:?} was not reached"))?;
    Ok((f.flatten(1, -1).to_kind(Kind::Float), logits))
}

/// The name of the last linear layer, whose input is the embedding.
pub fn head_layer(points: &[TapPoint]) -> Option<String> {
    points.iter().rfind(|p| p.kind == TapKind::LinearInput).map(|p| p.name.clone())
}

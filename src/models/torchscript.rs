//! TorchScript export: a model's evaluation-mode forward pass traced into a module that PyTorch
//! runs with `torch.jit.load`, no model code needed. The weights become constants of the trace
//! (fp32, CPU: `.to()` does not move them, and the module has no parameters to fine-tune); the
//! batch size stays free, the image size is the traced one.

use std::path::Path;

use tch::{CModule, Kind, Tensor};

use crate::error::{Error, Result};
use crate::fsio;
use crate::models::{Model, ModelArgs};

/// Traces `model`'s evaluation-mode forward pass and saves it atomically to `path`, after checking
/// that the saved module gives the model's logits at another batch size than the one traced (a
/// shape baked into the trace would fail that check instead of a user's inference). The model is
/// left as it was.
pub fn save(model: &Model, args: &ModelArgs, path: &Path) -> Result<()> {
    if model.vs.device() != tch::Device::Cpu {
        // The weights become constants on the device they are on, which `.to()` cannot move.
        return Err(Error::Runtime(format!(
            "TorchScript export traces on the CPU: {} is on {:?}",
            model.name,
            model.vs.device()
        )));
    }
    let _no_grad = tch::no_grad_guard();
    // The trace stores the weights as constants, which must not require gradients.
    let trainable: Vec<Tensor> = model.vs.variables().into_values().filter(Tensor::requires_grad).collect();
    for t in &trainable {
        let _ = t.set_requires_grad(false);
    }
    // fp32 whatever the caller's autocast: the file runs on any CPU.
    let saved = super::context::autocast(None, || trace_and_save(model, args, path));
    for t in &trainable {
        let _ = t.set_requires_grad(true);
    }
    saved
}

/// [`save`] once the weights are constants.
fn trace_and_save(model: &Model, args: &ModelArgs, path: &Path) -> Result<()> {
    let mut forward = |xs: &[Tensor]| vec![model.forward(&xs[0], false)];
    let module = CModule::create_by_tracing(&model.name, "forward", &[example(model, args, 2)], &mut forward)?;
    let tmp = fsio::tmp_path(path);
    // LibTorch's own error for an unwritable place is a C++ backtrace: find out first.
    std::fs::File::create(&tmp).map_err(|e| Error::io("cannot create", path, e))?;
    let saved =
        module.save(&tmp).map_err(Error::from).and_then(|()| check_traced(model, &tmp, &example(model, args, 3)));
    if let Err(e) = saved {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("cannot rename to", path, e)
    })
}

/// A batch of `n` inputs in roughly the range of normalised images, without drawing from
/// LibTorch's generator (an export in the middle of a training leaves its random stream alone).
fn example(model: &Model, args: &ModelArgs, n: i64) -> Tensor {
    let shape = [n, args.in_channels, args.input_size, args.input_size];
    let numel = shape.iter().product::<i64>();
    (Tensor::arange(numel, (Kind::Float, model.vs.device())) * 0.731).sin().view(shape) * 1.5
}

/// Loads the saved module back and compares its logits with the model's on `x`.
fn check_traced(model: &Model, saved: &Path, x: &Tensor) -> Result<()> {
    let want = model.forward(x, false);
    let got = CModule::load(saved)?.forward_ts(&[x])?;
    let gap = if got.size() == want.size() { (&got - &want).abs().max().double_value(&[]) } else { f64::INFINITY };
    if gap > 1e-4 * (1.0 + want.abs().max().double_value(&[])) {
        return Err(Error::Runtime(format!(
            "the TorchScript trace of {} does not reproduce the model (largest logit difference {gap:.3e} at batch {}); \
             export it as safetensors instead",
            model.name,
            x.size()[0]
        )));
    }
    Ok(())
}

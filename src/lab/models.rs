//! The model registry as data: each model's size and cost, optionally its measured training
//! memory, and one model's layers.

use crate::error::Result;
use crate::models::context::LayerRecord;
use crate::models::{mflops, Model, ModelArgs, MODELS};

/// One registered model, for CIFAR-10's 3x32x32 input and 10 classes.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Registry name.
    pub name: &'static str,
    /// Trainable parameters.
    pub params: i64,
    /// MFLOPs of one forward pass of one image.
    pub mflops_per_image: f64,
    /// Measured memory of one fp32 training step at batch 128 (without, with gradient
    /// checkpointing; the latter only for segmented models), when asked for.
    pub step_bytes: Option<(u64, Option<u64>)>,
    /// One line about it (its source).
    pub about: &'static str,
}

/// Every registered model; with `memory`, the step memory measured (a minute or more).
pub fn models(memory: bool) -> Result<Vec<ModelInfo>> {
    MODELS.iter().map(|entry| models_named(entry.name, memory)).collect()
}

/// The registered model `name`; with `memory`, its step memory measured.
pub fn models_named(name: &str, memory: bool) -> Result<ModelInfo> {
    use crate::bench::memory::step_bytes_at_128;
    let entry = crate::models::lookup(name)?;
    let args = ModelArgs::default();
    let model = Model::new(entry.name, &args, tch::Device::Cpu)?;
    let step_bytes = if memory {
        let plain = step_bytes_at_128(entry.name, &args, false)?;
        let ckpt = match model.net.segments() {
            Some(_) => Some(step_bytes_at_128(entry.name, &args, true)?),
            None => None,
        };
        Some((plain, ckpt))
    } else {
        None
    };
    Ok(ModelInfo {
        name: entry.name,
        params: model.num_params(),
        mflops_per_image: model.mflops_per_image(&args),
        step_bytes,
        about: entry.about,
    })
}

/// One model's layers (type, output shape, parameters, MACs) on CIFAR-10's input, with its
/// total parameters and MFLOPs per image.
pub fn model_summary(name: &str) -> Result<(Vec<LayerRecord>, i64, f64)> {
    let args = ModelArgs::default();
    let model = Model::new(name, &args, tch::Device::Cpu)?;
    Ok((model.summary(&args), model.num_params(), model.mflops_per_image(&args)))
}

/// MFLOPs of a layer record's multiply-accumulates.
pub fn layer_mflops(layer: &LayerRecord) -> f64 {
    mflops(layer.macs)
}

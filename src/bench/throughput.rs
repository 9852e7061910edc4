//! Training and inference throughput of a model (images/s) on synthetic batches already on the
//! device, so only the model step is timed: the same work as `bench/throughput.py` does in
//! PyTorch eager.

use std::time::Instant;
use tch::{Device, Kind, Tensor};

use crate::config::OptimConfig;
use crate::data::transforms::channels_last;
use crate::device::Precision;
use crate::error::Result;
use crate::models::layers::autocast;
use crate::models::{Model, ModelArgs};
use crate::train::optim::Optimizer;
use crate::train::step::{backward_update, forward_backward_checkpointed, forward_loss, update};

/// What to measure.
#[derive(Debug, Clone)]
pub struct ThroughputSpec {
    /// Registry name.
    pub model: String,
    /// Model arguments (classes, input channels and size).
    pub args: ModelArgs,
    /// Batch size.
    pub batch: i64,
    /// Matmul precision.
    pub precision: Precision,
    /// Device.
    pub device: Device,
    /// Untimed steps before timing.
    pub warmup: usize,
    /// Steps per timed repeat.
    pub steps: usize,
    /// Timed repeats (the median is reported).
    pub repeats: usize,
    /// Train with gradient checkpointing.
    pub checkpointing: bool,
}

/// Measured images/s: every repeat, and the medians.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Throughput {
    /// Training images/s per repeat.
    pub train: Vec<f64>,
    /// Inference images/s per repeat.
    pub infer: Vec<f64>,
    /// Median training images/s.
    pub train_median: f64,
    /// Median inference images/s.
    pub infer_median: f64,
}

/// Times training steps (forward, loss, backward, SGD update) and inference forwards.
pub fn measure(spec: &ThroughputSpec) -> Result<Throughput> {
    let args = &spec.args;
    let mut model = Model::new_seeded(&spec.model, args, spec.device, 0)?;
    model.to_channels_last();
    let mut optim = Optimizer::new(&model.vs, &OptimConfig::default());
    let shape = [spec.batch, args.in_channels, args.input_size, args.input_size];
    let x = channels_last(&Tensor::randn(shape, (Kind::Float, spec.device)));
    let y = Tensor::randint(args.num_classes, [spec.batch], (Kind::Int64, spec.device));
    let compute = (spec.precision != Precision::Fp32).then(|| spec.precision.compute_kind());
    if spec.checkpointing && model.net.segments().is_none() {
        return Err(crate::config_err!("model {} does not support gradient checkpointing", spec.model));
    }
    let train_step = |optim: &mut Optimizer| {
        let loss = if spec.checkpointing {
            optim.zero_grad();
            let (loss, _) = forward_backward_checkpointed(&model, &x, &y, compute, 0.0, 1.0).expect("segmented model");
            update(optim, Default::default(), 0.01, None);
            loss
        } else {
            let (loss, _) = forward_loss(&model, &x, &y, compute, 0.0);
            backward_update(optim, &loss, Default::default(), 0.01, None);
            loss
        };
        let _ = loss.double_value(&[]); // synchronise (CUDA) like a real loop reading the loss
    };
    let infer_step = || {
        tch::no_grad(|| {
            let out = autocast(compute, || model.forward(&x, false));
            let _ = out.double_value(&[0, 0]);
        })
    };
    for _ in 0..spec.warmup {
        train_step(&mut optim);
        infer_step();
    }
    let images = (spec.batch as usize * spec.steps) as f64;
    let (mut train, mut infer) = (Vec::new(), Vec::new());
    for _ in 0..spec.repeats {
        let t = Instant::now();
        (0..spec.steps).for_each(|_| train_step(&mut optim));
        train.push(images / t.elapsed().as_secs_f64());
        let t = Instant::now();
        (0..spec.steps).for_each(|_| infer_step());
        infer.push(images / t.elapsed().as_secs_f64());
    }
    Ok(Throughput { train_median: median(&train), infer_median: median(&infer), train, infer })
}

/// Median of a sample (upper median for even sizes).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

/// The 1-minute load average (how busy the machine was), from /proc/loadavg.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

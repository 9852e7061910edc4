//! Training and inference throughput of a model (images/s) on synthetic batches already on the
//! device, so only the model step is timed: the same work as `pytorch/throughput.py` does in
//! PyTorch eager.

use std::time::Instant;
use tch::{Device, Kind, Tensor};

use crate::config::OptimConfig;
use crate::data::loader::Batch;
use crate::data::transforms::channels_last;
use crate::device::Precision;
use crate::error::Result;
use crate::metrics::median;
use crate::models::context::autocast;
use crate::models::{Model, ModelArgs};
use crate::train::optim::Optimizer;
use crate::train::replicas::{Pass, Replicas};
use crate::train::step::update;

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
    /// Data-parallel replicas on CPU (`train.replicas`; 1 = off).
    pub replicas: usize,
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
    /// Data-parallel replicas that trained: as asked on a CPU, 1 on CUDA.
    pub replicas: usize,
}

/// Times training steps (forward, loss, backward, SGD update) and inference forwards.
pub fn measure(spec: &ThroughputSpec) -> Result<Throughput> {
    let args = &spec.args;
    let mut model = Model::new_seeded(&spec.model, args, spec.device, 0)?;
    model.to_channels_last();
    let mut optim = Optimizer::new(&model.vs, &OptimConfig::default(), spec.precision);
    let shape = [spec.batch, args.in_channels, args.input_size, args.input_size];
    let x = channels_last(&Tensor::randn(shape, (Kind::Float, spec.device)));
    let y = Tensor::randint(args.num_classes, [spec.batch], (Kind::Int64, spec.device));
    let compute = spec.precision.autocast_kind();
    if spec.checkpointing && model.net.segments().is_none() {
        return Err(crate::config_err!("model {} does not support gradient checkpointing", spec.model));
    }
    if spec.replicas as i64 > spec.batch {
        return Err(crate::config_err!(
            "{} replicas for a batch of {}: each replica trains a chunk of the batch; expected at most {} replicas",
            spec.replicas,
            spec.batch,
            spec.batch
        ));
    }
    let mut replicas = Replicas::new(&model, args, spec.replicas, true)?;
    let batch = Batch { images: x.shallow_clone(), labels: y, targets: None };
    let pass = Pass { compute, smoothing: 0.0, scale: 1.0, checkpointing: spec.checkpointing };
    let mut train_step = |model: &mut Model, optim: &mut Optimizer| {
        optim.zero_grad();
        // Reads the loss, which synchronises (CUDA) like a real loop.
        replicas.forward_backward(model, &batch, pass, (0, 0));
        update(optim, Default::default(), 0.01, None);
    };
    let infer_step = |model: &Model| {
        tch::no_grad(|| {
            let out = autocast(compute, || model.forward(&x, false));
            let _ = out.double_value(&[0, 0]);
        })
    };
    for _ in 0..spec.warmup {
        train_step(&mut model, &mut optim);
        infer_step(&model);
    }
    let images = (spec.batch as usize * spec.steps) as f64;
    let (mut train, mut infer) = (Vec::new(), Vec::new());
    for _ in 0..spec.repeats {
        let t = Instant::now();
        (0..spec.steps).for_each(|_| train_step(&mut model, &mut optim));
        train.push(images / t.elapsed().as_secs_f64());
        let t = Instant::now();
        (0..spec.steps).for_each(|_| infer_step(&model));
        infer.push(images / t.elapsed().as_secs_f64());
    }
    Ok(Throughput {
        train_median: median(&train).unwrap_or(0.0),
        infer_median: median(&infer).unwrap_or(0.0),
        train,
        infer,
        replicas: replicas.count(),
    })
}

/// The 1-minute load average (how busy the machine was), from /proc/loadavg.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

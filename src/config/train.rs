//! `[train]`: the training loop, its precision and recovery, evaluation and early stopping.

use serde::{Deserialize, Serialize};

/// `[train]`: the loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Number of passes over the training set.
    pub epochs: i64,
    /// Seed for LibTorch, shuffling, augmentation and initialisation.
    pub seed: u64,
    /// "auto" (CUDA when visible), "cpu" or "cuda".
    pub device: String,
    /// "auto", "fp32", "bf16" or "fp16" (fp16 on CUDA only).
    pub precision: String,
    /// Use channels_last memory format for activations.
    pub channels_last: bool,
    /// Intra-op threads on CPU (0 = all cores).
    pub threads: i64,
    /// Data-parallel model replicas on CPU: each batch is split into this many chunks, each
    /// trained on its own thread with `threads / replicas` intra-op threads, gradients summed
    /// (BatchNorm normalises each chunk by its own statistics). 1 = off; ignored on CUDA.
    pub replicas: i64,
    /// Label smoothing for the cross-entropy loss, in [0, 1).
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this value (0 = off).
    pub grad_clip: f64,
    /// Micro-batches whose gradients add up before each optimizer step: the effective batch is
    /// `data.batch_size` x `accumulate_steps` (1 = plain steps).
    pub accumulate_steps: i64,
    /// Clip every gradient element to [-v, v] (0 = off); applied before norm clipping.
    pub grad_clip_value: f64,
    /// Test-time augmentation in every evaluation: 0 = none, 1 = + mirror, 2 = + mirror and
    /// 1-pixel translations (airbench's levels).
    pub tta: i64,
    /// Cheaper TTA: an image whose plain (un-augmented) top-1 softmax probability is at least
    /// this keeps its plain logits; only the others get the extra views (0 = every image).
    pub tta_cutoff: f64,
    /// Keep an exponential moving average of the weights with this decay and evaluate it
    /// (0 = off; 0.999 is typical for 10k+ steps).
    pub ema_decay: f64,
    /// Stop when the watched validation metric has not improved for this many epochs (0 = off).
    pub early_stop_patience: i64,
    /// The metric early stopping watches: "val_acc" (higher is better) or "val_loss".
    pub early_stop_metric: String,
    /// Smallest change that counts as an improvement.
    pub early_stop_min_delta: f64,
    /// Gradient checkpointing: keep only block inputs in the forward pass and recompute block
    /// activations during backward (less memory, about one more forward of time).
    pub grad_checkpointing: bool,
    /// Apply `tta` to the per-epoch validation too (false: only to the final test evaluation,
    /// which is cheaper when validation runs every epoch).
    pub val_tta: bool,
    /// Lookahead (airbench): every `lookahead_every` steps (0 = off) an average of the weights
    /// takes in the current ones with weight `1 - decay` and the weights are reset to it; decay =
    /// `0.95^every * (step / total)^3`, and the final weights are the average.
    pub lookahead_every: i64,
    /// Write a step line to metrics.jsonl every this many steps (0 = never).
    pub log_every: i64,
    /// Show progress bars on the console.
    pub progress: bool,
    /// On a NaN/Inf loss: "stop" (exit with the step named) or "restore" (reload the newest
    /// checkpoint and lower the learning rate; at most 3 times).
    pub on_nan: String,
    /// Factor applied to the learning rate at each divergence restore, in (0, 1].
    pub nan_lr_factor: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            seed: 0,
            device: "auto".into(),
            precision: "auto".into(),
            channels_last: true,
            threads: 0,
            replicas: 1,
            label_smoothing: 0.0,
            grad_clip: 0.0,
            accumulate_steps: 1,
            grad_clip_value: 0.0,
            tta: 0,
            tta_cutoff: 0.0,
            ema_decay: 0.0,
            early_stop_patience: 0,
            early_stop_metric: "val_acc".into(),
            early_stop_min_delta: 0.0,
            grad_checkpointing: false,
            val_tta: true,
            lookahead_every: 0,
            log_every: 50,
            progress: true,
            on_nan: "stop".into(),
            nan_lr_factor: 0.5,
        }
    }
}

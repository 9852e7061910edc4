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
    pub device: super::DeviceChoice,
    /// "auto", "fp32", "bf16" or "fp16" (fp16 on CUDA only).
    pub precision: super::PrecisionChoice,
    /// Use channels_last memory format for activations.
    pub channels_last: bool,
    /// Intra-op threads on CPU (0 = all cores).
    pub threads: i64,
    /// Data-parallel model replicas on CPU: each batch is split into this many chunks, each
    /// trained on its own thread with `threads / replicas` intra-op threads, gradients summed
    /// (BatchNorm normalises each chunk by its own statistics). 1 = off; ignored on CUDA.
    pub replicas: i64,
    /// Multi-process training (`torchrun`, `WORLD_SIZE` > 1): seconds a rank waits for the
    /// others at the start and in every collective before it gives up (torch.distributed's
    /// default for Gloo: 1800).
    pub dist_timeout_secs: i64,
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
    pub early_stop_metric: super::EarlyStopMetric,
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
    pub on_nan: super::OnNan,
    /// Factor applied to the learning rate at each divergence restore, in (0, 1].
    pub nan_lr_factor: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            seed: 0,
            device: super::DeviceChoice::Auto,
            precision: super::PrecisionChoice::Auto,
            channels_last: true,
            threads: 0,
            replicas: 1,
            dist_timeout_secs: 1800,
            label_smoothing: 0.0,
            grad_clip: 0.0,
            accumulate_steps: 1,
            grad_clip_value: 0.0,
            tta: 0,
            tta_cutoff: 0.0,
            ema_decay: 0.0,
            early_stop_patience: 0,
            early_stop_metric: super::EarlyStopMetric::ValAcc,
            early_stop_min_delta: 0.0,
            grad_checkpointing: false,
            val_tta: true,
            lookahead_every: 0,
            log_every: 50,
            progress: true,
            on_nan: super::OnNan::Stop,
            nan_lr_factor: 0.5,
        }
    }
}

/// Test-time augmentation: which views (`train::eval::tta_logits`'s `level`) and for which images.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tta {
    /// 0 = none, 1 = + mirror, 2 = + mirror and 1-pixel translations.
    pub level: i64,
    /// Images whose plain top-1 softmax probability is at least this keep their plain logits;
    /// 0 = every image gets the views.
    pub cutoff: f64,
}

impl Tta {
    /// The final-test settings of a config (`train.tta`, `train.tta_cutoff`).
    pub fn from_config(t: &TrainConfig) -> Self {
        Tta { level: t.tta, cutoff: t.tta_cutoff }
    }

    /// No test-time augmentation.
    pub fn none() -> Self {
        Tta::default()
    }

    /// What distinguishes files of evaluations with these settings: `""` without TTA,
    /// `"-tta2"`, or `"-tta2-cutoff0.7"` when only the unsure images get the views. Keeps an
    /// `eval` with other TTA settings from overwriting an earlier one.
    pub fn file_suffix(&self) -> String {
        match (self.level, self.cutoff) {
            (0, _) => String::new(),
            (level, c) if c > 0.0 => format!("-tta{level}-cutoff{c}"),
            (level, _) => format!("-tta{level}"),
        }
    }
}

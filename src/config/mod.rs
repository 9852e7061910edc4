//! The typed experiment config: one TOML file (see `configs/`) with sections for data,
//! augmentation, model, optimizer, schedule, training, output and tracking, plus `--set
//! section.key=value` overrides.
//!
//! Loading goes TOML text -> `toml::Value` -> unknown-key check (with did-you-mean) -> serde ->
//! range/consistency validation, so every error names the file, the key, the bad value and what
//! was expected.

mod load;
mod optim;
mod validate;

pub use validate::{DEVICES, PRECISIONS};

pub use load::apply_override;
pub use optim::OptimConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::error::Result;

/// The whole experiment description. `Config::default()` is a valid config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Run name: the run directory is `<output.runs_dir>/<name>-<timestamp>`.
    pub name: String,
    /// Dataset and input pipeline.
    pub data: DataConfig,
    /// Recipe augmentations beyond crop and flip (all off by default).
    pub augment: AugmentConfig,
    /// Architecture, looked up by name in the model registry.
    pub model: ModelConfig,
    /// Optimizer and its hyper-parameters.
    pub optim: OptimConfig,
    /// Learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Training loop settings.
    pub train: TrainConfig,
    /// Where runs and checkpoints go.
    pub output: OutputConfig,
    /// Extra experiment trackers (metrics.jsonl and TensorBoard are always written).
    pub track: TrackConfig,
}

/// `[data]`: which dataset, where it lives and how batches are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Dataset name: "cifar10", "cifar100", "mnist", "fashion_mnist", "kmnist" or "image_folder"
    /// (`root/train/<class>/*.png|jpg` and `root/test/...`, resized to `input_size`).
    pub dataset: String,
    /// Directory holding the dataset (or its parent). The environment variable
    /// `MICROVISION_DATA` overrides the file's value; `--set data.root=...` overrides both.
    pub root: PathBuf,
    /// Download the official archive when the files are missing.
    pub download: bool,
    /// Where to download the archive from (empty = the official URL); for mirrors and proxies.
    /// The official MD5 is checked whatever the source.
    pub url: String,
    /// Check every file against the official MD5 sums before training.
    pub verify_md5: bool,
    /// Number of classes the model predicts.
    pub num_classes: i64,
    /// Side of the (square) input images in pixels.
    pub input_size: i64,
    /// Images per training step.
    pub batch_size: i64,
    /// Images per evaluation step.
    pub eval_batch_size: i64,
    /// Batches prepared ahead by the loader thread (0 = prepare inline).
    pub workers: i64,
    /// Train-time augmentation (random crop with padding + horizontal flip).
    pub augment: bool,
    /// Horizontal flips in the train-time augmentation (off for digits and text).
    pub hflip: bool,
    /// `image_folder`: a file that does not decode is "error" (stop) or "skip" (warn, leave out).
    pub on_corrupt: String,
    /// Padding for the random crop, in pixels.
    pub crop_padding: i64,
    /// Fraction of the training set held out for validation (0 = validate on the test set).
    pub val_split: f64,
    /// How the random crop pads: "zeros" or "reflect" (airbench's translate).
    pub pad_mode: String,
    /// "random": each image flipped with probability 1/2 each epoch; "alternate": a random half
    /// flipped in odd epochs and exactly the other half in even ones (airbench's derandomised
    /// flipping, every image seen both ways every two epochs).
    pub flip_mode: String,
    /// Progressive resizing: epoch `i` (1-based) trains on images downscaled to `train_sizes[i-1]`
    /// pixels (after augmentation, antialiased bilinear); later epochs and evaluation use
    /// `input_size`. Empty = off.
    pub train_sizes: Vec<i64>,
}

/// `[augment]`: training-time augmentations, batched on the compute device and seeded by
/// `(seed, epoch)`. Applied after crop and flip; each is off at its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Augmentation policy applied after crop and flip: "" (none), "autoaugment" (CIFAR-10
    /// policy), "randaugment" or "trivialaugment"; each operation equals torchvision's.
    pub policy: String,
    /// RandAugment: operations per image (N).
    pub randaugment_n: i64,
    /// RandAugment: magnitude bin M of 31 (0-30).
    pub randaugment_m: i64,
    /// Cutout square side in pixels (0 = off); DeVries & Taylor use 16 on CIFAR-10.
    pub cutout: i64,
    /// Cutout squares per image.
    pub cutout_count: i64,
    /// Random Erasing probability per image (0 = off; torchvision's scale and ratio ranges).
    pub random_erasing: f64,
    /// Mixup Beta(alpha, alpha) (0 = off).
    pub mixup_alpha: f64,
    /// CutMix Beta(alpha, alpha) (0 = off). With Mixup also on, each batch uses one of the two.
    pub cutmix_alpha: f64,
    /// Probability that a batch is mixed when Mixup or CutMix is on.
    pub mix_prob: f64,
    /// Colour jitter: brightness factor drawn from [1 - b, 1 + b] (0 = off).
    pub brightness: f64,
    /// Colour jitter: contrast factor range.
    pub contrast: f64,
    /// Colour jitter: saturation factor range.
    pub saturation: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            policy: String::new(),
            randaugment_n: 2,
            randaugment_m: 9,
            cutout: 0,
            cutout_count: 1,
            random_erasing: 0.0,
            mixup_alpha: 0.0,
            cutmix_alpha: 0.0,
            mix_prob: 1.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
        }
    }
}

/// `[model]`: the architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Registry name (`microvision models` lists them).
    pub name: String,
    /// Dropout probability where the architecture has dropout.
    pub dropout: f64,
    /// Stochastic-depth rate of the last residual block, rising linearly from 0 (EfficientNet).
    pub drop_path: f64,
}

/// `[schedule]`: learning rate as a function of the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// "constant", "step", "multistep", "cosine", "linear", "onecycle" or "triangle"
    /// (linear from `peak / div_factor` up to the peak at `pct_start`, then linear down to
    /// `min_lr_ratio * peak`: airbench's schedule).
    pub name: String,
    /// Linear warm-up length in epochs (constant, step, multistep, linear and cosine; onecycle and
    /// triangle rise by `pct_start` instead).
    pub warmup_epochs: f64,
    /// Step schedule: multiply the lr by `gamma` every `step_epochs` epochs.
    pub step_epochs: f64,
    /// Step and multi-step schedule factor.
    pub gamma: f64,
    /// Multi-step schedule: epochs (may be fractional) at which the lr is multiplied by `gamma`.
    pub milestones: Vec<f64>,
    /// Cosine and linear: final lr as a fraction of the peak.
    pub min_lr_ratio: f64,
    /// One-cycle: fraction of training spent rising to the peak.
    pub pct_start: f64,
    /// One-cycle: initial lr = peak / div_factor.
    pub div_factor: f64,
    /// One-cycle: final lr = initial lr / final_div_factor.
    pub final_div_factor: f64,
}

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
    /// Factor applied to the learning rate at each divergence restore.
    pub nan_lr_factor: f64,
}

/// `[output]`: where a run writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Parent directory of run directories.
    pub runs_dir: PathBuf,
    /// Checkpoint directory, relative to the run directory.
    pub checkpoint_dir: PathBuf,
}

/// `[track]`: optional tracking sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackConfig {
    /// MLflow tracking server, e.g. `http://127.0.0.1:5000` (empty = off).
    pub mlflow_uri: String,
    /// MLflow experiment name (created when missing).
    pub mlflow_experiment: String,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig { mlflow_uri: String::new(), mlflow_experiment: "microvision".into() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "run".into(),
            data: DataConfig::default(),
            augment: AugmentConfig::default(),
            model: ModelConfig::default(),
            optim: OptimConfig::default(),
            schedule: ScheduleConfig::default(),
            train: TrainConfig::default(),
            output: OutputConfig::default(),
            track: TrackConfig::default(),
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: "cifar10".into(),
            root: PathBuf::from("data"),
            download: true,
            url: String::new(),
            verify_md5: false,
            num_classes: 10,
            input_size: 32,
            batch_size: 128,
            eval_batch_size: 500,
            workers: 1,
            augment: true,
            hflip: true,
            on_corrupt: "error".into(),
            crop_padding: 4,
            val_split: 0.0,
            pad_mode: "zeros".into(),
            flip_mode: "random".into(),
            train_sizes: Vec::new(),
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig { name: "simple_cnn".into(), dropout: 0.5, drop_path: 0.0 }
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            name: "onecycle".into(),
            warmup_epochs: 0.0,
            step_epochs: 10.0,
            gamma: 0.1,
            milestones: Vec::new(),
            min_lr_ratio: 0.0,
            pct_start: 0.25,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }
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

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { runs_dir: PathBuf::from("runs"), checkpoint_dir: PathBuf::from("checkpoints") }
    }
}

/// The `MICROVISION_DATA` environment variable, when it is set and not empty.
pub fn data_env() -> Option<PathBuf> {
    std::env::var_os("MICROVISION_DATA").filter(|v| !v.is_empty()).map(PathBuf::from)
}

impl Config {
    /// Reads a TOML file, applies `--set` overrides (`section.key=value`) and the
    /// `MICROVISION_DATA` environment variable, and validates the result.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Config> {
        load::load_file(path, overrides, data_env())
    }

    /// The default config with `--set` overrides, as a new run sees it (`MICROVISION_DATA` applies).
    pub fn defaults(overrides: &[String]) -> Result<Config> {
        load::load_str("", "(defaults)", overrides, data_env())
    }

    /// Parses TOML text (`origin` names it in errors) with overrides; no environment lookup.
    pub fn from_toml_str(text: &str, origin: &str, overrides: &[String]) -> Result<Config> {
        load::load_str(text, origin, overrides, None)
    }

    /// Checks ranges and option consistency; the error names the key, value and expectation.
    pub fn validate(&self) -> Result<()> {
        validate::validate(self)
    }

    /// The config as TOML text (written into each run directory).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a Config always serialises to TOML")
    }
}

//! Range and consistency checks. Each message names the key, the bad value and what is expected.

use super::Config;
use crate::config_err;
use crate::error::Result;

/// Device choices (`train.device`, `bench throughput --device`).
pub const DEVICES: &[&str] = super::DeviceChoice::NAMES;
/// Precision choices (`train.precision`, `bench throughput --precision`).
pub const PRECISIONS: &[&str] = super::PrecisionChoice::NAMES;

pub(super) fn validate(c: &Config) -> Result<()> {
    names(c)?;
    run_paths(c)?;
    data(c)?;
    model_optim(c)?;
    train(c)?;
    schedule(c)?;
    augment(c)?;
    consistency(c)
}

/// Checks that only configs for new runs must pass: a saved run's `config.toml`, written by an
/// earlier version that allowed these values, stays readable.
pub(super) fn validate_new(c: &Config) -> Result<()> {
    if c.name.contains(super::LR_SWEEP_SUFFIX) {
        return Err(config_err!(
            "`name` = {:?}: {:?} is reserved for the directories of lr-find sweeps; expected another name",
            c.name,
            super::LR_SWEEP_SUFFIX
        ));
    }
    let factor = c.train.nan_lr_factor;
    if factor == 0.0 {
        // It would train the rest of the run at a zero learning rate: a stop that looks like a run.
        return Err(config_err!("`train.nan_lr_factor` = {factor}: expected a number in (0, 1]"));
    }
    check_early_stopping(c)
}

/// Early stopping watches a validation split: with `data.val_split` = 0 the epochs are scored on
/// the test split, and stopping on them would choose the epoch by test accuracy. (A check for
/// new runs only: runs saved before it keep opening.)
pub fn check_early_stopping(c: &Config) -> Result<()> {
    if c.train.early_stop_patience > 0 && !c.data.has_val_split() {
        return Err(config_err!(
            "`train.early_stop_patience` = {} needs a validation split: expected `data.val_split` > 0 (e.g. 0.1); \
             with data.val_split = 0 the epochs are scored on the test split, and early stopping would select on it",
            c.train.early_stop_patience
        ));
    }
    Ok(())
}

/// The dataset name (the other choices are enums, checked as the file is read:
/// [`super::choice::check_choices`]).
fn names(c: &Config) -> Result<()> {
    one_of("data.dataset", &c.data.dataset, super::DATASETS)
}

/// Whether `name` can name a directory of its own (a run, a study): 1 to 100 bytes without
/// '/', '\\', control characters or a leading '.'.
pub fn is_valid_name(name: &str) -> bool {
    let odd = |ch: char| ch.is_control() || ch == '/' || ch == '\\';
    !(name.trim().is_empty() || name.contains(odd) || name.starts_with('.') || name.len() > 100)
}

/// The run name, the directories and the tracking server.
fn run_paths(c: &Config) -> Result<()> {
    if !is_valid_name(&c.name) {
        return Err(config_err!(
            "`name` = {:?}: expected a run name of 1 to 100 bytes without '/', control characters or a leading '.'",
            c.name
        ));
    }
    if c.output.runs_dir.as_os_str().is_empty() {
        return Err(config_err!(
            "`output.runs_dir` = \"\": expected a directory for the run directories, e.g. \"runs\""
        ));
    }
    if c.data.root.as_os_str().is_empty() {
        return Err(config_err!("`data.root` = \"\": expected the directory that holds (or will receive) the dataset"));
    }
    let uri = &c.track.mlflow_uri;
    if !(uri.is_empty() || uri.starts_with("http://") || uri.starts_with("https://")) {
        return Err(config_err!(
            "`track.mlflow_uri` = {uri:?}: expected the URL of an MLflow tracking server, e.g. \"http://127.0.0.1:5000\" (or \"\" for none)"
        ));
    }
    check_wandb_mode(&c.track.wandb_mode)?;
    if c.track.wandb && c.track.wandb_project.is_empty() {
        return Err(config_err!("`track.wandb_project` = \"\": expected a W&B project name"));
    }
    if c.track.mlflow_experiment.is_empty() {
        return Err(config_err!("`track.mlflow_experiment` = \"\": expected an experiment name"));
    }
    Ok(())
}

/// A W&B mode (`track.wandb_mode`, `sync wandb --mode`): "online" or "offline".
pub fn check_wandb_mode(mode: &str) -> Result<()> {
    if !["online", "offline"].contains(&mode) {
        return Err(config_err!("W&B mode {mode:?} (track.wandb_mode or --mode): expected \"online\" or \"offline\""));
    }
    Ok(())
}

/// `[data]` sizes and counts.
fn data(c: &Config) -> Result<()> {
    positive_i("data.num_classes", c.data.num_classes)?;
    // The dataset is held in memory as uint8 and SimpleCNN's head grows with the square.
    int_range("data.input_size", c.data.input_size, 1, 512)?;
    positive_i("data.batch_size", c.data.batch_size)?;
    positive_i("data.eval_batch_size", c.data.eval_batch_size)?;
    non_negative_i("data.crop_padding", c.data.crop_padding)?;
    int_range("data.workers", c.data.workers, 0, 256)?;
    in_range("data.val_split", c.data.val_split, 0.0, 0.9)?;
    non_negative_i("data.limit_train", c.data.limit_train)?;
    non_negative_i("data.limit_test", c.data.limit_test)?;
    if c.data.verify_md5 && !c.data.official_files {
        return Err(config_err!(
            "`data.verify_md5` = true with `data.official_files` = false: there is nothing to verify your own \
             files against; expected one of the two"
        ));
    }
    Ok(())
}

/// The block types of `[model.arch]`.
pub const ARCH_BLOCKS: &[&str] = &["basic", "bottleneck", "inverted"];

/// `[model.arch]` (searchnet's architecture).
fn arch(c: &Config) -> Result<()> {
    let a = &c.model.arch;
    for (key, w) in [("model.arch.width1", a.width1), ("model.arch.width2", a.width2), ("model.arch.width3", a.width3)]
    {
        int_range(key, w, 4, 1024)?;
    }
    for (key, d) in [("model.arch.depth1", a.depth1), ("model.arch.depth2", a.depth2), ("model.arch.depth3", a.depth3)]
    {
        int_range(key, d, 1, 16)?;
    }
    one_of("model.arch.block", &a.block, ARCH_BLOCKS)?;
    if ![1, 3, 5, 7].contains(&a.kernel) {
        return Err(config_err!("`model.arch.kernel` = {}: expected 1, 3, 5 or 7", a.kernel));
    }
    Ok(())
}

/// `[model]` regularisation and `[optim]` hyper-parameters.
fn model_optim(c: &Config) -> Result<()> {
    arch(c)?;
    in_range("model.dropout", c.model.dropout, 0.0, 0.99)?;
    in_range("model.drop_path", c.model.drop_path, 0.0, 0.99)?;
    positive_f("optim.lr", c.optim.lr)?;
    positive_f("optim.muon_lr", c.optim.muon_lr)?;
    in_range("optim.momentum", c.optim.momentum, 0.0, 0.9999)?;
    in_range("optim.weight_decay", c.optim.weight_decay, 0.0, 1.0)?;
    in_range("optim.betas[0]", c.optim.betas[0], 0.0, 0.9999)?;
    in_range("optim.betas[1]", c.optim.betas[1], 0.0, 0.99999)?;
    positive_f("optim.eps", c.optim.eps)?;
    positive_f("optim.norm_lr_scale", c.optim.norm_lr_scale)?;
    for (name, scale) in &c.optim.lr_scales {
        positive_f(&format!("optim.lr_scales.\"{name}\""), *scale)?;
    }
    in_range("optim.muon_momentum", c.optim.muon_momentum, 0.0, 0.9999)?;
    if !(1..=10).contains(&c.optim.muon_ns_steps) {
        return Err(config_err!("`optim.muon_ns_steps` = {}: expected 1 to 10 iterations", c.optim.muon_ns_steps));
    }
    Ok(())
}

/// `[train]`: the loop, its precision and recovery, evaluation and early stopping.
fn train(c: &Config) -> Result<()> {
    in_range("train.nan_lr_factor", c.train.nan_lr_factor, 0.0, 1.0)?;
    positive_i("train.epochs", c.train.epochs)?;
    int_range("train.threads", c.train.threads, 0, 1024)?;
    int_range("train.replicas", c.train.replicas, 1, 64)?;
    int_range("train.dist_timeout_secs", c.train.dist_timeout_secs, 1, 7 * 24 * 3600)?;
    if c.train.replicas > c.data.batch_size {
        return Err(config_err!(
            "`train.replicas` = {}: each replica trains a chunk of the batch, and `data.batch_size` is {}; expected \
             at most {}",
            c.train.replicas,
            c.data.batch_size,
            c.data.batch_size
        ));
    }
    non_negative_i("train.log_every", c.train.log_every)?;
    non_negative_i("train.lookahead_every", c.train.lookahead_every)?;
    in_range("train.label_smoothing", c.train.label_smoothing, 0.0, 0.99)?;
    at_least("train.grad_clip", c.train.grad_clip, 0.0)?;
    positive_i("train.accumulate_steps", c.train.accumulate_steps)?;
    at_least("train.grad_clip_value", c.train.grad_clip_value, 0.0)?;
    if !(0..=2).contains(&c.train.tta) {
        return Err(config_err!(
            "`train.tta` = {}: expected 0 (none), 1 (mirror) or 2 (mirror + translate)",
            c.train.tta
        ));
    }
    in_range("train.tta_cutoff", c.train.tta_cutoff, 0.0, 1.0)?;
    in_range("train.ema_decay", c.train.ema_decay, 0.0, 0.999999)?;
    non_negative_i("train.early_stop_patience", c.train.early_stop_patience)?;
    at_least("train.early_stop_min_delta", c.train.early_stop_min_delta, 0.0)?;
    Ok(())
}

/// `[schedule]` shapes (after `train`: the warm-up is bounded by train.epochs).
fn schedule(c: &Config) -> Result<()> {
    let warmup = c.schedule.warmup_epochs;
    if !(0.0..=c.train.epochs as f64).contains(&warmup) {
        return Err(config_err!(
            "`schedule.warmup_epochs` = {warmup}: expected a number from 0 to train.epochs ({})",
            c.train.epochs
        ));
    }
    positive_f("schedule.step_epochs", c.schedule.step_epochs)?;
    in_range("schedule.gamma", c.schedule.gamma, 0.0, 1.0)?;
    in_range("schedule.min_lr_ratio", c.schedule.min_lr_ratio, 0.0, 1.0)?;
    in_range("schedule.pct_start", c.schedule.pct_start, 0.0, 1.0)?;
    at_least("schedule.div_factor", c.schedule.div_factor, 1.0)?;
    at_least("schedule.final_div_factor", c.schedule.final_div_factor, 1.0)?;
    let m = &c.schedule.milestones;
    if m.iter().any(|e| !e.is_finite() || *e <= 0.0) || m.windows(2).any(|w| w[0] >= w[1]) {
        return Err(config_err!(
            "`schedule.milestones` = {m:?}: expected ascending positive epochs, e.g. [30, 60, 80]"
        ));
    }
    Ok(())
}

/// `[augment]` strengths and probabilities.
fn augment(c: &Config) -> Result<()> {
    let a = &c.augment;
    // Bounded: each op is a pass over the batch, and a huge count is a hang, not a recipe.
    int_range("augment.randaugment_n", a.randaugment_n, 1, 10)?;
    if !(0..=30).contains(&a.randaugment_m) {
        return Err(config_err!("`augment.randaugment_m` = {}: expected a magnitude bin in 0..=30", a.randaugment_m));
    }
    non_negative_i("augment.cutout", a.cutout)?;
    int_range("augment.cutout_count", a.cutout_count, 1, 32)?;
    in_range("augment.random_erasing", a.random_erasing, 0.0, 1.0)?;
    in_range("augment.mixup_alpha", a.mixup_alpha, 0.0, 100.0)?;
    in_range("augment.cutmix_alpha", a.cutmix_alpha, 0.0, 100.0)?;
    in_range("augment.mix_prob", a.mix_prob, 0.0, 1.0)?;
    in_range("augment.brightness", a.brightness, 0.0, 1.0)?;
    in_range("augment.contrast", a.contrast, 0.0, 1.0)?;
    in_range("augment.saturation", a.saturation, 0.0, 1.0)?;
    Ok(())
}

/// Options that contradict each other.
fn consistency(c: &Config) -> Result<()> {
    if c.optim.nesterov && c.optim.name == super::OptimName::Sgd && c.optim.momentum == 0.0 {
        return Err(config_err!("`optim.nesterov` = true needs `optim.momentum` > 0 (got 0)"));
    }
    let a = &c.augment;
    let recipe = a.policy != super::AugmentPolicy::None
        || a.cutout > 0
        || a.random_erasing > 0.0
        || a.mixup_alpha > 0.0
        || a.cutmix_alpha > 0.0
        || a.brightness + a.contrast + a.saturation > 0.0;
    if recipe && !c.data.augment {
        return Err(config_err!(
            "`[augment]` options are set but `data.augment` = false turns training augmentation off; set it to true"
        ));
    }
    if c.train.tta > 0 && !c.data.hflip {
        return Err(config_err!(
            "`train.tta` = {}: test-time augmentation mirrors images, but `data.hflip` = false says mirrored images are \
             not valid for this data; use train.tta = 0",
            c.train.tta
        ));
    }
    dataset_fits(c)
}

/// Options that must match the dataset (its classes, image size and channels) or the image size.
fn dataset_fits(c: &Config) -> Result<()> {
    let d = &c.data.dataset;
    let src = super::dataset_facts(d)
        .ok_or_else(|| config_err!("unknown dataset {d:?}; expected one of {}", super::DATASETS.join(", ")))?;
    let size = src.image_size(c.data.input_size);
    if let Some(classes) = src.num_classes.filter(|n| *n != c.data.num_classes) {
        return Err(config_err!("`data.num_classes` = {}: {d} has {classes} classes", c.data.num_classes));
    }
    if c.data.input_size != size {
        return Err(config_err!(
            "`data.input_size` = {}: {d} images are {size}x{size}; expected {size}",
            c.data.input_size
        ));
    }
    let a = &c.augment;
    if a.cutout > size {
        return Err(config_err!(
            "`augment.cutout` = {}: a square larger than the {size}x{size} images erases them whole; expected at \
             most {size}",
            a.cutout
        ));
    }
    if src.channels == 1 && (a.policy != super::AugmentPolicy::None || a.contrast > 0.0 || a.saturation > 0.0) {
        return Err(config_err!(
            "`augment.policy` / `augment.contrast` / `augment.saturation`: colour operations need RGB images; {d} is greyscale"
        ));
    }
    if let Some(s) = c.data.train_sizes.iter().find(|s| !(1..=c.data.input_size).contains(*s)) {
        return Err(config_err!(
            "`data.train_sizes` contains {s}: expected image sides from 1 to data.input_size ({})",
            c.data.input_size
        ));
    }
    if !c.data.train_sizes.is_empty() && c.data.train_sizes.len() as i64 >= c.train.epochs {
        // The last epoch at full size also sets the BatchNorm statistics that evaluation uses.
        return Err(config_err!(
            "`data.train_sizes` lists {} epochs: expected fewer than train.epochs ({}), one size per epoch, so that \
             training ends at data.input_size",
            c.data.train_sizes.len(),
            c.train.epochs
        ));
    }
    if c.data.crop_padding >= c.data.input_size {
        return Err(config_err!(
            "`data.crop_padding` = {}: expected less than data.input_size ({})",
            c.data.crop_padding,
            c.data.input_size
        ));
    }
    Ok(())
}

pub(super) fn one_of(key: &str, value: &str, valid: &[&str]) -> Result<()> {
    if valid.contains(&value) {
        return Ok(());
    }
    let hint = match super::load::suggest(value, valid) {
        Some(s) => format!(" (did you mean {s:?}?)"),
        None => String::new(),
    };
    let shown: Vec<String> =
        valid.iter().map(|v| if v.is_empty() { "\"\" (none)".into() } else { v.to_string() }).collect();
    Err(config_err!("`{key}` = {value:?}: expected one of {}{hint}", shown.join(", ")))
}

fn positive_i(key: &str, v: i64) -> Result<()> {
    if v > 0 {
        Ok(())
    } else {
        Err(config_err!("`{key}` = {v}: expected a positive integer"))
    }
}

fn int_range(key: &str, v: i64, lo: i64, hi: i64) -> Result<()> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(config_err!("`{key}` = {v}: expected an integer from {lo} to {hi}"))
    }
}

fn non_negative_i(key: &str, v: i64) -> Result<()> {
    if v >= 0 {
        Ok(())
    } else {
        Err(config_err!("`{key}` = {v}: expected 0 or more"))
    }
}

fn positive_f(key: &str, v: f64) -> Result<()> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(config_err!("`{key}` = {v}: expected a positive number"))
    }
}

fn at_least(key: &str, v: f64, lo: f64) -> Result<()> {
    if v >= lo && v.is_finite() {
        Ok(())
    } else {
        Err(config_err!("`{key}` = {v}: expected a number >= {lo}"))
    }
}

fn in_range(key: &str, v: f64, lo: f64, hi: f64) -> Result<()> {
    if v >= lo && v <= hi && v.is_finite() {
        Ok(())
    } else {
        Err(config_err!("`{key}` = {v}: expected a number in [{lo}, {hi}]"))
    }
}

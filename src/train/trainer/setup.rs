//! Setting up a run from its config: the checks made before anything is written (the model built
//! once as a probe, the new-run rules, the data filling an epoch, `model.init_from`'s source), and
//! what the config implies for the trainer's parts (model arguments, loader settings).

use std::path::Path;
use tch::Device;

use crate::config::{Config, ScheduleName};
use crate::data::loader::LoaderSpec;
use crate::data::DataSplits;
use crate::error::{Error, Result};
use crate::models::{Model, ModelArgs};
use crate::train::pretrained;

/// Checks that the model exists and supports what the config asks of it: its input size, the
/// progressive-resizing sizes and gradient checkpointing. Returns the CPU model it built to check.
pub fn check_model(cfg: &Config) -> Result<Model> {
    crate::models::lookup(&cfg.model.name)?;
    let args = model_args(cfg);
    // Build the model and pass one image through it: an input too small for its pooling stages
    // (a zero-sized layer, an empty feature map) fails here, with a message, instead of inside
    // LibTorch during initialisation or the first training step.
    let built = quietly(|| {
        Model::new(&cfg.model.name, &args, Device::Cpu).inspect(|m| {
            m.macs_per_image(&args);
        })
    });
    let Some(probe) = built else {
        return Err(Error::Config(format!(
            "model {:?} does not work on {}x{}x{} inputs (data.dataset = {:?}): its downsampling needs larger \
             images; choose another model (resnet18, simple_cnn and improved_cnn take any size from 16 px)",
            cfg.model.name, args.in_channels, args.input_size, args.input_size, cfg.data.dataset
        )));
    };
    let probe = probe?;
    check_train_sizes(cfg, &probe, &args)?;
    if cfg.train.grad_checkpointing && probe.net.segments().is_none() {
        return Err(Error::Config(format!(
            "`train.grad_checkpointing` = true: model {:?} has no checkpoint segments (supported: resnet*, vgg*, efficientnet_b0)",
            cfg.model.name
        )));
    }
    Ok(probe)
}

/// Progressive resizing feeds the model (built for `data.input_size`) smaller images: each size
/// must pass through it in training mode (a flattening head sized for the full input, or a
/// BatchNorm over a single value, would fail at the first step of that epoch).
fn check_train_sizes(cfg: &Config, model: &Model, args: &ModelArgs) -> Result<()> {
    let batch = cfg.data.batch_size.min(2);
    let takes = |size: i64| {
        let x = tch::Tensor::zeros([batch, args.in_channels, size, size], (tch::Kind::Float, Device::Cpu));
        quietly(|| model.forward(&x, true)).is_some()
    };
    let Some(size) =
        crate::data::loader::train_sides(&cfg.data).into_iter().find(|&s| s != args.input_size && !takes(s))
    else {
        return Ok(());
    };
    let smallest = (size + 1..args.input_size).find(|&s| takes(s)).unwrap_or(args.input_size);
    Err(Error::Config(format!(
        "`data.train_sizes` contains {size}: model {:?} (built for {}x{} inputs, batches of {}) does not take \
         {size}x{size} images; the smallest side it takes is {smallest}",
        cfg.model.name, args.input_size, args.input_size, cfg.data.batch_size
    )))
}

thread_local! {
    /// Set while [`quietly`] runs on this thread: its expected panics are not printed.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` without gradients, turning a panic (LibTorch's error for a shape that does not fit)
/// into `None` without printing it: the caller reports it as a config error. The guard restores
/// gradient mode on unwinding (`tch::no_grad` would leave it off after a panic). The panic hook
/// is wrapped once and consults a thread-local flag, so other threads' panics still print.
fn quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
    static WRAP_HOOK: std::sync::Once = std::sync::Once::new();
    WRAP_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _no_grad = tch::no_grad_guard();
        f()
    }));
    QUIET.with(|q| q.set(false));
    out.ok()
}

/// An epoch must hold at least one full batch, and at least one optimizer step.
pub(super) fn check_data_fits(cfg: &Config, data: &DataSplits) -> Result<()> {
    let train_images = data.train.len();
    if train_images < cfg.data.batch_size {
        return Err(Error::Config(format!(
            "`data.batch_size` = {}: the training split has only {train_images} images, so an epoch would have no \
             full batch; expected at most {train_images}",
            cfg.data.batch_size
        )));
    }
    let batches = train_images / cfg.data.batch_size;
    if batches < cfg.train.accumulate_steps {
        return Err(Error::Config(format!(
            "`train.accumulate_steps` = {}: an epoch has only {batches} batches of {}, so no optimizer step \
             would be taken; expected at most {batches}",
            cfg.train.accumulate_steps, cfg.data.batch_size
        )));
    }
    Ok(())
}

/// Checks made for new runs only (the config of an existing run is read back as it was written,
/// by an older version perhaps): checkpoints stay inside the run directory, and no setting is
/// silently ignored.
pub(super) fn check_new_run(cfg: &Config) -> Result<()> {
    use std::path::Component;
    let schedule = cfg.schedule.name.as_str();
    if cfg.schedule.warmup_epochs > 0.0 && matches!(cfg.schedule.name, ScheduleName::OneCycle | ScheduleName::Triangle)
    {
        return Err(Error::Config(format!(
            "`schedule.warmup_epochs` = {}: schedule.name = {schedule:?} has its own rise (schedule.pct_start); \
             expected 0, or a schedule that warms up (constant, step, multistep, linear, cosine)",
            cfg.schedule.warmup_epochs
        )));
    }
    let dir = &cfg.output.checkpoint_dir;
    let inside = dir.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    let first = dir.components().find(|c| matches!(c, Component::Normal(_)));
    let taken = first.and_then(|c| c.as_os_str().to_str()).is_some_and(is_run_file);
    if taken {
        return Err(Error::Config(format!(
            "`output.checkpoint_dir` = {:?}: that name is one of the run's own files; expected a directory of its \
             own, e.g. \"checkpoints\"",
            dir.display().to_string()
        )));
    }
    if inside && !dir.as_os_str().is_empty() {
        return Ok(());
    }
    // An absolute or `..` path would be shared by every run: each would overwrite the others'.
    Err(Error::Config(format!(
        "`output.checkpoint_dir` = {:?}: expected a directory name inside the run directory, e.g. \"checkpoints\" \
         (not absolute, no `..`), so that runs never share checkpoints",
        dir.display().to_string()
    )))
}

/// Whether `name` is one of the files a run directory holds besides its checkpoints.
fn is_run_file(name: &str) -> bool {
    const RUN_FILES: &[&str] = &[
        "config.toml",
        "env.json",
        "metrics.jsonl",
        "plots",
        "report.html",
        "export",
        "lr_find.json",
        "lr_find.png",
        "lr_find.svg",
        "mlflow_run_id",
        ".lock",
    ];
    RUN_FILES.contains(&name) || (name.starts_with("eval") && name.ends_with(".json")) || name.starts_with("events.out")
}

/// The architecture arguments implied by a config.
pub fn model_args(cfg: &Config) -> ModelArgs {
    ModelArgs {
        num_classes: cfg.data.num_classes,
        in_channels: crate::data::source::source(&cfg.data.dataset).map_or(3, |s| s.channels()),
        input_size: cfg.data.input_size,
        dropout: cfg.model.dropout,
        drop_path: cfg.model.drop_path,
        arch: arch(&cfg.model.arch),
    }
}

/// The searchable family's architecture from `[model.arch]`.
pub fn arch(a: &crate::config::ArchConfig) -> crate::models::searchnet::Arch {
    crate::models::searchnet::Arch {
        widths: [a.width1, a.width2, a.width3],
        depths: [a.depth1, a.depth2, a.depth3],
        block: a.block.clone(),
        kernel: a.kernel,
    }
}

/// Loader settings for training (`train = true`: shuffled, augmented, drop_last) or evaluation.
pub fn loader_spec(cfg: &Config, data: &DataSplits, train: bool) -> LoaderSpec {
    LoaderSpec {
        batch_size: if train { cfg.data.batch_size } else { cfg.data.eval_batch_size },
        shuffle: train,
        augment_pad: (train && cfg.data.augment).then_some(cfg.data.crop_padding),
        hflip: cfg.data.hflip,
        reflect: cfg.data.pad_mode == crate::config::PadMode::Reflect,
        alternate_flip: cfg.data.flip_mode == crate::config::FlipMode::Alternate,
        drop_last: train,
        mean: data.mean.clone(),
        std: data.std.clone(),
        channels_last: cfg.train.channels_last,
        prefetch: cfg.data.workers as usize,
        seed: cfg.train.seed,
        augment: cfg.augment.clone(),
        num_classes: cfg.data.num_classes,
        train_sizes: if train { cfg.data.train_sizes.clone() } else { Vec::new() },
    }
}

/// `model.init_from`'s weights, read and matched to `probe` (the model built on the CPU, before
/// the run directory exists, so a wrong source leaves nothing behind); `None` when it is empty.
pub(super) fn read_pretrained(cfg: &Config, probe: &Model) -> Result<Option<pretrained::Pretrained>> {
    if cfg.model.init_from.is_empty() {
        return Ok(None);
    }
    pretrained::read(Path::new(&cfg.model.init_from), &probe.vs).map(Some)
}

/// `data.root` and `model.init_from` made absolute, as the run's `config.toml` records them, so
/// `eval` and `--resume` from another directory find the same files.
pub(super) fn absolute_paths(cfg: &mut Config) {
    if let Ok(root) = std::path::absolute(&cfg.data.root) {
        cfg.data.root = root;
    }
    if let Some(Ok(source)) = (!cfg.model.init_from.is_empty()).then(|| std::path::absolute(&cfg.model.init_from)) {
        cfg.model.init_from = source.display().to_string();
    }
}

//! Command-line interface: parses arguments, calls the library's verbs (`lab`) and prints; no
//! logic of its own.

mod bench;
mod commands;
mod datasets;
mod explain;
mod tune;
mod tune_report;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::error::Result;

/// microvision: train, evaluate and compare small vision models on LibTorch.
#[derive(Debug, Parser)]
#[command(name = "microvision", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model from a config file (or resume a run).
    Train {
        /// Config file (TOML), e.g. configs/simple_cnn.toml.
        #[arg(short, long, required_unless_present = "resume")]
        config: Option<PathBuf>,
        /// Override a config value: section.key=value (repeatable). With --resume, only the
        /// settings a resume may change (optim.lr, train.grad_clip, ...; recorded in env.json).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Continue the run in RUN_DIR from its last checkpoint.
        #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
        resume: Option<PathBuf>,
    },
    /// Evaluate a run's checkpoint on the test split and write eval.json.
    Eval {
        /// Run directory.
        run_dir: PathBuf,
        /// Which checkpoint (`best`: the epoch of the best validation accuracy; runs without a
        /// validation split, data.val_split = 0, keep none).
        #[arg(long, default_value = "last", value_parser = ["best", "last"])]
        checkpoint: String,
        /// Overrides of the run's config for this evaluation, `key=value` (e.g.
        /// `train.tta=2`, `train.tta_cutoff=0.9`, `data.root=...`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Classify image files (PNG, JPEG, ...) with a run's checkpoint: the most probable classes.
    Predict {
        /// Run directory.
        run_dir: PathBuf,
        /// Image files; each is resized (shorter side) to the run's input size and centre-cropped.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Which checkpoint.
        #[arg(long, default_value = "last", value_parser = ["best", "last"])]
        checkpoint: String,
        /// How many classes to list per image.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
        top: u64,
    },
    /// Look inside a run's model: Grad-CAM, Grad-CAM++, Score-CAM, saliency, SmoothGrad and
    /// attention-rollout maps of test images, and the embeddings with their t-SNE (plots/,
    /// explain/, TensorBoard's projector).
    Explain(explain::ExplainCmd),
    /// Search hyper-parameters and architectures on an Optuna study; `tune report STUDY`.
    Tune(tune::TuneCmd),
    /// Draw (or re-draw) a run's plots into RUN_DIR/plots (PNG and SVG).
    Plot {
        /// Run directory.
        run_dir: PathBuf,
    },
    /// Write RUN_DIR/report.html: config, environment, metrics, every plot, per-class table.
    Report {
        /// Run directory.
        run_dir: PathBuf,
        /// Write the report here (a file, or a directory for its report.html) instead of
        /// RUN_DIR/report.html; plots the run lacks are still drawn into RUN_DIR/plots.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Learning-rate range test: sweep the lr exponentially, plot the loss, suggest a rate.
    LrFind {
        /// Config file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// Override a config value: section.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// First learning rate.
        #[arg(long, default_value_t = 1e-7)]
        start: f64,
        /// Last learning rate.
        #[arg(long, default_value_t = 10.0)]
        end: f64,
        /// Steps of the sweep (it stops early when the loss explodes).
        #[arg(long, default_value_t = 100)]
        steps: usize,
    },
    /// Save a grid of augmented training images (the config's augmentations, first batch).
    AugmentPreview {
        /// Config file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// Override a config value: section.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Images in the grid (1 to 256).
        #[arg(long, default_value_t = 40, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
        count: usize,
        /// Output directory (writes augment_preview.png and .svg).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Export a run's model with a JSON describing it: its weights (PyTorch state_dict names) or a
    /// TorchScript module that `torch.jit.load` runs without model code.
    Export {
        /// Run directory.
        run_dir: PathBuf,
        /// Output format: safetensors (model.safetensors) or torchscript (model.pt).
        #[arg(long, default_value = "safetensors", value_parser = ["safetensors", "torchscript"])]
        format: String,
        /// Which checkpoint.
        #[arg(long, default_value = "last", value_parser = ["best", "last"])]
        checkpoint: String,
        /// Output directory (default: RUN_DIR/export).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare finished runs in one table (runs differing only in seed are grouped: mean +- std).
    Compare {
        /// Run directories.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Output format.
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "csv"])]
        format: String,
        /// Where to draw the overlaid validation curves (default: the first run's parent
        /// directory): compare_val_acc and compare_val_loss, PNG and SVG.
        #[arg(long, value_name = "DIR")]
        plot_dir: Option<PathBuf>,
    },
    /// Print a config as TOML with every key: the defaults, or a file's resolved values.
    Config {
        /// Config file (TOML); without it, the defaults.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Override a config value: section.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// List the registered models with parameters and MFLOPs per image.
    Models {
        /// Also measure the memory of a training step at batch 128 (takes a minute or more).
        #[arg(long)]
        memory: bool,
        /// Instead, one model's layers: type, output shape, parameters and MFLOPs per image
        /// (CIFAR-10's 3x32x32 input, 10 classes).
        #[arg(long, value_name = "MODEL", conflicts_with = "memory")]
        summary: Option<String>,
    },
    /// Benchmarks.
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Dataset tools.
    Data {
        /// What to do.
        #[command(subcommand)]
        action: DataAction,
    },
    /// Multi-process (torch.distributed) tools.
    Dist {
        /// What to do.
        #[command(subcommand)]
        action: DistAction,
    },
    /// Send finished runs to an experiment tracker afterwards.
    Sync {
        /// Which tracker.
        #[command(subcommand)]
        to: SyncTarget,
    },
}

/// `microvision dist ...`
#[derive(Debug, Subcommand)]
pub enum DistAction {
    /// Join the group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and check
    /// its all-reduce, broadcast and barrier; one JSON line per rank.
    Check {
        /// Floats to all-reduce.
        #[arg(long, default_value_t = 1 << 20)]
        elements: i64,
        /// Seconds to wait for the other ranks.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

/// `microvision sync ...`
#[derive(Debug, Subcommand)]
pub enum SyncTarget {
    /// Runs into Weights & Biases (online, or offline runs under RUN/wandb/ to upload with
    /// `wandb sync`): config, metrics.jsonl, plots, eval.json and config.toml.
    Wandb {
        /// Run directories.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// W&B project (default: the run's track.wandb_project).
        #[arg(long)]
        project: Option<String>,
        /// W&B entity (default: the run's track.wandb_entity).
        #[arg(long)]
        entity: Option<String>,
        /// online or offline (default: the run's track.wandb_mode; WANDB_MODE overrides both).
        #[arg(long)]
        mode: Option<String>,
    },
}

/// `microvision bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Training and inference images/s of a model on synthetic batches (median of repeats).
    Throughput {
        /// Registry name.
        #[arg(long, default_value = "simple_cnn")]
        model: String,
        /// Batch size.
        #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(i64).range(1..=65536))]
        batch: i64,
        /// auto, fp32, bf16 or fp16.
        #[arg(long, default_value = "auto", value_parser = clap::builder::PossibleValuesParser::new(crate::config::PRECISIONS))]
        precision: String,
        /// auto, cpu or cuda.
        #[arg(long, default_value = "auto", value_parser = clap::builder::PossibleValuesParser::new(crate::config::DEVICES))]
        device: String,
        /// Steps per timed repeat.
        #[arg(long, default_value_t = 20, value_parser = at_least_one())]
        steps: usize,
        /// Timed repeats.
        #[arg(long, default_value_t = 5, value_parser = at_least_one())]
        repeats: usize,
        /// Intra-op threads (0 = all cores).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..=1024))]
        threads: i64,
        /// Train with gradient checkpointing (segmented models only).
        #[arg(long)]
        checkpointing: bool,
        /// Data-parallel replicas on CPU, each on its own thread with threads / replicas
        /// intra-op threads (`train.replicas`).
        #[arg(long, default_value_t = 1, value_parser = at_least_one())]
        replicas: usize,
    },
    /// N full trainings of a recipe with seeds seed..seed+N-1: test accuracy (with TTA), training
    /// time (first step to last), setup and evaluation time, mean +- std, fraction >= target.
    Speedrun {
        /// The recipe.
        #[arg(long, short, default_value = "configs/speedrun94.toml")]
        config: PathBuf,
        /// Number of runs.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
        runs: u64,
        /// Target test accuracy in percent (0 to 100).
        #[arg(long, default_value_t = 94.0, value_parser = percent)]
        target: f64,
        /// Config overrides, `key=value` (as `train --set`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

/// `microvision data ...`
#[derive(Debug, Subcommand)]
pub enum DataAction {
    /// Download (if needed) and verify a dataset.
    Download {
        /// Dataset name.
        #[arg(default_value = "cifar10")]
        dataset: String,
        /// Parent directory (default: $MICROVISION_DATA or ./data).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Download from this URL instead of the official one (a mirror); the MD5 is still checked.
        #[arg(long)]
        url: Option<String>,
        /// The MD5 of the archive at --url when it is not the official one (a re-packed or subset
        /// archive; CIFAR-10/100); its files are then not the official ones.
        #[arg(long, requires = "url")]
        md5: Option<String>,
    },
    /// Print counts per class, image size and mean/std (the data exploration view).
    Info {
        /// Dataset name.
        #[arg(default_value = "cifar10")]
        dataset: String,
        /// Parent directory (default: $MICROVISION_DATA or ./data).
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Save a grid of training images, one row per class (data_preview.png and .svg).
    Preview {
        /// Dataset name.
        #[arg(default_value = "cifar10")]
        dataset: String,
        /// Parent directory (default: $MICROVISION_DATA or ./data).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Images per class (1 to 64).
        #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
        per_class: usize,
        /// Output directory.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

/// A count of 1 or more (steps, repeats).
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000)
}

/// A percentage in [0, 100].
fn percent(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a percentage from 0 to 100, got {s:?}")),
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train { config, overrides, resume } => commands::train(config, &overrides, resume),
        Command::Eval { run_dir, checkpoint, overrides } => commands::eval(&run_dir, checkpoint.parse()?, &overrides),
        Command::Export { run_dir, format, checkpoint, out } => {
            commands::export(&run_dir, checkpoint.parse()?, format.parse()?, out.as_deref())
        }
        Command::Predict { run_dir, images, checkpoint, top } => {
            commands::predict(&run_dir, &images, checkpoint.parse()?, top as usize)
        }
        Command::Explain(c) => explain::explain(c),
        Command::Tune(c) => tune::tune(c),
        Command::Plot { run_dir } => commands::plot(&run_dir),
        Command::LrFind { config, overrides, start, end, steps } => {
            commands::lr_find(&config, &overrides, crate::lab::LrSweep { start, end, steps })
        }
        Command::AugmentPreview { config, overrides, count, out } => {
            commands::augment_preview(&config, &overrides, count, &out)
        }
        Command::Report { run_dir, out } => commands::report(&run_dir, out.as_deref()),
        Command::Models { summary: Some(name), .. } => commands::model_summary(&name),
        Command::Models { memory, summary: None } => commands::models(memory),
        Command::Config { config, overrides } => commands::show_config(config, &overrides),
        Command::Compare { runs, format, plot_dir } => commands::compare(&runs, format == "csv", plot_dir.as_deref()),
        Command::Bench {
            what:
                BenchWhat::Throughput { model, batch, precision, device, steps, repeats, threads, checkpointing, replicas },
        } => {
            let args = crate::lab::ThroughputArgs {
                model,
                batch,
                precision,
                device,
                steps,
                repeats,
                threads,
                checkpointing,
                replicas,
            };
            bench::bench_throughput(&args)
        }
        Command::Bench { what: BenchWhat::Speedrun { config, runs, target, overrides } } => {
            bench::bench_speedrun(&config, &overrides, runs, target)
        }
        Command::Data { action: DataAction::Download { dataset, root, url, md5 } } => {
            datasets::data_download(&dataset, root, url, md5)
        }
        Command::Data { action: DataAction::Info { dataset, root } } => datasets::data_info(&dataset, root),
        Command::Dist { action: DistAction::Check { elements, timeout } } => {
            let c = crate::lab::dist_check(elements, std::time::Duration::from_secs(timeout))?;
            println!("{}", serde_json::to_string(&c).expect("serialisable"));
            Ok(())
        }
        Command::Sync { to: SyncTarget::Wandb { runs, project, entity, mode } } => {
            commands::sync_wandb(&runs, crate::lab::WandbSync { project, entity, mode })
        }
        Command::Data { action: DataAction::Preview { dataset, root, per_class, out } } => {
            datasets::data_preview(&dataset, root, per_class, &out)
        }
    }
}

/// The first line of a LibTorch error carried by a tch panic (tch unwraps LibTorch exceptions:
/// `... Err value: Torch("message\nException raised from ...")`), if the panic is one.
pub fn torch_message(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    let text =
        payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied())?;
    let start = text.find("Torch(\"")? + "Torch(\"".len();
    let msg = text[start..].split("\\n").next().unwrap_or("").trim_end_matches(['"', ')']);
    Some(msg.to_string())
}

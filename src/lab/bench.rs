//! Benchmarks as verbs: a model's training and inference images/s, and timed full trainings of
//! a recipe over several seeds. Each reports the machine's load beside its figures.

use crate::bench::speedrun::{run_once, summarize, warm_up, SpeedrunResult, Summary};
use crate::bench::throughput::{load_average, measure, Throughput, ThroughputSpec};
use crate::config::Config;
use crate::device::Precision;
use crate::error::{Error, Result};
use crate::models::ModelArgs;

/// What [`bench_throughput`] measures.
#[derive(Debug, Clone)]
pub struct ThroughputArgs {
    /// Registry name.
    pub model: String,
    /// Batch size.
    pub batch: i64,
    /// `auto`, `fp32`, `bf16` or `fp16`.
    pub precision: String,
    /// `auto`, `cpu` or `cuda`.
    pub device: String,
    /// Steps per timed repeat.
    pub steps: usize,
    /// Timed repeats.
    pub repeats: usize,
    /// Intra-op threads (0 = all cores).
    pub threads: i64,
    /// Train with gradient checkpointing (segmented models only).
    pub checkpointing: bool,
    /// Data-parallel replicas on CPU.
    pub replicas: usize,
}

/// What [`bench_throughput`] measured, and where.
#[derive(Debug, Clone)]
pub struct ThroughputReport {
    /// Images/s of every repeat and the medians.
    pub throughput: Throughput,
    /// The precision `auto` resolved to (or the one asked for).
    pub precision: Precision,
    /// The device, as `cpu` or `cuda:N`.
    pub device: String,
    /// Intra-op threads used.
    pub threads: i32,
    /// The one-minute load average before and after.
    pub load_average: (f64, f64),
}

/// Training and inference images/s of a model on synthetic batches (median of repeats).
/// Errors name the flags (`--device`, `--precision`), as the values came from them.
pub fn bench_throughput(a: &ThroughputArgs) -> Result<ThroughputReport> {
    crate::models::lookup(&a.model)?;
    crate::device::set_threads(a.threads);
    let device = crate::device::select_device(&a.device).map_err(as_flag("train.device", "--device"))?;
    let precision =
        crate::device::select_precision(&a.precision, device).map_err(as_flag("train.precision", "--precision"))?;
    let spec = ThroughputSpec {
        model: a.model.clone(),
        args: ModelArgs::default(),
        batch: a.batch,
        precision,
        device,
        warmup: 3,
        steps: a.steps,
        repeats: a.repeats,
        checkpointing: a.checkpointing,
        replicas: a.replicas,
    };
    let before = load_average();
    let throughput = measure(&spec)?;
    Ok(ThroughputReport {
        throughput,
        precision,
        device: crate::device::label(device),
        threads: tch::get_num_threads(),
        load_average: (before, load_average()),
    })
}

/// The device module speaks of config keys; a benchmark's values came from flags.
fn as_flag(key: &'static str, flag: &'static str) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Config(m) => Error::Config(m.replacen(&format!("`{key}`"), flag, 1)),
        other => other,
    }
}

/// What [`bench_speedrun`] measured.
#[derive(Debug, Clone)]
pub struct Speedrun {
    /// Seconds of the untimed warm-up.
    pub warmup_secs: f64,
    /// Every run, in seed order.
    pub runs: Vec<SpeedrunResult>,
    /// Accuracy and time, mean +- std, and the fraction at the target.
    pub summary: Summary,
    /// The precision the runs trained in.
    pub precision: Precision,
}

/// A step of [`bench_speedrun`] as it happens, with the one-minute load average then.
#[derive(Debug)]
pub enum SpeedrunEvent<'a> {
    /// The untimed warm-up took this many seconds.
    WarmedUp(f64, f64),
    /// A timed run finished.
    Ran(&'a SpeedrunResult, f64),
}

/// `runs` full trainings of the recipe `cfg` with seeds `seed..seed + runs`, after an untimed
/// warm-up; `progress` sees each step as it happens.
pub fn bench_speedrun(
    cfg: &Config,
    runs: u64,
    target_pct: f64,
    mut progress: impl FnMut(SpeedrunEvent),
) -> Result<Speedrun> {
    crate::dist::refuse_in_group("`bench speedrun`")?;
    crate::device::set_threads(cfg.train.threads);
    let (_, precision) = crate::device::resolve(&cfg.train)?;
    let warmup_secs = warm_up(cfg)?;
    progress(SpeedrunEvent::WarmedUp(warmup_secs, load_average()));
    let mut results = Vec::new();
    for i in 0..runs {
        let r = run_once(cfg, cfg.train.seed + i)?;
        progress(SpeedrunEvent::Ran(&r, load_average()));
        results.push(r);
    }
    let summary = summarize(&results, target_pct);
    Ok(Speedrun { warmup_secs, runs: results, summary, precision })
}

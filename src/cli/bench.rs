//! `microvision bench ...`: throughput and speedrun benchmarks, with the machine's load printed
//! beside each figure.

use std::path::Path;

use crate::config::Config;
use crate::error::Result;
use crate::models::ModelArgs;

/// `bench throughput` options.
pub struct ThroughputOpts {
    pub batch: i64,
    pub steps: usize,
    pub repeats: usize,
    pub threads: i64,
    pub checkpointing: bool,
    pub replicas: usize,
}

/// `microvision bench throughput`: training and inference images/s of a model.
pub fn bench_throughput(model: &str, precision: &str, device: &str, o: &ThroughputOpts) -> Result<()> {
    use crate::bench::throughput::{load_average, measure, ThroughputSpec};
    crate::models::lookup(model)?;
    crate::device::set_threads(o.threads);
    // The device module speaks of config keys; here the values came from flags.
    fn as_flag(key: &'static str, flag: &'static str) -> impl Fn(crate::Error) -> crate::Error {
        move |e| match e {
            crate::Error::Config(m) => crate::Error::Config(m.replacen(&format!("`{key}`"), flag, 1)),
            other => other,
        }
    }
    let device = crate::device::select_device(device).map_err(as_flag("train.device", "--device"))?;
    let precision =
        crate::device::select_precision(precision, device).map_err(as_flag("train.precision", "--precision"))?;
    let (batch, steps, repeats) = (o.batch, o.steps, o.repeats);
    let spec = ThroughputSpec {
        model: model.into(),
        args: ModelArgs::default(),
        batch,
        precision,
        device,
        warmup: 3,
        steps,
        repeats,
        checkpointing: o.checkpointing,
        replicas: o.replicas,
    };
    let load_before = load_average();
    let r = measure(&spec)?;
    println!(
        "{model} batch {batch} {} on {} ({} threads, {} replicas): train {:.0} img/s, inference {:.0} img/s \
         (median of {repeats} x {steps} steps; load average {load_before:.2} -> {:.2})",
        precision.name(),
        crate::device::label(device),
        tch::get_num_threads(),
        r.replicas,
        r.train_median,
        r.infer_median,
        load_average()
    );
    println!("{}", serde_json::to_string(&r).expect("serialisable"));
    Ok(())
}

/// `microvision bench speedrun`: N seeded runs of a recipe, accuracy and time summarised.
pub fn bench_speedrun(config: &Path, overrides: &[String], runs: u64, target: f64) -> Result<()> {
    use crate::bench::speedrun::{run_once, summarize, warm_up};
    use crate::bench::throughput::load_average;
    let cfg = Config::load(config, overrides)?;
    crate::device::set_threads(cfg.train.threads);
    let (_, precision) = crate::device::resolve(&cfg.train)?;
    let warm = warm_up(&cfg)?;
    eprintln!("warm-up (untimed): {warm:.1} s; load average {:.2}", load_average());
    let mut results = Vec::new();
    for i in 0..runs {
        let r = run_once(&cfg, cfg.train.seed + i)?;
        println!(
            "run {}/{runs} seed {}: test accuracy {:.2}%  train {:.1} s  setup {:.2} s  eval {:.1} s  ({}; load average {:.2})",
            i + 1,
            r.seed,
            r.test_acc * 100.0,
            r.train_secs,
            r.setup_secs,
            r.eval_secs,
            r.run_dir,
            load_average()
        );
        results.push(r);
    }
    let s = summarize(&results, target);
    println!(
        "{} runs of {}: test accuracy {:.2} +- {:.2}% ({:.0}% of runs >= {target}%), training {:.1} +- {:.1} s \
         ({}, {} threads{})",
        s.runs,
        config.display(),
        s.acc_mean,
        s.acc_std,
        s.at_target * 100.0,
        s.train_secs_mean,
        s.train_secs_std,
        precision.name(),
        tch::get_num_threads(),
        if cfg.train.replicas > 1 {
            format!(", train.replicas = {} on CPU", cfg.train.replicas)
        } else {
            String::new()
        }
    );
    println!(
        "{}",
        serde_json::json!({ "summary": s, "runs": results, "warmup_secs": warm, "precision": precision.name() })
    );
    Ok(())
}

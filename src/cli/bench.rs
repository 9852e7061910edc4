//! `microvision bench ...`: throughput and speedrun benchmarks, with the machine's load printed
//! beside each figure.

use std::path::Path;

use crate::config::Config;
use crate::error::Result;
use crate::lab::{self, SpeedrunEvent, ThroughputArgs};

/// `microvision bench throughput`: training and inference images/s of a model.
pub fn bench_throughput(a: &ThroughputArgs) -> Result<()> {
    let r = lab::bench_throughput(a)?;
    let t = &r.throughput;
    println!(
        "{} batch {} {} on {} ({} threads, {} replicas): train {:.0} img/s, inference {:.0} img/s \
         (median of {} x {} steps; load average {:.2} -> {:.2})",
        a.model,
        a.batch,
        r.precision.name(),
        r.device,
        r.threads,
        t.replicas,
        t.train_median,
        t.infer_median,
        a.repeats,
        a.steps,
        r.load_average.0,
        r.load_average.1
    );
    println!("{}", serde_json::to_string(t).expect("serialisable"));
    Ok(())
}

/// `microvision bench speedrun`: N seeded runs of a recipe, accuracy and time summarised.
pub fn bench_speedrun(config: &Path, overrides: &[String], runs: u64, target: f64) -> Result<()> {
    let cfg = Config::load(config, overrides)?;
    let mut done = 0;
    let s = lab::bench_speedrun(&cfg, runs, target, |event| match event {
        SpeedrunEvent::WarmedUp(secs, load) => eprintln!("warm-up (untimed): {secs:.1} s; load average {load:.2}"),
        SpeedrunEvent::Ran(r, load) => {
            done += 1;
            println!(
                "run {done}/{runs} seed {}: test accuracy {:.2}%  train {:.1} s  setup {:.2} s  eval {:.1} s  ({}; load \
                 average {load:.2})",
                r.seed,
                r.test_acc * 100.0,
                r.train_secs,
                r.setup_secs,
                r.eval_secs,
                r.run_dir,
            );
        }
    })?;
    let m = &s.summary;
    let replicas = if cfg.train.replicas > 1 {
        format!(", train.replicas = {} on CPU", cfg.train.replicas)
    } else {
        String::new()
    };
    println!(
        "{} runs of {}: test accuracy {:.2} +- {:.2}% ({:.0}% of runs >= {target}%), training {:.1} +- {:.1} s \
         ({}, {} threads{replicas})",
        m.runs,
        config.display(),
        m.acc_mean,
        m.acc_std,
        m.at_target * 100.0,
        m.train_secs_mean,
        m.train_secs_std,
        s.precision.name(),
        tch::get_num_threads(),
    );
    println!(
        "{}",
        serde_json::json!({ "summary": m, "runs": s.runs, "warmup_secs": s.warmup_secs, "precision": s.precision.name() })
    );
    Ok(())
}

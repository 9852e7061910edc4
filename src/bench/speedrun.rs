//! `microvision bench speedrun`: N full trainings of a recipe (default `configs/speedrun94.toml`)
//! with seeds `seed, seed + 1, ...`, each timed the way airbench times itself: training time from
//! the first step to the last (the epochs' step loops; per-epoch validation and checkpoints are
//! not in it), one-time setup (data-dependent init such as whitening, and the warm-up before the
//! first run) and the final test evaluation (with TTA) reported separately.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use crate::config::Config;
use crate::error::Result;
use crate::metrics::{mean_std, EvalResult};
use crate::train::callbacks::{Callback, EpochInfo};
use crate::train::Trainer;

/// One timed run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpeedrunResult {
    /// The run's seed.
    pub seed: u64,
    /// Test accuracy of the final weights (with the recipe's TTA), in [0, 1].
    pub test_acc: f64,
    /// Seconds of training: the sum of the epochs' step loops.
    pub train_secs: f64,
    /// Seconds of one-time setup (data-dependent initialisation).
    pub setup_secs: f64,
    /// Seconds of the final test evaluation.
    pub eval_secs: f64,
    /// Where the run's files are.
    pub run_dir: String,
}

/// Mean, sample standard deviation and the fraction at or above a target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Number of runs.
    pub runs: usize,
    /// Mean test accuracy (percent).
    pub acc_mean: f64,
    /// Sample standard deviation of the test accuracy (percent; 0 for one run).
    pub acc_std: f64,
    /// Mean training seconds.
    pub train_secs_mean: f64,
    /// Sample standard deviation of the training seconds.
    pub train_secs_std: f64,
    /// Fraction of runs with test accuracy >= the target.
    pub at_target: f64,
}

/// Summarises runs against a target accuracy in percent.
pub fn summarize(results: &[SpeedrunResult], target_pct: f64) -> Summary {
    let acc: Vec<f64> = results.iter().map(|r| r.test_acc * 100.0).collect();
    let secs: Vec<f64> = results.iter().map(|r| r.train_secs).collect();
    let ((acc_mean, acc_std), (train_secs_mean, train_secs_std)) = (mean_std(&acc), mean_std(&secs));
    let at_target = acc.iter().filter(|&&a| a >= target_pct).count() as f64 / acc.len().max(1) as f64;
    Summary { runs: results.len(), acc_mean, acc_std, train_secs_mean, train_secs_std, at_target }
}

/// Records the step-loop seconds of each epoch and when the last one ended.
#[derive(Default)]
struct Clock {
    train_secs: f64,
    last_epoch_end: Option<Instant>,
    eval_secs: f64,
}

struct ClockCallback(Rc<RefCell<Clock>>);

impl Callback for ClockCallback {
    fn epoch_end(&mut self, e: &EpochInfo) {
        let mut c = self.0.borrow_mut();
        c.train_secs += e.epoch_secs;
        c.last_epoch_end = Some(Instant::now());
    }
    fn fit_end(&mut self, _test: &EvalResult) {
        let mut c = self.0.borrow_mut();
        c.eval_secs = c.last_epoch_end.map_or(0.0, |t| t.elapsed().as_secs_f64());
    }
}

/// Trains `cfg` once with seed `seed` (console progress on) and times it.
pub fn run_once(cfg: &Config, seed: u64) -> Result<SpeedrunResult> {
    let mut cfg = cfg.clone();
    cfg.train.seed = seed;
    cfg.name = format!("{}-seed{seed}", cfg.name);
    cfg.train.progress = false; // epoch lines only: no per-step console work in the timed loop
    let mut trainer = Trainer::new(cfg)?;
    let clock = Rc::new(RefCell::new(Clock::default()));
    trainer.add_callback(Box::new(ClockCallback(clock.clone())));
    // metrics.jsonl and TensorBoard as for `train` (plots are left to `microvision plot`).
    let loggers = crate::track::Loggers::standard(&trainer.run_dir, &trainer.cfg);
    trainer.add_callback(loggers.callback());
    trainer.add_callback(crate::track::console(&trainer.cfg));
    let test = trainer.fit()?;
    loggers.close();
    let c = clock.borrow();
    Ok(SpeedrunResult {
        seed,
        test_acc: test.acc,
        train_secs: c.train_secs,
        setup_secs: trainer.setup_secs,
        eval_secs: c.eval_secs,
        run_dir: trainer.run_dir.display().to_string(),
    })
}

/// Untimed warm-up: a few training steps of the recipe's model (with its dataset's classes,
/// channels and input size, and each progressive-resizing size) at its batch size and precision
/// (first-call costs: kernel selection per shape, allocator growth). Returns its seconds.
pub fn warm_up(cfg: &Config) -> Result<f64> {
    use crate::bench::throughput::{measure, ThroughputSpec};
    crate::train::trainer::check_model(cfg)?; // a clear error before any step of a misfit size
    let start = Instant::now();
    let (device, precision) = crate::device::resolve(&cfg.train)?;
    let args = crate::train::trainer::model_args(cfg);
    for input_size in crate::data::loader::train_sides(&cfg.data) {
        let spec = ThroughputSpec {
            model: cfg.model.name.clone(),
            args: crate::models::ModelArgs { input_size, ..args.clone() },
            batch: cfg.data.batch_size,
            precision,
            device,
            warmup: 3,
            steps: 0,
            repeats: 0,
            checkpointing: false,
            replicas: cfg.train.replicas.max(1) as usize,
        };
        measure(&spec)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

//! One function per subcommand: a call into the library's verbs (`lab`) and its printing.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::Result;
use crate::lab::{self, Checkpoint, TrainOptions};

/// Prints warnings of a verb that did not fail it.
fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// `microvision train`: a new run from a config, or `--resume` of an existing run.
pub fn train(config: Option<PathBuf>, overrides: &[String], resume: Option<PathBuf>) -> Result<()> {
    let opts = TrainOptions { console: true, stop_on_signals: true };
    let trained = match (resume, config) {
        (Some(run), _) => lab::resume(&run, overrides, &opts)?,
        (None, Some(path)) => lab::train(Config::load(&path, overrides)?, &opts)?,
        (None, None) => unreachable!("clap requires --config or --resume"),
    };
    warn(&trained.warnings);
    let run = trained.run_dir.display();
    match trained.test {
        Some(test) => println!("test accuracy {:.2}%  (run directory: {run})", test.acc * 100.0),
        None => println!(
            "{run} finished (epoch {}) and has its test evaluation (eval.json): nothing to do. Evaluate again with: \
             microvision eval {run}",
            trained.epoch
        ),
    }
    Ok(())
}

/// `microvision config`: prints the resolved config (defaults and overrides applied).
pub fn show_config(config: Option<PathBuf>, overrides: &[String]) -> Result<()> {
    let cfg = match config {
        Some(path) => Config::load(&path, overrides)?,
        None => Config::defaults(overrides)?,
    };
    print!("{}", cfg.to_toml());
    Ok(())
}

/// `microvision eval`: evaluates a run's checkpoint on the test split and writes the result file.
pub fn eval(run: &Path, which: Checkpoint, overrides: &[String]) -> Result<()> {
    let e = lab::eval(run, which, overrides)?;
    if e.averaged {
        eprintln!("using the exponential moving average of the weights (train.ema_decay)");
    }
    let r = &e.result;
    println!(
        "checkpoint {which} (epoch {}): test accuracy {:.2}% (top-5 {:.2}%)  loss {:.4}  ({:.1} s, TTA level {} on \
         {:.1}% of images)",
        e.epoch,
        r.acc * 100.0,
        r.acc_top5 * 100.0,
        r.loss,
        r.secs,
        e.tta.level,
        r.tta_share * 100.0
    );
    for (name, acc) in e.classes.iter().zip(&r.per_class_acc) {
        println!("  {name:<12} {:.2}%", acc * 100.0);
    }
    println!("wrote {}", e.file.display());
    Ok(())
}

/// `microvision predict`: the most probable classes of image files.
pub fn predict(run: &Path, images: &[PathBuf], which: Checkpoint, top: usize) -> Result<()> {
    let predictor = lab::Predictor::open(run, which)?;
    if predictor.averaged {
        eprintln!("using the exponential moving average of the weights (train.ema_decay)");
    }
    for path in images {
        let p = predictor.predict_file(path, top)?;
        let ranked: Vec<String> = p.top.iter().map(|c| format!("{} {:.1}%", c.name, c.probability * 100.0)).collect();
        println!("{}: {}", path.display(), ranked.join(", "));
    }
    Ok(())
}

/// `microvision export`: the model as safetensors or TorchScript, with model.json.
pub fn export(run: &Path, which: Checkpoint, format: lab::Format, out: Option<&Path>) -> Result<()> {
    let e = lab::export(run, which, format, out)?;
    if e.averaged {
        eprintln!("using the exponential moving average of the weights (train.ema_decay)");
    }
    println!("wrote {} and {}", e.file.display(), e.description.display());
    Ok(())
}

/// Prints what `plot` drew.
fn print_plotted(p: &lab::Plotted, run: &Path) {
    warn(&p.warnings);
    for s in &p.skipped {
        eprintln!("skipped: {s}");
    }
    println!("wrote {} files into {}", p.files.len(), run.join("plots").display());
}

/// `microvision plot`: redraws a run's plots from its logs.
pub fn plot(run: &Path) -> Result<()> {
    print_plotted(&lab::plot(run)?, run);
    Ok(())
}

/// `microvision report`: writes a run's self-contained HTML report.
pub fn report(run: &Path, out: Option<&Path>) -> Result<()> {
    let r = lab::report(run, out)?;
    if let Some(p) = &r.plotted {
        print_plotted(p, run);
    }
    warn(&r.warnings);
    println!("wrote {}", r.path.display());
    Ok(())
}

/// `microvision lr-find`: the learning-rate range test, written to the run as JSON and a plot.
pub fn lr_find(config: &Path, overrides: &[String], sweep: lab::LrSweep) -> Result<()> {
    sweep.check()?; // the flags first: they are this command's own
    let found = lab::lr_find(Config::load(config, overrides)?, sweep)?;
    let rec = &found.record;
    println!(
        "swept {} steps from {:e} to {:e}",
        rec.lrs.len(),
        sweep.start,
        rec.lrs.last().copied().unwrap_or(sweep.start)
    );
    match (rec.suggested_lr, rec.min_loss_lr) {
        (Some(s), Some(m)) => println!(
            "suggested lr {s:.2e} (steepest descent of the smoothed loss); lowest loss at {m:.2e}, a tenth of it: {:.2e}",
            m / 10.0
        ),
        _ => println!("no suggestion: the sweep was too short (the loss exploded at once; lower --start)"),
    }
    println!("wrote {} and {}", found.files[0].display(), found.files[1].display());
    Ok(())
}

/// `microvision augment-preview`: a grid of training images as the configured augmentation draws them.
pub fn augment_preview(config: &Path, overrides: &[String], count: usize, out: &Path) -> Result<()> {
    let files = lab::augment_preview(&Config::load(config, overrides)?, count, out)?;
    println!("wrote {} and {}", files[0].display(), files[1].display());
    Ok(())
}

/// `microvision models --summary NAME`: a model's layers, as the run's model_summary plot shows.
pub fn model_summary(name: &str) -> Result<()> {
    let (layers, params, mflops) = lab::model_summary(name)?;
    println!("{:<28} {:<22} {:<18} {:>10} {:>9}", "layer", "type", "output", "params", "MFLOPs");
    for l in &layers {
        let shape = format!("{:?}", l.output_shape);
        println!("{:<28} {:<22} {:<18} {:>10} {:>9.2}", l.name, l.kind, shape, l.params, lab::layer_mflops(l));
    }
    println!("total: {params} parameters, {mflops:.1} MFLOPs per image");
    Ok(())
}

/// `microvision models`: the registry with parameter counts (and step memory with `--memory`).
pub fn models(memory: bool) -> Result<()> {
    if !memory {
        println!("{:<16} {:>11} {:>9}  about", "name", "params", "MFLOPs");
    } else {
        println!("{:<16} {:>11} {:>9} {:>11} {:>11}  about", "name", "params", "MFLOPs", "step MB", "ckpt MB");
    }
    let mb = |b: u64| format!("{:.0}", b as f64 / (1024.0 * 1024.0));
    // Measured model by model (a minute or more in all): print each as it comes.
    for m in crate::models::MODELS.iter().map(|e| lab::models_named(e.name, memory)) {
        let m = m?;
        match m.step_bytes {
            None => println!("{:<16} {:>11} {:>9.1}  {}", m.name, m.params, m.mflops_per_image, m.about),
            Some((plain, ckpt)) => println!(
                "{:<16} {:>11} {:>9.1} {:>11} {:>11}  {}",
                m.name,
                m.params,
                m.mflops_per_image,
                mb(plain),
                ckpt.map_or_else(|| "-".into(), mb),
                m.about
            ),
        }
    }
    if !memory {
        println!(
            "\n(--memory adds the measured memory of a training step at batch 128, with and without checkpointing)"
        );
        return Ok(());
    }
    println!("\nstep MB: memory of one fp32 training step (activations + temporaries) at batch 128 on CPU,");
    println!("measured at batch 8 and 16 and extrapolated; ckpt MB: the same with train.grad_checkpointing.");
    Ok(())
}

/// `microvision compare`: a table (or CSV) and overlaid curves of several runs.
pub fn compare(runs: &[PathBuf], csv: bool, plot_dir: Option<&Path>) -> Result<()> {
    let c = lab::compare(runs, plot_dir)?;
    for (dir, why) in &c.skipped {
        eprintln!("skipping {}: {why}", dir.display());
    }
    warn(&c.warnings);
    print!("{}", c.table(csv));
    if let Some(dir) = c.curves.first().and_then(|f| f.parent()) {
        eprintln!("curves: {0}/compare_val_acc.png, {0}/compare_val_loss.png (and .svg)", dir.display());
    }
    Ok(())
}

/// `microvision sync wandb RUN...`: each run into W&B, with where it went.
pub fn sync_wandb(runs: &[PathBuf], to: lab::WandbSync) -> Result<()> {
    for s in lab::sync_wandb(runs, &to)? {
        let state = if s.finished { "" } else { " (unfinished: W&B shows it as failed)" };
        let place = match (&s.url, &s.offline_dir) {
            (Some(url), _) => url.clone(),
            (None, Some(dir)) => format!("offline in {dir}; upload it with `wandb sync {dir}`"),
            (None, None) => String::new(),
        };
        println!("{}: W&B run {}, {} metric lines{state}: {place}", s.run.display(), s.run_id, s.records);
    }
    Ok(())
}

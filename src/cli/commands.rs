//! One function per subcommand: its calls into the library and its printing.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::data;
use crate::error::Result;
use crate::fsio;
use crate::models::{mflops, Model, ModelArgs, MODELS};
use crate::train::eval::evaluate;
use crate::train::eval::{EvalFile, Tta};
use crate::train::trainer::loader_spec;
use crate::train::{run_dir, Trainer};

/// `microvision train`: a new run from a config, or `--resume` of an existing run.
pub fn train(config: Option<PathBuf>, overrides: &[String], resume: Option<PathBuf>) -> Result<()> {
    let mut trainer = match (resume, config) {
        (Some(run), _) => Trainer::resume(&run)?,
        (None, Some(path)) => Trainer::new(Config::load(&path, overrides)?)?,
        (None, None) => unreachable!("clap requires --config or --resume"),
    };
    if trainer.training_done() && trainer.run_dir.join("eval.json").exists() {
        println!(
            "{} finished (epoch {}) and has its test evaluation (eval.json): nothing to do. Evaluate again with: \
             microvision eval {}",
            trainer.run_dir.display(),
            trainer.state.epoch,
            trainer.run_dir.display()
        );
        return Ok(());
    }
    // SIGINT/SIGTERM: finish the current step, save `last`, exit 130 with the resume command. A
    // second one quits at once (e.g. during an evaluation); the last checkpoint stays intact.
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, trainer.stop.clone());
        let _ = signal_hook::flag::register(signal, trainer.stop.clone());
    }
    eprintln!(
        "run {}  model {} ({} params)  device {}  precision {}",
        trainer.run_dir.display(),
        trainer.cfg.model.name,
        trainer.model.num_params(),
        crate::device::label(trainer.device),
        trainer.precision.name()
    );
    // Part of the model's recipe that no config key shows (airbench's whitening bias).
    for (name, epochs) in trainer.model.net.trained_for_epochs() {
        eprintln!(
            "note: {} trains `{name}` for the first {epochs} epochs only, then freezes it",
            trainer.cfg.model.name
        );
    }
    let test = crate::analysis::tracked::fit(&mut trainer)?;
    println!("test accuracy {:.2}%  (run directory: {})", test.acc * 100.0, trainer.run_dir.display());
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

/// `-data<CRC32C>` when `--set` chose another test set than the run's (`data.dataset`, `root`
/// or `limit_test`), so the evaluation of the run's own test set is not replaced.
fn test_set_suffix(run: &Path, cfg: &Config) -> Result<String> {
    let saved = run_dir::read_config(run)?;
    let test_set = |c: &Config| format!("{}\n{}\n{}", c.data.dataset, c.data.root.display(), c.data.limit_test);
    Ok(if test_set(&saved) == test_set(cfg) {
        String::new()
    } else {
        format!("-data{:08x}", crc32c::crc32c(test_set(cfg).as_bytes()))
    })
}

/// `microvision eval`: evaluates a run's checkpoint on the test split and writes the result file.
pub fn eval(run: &Path, which: &str, overrides: &[String]) -> Result<()> {
    let cfg = run_dir::read_config_with(run, overrides)?;
    let (device, precision) = crate::device::resolve(&cfg.train)?;
    let data = run_dir::load_run_data(run, &cfg)?;
    let (model, loaded) = super::predict::checkpointed_model(run, &cfg, which, device)?;
    let loader = crate::data::loader::Loader::new(&data.test.to_device(device), loader_spec(&cfg, &data, false));
    let kind = precision.autocast_kind();
    let tta = Tta::from_config(&cfg.train);
    let result = evaluate(&model, &loader, kind, data.test.classes.len(), tta);
    // Another precision than the one the run trained in (env.json) gives other numbers: keep both.
    let trained_in = run_dir::read_env(run).and_then(|v| v["precision"].as_str().map(String::from));
    let precision_suffix = match trained_in {
        Some(p) if p != precision.name() => format!("-{}", precision.name()),
        _ => String::new(),
    };
    let out =
        run.join(format!("eval-{which}{}{precision_suffix}{}.json", tta.file_suffix(), test_set_suffix(run, &cfg)?));
    fsio::write_json(&out, &EvalFile::new(&result, &data.test.classes, which, tta))?;
    println!(
        "checkpoint {which} (epoch {}): test accuracy {:.2}% (top-5 {:.2}%)  loss {:.4}  ({:.1} s, TTA level {} on \
         {:.1}% of images)",
        loaded.state.epoch,
        result.acc * 100.0,
        result.acc_top5 * 100.0,
        result.loss,
        result.secs,
        cfg.train.tta,
        result.tta_share * 100.0
    );
    for (name, acc) in data.test.classes.iter().zip(&result.per_class_acc) {
        println!("  {name:<12} {:.2}%", acc * 100.0);
    }
    println!("wrote {}", out.display());
    Ok(())
}

/// `microvision plot`: redraws a run's plots from its logs.
pub fn plot(run: &Path) -> Result<()> {
    let cfg = run_dir::read_config(run)?;
    let test = match data::load_test(&cfg.data) {
        Ok(test) => Some(test),
        Err(e) => {
            eprintln!("warning: test images not available, prediction grids skipped: {e}");
            None
        }
    };
    let plots = crate::analysis::plots::draw_run(run, test.as_ref())?;
    for s in &plots.skipped {
        eprintln!("skipped: {s}");
    }
    println!("wrote {} files into {}", plots.files.len(), run.join("plots").display());
    Ok(())
}

/// `microvision report`: writes a run's self-contained HTML report.
pub fn report(run: &Path, out: Option<PathBuf>) -> Result<()> {
    let have_plots =
        ["loss", "accuracy", "model_summary"].iter().all(|s| run.join("plots").join(format!("{s}.png")).exists());
    if !have_plots {
        plot(run)?;
    }
    if let Some(o) = out.as_deref().filter(|o| !o.is_dir()) {
        let parent = o.parent().filter(|p| !p.as_os_str().is_empty());
        if o.to_string_lossy().ends_with('/') || parent.is_some_and(|p| !p.is_dir()) {
            let dir = if o.to_string_lossy().ends_with('/') { o } else { parent.unwrap_or(o) };
            return Err(crate::config_err!("--out {}: {} is not a directory", o.display(), dir.display()));
        }
    }
    let path = crate::analysis::report::write(run, out.as_deref())?;
    println!("wrote {}", path.display());
    Ok(())
}

/// `microvision lr-find`: the learning-rate range test, written to the run as JSON and a plot.
pub fn lr_find(config: &Path, overrides: &[String], (start, end, steps): (f64, f64, usize)) -> Result<()> {
    // Beyond 1e4 no learning rate trains; and the geometric sweep would overflow to inf for
    // end / start beyond f64 (1e-310 .. 1e4).
    if !(start >= 1e-12 && end > start && end <= 1e4 && steps >= 5) {
        return Err(crate::Error::Config(format!(
            "lr-find: expected 1e-12 <= --start < --end <= 1e4 and --steps >= 5 (got {start:e}, {end:e}, {steps})"
        )));
    }
    let mut cfg = Config::load(config, overrides)?;
    cfg.name = format!("{}{}", cfg.name, run_dir::LR_SWEEP_SUFFIX);
    cfg.train.on_nan = "stop".into();
    let mut trainer = Trainer::new(cfg)?;
    let rec = trainer.lr_find(start, end, steps)?;
    fsio::write_json(&trainer.run_dir.join("lr_find.json"), &rec)?;
    let chart = crate::analysis::plots::lr_find_chart(&rec, &trainer.cfg.model.name);
    let files = crate::analysis::plots::save(&chart, &trainer.run_dir, "lr_find")?;
    println!("swept {} steps from {start:e} to {:e}", rec.lrs.len(), rec.lrs.last().copied().unwrap_or(start));
    match (rec.suggested_lr, rec.min_loss_lr) {
        (Some(s), Some(m)) => println!(
            "suggested lr {s:.2e} (steepest descent of the smoothed loss); lowest loss at {m:.2e}, a tenth of it: {:.2e}",
            m / 10.0
        ),
        _ => println!("no suggestion: the sweep was too short (the loss exploded at once; lower --start)"),
    }
    println!("wrote {} and {}", trainer.run_dir.join("lr_find.json").display(), files[0].display());
    Ok(())
}

/// `microvision augment-preview`: a grid of training images as the configured augmentation draws them.
pub fn augment_preview(config: &Path, overrides: &[String], count: usize, out: &Path) -> Result<()> {
    let cfg = Config::load(config, overrides)?;
    let data = data::load(&cfg.data, cfg.train.seed)?;
    let mut spec = crate::train::trainer::loader_spec(&cfg, &data, true);
    if data.train.is_empty() {
        return Err(crate::Error::Data("the training split is empty".into()));
    }
    spec.batch_size = count.clamp(1, data.train.len() as usize) as i64;
    spec.prefetch = 0;
    let loader = crate::data::loader::Loader::new(&data.train, spec);
    let batch = loader.epoch(1).next().ok_or_else(|| crate::Error::Config("the training split is empty".into()))?;
    let grid = crate::analysis::plots::augment_grid(&batch, &data.train.classes, &data.mean, &data.std);
    let files = crate::analysis::plots::save(&grid, out, "augment_preview")?;
    println!("wrote {} and {}", files[0].display(), files[1].display());
    Ok(())
}

/// `microvision models --summary NAME`: a model's layers, as the run's model_summary plot shows.
pub fn model_summary(name: &str) -> Result<()> {
    let args = ModelArgs::default();
    let model = Model::new(name, &args, tch::Device::Cpu)?;
    println!("{:<28} {:<22} {:<18} {:>10} {:>9}", "layer", "type", "output", "params", "MFLOPs");
    for l in model.summary(&args) {
        let shape = format!("{:?}", l.output_shape);
        println!("{:<28} {:<22} {:<18} {:>10} {:>9.2}", l.name, l.kind, shape, l.params, mflops(l.macs));
    }
    println!("total: {} parameters, {:.1} MFLOPs per image", model.num_params(), model.mflops_per_image(&args));
    Ok(())
}

/// `microvision models`: the registry with parameter counts (and step memory with `--memory`).
pub fn models(memory: bool) -> Result<()> {
    use crate::bench::memory::step_bytes_at_128;
    let args = ModelArgs::default();
    if !memory {
        println!("{:<16} {:>11} {:>9}  about", "name", "params", "MFLOPs");
    } else {
        println!("{:<16} {:>11} {:>9} {:>11} {:>11}  about", "name", "params", "MFLOPs", "step MB", "ckpt MB");
    }
    for entry in MODELS {
        let model = Model::new(entry.name, &args, tch::Device::Cpu)?;
        let per_image = model.mflops_per_image(&args); // forward pass, one 32x32 image
        if !memory {
            println!("{:<16} {:>11} {:>9.1}  {}", entry.name, model.num_params(), per_image, entry.about);
            continue;
        }
        let mb = |b: u64| format!("{:.0}", b as f64 / (1024.0 * 1024.0));
        let plain = mb(step_bytes_at_128(entry.name, &args, false)?);
        let ckpt = match model.net.segments() {
            Some(_) => mb(step_bytes_at_128(entry.name, &args, true)?),
            None => "-".into(),
        };
        println!(
            "{:<16} {:>11} {:>9.1} {:>11} {:>11}  {}",
            entry.name,
            model.num_params(),
            per_image,
            plain,
            ckpt,
            entry.about
        );
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
pub fn compare(runs: &[PathBuf], csv: bool, plot_dir: Option<PathBuf>) -> Result<()> {
    use crate::analysis::compare::{curves, group, summarize, table};
    use crate::analysis::plots::save;
    let mut seen = std::collections::HashSet::new();
    for r in runs {
        // The same run twice would count as two seeds of one recipe.
        if !seen.insert(std::fs::canonicalize(r).unwrap_or_else(|_| r.clone())) {
            return Err(crate::config_err!("run {} is given twice; expected distinct run directories", r.display()));
        }
    }
    // `compare runs/demo-*` also matches the sweeps that `lr-find` names `demo-lrfind-*`.
    let (sweeps, runs): (Vec<&PathBuf>, Vec<&PathBuf>) = runs.iter().partition(|r| run_dir::is_lr_sweep(r));
    for s in &sweeps {
        eprintln!("skipping {}: a learning-rate sweep (lr-find), not a training run", s.display());
    }
    if runs.is_empty() {
        return Err(crate::config_err!("no training runs to compare, only learning-rate sweeps"));
    }
    let mut summaries = runs.iter().map(|r| summarize(r)).collect::<Result<Vec<_>>>()?;
    // A run with no epoch in its metrics.jsonl has no number to average in.
    summaries.retain(|s| {
        if s.epochs == 0 {
            eprintln!("skipping {}: no finished epoch in its metrics.jsonl", s.dir.display());
        }
        s.epochs > 0
    });
    if summaries.is_empty() {
        return Err(crate::config_err!("no run to compare has a finished epoch in its metrics.jsonl"));
    }
    let groups = group(summaries);
    print!("{}", table(&groups, csv));
    let dir = plot_dir.unwrap_or_else(|| runs[0].parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf));
    let (acc, loss) = curves(&groups)?;
    save(&acc, &dir, "compare_val_acc")?;
    save(&loss, &dir, "compare_val_loss")?;
    eprintln!("curves: {0}/compare_val_acc.png, {0}/compare_val_loss.png (and .svg)", dir.display());
    Ok(())
}

//! All the plots of one run, from its directory (and the test images, for the image grids).

use std::path::{Path, PathBuf};

use super::{save, Bars, Heatmap, ImageGrid, LineChart, Table, Tile};
use crate::config::Config;
use crate::data::Dataset;
use crate::error::Result;
use crate::models::{context::LayerRecord, Model};
use crate::run::{self, EvalFile, History};
use crate::train::schedule::Schedule;
use crate::train::trainer::model_args;

/// What [`draw_run`] wrote.
#[derive(Debug, Default)]
pub struct RunPlots {
    /// Every file written (PNG and SVG).
    pub files: Vec<PathBuf>,
    /// Plots that could not be drawn, with the reason (e.g. no test images at hand).
    pub skipped: Vec<String>,
    /// Lines of `metrics.jsonl` that were not JSON and were left out (the caller may warn).
    pub skipped_lines: usize,
}

/// The plots [`draw_run`] draws of every finished run (the prediction grids also need the test
/// images, and are left out here).
pub const RUN_PLOTS: &[&str] =
    &["loss", "accuracy", "lr", "model_summary", "confusion", "confusion_normalized", "per_class_accuracy"];

/// The files of [`RUN_PLOTS`] missing from `run/plots/` (PNG and SVG), e.g. after the run was
/// stopped while drawing them.
pub fn missing_plots(run: &Path) -> Vec<PathBuf> {
    let dir = run.join("plots");
    let files = RUN_PLOTS.iter().flat_map(|s| ["png", "svg"].map(|ext| dir.join(format!("{s}.{ext}"))));
    files.filter(|f| !f.exists()).collect()
}

/// Images in the prediction grid and in the confidently-wrong gallery.
const GRID: usize = 40;

/// Draws every plot of the run in `run` into `run/plots/`. `test` is the test split (the images
/// for the prediction grids); without it those two plots are skipped, the others still drawn.
pub fn draw_run(run: &Path, test: Option<&Dataset>) -> Result<RunPlots> {
    let dir = run.join("plots");
    let cfg = run::read_config(run)?;
    let h = History::read(run)?;
    let mut out = RunPlots { skipped_lines: h.skipped_lines, ..RunPlots::default() };
    let mut add = |fig: &dyn Fn(&Path) -> Result<Vec<PathBuf>>| -> Result<()> {
        out.files.extend(fig(&dir)?);
        Ok(())
    };
    let curves = |title: &str, y: &str, a: (&str, Vec<(f64, f64)>), b: (&str, Vec<(f64, f64)>)| LineChart {
        title: format!("{title} ({})", cfg.name),
        x_label: "epoch".into(),
        y_label: y.into(),
        series: vec![(a.0.into(), a.1), (b.0.into(), b.1)],
        log10_x: false,
        bands: Vec::new(),
    };
    // The training loss includes label smoothing, the validation loss does not: say so, or the
    // gap between the curves reads as under-fitting.
    let smoothing = cfg.train.label_smoothing;
    let train = if smoothing > 0.0 { format!("train (label smoothing {smoothing})") } else { "train".into() };
    // Without a validation split the per-epoch evaluation ran on the test split: label it so.
    let held = cfg.data.scored_on();
    let loss = curves("Loss", "cross-entropy", (&train, h.series(|r| r.train_loss)), (held, h.series(|r| r.val_loss)));
    add(&|d| save(&loss, d, "loss"))?;
    let pct = |v: f64| v * 100.0;
    let acc = curves(
        "Accuracy",
        "top-1 accuracy (%)",
        ("train", h.series(|r| pct(r.train_acc))),
        (held, h.series(|r| pct(r.val_acc))),
    );
    add(&|d| save(&acc, d, "accuracy"))?;
    add(&|d| save(&lr_chart(&h, &cfg), d, "lr"))?;
    let model = Model::new(&cfg.model.name, &model_args(&cfg), tch::Device::Cpu)?;
    add(&|d| save(&summary_table(&model.summary(&model_args(&cfg)), &cfg.model.name), d, "model_summary"))?;
    let Some(eval) = &h.eval else {
        out.skipped.push("confusion matrix, per-class accuracy, predictions: the run has no eval.json yet".into());
        return Ok(out);
    };
    for (normalized, stem) in [(false, "confusion"), (true, "confusion_normalized")] {
        add(&|d| save(&confusion(eval, normalized), d, stem))?;
    }
    let bars = Bars {
        title: format!("Per-class test accuracy ({:.2}% overall)", eval.accuracy * 100.0),
        labels: eval.classes.clone(),
        values: eval.per_class_accuracy.iter().map(|a| a * 100.0).collect(),
        max: 100.0,
        x_label: "accuracy (%)".into(),
    };
    add(&|d| save(&bars, d, "per_class_accuracy"))?;
    match test {
        Some(test) if test.len() as usize == eval.predictions.len() => {
            let labels = Vec::<i64>::try_from(test.labels.to_device(tch::Device::Cpu)).unwrap_or_default();
            let (grid, wrong) = prediction_grids(eval, test, &labels);
            add(&|d| save(&grid, d, "predictions"))?;
            add(&|d| save(&wrong, d, "confident_wrong"))?;
        }
        Some(_) | None => out
            .skipped
            .push("predictions, confident_wrong: need the test images and per-image predictions in eval.json".into()),
    }
    Ok(out)
}

/// The schedule as configured, at every step (the pure function the trainer uses), with the
/// learning rates actually logged on top; with Muon also the conv filters' rate (the same
/// schedule scaled by `optim.muon_lr / optim.lr`, as the optimizer applies it).
pub fn lr_chart(h: &History, cfg: &Config) -> LineChart {
    let mut series = Vec::new();
    if let Some(last) = h.epochs.last().filter(|r| r.epoch > 0 && r.step > 0) {
        let per_epoch = (last.step / last.epoch) as u64;
        let total = per_epoch * cfg.train.epochs as u64;
        let schedule = Schedule::from_config(&cfg.schedule, per_epoch);
        let stride = (total / 2000).max(1) as usize;
        // Step s (0-based) trains at lr(s) and is logged as step s + 1: draw it there.
        let pts: Vec<(f64, f64)> =
            (0..total).step_by(stride).map(|s| ((s + 1) as f64, schedule.lr(cfg.optim.lr, s, total))).collect();
        let muon = (cfg.optim.name == crate::config::OptimName::Muon).then(|| {
            let ratio = cfg.optim.muon_lr / cfg.optim.lr;
            // optim.lr_scales multiply both rates of the parameters they name.
            let label = if cfg.optim.lr_scales.is_empty() {
                "muon (conv filters)"
            } else {
                "muon (conv filters, before lr_scales)"
            };
            (label.to_string(), pts.iter().map(|&(x, y)| (x, y * ratio)).collect())
        });
        series.push((format!("{} schedule", cfg.schedule.name), pts));
        series.extend(muon);
    }
    let logged: Vec<(f64, f64)> = h.steps.iter().map(|s| (s.step as f64, s.lr)).collect();
    if !logged.is_empty() {
        series.push(("logged".into(), logged));
    }
    LineChart {
        title: format!("Learning rate ({})", cfg.name),
        x_label: "step".into(),
        y_label: "learning rate".into(),
        series,
        log10_x: false,
        bands: Vec::new(),
    }
}

/// The confusion matrix as counts (shaded by row share) or row-normalised percentages.
pub fn confusion(eval: &EvalFile, normalized: bool) -> Heatmap {
    let rows = &eval.confusion_matrix;
    let share = |r: &Vec<u64>, v: u64| v as f64 / r.iter().sum::<u64>().max(1) as f64;
    Heatmap {
        title: if normalized { "Confusion matrix (% of true class)" } else { "Confusion matrix (counts)" }.into(),
        labels: eval.classes.clone(),
        shade: rows.iter().map(|r| r.iter().map(|&v| share(r, v)).collect()).collect(),
        text: rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|&v| if normalized { format!("{:.1}", 100.0 * share(r, v)) } else { v.to_string() })
                    .collect()
            })
            .collect(),
    }
}

/// The first test images with their predictions, and the most confidently wrong ones.
fn prediction_grids(eval: &EvalFile, test: &Dataset, labels: &[i64]) -> (ImageGrid, ImageGrid) {
    let name = |c: i64| eval.classes.get(c as usize).cloned().unwrap_or_else(|| c.to_string());
    let tile = |i: usize| {
        let (t, p, conf) = (labels[i], eval.predictions[i], eval.confidences.get(i).copied().unwrap_or(0.0));
        let caption = vec![format!("true {}", name(t)), format!("pred {} {:.0}%", name(p), conf * 100.0)];
        Tile::from_images(&test.images, i as i64, caption, t != p)
    };
    let n = labels.len().min(eval.predictions.len());
    let mut wrong: Vec<usize> = (0..n).filter(|&i| labels[i] != eval.predictions[i]).collect();
    let conf = |i: &usize| eval.confidences.get(*i).copied().unwrap_or(0.0);
    wrong.sort_by(|a, b| conf(b).total_cmp(&conf(a)).then(a.cmp(b)));
    let grid = ImageGrid {
        title: format!("Test predictions (first {}; wrong ones framed red)", GRID.min(n)),
        tiles: (0..GRID.min(n)).map(tile).collect(),
        cols: 10,
        judged: true,
    };
    let gallery = ImageGrid {
        title: format!("Most confidently wrong test images ({} of {} wrong)", GRID.min(wrong.len()), wrong.len()),
        tiles: wrong.iter().take(GRID).map(|&i| tile(i)).collect(),
        cols: 10,
        judged: true,
    };
    (grid, gallery)
}

/// The model summary as a table: layer, type, output shape, parameters.
pub fn summary_table(layers: &[LayerRecord], model: &str) -> Table {
    let total: i64 = layers.iter().map(|l| l.params).sum();
    let macs: u64 = layers.iter().map(|l| l.macs).sum();
    let shape = |s: &[i64]| format!("({})", s.iter().map(i64::to_string).collect::<Vec<_>>().join(", "));
    let mut rows: Vec<Vec<String>> = layers
        .iter()
        .map(|l| vec![l.name.clone(), l.kind.clone(), shape(&l.output_shape), l.params.to_string()])
        .collect();
    rows.push(vec![
        "total".into(),
        format!("{:.1} MFLOPs", crate::models::mflops(macs)),
        String::new(),
        total.to_string(),
    ]);
    Table {
        title: format!("Model summary: {model}"),
        header: ["layer", "type", "output shape", "params"].map(String::from).to_vec(),
        rows,
    }
}

//! `microvision compare`: one table over runs (model, dataset, parameters, epochs, best and final
//! accuracy, training time, images/s), as Markdown or CSV; unfinished runs are marked. Runs whose configs differ only in the
//! seed are grouped, their numbers shown as mean +- std; [`curves`] overlays their validation curves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::plots::LineChart;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::mean_std;
use crate::run::{self, Env, EpochRow, History};

/// The numbers of one run, read from its directory.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Run directory.
    pub dir: PathBuf,
    /// Resolved config.
    pub config: Config,
    /// Trainable parameters (env.json).
    pub params: i64,
    /// Epochs completed.
    pub epochs: usize,
    /// Best validation accuracy.
    pub best_acc: f64,
    /// Final test accuracy (eval.json), or the last validation accuracy if the run is unfinished.
    pub final_acc: f64,
    /// Training seconds (sum of epoch times).
    pub train_secs: f64,
    /// Median training images/s over epochs.
    pub img_per_s: f64,
    /// Whether the run has its final test evaluation (eval.json).
    pub finished: bool,
    /// `model.init_from` as grouping compares it: a source run directory stands for its recipe.
    pub init_source: String,
    /// Lines of its `metrics.jsonl` that were not JSON and were left out.
    pub skipped_lines: usize,
}

/// Reads a run directory.
pub fn summarize(dir: &Path) -> Result<RunSummary> {
    let config = run::read_config(dir)?;
    let env = Env::read(dir);
    let params = env.as_ref().map_or(0, |e| e.num_params);
    // metrics.jsonl and eval.json as History reads them for the plots and the report.
    let h = History::read(dir).map_err(|e| Error::Checkpoint(format!("{}: {e}", dir.display())))?;
    let val_acc: Vec<f64> = h.epochs.iter().map(|r| r.val_acc).filter(|a| a.is_finite()).collect();
    let final_acc = h.eval.as_ref().map(|e| e.accuracy).or_else(|| val_acc.last().copied()).unwrap_or(0.0);
    Ok(RunSummary {
        dir: dir.to_path_buf(),
        params,
        epochs: val_acc.len(),
        // Without a validation split the per-epoch figures are test figures: no best is chosen.
        best_acc: if config.data.has_val_split() { h.best_val_acc().unwrap_or(0.0) } else { f64::NAN },
        final_acc,
        train_secs: h.train_secs(),
        img_per_s: h.median_img_per_s().unwrap_or(0.0),
        finished: h.eval.is_some(),
        init_source: init_source(&config, env.as_ref(), MAX_INIT_CHAIN),
        skipped_lines: h.skipped_lines,
        config,
    })
}

/// How many `init_from` links [`init_source`] follows (fine-tune of a fine-tune of ...).
const MAX_INIT_CHAIN: u32 = 8;

/// `model.init_from` of a run (its config and `env.json`) as grouping compares it: a source run
/// directory stands for its recipe (dataset, model and a checksum of the rest) and the epoch the
/// run took its weights at, so fine-tunes of sources that differ only in the seed group together;
/// a file, a missing directory or no source stand for themselves.
fn init_source(config: &Config, env: Option<&Env>, links: u32) -> String {
    let from = &config.model.init_from;
    let dir = Path::new(from);
    if from.is_empty() || links == 0 || !dir.join("config.toml").is_file() {
        return from.clone();
    }
    let Ok(mut src) = run::read_config(dir) else {
        return from.clone();
    };
    src.model.init_from = init_source(&src, Env::read(dir).as_ref(), links - 1);
    let crc = crc32c::crc32c(recipe(&src).to_toml().as_bytes());
    // The epoch recorded when the weights were taken: the source may have trained on since.
    let epoch = env.and_then(|e| e.init_from.as_ref()?.epoch).map_or(String::new(), |e| format!(" at epoch {e}"));
    format!("a {} {} run{epoch} (recipe {crc:08x})", src.data.dataset, src.model.name)
}

/// The recipe of a run, with its `init_from` as [`init_source`] sees it.
fn run_recipe(r: &RunSummary) -> Config {
    let mut c = recipe(&r.config);
    c.model.init_from = r.init_source.clone();
    c
}

/// A group's recipe as the table shows it: `init_from` is the source's path where the group has
/// one source, else the sources' common recipe and their number.
fn shown_recipe(g: &[RunSummary]) -> Config {
    let mut c = run_recipe(&g[0]);
    let sources: BTreeSet<&String> = g.iter().map(|r| &r.config.model.init_from).collect();
    c.model.init_from = match sources.len() {
        1 => g[0].config.model.init_from.clone(),
        n => format!("{} x{n}", g[0].init_source),
    };
    c
}

/// Groups runs whose configs are equal apart from the seed and the run name (and whose
/// `init_from` sources, if runs, are so too). Unfinished runs
/// (no final test) never share a group with finished ones: their last number is a validation one.
pub fn group(runs: Vec<RunSummary>) -> Vec<Vec<RunSummary>> {
    let key = |r: &RunSummary| format!("{}{}", r.finished, run_recipe(r).to_toml());
    let mut groups: Vec<(String, Vec<RunSummary>)> = Vec::new();
    for r in runs {
        let k = key(&r);
        match groups.iter_mut().find(|(gk, _)| *gk == k) {
            Some((_, g)) => g.push(r),
            None => groups.push((k, vec![r])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// A config without what is not part of the recipe: the seed, the run name, tracking, and where
/// the data and outputs lie.
fn recipe(c: &Config) -> Config {
    let mut c = c.clone();
    c.train.seed = 0;
    c.name.clear();
    c.track = Default::default();
    (c.data.root, c.output) = (Default::default(), Default::default());
    c
}

/// The recipe keys whose values differ between the groups, with each group's value, in key
/// order: what an ablation varied (the model and dataset have columns of their own, the
/// progress display is not part of a recipe).
pub fn differing_keys(groups: &[Vec<RunSummary>]) -> Vec<(String, Vec<String>)> {
    const SHOWN_ELSEWHERE: &[&str] = &["model.name", "data.dataset", "train.progress"];
    let flat: Vec<BTreeMap<String, String>> = groups.iter().map(|g| flatten(&shown_recipe(g))).collect();
    let keys: BTreeSet<&String> =
        flat.iter().flat_map(|f| f.keys()).filter(|k| !SHOWN_ELSEWHERE.contains(&k.as_str())).collect();
    keys.into_iter()
        .filter_map(|k| {
            let values: Vec<String> = flat.iter().map(|f| f.get(k).cloned().unwrap_or_else(|| "-".into())).collect();
            values.iter().any(|v| *v != values[0]).then(|| (k.clone(), values))
        })
        .collect()
}

/// `section.key` -> value (as TOML writes it) of every key of a config.
fn flatten(c: &Config) -> BTreeMap<String, String> {
    c.leaves()
        .into_iter()
        .map(|(k, v)| match v {
            // An empty text (e.g. no `model.init_from`) is shown as TOML writes it, not as a blank cell.
            toml::Value::String(s) if s.is_empty() => (k, "\"\"".into()),
            toml::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

/// At most this many differing keys become table columns; the others are listed under it.
const MAX_KEY_COLUMNS: usize = 6;

fn cell(values: &[f64], scale: f64, decimals: usize) -> String {
    if values.iter().all(|v| v.is_nan()) {
        return "-".into(); // e.g. no best validation accuracy: the runs had no validation split
    }
    let (m, s) = mean_std(values);
    if values.len() > 1 {
        format!("{:.*} +- {:.*}", decimals, m * scale, decimals, s * scale)
    } else {
        format!("{:.*}", decimals, m * scale)
    }
}

/// The comparison table: Markdown (mean +- std in a cell) for reading, or CSV with one number
/// per cell (`_mean` and `_std` columns) for pandas and spreadsheets.
pub fn table(groups: &[Vec<RunSummary>], csv: bool) -> String {
    if csv {
        return csv_table(groups);
    }
    let header =
        ["run", "model", "dataset", "params", "seeds", "epochs", "best val acc %", "final acc %", "train s", "img/s"];
    let diff = differing_keys(groups);
    let shown = &diff[..diff.len().min(MAX_KEY_COLUMNS)];
    let mut rows = vec![header.iter().map(|s| s.to_string()).chain(shown.iter().map(|d| d.0.clone())).collect()];
    let labels = group_labels(groups);
    for (gi, g) in groups.iter().enumerate() {
        let col = |f: fn(&RunSummary) -> f64| g.iter().map(f).collect::<Vec<_>>();
        let first = &g[0];
        let (seeds, runs) = (seed_count(g), g.len());
        rows.push(vec![
            if first.finished { labels[gi].clone() } else { format!("{} (unfinished)", labels[gi]) },
            first.config.model.name.clone(),
            first.config.data.dataset.clone(),
            first.params.to_string(),
            // Repeated seeds are the same run again, not more evidence: say so.
            if seeds == runs { runs.to_string() } else { format!("{seeds} ({runs} runs)") },
            first.epochs.to_string(),
            cell(&col(|r| r.best_acc), 100.0, 2),
            cell(&col(|r| r.final_acc), 100.0, 2),
            cell(&col(|r| r.train_secs), 1.0, 0),
            cell(&col(|r| r.img_per_s), 1.0, 0),
        ]);
        rows.last_mut().expect("just pushed").extend(shown.iter().map(|d| d.1[gi].clone()));
    }
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        out += &format!("| {} |\n", r.join(" | "));
        if i == 0 {
            out += &format!("|{}\n", "---|".repeat(r.len()));
        }
    }
    if diff.len() > shown.len() {
        let rest: Vec<&str> = diff[shown.len()..].iter().map(|d| d.0.as_str()).collect();
        out += &format!("\nthe groups also differ in: {} (`--format csv` has them all)\n", rest.join(", "));
    }
    out
}

/// A CSV measure: column stem, the value of a run, its scale (fraction -> percent).
type Measure = (&'static str, fn(&RunSummary) -> f64, f64);

/// [`table`] as CSV: snake_case headers, numbers without units, a mean and a std column per
/// measure (std 0 for one run), `finished` as true/false.
fn csv_table(groups: &[Vec<RunSummary>]) -> String {
    let mut header = vec!["run", "model", "dataset", "params", "seeds", "runs", "epochs", "finished"];
    let measures: [Measure; 4] = [
        ("best_val_acc_pct", |r| r.best_acc, 100.0),
        ("final_acc_pct", |r| r.final_acc, 100.0),
        ("train_secs", |r| r.train_secs, 1.0),
        ("img_per_s", |r| r.img_per_s, 1.0),
    ];
    let names: Vec<String> = measures.iter().flat_map(|m| [format!("{}_mean", m.0), format!("{}_std", m.0)]).collect();
    header.extend(names.iter().map(String::as_str));
    let diff = differing_keys(groups);
    header.extend(diff.iter().map(|d| d.0.as_str()));
    let mut lines = vec![header.join(",")];
    let labels = group_labels(groups);
    for (gi, g) in groups.iter().enumerate() {
        let first = &g[0];
        let mut row = vec![
            csv_field(&labels[gi]),
            csv_field(&first.config.model.name),
            csv_field(&first.config.data.dataset),
            first.params.to_string(),
            seed_count(g).to_string(),
            g.len().to_string(),
            first.epochs.to_string(),
            first.finished.to_string(),
        ];
        for (_, f, scale) in measures {
            let (m, s) = mean_std(&g.iter().map(f).collect::<Vec<_>>());
            row.extend([format!("{}", m * scale), format!("{}", s * scale)]);
        }
        row.extend(diff.iter().map(|d| csv_field(&d.1[gi])));
        lines.push(row.join(","));
    }
    lines.join("\n") + "\n"
}

fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// Distinct seeds of a group (the same seed twice is one run repeated).
fn seed_count(g: &[RunSummary]) -> usize {
    g.iter().map(|r| r.config.train.seed).collect::<std::collections::BTreeSet<u64>>().len()
}

/// A group's name: its run directory's, or for several runs what their names share followed by
/// `*` (`speedrun94-seed*` for `speedrun94-seed0-...`, `speedrun94-seed1-...`), or the first
/// name and how many more when they share nothing.
pub fn group_label(g: &[RunSummary]) -> String {
    let names: Vec<String> =
        g.iter().map(|r| r.dir.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned())).collect();
    if names.len() < 2 {
        return names.into_iter().next().unwrap_or_default();
    }
    let shared = names[0]
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take_while(|&end| names.iter().all(|n| n.get(..end) == Some(&names[0][..end])))
        .last()
        .unwrap_or(0);
    if shared == 0 {
        return format!("{} +{} more", names[0], names.len() - 1);
    }
    format!("{}*", &names[0][..shared])
}

/// [`group_label`] of each group, made unique: groups whose labels would be the same (runs of
/// one config name started minutes apart, differing in a key) are named by their first run and
/// how many more.
pub fn group_labels(groups: &[Vec<RunSummary>]) -> Vec<String> {
    let labels: Vec<String> = groups.iter().map(|g| group_label(g)).collect();
    let named = |g: &[RunSummary]| g[0].dir.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    labels
        .iter()
        .zip(groups)
        .map(|(l, g)| match labels.iter().filter(|o| *o == l).count() {
            1 => l.clone(),
            _ if g.len() == 1 => named(g),
            _ => format!("{} +{} more", named(g), g.len() - 1),
        })
        .collect()
}

/// Overlaid validation curves, one line per group (the mean over its seeds, shaded +- one std
/// where it has several): accuracy and loss.
pub fn curves(groups: &[Vec<RunSummary>]) -> Result<(LineChart, LineChart)> {
    let (mut acc, mut loss) = (Vec::new(), Vec::new());
    let (mut acc_bands, mut loss_bands) = (Vec::new(), Vec::new());
    let labels = group_labels(groups);
    for (i, g) in groups.iter().enumerate() {
        let histories = g.iter().map(|r| History::read(&r.dir)).collect::<Result<Vec<_>>>()?;
        let name = labels[i].clone();
        let mut label = if g.len() > 1 { format!("{name} (mean +- std of {})", g.len()) } else { name };
        if g.iter().any(|r| !r.config.data.has_val_split()) {
            label.push_str(" [test split: no validation split]"); // its epochs were scored on test
        }
        // (epoch, mean, std) over the epochs every run of the group has reached; a value that is
        // missing (NaN: an epoch whose validation row was not written) is left out.
        let stats = |f: fn(&EpochRow) -> f64| -> Vec<(f64, f64, f64)> {
            let epochs = histories.iter().map(|h| h.epochs.len()).min().unwrap_or(0);
            (0..epochs)
                .filter_map(|e| {
                    let vals: Vec<f64> = histories.iter().map(|h| f(&h.epochs[e])).filter(|v| v.is_finite()).collect();
                    let (m, s) = mean_std(&vals);
                    (!vals.is_empty()).then_some((histories[0].epochs[e].epoch as f64, m, s))
                })
                .collect()
        };
        // Bands stay within what the measure can be (accuracy 0-100 %, loss >= 0).
        for (series, bands, f, (lo, hi)) in [
            (&mut acc, &mut acc_bands, (|r| r.val_acc * 100.0) as fn(&EpochRow) -> f64, (0.0, 100.0)),
            (&mut loss, &mut loss_bands, |r| r.val_loss, (0.0, f64::INFINITY)),
        ] {
            let st = stats(f);
            series.push((label.clone(), st.iter().map(|&(x, m, _)| (x, m)).collect()));
            if g.len() > 1 {
                bands.push((i, st.iter().map(|&(x, m, s)| (x, (m - s).max(lo), (m + s).min(hi))).collect()));
            }
        }
    }
    let chart = |title: &str, y: &str, series, bands| LineChart {
        title: title.into(),
        x_label: "epoch".into(),
        y_label: y.into(),
        series,
        log10_x: false,
        bands,
    };
    Ok((
        chart("Validation accuracy", "top-1 accuracy (%)", acc, acc_bands),
        chart("Validation loss", "cross-entropy", loss, loss_bands),
    ))
}

//! Comparing runs: runs that differ only in seed grouped (mean +- std), a table, and the
//! overlaid validation curves.

use std::path::{Path, PathBuf};

use crate::analysis::compare::{curves, group, summarize, table, RunSummary};
use crate::analysis::plots::save;
use crate::error::Result;
use crate::run;

/// What [`compare`] found.
#[derive(Debug)]
pub struct Comparison {
    /// The runs, grouped by recipe (config without seed and name).
    pub groups: Vec<Vec<RunSummary>>,
    /// Directories left out, each with the reason (an `lr-find` sweep, no finished epoch).
    pub skipped: Vec<(PathBuf, String)>,
    /// The overlaid validation curves drawn (`compare_val_acc`, `compare_val_loss`; PNG, SVG).
    pub curves: Vec<PathBuf>,
    /// Problems that left the table whole (curves that could not be drawn, unreadable lines in a
    /// run's `metrics.jsonl`).
    pub warnings: Vec<String>,
}

impl Comparison {
    /// The comparison table: markdown, or CSV with one number per cell.
    pub fn table(&self, csv: bool) -> String {
        table(&self.groups, csv)
    }
}

/// Compares the runs in `runs` and draws the overlaid validation curves into `plot_dir`
/// (default: the first run's parent directory). The same run twice, or no comparable run, is
/// an error; `lr-find` sweeps and runs without a finished epoch are left out and named.
pub fn compare(runs: &[PathBuf], plot_dir: Option<&Path>) -> Result<Comparison> {
    let mut seen = std::collections::HashSet::new();
    for r in runs {
        // The same run twice would count as two seeds of one recipe.
        if !seen.insert(std::fs::canonicalize(r).unwrap_or_else(|_| r.clone())) {
            return Err(crate::config_err!("run {} is given twice; expected distinct run directories", r.display()));
        }
    }
    let mut skipped = Vec::new();
    // `compare runs/*` also matches files beside the runs (its own curves from last time).
    let (files, runs): (Vec<&PathBuf>, Vec<&PathBuf>) = runs.iter().partition(|r| r.is_file());
    for f in files {
        skipped.push((f.clone(), "a file, not a run directory".to_string()));
    }
    let runs: Vec<PathBuf> = runs.into_iter().cloned().collect();
    // `compare runs/demo-*` also matches the sweeps that `lr-find` names `demo-lrfind-*`.
    let (sweeps, runs): (Vec<&PathBuf>, Vec<&PathBuf>) = runs.iter().partition(|r| run::is_lr_sweep(r));
    for s in sweeps {
        skipped.push((s.clone(), "a learning-rate sweep (lr-find), not a training run".to_string()));
    }
    if runs.is_empty() {
        return Err(crate::config_err!(
            "no training runs to compare, only learning-rate sweeps or other files{}",
            listed(&skipped)
        ));
    }
    let mut summaries = runs.iter().map(|r| summarize(r)).collect::<Result<Vec<_>>>()?;
    let mut warnings: Vec<String> =
        summaries.iter().filter_map(|s| super::model::skipped_lines_warning(&s.dir, s.skipped_lines)).collect();
    // A run with no epoch in its metrics.jsonl has no number to average in.
    summaries.retain(|s| {
        if s.epochs == 0 {
            skipped.push((s.dir.clone(), "no finished epoch in its metrics.jsonl".to_string()));
        }
        s.epochs > 0
    });
    if summaries.is_empty() {
        return Err(crate::config_err!(
            "no run to compare has a finished epoch in its metrics.jsonl{}",
            listed(&skipped)
        ));
    }
    let groups = group(summaries);
    let dir = plot_dir
        .map_or_else(|| runs[0].parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf), Path::to_path_buf);
    let drawn = curves(&groups).and_then(|(acc, loss)| {
        let mut files = save(&acc, &dir, "compare_val_acc")?;
        files.extend(save(&loss, &dir, "compare_val_loss")?);
        Ok(files)
    });
    let drawn = drawn.unwrap_or_else(|e| {
        warnings.push(format!("curves not drawn: {e}"));
        Vec::new()
    });
    Ok(Comparison { groups, skipped, curves: drawn, warnings })
}

/// The runs left out, a line each (`skipping DIR: why`), for an error that leaves none to compare.
fn listed(skipped: &[(PathBuf, String)]) -> String {
    skipped.iter().map(|(dir, why)| format!("\n  skipping {}: {why}", dir.display())).collect()
}

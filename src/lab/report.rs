//! A run's plots and its HTML report, drawn from its files.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::run::Run;

/// What [`plot`] drew.
#[derive(Debug, Default)]
pub struct Plotted {
    /// Every file written into `RUN/plots/` (PNG and SVG).
    pub files: Vec<PathBuf>,
    /// Plots that could not be drawn, with the reason.
    pub skipped: Vec<String>,
    /// Problems that did not stop the drawing (the test images are not at hand, so the
    /// prediction grids are skipped; unreadable lines in `metrics.jsonl`).
    pub warnings: Vec<String>,
}

/// What [`report`] wrote.
#[derive(Debug)]
pub struct Reported {
    /// The report file.
    pub path: PathBuf,
    /// The plots drawn first, when the run lacked them.
    pub plotted: Option<Plotted>,
    /// Problems that did not stop the report (unreadable lines in `metrics.jsonl`).
    pub warnings: Vec<String>,
}

/// (Re)draws the plots of the run in `run_dir` into `RUN/plots/` from its logs.
pub fn plot(run_dir: &Path) -> Result<Plotted> {
    let run = Run::open(run_dir)?;
    let mut warnings = Vec::new();
    let test = match crate::data::load_test(&run.config().data) {
        Ok(test) => Some(test),
        Err(e) => {
            warnings.push(format!("test images not available, prediction grids skipped: {e}"));
            None
        }
    };
    let plots = crate::analysis::plots::draw_run(run_dir, test.as_ref())?;
    warnings.extend(super::model::skipped_lines_warning(run_dir, plots.skipped_lines));
    Ok(Plotted { files: plots.files, skipped: plots.skipped, warnings })
}

/// Writes the run's self-contained HTML report (config, environment, metrics, every plot,
/// per-class table) to `out` (a file, or a directory for its `report.html`; default
/// `RUN/report.html`), drawing the plots first when the run lacks them. An existing file is
/// replaced only when it is an earlier report.
pub fn report(run_dir: &Path, out: Option<&Path>) -> Result<Reported> {
    if let Some(o) = out.filter(|o| !o.is_dir()) {
        let parent = o.parent().filter(|p| !p.as_os_str().is_empty());
        if o.to_string_lossy().ends_with('/') || parent.is_some_and(|p| !p.is_dir()) {
            let dir = if o.to_string_lossy().ends_with('/') { o } else { parent.unwrap_or(o) };
            return Err(crate::config_err!("--out {}: {} is not a directory", o.display(), dir.display()));
        }
    }
    let have_plots =
        ["loss", "accuracy", "model_summary"].iter().all(|s| run_dir.join("plots").join(format!("{s}.png")).exists());
    let plotted = if have_plots { None } else { Some(plot(run_dir)?) };
    // With the plots drawn now, their warning said it; otherwise the report's own read tells.
    let warnings = match &plotted {
        Some(_) => Vec::new(),
        None => {
            let skipped = crate::run::History::read(run_dir).map_or(0, |h| h.skipped_lines);
            super::model::skipped_lines_warning(run_dir, skipped).into_iter().collect()
        }
    };
    let path = crate::analysis::report::write(run_dir, out)?;
    Ok(Reported { path, plotted, warnings })
}

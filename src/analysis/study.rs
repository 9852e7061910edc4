//! A tuning study's pictures and page: the optimisation history, the trials' learning curves
//! (pruned ones visibly cut short), parameter importances, the Pareto front of two objectives,
//! and `report.html` with the best trials and the command that re-runs the best one.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use base64::Engine;

use super::plots::{self, Bars, Points};
use super::report::escape;
use crate::error::Result;
use crate::search::study::{first, state_name, Study, TrialRecord, TrialState};

/// What [`draw_study`] wrote.
#[derive(Debug, Clone)]
pub struct StudyPlots {
    /// The plot files (PNG and SVG).
    pub files: Vec<PathBuf>,
    /// The page.
    pub html: PathBuf,
}

/// Indices of the points no other point beats in both coordinates (`maximize` per coordinate):
/// the Pareto front, ordered by the first coordinate.
pub fn pareto_front(points: &[(f64, f64)], maximize: (bool, bool)) -> Vec<usize> {
    let better = |a: f64, b: f64, max: bool| if max { a >= b } else { a <= b };
    let strictly = |a: f64, b: f64, max: bool| if max { a > b } else { a < b };
    let dominated = |i: usize| {
        let (x, y) = points[i];
        points.iter().enumerate().any(|(j, &(u, v))| {
            j != i
                && better(u, x, maximize.0)
                && better(v, y, maximize.1)
                && (strictly(u, x, maximize.0) || strictly(v, y, maximize.1))
        })
    };
    let mut front: Vec<usize> =
        (0..points.len()).filter(|&i| points[i].0.is_finite() && points[i].1.is_finite() && !dominated(i)).collect();
    front.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0));
    front
}

/// Draws the study's plots into `out` and writes `out/report.html`; `command` re-runs the best
/// trial.
pub fn draw_study(study: &Study, out: &Path, command: Option<&str>) -> Result<StudyPlots> {
    let names = study.objective_names();
    let mut files = plots::save(&history(study, &names[0]), out, "tune_history")?;
    files.extend(plots::save(&curves(study, &names[0]), out, "tune_curves")?);
    if let Some(bars) = importance(study, &names[0]) {
        files.extend(plots::save(&bars, out, "tune_importance")?);
    }
    if names.len() >= 2 {
        files.extend(plots::save(&pareto(study, &names), out, "tune_pareto")?);
    }
    let html = out.join("report.html");
    crate::fsio::write_atomic(&html, page(study, out, command).as_bytes())?;
    Ok(StudyPlots { files, html })
}

fn history(study: &Study, objective: &str) -> Points {
    let maximize = study.directions.first().is_none_or(|d| d == "maximize");
    let (mut done, mut pruned, mut best) = (Vec::new(), Vec::new(), Vec::new());
    let mut best_so_far: Option<f64> = None;
    for t in &study.trials {
        match t.state {
            TrialState::Complete => {
                let v = first(t);
                done.push((t.number as f64, v));
                let b = best_so_far.map_or(v, |b| if maximize { b.max(v) } else { b.min(v) });
                best_so_far = Some(b);
                best.push((t.number as f64, b));
            }
            TrialState::Pruned => {
                if let Some(&(_, v)) = t.intermediate.last() {
                    pruned.push((t.number as f64, v));
                }
            }
            _ => {}
        }
    }
    Points {
        title: format!("Optimisation history: {}", study.name),
        x_label: "trial".into(),
        y_label: objective.into(),
        groups: vec![("complete".into(), done), ("pruned (last value)".into(), pruned)],
        lines: vec![("best so far".into(), best, 2)],
        integer_x: true,
        ..Points::default()
    }
}

fn curves(study: &Study, objective: &str) -> Points {
    let mut lines = Vec::new();
    let mut named = [false, false];
    for t in &study.trials {
        let kind = match t.state {
            TrialState::Complete => 0,
            TrialState::Pruned => 1,
            _ => continue,
        };
        let label = if named[kind] { String::new() } else { state_name(t.state).to_string() };
        named[kind] = true;
        lines.push((label, t.intermediate.iter().map(|&(e, v)| (e as f64, v)).collect(), kind));
    }
    Points {
        title: "Learning curves of the trials".into(),
        x_label: "epoch".into(),
        y_label: objective.into(),
        lines,
        thin_lines: true,
        integer_x: true,
        ..Points::default()
    }
}

fn importance(study: &Study, objective: &str) -> Option<Bars> {
    let imp = study.importance.first().filter(|m| !m.is_empty())?;
    let mut pairs: Vec<(&String, &f64)> = imp.iter().collect();
    pairs.sort_by(|a, b| b.1.total_cmp(a.1));
    Some(Bars {
        title: format!("Parameter importance for {objective} (PED-ANOVA)"),
        labels: pairs.iter().map(|p| p.0.clone()).collect(),
        values: pairs.iter().map(|p| 100.0 * p.1).collect(),
        max: 100.0,
        x_label: "% of the variance explained".into(),
    })
}

fn pareto(study: &Study, names: &[String]) -> Points {
    let done: Vec<&TrialRecord> =
        study.trials.iter().filter(|t| t.state == TrialState::Complete && t.values.is_some()).collect();
    // x: the second objective (cost), y: the first (accuracy).
    let pts: Vec<(f64, f64)> =
        done.iter().map(|t| t.values.as_ref().map_or((f64::NAN, f64::NAN), |v| (v[1], v[0]))).collect();
    let dir = |i: usize| study.directions.get(i).is_none_or(|d| d == "maximize");
    let front: Vec<(f64, f64)> = pareto_front(&pts, (dir(1), dir(0))).into_iter().map(|i| pts[i]).collect();
    Points {
        title: format!("Pareto front: {} vs {}", names[0], names[1]),
        x_label: names[1].clone(),
        y_label: names[0].clone(),
        groups: vec![("trials".into(), pts), ("Pareto front".into(), front.clone())],
        lines: vec![(String::new(), front, 1)],
        log_x: matches!(names[1].as_str(), "macs" | "params"),
        ..Points::default()
    }
}

/// The page: counts, the best trials, the re-run command and the plots (embedded).
fn page(study: &Study, out: &Path, command: Option<&str>) -> String {
    let names = study.objective_names();
    let mut html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>study {0}</title><style>{CSS}</style>\
         </head><body><h1>Study {0}</h1><p>Storage: <code>{1}</code></p><p>",
        escape(&study.name),
        escape(&crate::search::study::redact(&study.storage))
    );
    for (state, n) in study.counts() {
        let _ = write!(html, "<span class=\"card\">{state}: <b>{n}</b></span> ");
    }
    html += "</p>";
    if let Some(cmd) = command {
        let _ = write!(html, "<h2>Re-run the best trial</h2><pre id=\"rerun\">{}</pre>", escape(cmd));
    }
    html += "<h2>Best trials</h2><table id=\"best\"><tr><th>trial</th>";
    for n in &names {
        let _ = write!(html, "<th>{}</th>", escape(n));
    }
    html += "<th>test acc</th><th>seconds</th><th>parameters</th><th>run</th></tr>";
    for t in study.ranked().iter().take(20) {
        let _ = write!(html, "<tr><td>{}</td>", t.number);
        for v in t.values.iter().flatten() {
            let _ = write!(html, "<td>{}</td>", crate::search::study::format_value(*v));
        }
        let test = t.attrs.get("test_acc").and_then(|v| v.as_f64()).map_or("".into(), |v| format!("{v:.2}"));
        let secs = t.seconds.map_or("".into(), |s| format!("{s:.0}"));
        let params: Vec<String> = t.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let run = t.attrs.get("run_dir").and_then(|v| v.as_str()).unwrap_or("");
        let _ = write!(
            html,
            "<td>{test}</td><td>{secs}</td><td>{}</td><td>{}</td></tr>",
            escape(&params.join(" ")),
            escape(run)
        );
    }
    html += "</table><h2>Plots</h2>";
    for stem in ["tune_history", "tune_curves", "tune_importance", "tune_pareto"] {
        if let Ok(png) = std::fs::read(out.join(format!("{stem}.png"))) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(png);
            let _ = write!(html, "<figure><img alt=\"{stem}\" src=\"data:image/png;base64,{b64}\"></figure>");
        }
    }
    html + "</body></html>\n"
}

const CSS: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;font-size:.9em}\
.card{background:#f3f6fa;border-radius:6px;padding:.3em .8em}img{max-width:100%}pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pareto_front_keeps_exactly_the_undominated_points() {
        // (cost to minimise, accuracy to maximise)
        let pts = [(1.0, 50.0), (2.0, 70.0), (3.0, 60.0), (4.0, 90.0), (2.0, 65.0), (f64::NAN, 99.0)];
        assert_eq!(pareto_front(&pts, (false, true)), vec![0, 1, 3]);
        // Equal points do not dominate each other.
        assert_eq!(pareto_front(&[(1.0, 1.0), (1.0, 1.0)], (false, true)), vec![0, 1]);
    }
}

//! `microvision tune report STUDY`: prints the best trials and where the plots went.

use std::path::PathBuf;

use crate::error::Result;
use crate::lab;
use crate::search::study::{state_name, Study};

/// Runs `microvision tune report`.
pub fn report(study: &str, storage: Option<String>, out: Option<PathBuf>, seeds: usize, top: usize) -> Result<()> {
    let storage_arg = storage.clone();
    let r = lab::tune_report(study, storage, out)?;
    print_table(&r.study, top);
    for f in r.plots.files.iter().filter(|f| f.extension().is_some_and(|e| e == "png")) {
        println!("plot: {}", f.display());
    }
    println!("page: {}", r.plots.html.display());
    match &r.command {
        Some(cmd) => println!("re-run the best trial:\n  {cmd}"),
        None => println!("no trial has completed yet"),
    }
    if seeds > 0 {
        let (_, _, dir) = lab::locate_study(study, storage_arg);
        let cmp = lab::tune_reseed(&r, seeds, &dir, true)?;
        println!("{}", cmp.table(false));
    }
    Ok(())
}

/// The counts, then the `top` best trials: number, values, test accuracy, parameters.
fn print_table(s: &Study, top: usize) {
    let counts: Vec<String> = s.counts().iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("study {} ({}): {}", s.name, crate::search::study::redact(&s.storage), counts.join(", "));
    let names = s.objective_names();
    println!("| trial | {} | test acc | seconds | parameters |", names.join(" | "));
    println!("|---:|{}---:|---:|---|", "---:|".repeat(names.len()));
    for t in s.ranked().into_iter().take(top) {
        let values: Vec<String> = t.values.iter().flatten().map(|v| crate::search::study::format_value(*v)).collect();
        let test = t.attrs.get("test_acc").and_then(|v| v.as_f64()).map_or("".into(), |v| format!("{v:.2}"));
        let secs = t.seconds.map_or("".into(), |v| format!("{v:.0}"));
        let params: Vec<String> = t.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("| {} | {} | {test} | {secs} | {} |", t.number, values.join(" | "), params.join(" "));
    }
    for t in s.trials.iter().filter(|t| t.attrs.contains_key("error")) {
        let e = t.attrs.get("error").and_then(|v| v.as_str()).unwrap_or("");
        println!("trial {} {}: {e}", t.number, state_name(t.state));
    }
}

//! `tune report`: a study read back from its storage, drawn, and its best configuration
//! re-trained on several seeds on request.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::super::compare::{compare, Comparison};
use super::super::train::{train, TrainOptions};
use crate::analysis::study::{draw_study, StudyPlots};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::search::optuna::Optuna;
pub use crate::search::study::redact;
use crate::search::study::{Study, TrialRecord};

/// What [`tune_report`] found and wrote.
#[derive(Debug, Clone)]
pub struct StudyReport {
    /// The study as read.
    pub study: Study,
    /// Its plots and page.
    pub plots: StudyPlots,
    /// The command that trains the best configuration as an ordinary run (None before any
    /// trial completed).
    pub command: Option<String>,
}

/// Where study `arg` lives: a study directory (holding `study.journal`) or a name, in
/// `storage` or else `runs/<name>/study.journal`. Returns (name, storage, study directory).
pub fn locate_study(arg: &str, storage: Option<String>) -> (String, String, PathBuf) {
    let dir = PathBuf::from(arg);
    if dir.join("study.journal").is_file() {
        let name = dir.file_name().map_or(arg.to_string(), |n| n.to_string_lossy().into_owned());
        let storage = storage.unwrap_or_else(|| dir.join("study.journal").display().to_string());
        return (name, storage, dir);
    }
    let dir = Path::new("runs").join(arg);
    let storage = storage.unwrap_or_else(|| dir.join("study.journal").display().to_string());
    (arg.to_string(), storage, dir)
}

/// Reads study `arg` (see [`locate_study`]): its settings, trials and parameter importances.
pub fn tune_study(arg: &str, storage: Option<String>) -> Result<Study> {
    let (name, storage, _) = locate_study(arg, storage);
    if !storage.contains("://") && !Path::new(storage.trim_start_matches("journal:")).is_file() {
        return Err(Error::Config(format!(
            "study {arg:?}: no storage at {storage}; give the study's directory (RUNS/<study>) or --storage URL"
        )));
    }
    let mut optuna = Optuna::start(crate::pyproc::python())?;
    Study::read(&mut optuna, &name, &storage)
}

/// Reads study `arg` (see [`locate_study`]) and writes its plots and `report.html` into `out`
/// (default: the study directory's `report/`).
pub fn tune_report(arg: &str, storage: Option<String>, out: Option<PathBuf>) -> Result<StudyReport> {
    let dir = locate_study(arg, storage.clone()).2;
    let study = tune_study(arg, storage)?;
    let command = study.ranked().first().map(|best| rerun_command(&study, best));
    let out = out.unwrap_or_else(|| dir.join("report"));
    let plots = draw_study(&study, &out, command.as_deref())?;
    Ok(StudyReport { study, plots, command })
}

/// The `key=value` overrides that make trial `t` from the study's base config file: the user's
/// own, then the sampled values.
pub fn trial_overrides(study: &Study, t: &TrialRecord) -> Vec<String> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
    };
    let mut sets = strings(study.settings.get("overrides"));
    sets.extend(strings(t.attrs.get("overrides")));
    sets
}

/// `microvision train -c CONFIG --set ...` for trial `t` (as an ordinary run, without the
/// validation split the tuner may have added).
pub fn rerun_command(study: &Study, t: &TrialRecord) -> String {
    let config = study.settings.get("config").and_then(|v| v.as_str()).unwrap_or("CONFIG");
    let mut cmd = format!("microvision train -c {}", shell_quote(config));
    for s in trial_overrides(study, t) {
        cmd += &format!(" --set {}", shell_quote(&s));
    }
    cmd
}

/// Trains the best configuration of the study on `seeds` seeds (`train.seed` = the base seed,
/// +1, ...) as ordinary runs in the study directory's `best/`, and compares them.
pub fn tune_reseed(report: &StudyReport, seeds: usize, dir: &Path, console: bool) -> Result<Comparison> {
    let study = &report.study;
    let best =
        study.ranked().first().copied().ok_or_else(|| {
            Error::Config(format!("study {}: no complete trial yet, nothing to re-train", study.name))
        })?;
    let config = study.settings.get("config").and_then(|v| v.as_str()).unwrap_or_default();
    let sets = trial_overrides(study, best);
    let base = Config::load(Path::new(config), &sets)?;
    let mut runs = Vec::new();
    for i in 0..seeds {
        let mut s = sets.clone();
        s.push(format!("train.seed={}", base.train.seed + i as u64));
        s.push(format!("name=\"best-trial{:03}\"", best.number));
        s.push(format!("output.runs_dir={}", toml::Value::String(dir.join("best").display().to_string())));
        let cfg = Config::load(Path::new(config), &s)?;
        runs.push(train(cfg, &TrainOptions { console, stop_on_signals: true })?.run_dir);
    }
    compare(&runs, Some(&dir.join("best")))
}

/// `s` as one shell word.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_survive_the_shell() {
        assert_eq!(shell_quote("optim.lr=0.05"), "optim.lr=0.05");
        assert_eq!(shell_quote("optim.name=\"sgd\""), "'optim.name=\"sgd\"'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}

//! Fault injection for the reliability tests: `MICROVISION_FAILPOINT=<name>` makes the process
//! abort (no cleanup, like `kill -9`) when it reaches the named point. Unset, a check is one
//! cached environment lookup. Points: `checkpoint.before_rename`, `checkpoint.mid_rename`
//! (weights renamed, optimizer and state not yet), `checkpoint.between_best_and_last` (`best`
//! written, `last` not), `eval`, and `step.N` (after optimizer step N).

use std::sync::OnceLock;

/// Aborts the process if `MICROVISION_FAILPOINT` names this point.
pub fn hit(name: &str) {
    if armed() == Some(name) {
        abort(name);
    }
}

/// Aborts the process if `MICROVISION_FAILPOINT` is `step.N` and `step` = N (the optimizer
/// step just taken): a kill in the middle of an epoch.
pub fn hit_step(step: i64) {
    if armed().and_then(|a| a.strip_prefix("step.")).and_then(|n| n.parse::<i64>().ok()) == Some(step) {
        abort(&format!("step.{step}"));
    }
}

/// The armed point, read once.
fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED.get_or_init(|| std::env::var("MICROVISION_FAILPOINT").ok()).as_deref()
}

fn abort(name: &str) -> ! {
    eprintln!("failpoint {name}: aborting");
    std::process::abort();
}

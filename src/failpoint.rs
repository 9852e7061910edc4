//! Fault injection for the reliability tests: `MICROVISION_FAILPOINT=<name>` makes the process
//! abort (no cleanup, like `kill -9`) when it reaches the named point. Unset, a check is one
//! cached environment lookup. Points: `checkpoint.before_rename`, `checkpoint.mid_rename`
//! (weights renamed, optimizer and state not yet), `checkpoint.between_best_and_last` (`best`
//! written, `last` not), `eval`.

use std::sync::OnceLock;

/// Aborts the process if `MICROVISION_FAILPOINT` names this point.
pub fn hit(name: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    if ARMED.get_or_init(|| std::env::var("MICROVISION_FAILPOINT").ok()).as_deref() == Some(name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

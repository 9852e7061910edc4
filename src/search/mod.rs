//! Hyper-parameter and architecture search on Optuna: the search space a TOML file describes
//! ([`space`]), the bridge to Optuna's samplers, pruners and storages ([`optuna`]), and the study
//! as `microvision tune report` reads it ([`study`]). The trial loop itself is the `tune` verb
//! in `lab/`, which trains each trial as an ordinary run.

pub mod optuna;
pub mod space;
pub mod study;

pub use space::{Param, Space};
pub use study::{Objective, Pruner, Sampler, Study, TrialRecord, TrialState};

//! Benchmarks run from the CLI (`microvision bench ...`). Speed targets live here and in
//! `benches/`, never in timed unit tests.

pub mod memory;
pub mod speedrun;
pub mod throughput;

//! microvision: a small-scale computer-vision research lab on LibTorch.
//!
//! The verbs a user calls live in [`lab`] (train, resume, eval, predict, export, compare, plot,
//! report); the `microvision` binary is a thin shell over them.
//!
//! Layers (imports flow downward only): `cli` -> `lab` -> `analysis`, `bench` -> `track` ->
//! `train` -> `models` -> `data` -> `run` -> `config`, `device`, `metrics`, `error`, `fsio`,
//! `failpoint`, with no cycle: `config` holds the dataset facts (channels, image side, classes)
//! it checks a config against, and `data` follows them.

// The guide asks for a doc comment on every public item; clippy -D warnings makes this binding.
#![warn(missing_docs)]

pub mod config;
pub mod data;
pub mod device;
pub mod dist;
pub mod error;
pub mod failpoint;
pub mod fsio;
pub mod models;

pub use config::Config;
pub use error::{Error, Result};
pub mod analysis;
pub mod bench;
pub mod cli;
pub mod lab;
pub mod metrics;
pub mod notice;
pub mod pyproc;
pub mod run;
pub mod search;
pub mod seed;
pub mod track;
pub mod train;

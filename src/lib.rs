//! microvision: a small-scale computer-vision research lab on LibTorch.
//!
//! Layers (imports flow downward only): `cli` -> `analysis`, `bench` -> `track` -> `train` ->
//! `models` -> `data` -> `config`, `device`, `metrics`, `error`, `fsio`, `failpoint`. One exception:
//! `config`'s validation asks `data::source` for a dataset's channels, image size and class count,
//! so that a config naming the wrong ones fails when it is loaded.

// The guide asks for a doc comment on every public item; clippy -D warnings makes this binding.
#![warn(missing_docs)]

pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod failpoint;
pub mod fsio;
pub mod models;

pub use config::Config;
pub use error::{Error, Result};
pub mod analysis;
pub mod bench;
pub mod cli;
pub mod metrics;
pub mod track;
pub mod train;

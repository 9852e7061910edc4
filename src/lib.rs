//! microvision: a small-scale computer-vision research lab on LibTorch.
//!
//! Layers (imports flow downward only): `cli` -> `analysis` -> `track` -> `train` -> `models` ->
//! `data` -> `config`, `device`, `metrics`, `error`.

pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod failpoint;
pub mod models;

pub use config::Config;
pub use error::{Error, Result};
pub mod analysis;
pub mod bench;
pub mod cli;
pub mod metrics;
pub mod track;
pub mod train;

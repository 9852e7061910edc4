//! The library's verbs: one function per thing a user does with a run, each taking typed
//! arguments and returning a typed result. They print nothing: warnings and notes of the layers
//! below go through [`crate::notice`] (standard error unless the shell routes them elsewhere),
//! and training reports progress on the console only when asked ([`TrainOptions::console`]).
//! The command line (`cli/`), the examples and the Python package are shells over these.
//!
//! ```no_run
//! use microvision::lab::{self, Checkpoint, TrainOptions};
//! # fn main() -> microvision::Result<()> {
//! let cfg = microvision::Config::load("configs/demo.toml".as_ref(), &["train.epochs=1".into()])?;
//! let trained = lab::train(cfg, &TrainOptions::default())?;
//! let eval = lab::eval(&trained.run_dir, Checkpoint::Last, &[])?;
//! let preds = lab::predict(&trained.run_dir, &["cat.png".into()], Checkpoint::Last, 3)?;
//! let exported = lab::export(&trained.run_dir, Checkpoint::Last, lab::Format::Safetensors, None)?;
//! # Ok(()) }
//! ```
//!
//! Layering: `lab` sits above `analysis`, `track`, `train` and `run`, and below the shells.

mod bench;
mod compare;
mod datasets;
mod dist;
mod eval;
mod explain;
mod export;
mod model;
mod models;
mod predict;
mod report;
mod sync;
mod tools;
mod train;
mod tune;

pub use bench::{bench_speedrun, bench_throughput, Speedrun, SpeedrunEvent, ThroughputArgs, ThroughputReport};
pub use compare::{compare, Comparison};
pub use datasets::{data_download, data_info, data_preview, load_split, DatasetInfo, Downloaded, SplitInfo};
pub use dist::{dist_check, DistCheck};
pub use eval::{eval, Evaluation};
pub use explain::{explain, explain_layers, ExplainArgs, Explained, MapMethod, TsneParams};
pub use export::{export, Exported, Format};
pub use model::{class_names, load_model, normalisation, Checkpoint, LoadedModel};
pub use models::{layer_mflops, model_summary, models, models_named, ModelInfo};
pub use predict::{predict, ClassScore, Prediction, Predictor};
pub use report::{plot, report, Plotted, Reported};
pub use sync::{sync_wandb, Synced, WandbSync};
pub use tools::{augment_preview, lr_find, LrFound, LrSweep};
pub use train::{fit, resume, stop_flag, train, train_with, Fitted, TrainOptions, Trained};
pub use tune::{
    locate_study, redact, rerun_command, shell_quote, trial_overrides, tune, tune_open, tune_report, tune_reseed,
    tune_spec, tune_study, StudyReport, TrialHook, TrialOutcome, TuneArgs, Tuned, Tuning,
};

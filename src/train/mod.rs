//! Training: the loop, optimizers, schedules, checkpoints, evaluation and the run directory.

pub mod callbacks;
pub mod checkpoint;
pub mod distributed;
pub mod ema;
pub mod eval;
pub mod lookahead;
pub mod optim;
pub mod pretrained;
pub mod replicas;
pub mod schedule;
pub mod shadow;
pub mod step;
pub mod trainer;

pub use trainer::Trainer;

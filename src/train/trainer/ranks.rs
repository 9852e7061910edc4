//! The trainer's side of a multi-process run ([`crate::train::distributed`]): joining the group,
//! rank 0 creating the run directory and loading (perhaps downloading) the data first, the
//! training loader's shard, evaluation split among the ranks, the stop agreed on, and the
//! weights every rank starts from.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use tch::Device;

use super::{loader_spec, Trainer};
use crate::config::Config;
use crate::data::loader::Loader;
use crate::data::Dataset;
use crate::error::Result;
use crate::fsio;
use crate::metrics::EvalResult;
use crate::run;
use crate::train::distributed::Dist;
use crate::train::eval::{eval_logits, evaluate, summarise, Tta};

impl Trainer {
    /// Evaluates the weights, or their moving average when `train.ema_decay` > 0, with
    /// test-time augmentation `tta`. Several processes evaluate a part of the split each and
    /// share their logits: every rank returns the whole split's result.
    pub(super) fn evaluate_loader(&self, e: &EvalLoader, classes: usize, tta: Tta) -> Result<EvalResult> {
        let compute = self.compute_kind();
        let run = || match &self.dist {
            None => Ok(evaluate(&self.model, &e.loader, compute, classes, tta)),
            Some(d) => {
                // The last step's forward pass moved each rank's BatchNorm statistics by its own
                // slice (and an EMA averages each rank's own): every rank scores with rank 0's,
                // the model rank 0's checkpoint holds.
                d.broadcast_buffers(&self.model.vs)?;
                let start = std::time::Instant::now();
                let (logits, labels, augmented) = eval_logits(&self.model, &e.loader, compute, classes, tta);
                let logits = d.gather_rows(&logits, e.start, e.total)?;
                let labels = d.gather_rows(&labels, e.start, e.total)?;
                let mut augmented = [augmented as f64];
                d.sum_values(&mut augmented, "while gathering the evaluation")?;
                Ok(summarise(&logits, &labels, classes, augmented[0] as i64, start))
            }
        };
        match &self.ema {
            Some(ema) => ema.with_averaged(&self.model.vs, run),
            None => run(),
        }
    }

    /// A loader over `split` for evaluation: this rank's consecutive part of it in a
    /// multi-process run.
    pub(super) fn eval_loader(&self, split: &Dataset) -> EvalLoader {
        let total = split.len();
        let (rank, world) = self.rank();
        let (start, len) = crate::data::loader::split_range(total as usize, world)[rank];
        let part = Dataset {
            images: split.images.narrow(0, start as i64, len as i64),
            labels: split.labels.narrow(0, start as i64, len as i64),
            classes: split.classes.clone(),
        };
        let loader = Loader::new(&part.to_device(self.device), loader_spec(&self.cfg, &self.data, false));
        EvalLoader { loader, start: start as i64, total }
    }

    /// Whether this process writes the run directory: always, but for the ranks after the
    /// first of a multi-process run.
    pub fn writes_run(&self) -> bool {
        writes(&self.dist)
    }

    /// `(rank, world size)` of a multi-process run; `(0, 1)` in one process.
    pub fn rank(&self) -> (usize, usize) {
        self.dist.as_ref().map_or((0, 1), |d| (d.rank(), d.world()))
    }

    /// Whether a stop was requested (SIGINT, a callback); in a multi-process run, on any rank.
    pub(super) fn stop_requested(&self) -> Result<bool> {
        let here = self.stop.load(Ordering::Relaxed);
        let Some(d) = &self.dist else { return Ok(here) };
        let mut votes = [f64::from(u8::from(here))];
        d.sum_values(&mut votes, "while agreeing to stop")?;
        Ok(votes[0] > 0.0)
    }

    /// A multi-process run starts from rank 0's weights and buffers. A new run's weight averages
    /// restart from them (`fresh`); a resumed run keeps those its checkpoint held.
    pub(super) fn share_weights(&mut self, fresh: bool) -> Result<()> {
        let Some(d) = &self.dist else { return Ok(()) };
        d.broadcast_variables(&self.model.vs)?;
        if fresh {
            (self.ema, self.lookahead) = super::fresh_averages(&self.model.vs, &self.cfg.train);
        }
        Ok(())
    }
}

/// An evaluation loader over a split, or over this rank's rows `start..` of its `total`.
pub(super) struct EvalLoader {
    loader: Loader,
    start: i64,
    total: i64,
}

/// Whether this process writes the run directory: the only one, or rank 0.
pub(super) fn writes(dist: &Option<Dist>) -> bool {
    dist.as_ref().is_none_or(|d| d.rank() == 0)
}

/// The training loader as this process trains it: its part of every batch in a multi-process
/// run.
pub(super) fn shard(loader: Loader, dist: &Option<Dist>) -> Loader {
    match dist {
        Some(d) => loader.sharded(d.rank(), d.world()),
        None => loader,
    }
}

/// The multi-process group `torchrun`'s variables describe (`WORLD_SIZE` > 1), joined.
pub(super) fn join_group(cfg: &Config) -> Result<Option<Dist>> {
    if let Some(r) = crate::dist::Rendezvous::from_env()? {
        // Checked on every rank alike, before any of them waits for the others.
        let chunks = r.world * cfg.train.replicas.max(1);
        if chunks > cfg.data.batch_size {
            return Err(crate::config_err!(
                "`data.batch_size` = {} is the global batch of {} processes x {} replicas (`train.replicas`): \
                 each trains a slice of it; expected at least {chunks}",
                cfg.data.batch_size,
                r.world,
                cfg.train.replicas.max(1)
            ));
        }
    }
    let dist = Dist::from_env(std::time::Duration::from_secs(cfg.train.dist_timeout_secs as u64))?;
    if let Some(d) = &dist {
        if d.rank() == 0 {
            crate::notice::info(format!("training on {} processes (torch.distributed, Gloo)", d.world()));
        }
    }
    Ok(dist)
}

/// Runs `f` on rank 0 first, then on the others (loading data that rank 0 may download).
pub(super) fn in_turn<T>(dist: &Option<Dist>, during: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match dist {
        Some(d) if d.rank() == 0 => {
            let out = f()?;
            d.barrier(during)?;
            Ok(out)
        }
        Some(d) => {
            d.barrier(during)?;
            f()
        }
        None => f(),
    }
}

/// The new run's directory: rank 0 (or the only process) creates and locks it and writes
/// `config.toml`, and hands its path to the other ranks.
pub(super) fn create_run(cfg: &Config, dist: &Option<Dist>) -> Result<(PathBuf, Option<run::RunLock>)> {
    let mut made = None;
    if writes(dist) {
        let run_dir = run::create(cfg)?;
        let lock = run::lock(&run_dir)?;
        fsio::write_atomic(&run_dir.join("config.toml"), cfg.to_toml().as_bytes())?;
        made = Some((run_dir, lock));
    }
    let Some(d) = dist else { return Ok(made.map(|(dir, lock)| (dir, Some(lock))).expect("one process writes")) };
    let mine = made.as_ref().map_or(String::new(), |(dir, _)| dir.display().to_string());
    let run_dir = PathBuf::from(d.broadcast_text(&mine)?);
    Ok((run_dir, made.map(|(_, lock)| lock)))
}

/// The device of this process: in a multi-process run on CUDA (`train.device` = "auto" or
/// "cuda"), the GPU of its local rank (`LOCAL_RANK`, as torchrun sets it), as PyTorch DDP scripts
/// call `torch.cuda.set_device(local_rank)`.
pub(super) fn local_device(device: Device, asked: &str) -> Device {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<usize>().ok());
    match (device, var("LOCAL_RANK"), var("WORLD_SIZE")) {
        (Device::Cuda(0), Some(local), Some(world)) if world > 1 && matches!(asked, "auto" | "cuda") => {
            Device::Cuda(local % tch::Cuda::device_count().max(1) as usize)
        }
        _ => device,
    }
}

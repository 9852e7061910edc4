//! `microvision dist check`: joins the torch.distributed group the environment describes
//! (`torchrun --nproc-per-node=N --no-python microvision dist check`) and checks its collectives,
//! so a cluster's rendezvous and network are known to work before a long run relies on them.

use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use crate::dist::{ProcessGroup, Rendezvous};
use crate::error::{Error, Result};

/// What [`dist_check`] found on this rank.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DistCheck {
    /// This rank.
    pub rank: i64,
    /// Ranks in the group.
    pub world: i64,
    /// Seconds to join the group (the rendezvous and Gloo's connections).
    pub join_secs: f64,
    /// Seconds of the all-reduce.
    pub all_reduce_secs: f64,
    /// Elements reduced.
    pub elements: i64,
}

/// Joins the group of `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` (waiting up to
/// `timeout` for the others), all-reduces `elements` floats (rank r gives r + 1 everywhere, so
/// every element must sum to world (world + 1) / 2), broadcasts rank 0's `0..elements` and
/// meets at a barrier. Any difference is an error naming it.
pub fn dist_check(elements: i64, timeout: Duration) -> Result<DistCheck> {
    let r = Rendezvous::from_env()?.ok_or_else(|| {
        crate::config_err!(
            "WORLD_SIZE is not set: run it under torchrun (torchrun --nproc-per-node=2 --no-python microvision dist \
             check) or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT"
        )
    })?;
    if elements < 1 {
        return Err(crate::config_err!("--elements {elements}: expected at least 1"));
    }
    let start = Instant::now();
    let g = ProcessGroup::join(&r, timeout)?;
    let join_secs = start.elapsed().as_secs_f64();
    let mut t = Tensor::full([elements], (r.rank + 1) as f64, (Kind::Float, Device::Cpu));
    let start = Instant::now();
    g.all_reduce_sum(&mut t)?;
    let all_reduce_secs = start.elapsed().as_secs_f64();
    let want = (r.world * (r.world + 1) / 2) as f64;
    let wrong = t.ne(want).sum(Kind::Int64).int64_value(&[]);
    if wrong > 0 {
        return Err(Error::Runtime(format!("all-reduce: {wrong} of {elements} sums differ from {want}")));
    }
    let reference = Tensor::arange(elements, (Kind::Float, Device::Cpu));
    let mut b = if r.rank == 0 { reference.copy() } else { Tensor::zeros([elements], (Kind::Float, Device::Cpu)) };
    g.broadcast(&mut b, 0)?;
    if !b.equal(&reference) {
        return Err(Error::Runtime("broadcast: this rank did not receive rank 0's tensor".into()));
    }
    g.barrier()?;
    Ok(DistCheck { rank: r.rank, world: r.world, join_secs, all_reduce_secs, elements })
}

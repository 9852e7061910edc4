//! Process groups on torch.distributed's c10d: the TCPStore rendezvous and Gloo collectives of
//! the LibTorch that tch links, through a small C++ shim (`shim.cpp`, compiled by build.rs).
//! The group is laid out as `torch.distributed.init_process_group` lays out its default group,
//! so microvision ranks and Python ranks can be members of one group. Ranks, world size and the
//! master's address come from the variables `torchrun` (and SLURM scripts) set: `RANK`,
//! `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

extern "C" {
    fn mv_dist_new(
        host: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        serve: c_int,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> *mut c_void;
    fn mv_dist_all_reduce_sum(g: *mut c_void, t: *mut c_void, err: *mut *mut c_char) -> c_int;
    fn mv_dist_broadcast(g: *mut c_void, t: *mut c_void, root: c_int, err: *mut *mut c_char) -> c_int;
    fn mv_dist_barrier(g: *mut c_void, err: *mut *mut c_char) -> c_int;
    fn mv_dist_free(g: *mut c_void);
    fn mv_dist_free_error(err: *mut c_char);
}

/// Where a group meets: the standard variables of `torchrun`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    /// This process's rank, 0 to `world - 1` (`RANK`).
    pub rank: i64,
    /// Processes in the group (`WORLD_SIZE`).
    pub world: i64,
    /// Host of rank 0's store (`MASTER_ADDR`).
    pub host: String,
    /// Its port (`MASTER_PORT`).
    pub port: u16,
    /// Whether this process hosts the store: rank 0, unless torchrun's agent hosts it
    /// (`TORCHELASTIC_USE_AGENT_STORE=True`), as torch.distributed decides.
    pub serve: bool,
}

impl Rendezvous {
    /// The rendezvous the environment describes; `None` when `WORLD_SIZE` is unset.
    pub fn from_env() -> Result<Option<Rendezvous>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Rendezvous::from_env`] over any source of variables (tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Rendezvous>> {
        let Some(world) = var("WORLD_SIZE") else { return Ok(None) };
        let number = |key: &str, text: &str| -> Result<i64> {
            text.trim().parse().map_err(|_| Error::Config(format!("{key} = {text:?}: expected a whole number")))
        };
        let world = number("WORLD_SIZE", &world)?;
        let rank = number("RANK", &var("RANK").ok_or_else(|| missing("RANK"))?)?;
        if world < 1 || !(0..world).contains(&rank) {
            return Err(Error::Config(format!("RANK = {rank}, WORLD_SIZE = {world}: expected 0 <= RANK < WORLD_SIZE")));
        }
        let host = var("MASTER_ADDR").ok_or_else(|| missing("MASTER_ADDR"))?;
        let port_text = var("MASTER_PORT").ok_or_else(|| missing("MASTER_PORT"))?;
        let port = u16::try_from(number("MASTER_PORT", &port_text)?)
            .map_err(|_| Error::Config(format!("MASTER_PORT = {port_text:?}: expected a port, 0 to 65535")))?;
        let agent_store = var("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v == "True");
        Ok(Some(Rendezvous { rank, world, host, port, serve: rank == 0 && !agent_store }))
    }
}

/// Refuses `what` (a verb that trains several runs, each in one process: tuning, speedrun
/// seeds) when launched as one of several processes: each rank would train runs of its own.
pub fn refuse_in_group(what: &str) -> Result<()> {
    match Rendezvous::from_env()? {
        Some(r) if r.world > 1 => Err(Error::Config(format!(
            "{what} trains its runs in this process, but WORLD_SIZE = {} (torchrun?): run it without torchrun; \
             only `train` runs one run on several processes",
            r.world
        ))),
        _ => Ok(()),
    }
}

fn missing(key: &str) -> Error {
    Error::Config(format!(
        "WORLD_SIZE is set but {key} is not: expected RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, as torchrun sets them"
    ))
}

/// A Gloo process group (CPU tensors).
#[derive(Debug)]
pub struct ProcessGroup {
    group: NonNull<c_void>,
    /// This process's rank.
    pub rank: i64,
    /// Processes in the group.
    pub world: i64,
}

// SAFETY: c10d process groups are used from any thread (LibTorch's own DDP does).
unsafe impl Send for ProcessGroup {}

/// Turns the shim's status and message into a result.
fn checked(status: c_int, err: *mut c_char, what: &str) -> Result<()> {
    if status == 0 {
        return Ok(());
    }
    Err(Error::Runtime(format!("torch.distributed {what}: {}", take_error(err))))
}

fn take_error(err: *mut c_char) -> String {
    if err.is_null() {
        return "no reason given".into();
    }
    // SAFETY: the shim sets `err` to a NUL-terminated strdup'd string, freed here once.
    let text = unsafe { CStr::from_ptr(err) }.to_string_lossy().lines().next().unwrap_or("").to_string();
    unsafe { mv_dist_free_error(err) };
    text
}

impl ProcessGroup {
    /// Joins the group `r` describes (rank 0 hosts the store), waiting up to `timeout` for the
    /// other ranks.
    pub fn join(r: &Rendezvous, timeout: Duration) -> Result<ProcessGroup> {
        let host = CString::new(r.host.clone()).map_err(|_| Error::Config("MASTER_ADDR holds a NUL byte".into()))?;
        let mut err = std::ptr::null_mut();
        let ms = timeout.as_millis().min(i64::MAX as u128) as i64;
        // SAFETY: valid C string and out-pointer; the shim catches every C++ exception.
        let (rank, world, serve) = (r.rank as c_int, r.world as c_int, c_int::from(r.serve));
        let g = unsafe { mv_dist_new(host.as_ptr(), r.port.into(), rank, world, serve, ms, &mut err) };
        let Some(group) = NonNull::new(g) else {
            return Err(Error::Runtime(format!(
                "torch.distributed: rank {} of {} could not join the group at {}:{}: {}",
                r.rank,
                r.world,
                r.host,
                r.port,
                take_error(err)
            )));
        };
        Ok(ProcessGroup { group, rank: r.rank, world: r.world })
    }

    /// Sums `t` over the group, in place (a contiguous CPU tensor).
    pub fn all_reduce_sum(&self, t: &mut Tensor) -> Result<()> {
        check_tensor(t, "all-reduce")?;
        let mut err = std::ptr::null_mut();
        // SAFETY: `t` is a live tensor, which libtch represents as a `torch::Tensor*`.
        let status = unsafe { mv_dist_all_reduce_sum(self.group.as_ptr(), t.as_mut_ptr().cast(), &mut err) };
        checked(status, err, "all-reduce")
    }

    /// Overwrites every rank's `t` with rank `root`'s.
    pub fn broadcast(&self, t: &mut Tensor, root: i64) -> Result<()> {
        check_tensor(t, "broadcast")?;
        let mut err = std::ptr::null_mut();
        // SAFETY: as in `all_reduce_sum`.
        let status = unsafe { mv_dist_broadcast(self.group.as_ptr(), t.as_mut_ptr().cast(), root as c_int, &mut err) };
        checked(status, err, "broadcast")
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) -> Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: the group is live until drop.
        let status = unsafe { mv_dist_barrier(self.group.as_ptr(), &mut err) };
        checked(status, err, "barrier")
    }
}

/// Gloo reduces CPU tensors in place: they must be contiguous, on the CPU.
fn check_tensor(t: &Tensor, what: &str) -> Result<()> {
    if t.device() != Device::Cpu || !t.is_contiguous() || t.kind() == Kind::Bool {
        return Err(Error::Runtime(format!(
            "torch.distributed {what}: expected a contiguous numeric CPU tensor, got {:?} on {:?}",
            t.kind(),
            t.device()
        )));
    }
    Ok(())
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: made by mv_dist_new, freed once.
        unsafe { mv_dist_free(self.group.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_rendezvous_comes_from_torchrun_variables() {
        assert_eq!(Rendezvous::from_vars(vars(&[])).unwrap(), None);
        let all = [("WORLD_SIZE", "2"), ("RANK", "1"), ("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29500")];
        let r = Rendezvous::from_vars(vars(&all)).unwrap().unwrap();
        assert_eq!(r, Rendezvous { rank: 1, world: 2, host: "10.0.0.1".into(), port: 29500, serve: false });
        let zero = [("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1")];
        assert!(Rendezvous::from_vars(vars(&zero)).unwrap().unwrap().serve, "rank 0 hosts the store");
        let agent = [&zero[..], &[("TORCHELASTIC_USE_AGENT_STORE", "True")]].concat();
        assert!(!Rendezvous::from_vars(vars(&agent)).unwrap().unwrap().serve, "torchrun's agent hosts it");
        let e = Rendezvous::from_vars(vars(&all[..2])).unwrap_err().to_string();
        assert!(e.contains("MASTER_ADDR") && e.contains("torchrun"), "{e}");
        let e = Rendezvous::from_vars(vars(&[("WORLD_SIZE", "2"), ("RANK", "2")])).unwrap_err().to_string();
        assert!(e.contains("0 <= RANK < WORLD_SIZE"), "{e}");
        let bad = [("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "70000")];
        assert!(Rendezvous::from_vars(vars(&bad)).unwrap_err().to_string().contains("MASTER_PORT"));
    }

    #[test]
    fn a_group_of_one_reduces_to_itself() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let r = Rendezvous { rank: 0, world: 1, host: "127.0.0.1".into(), port, serve: true };
        let g = ProcessGroup::join(&r, Duration::from_secs(30)).unwrap();
        let mut t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        g.all_reduce_sum(&mut t).unwrap();
        g.broadcast(&mut t, 0).unwrap();
        g.barrier().unwrap();
        assert_eq!(Vec::<f32>::try_from(&t).unwrap(), [1.0, 2.0, 3.0]);
        let e = g.all_reduce_sum(&mut Tensor::ones([2, 2], (Kind::Float, Device::Cpu)).tr()).unwrap_err();
        assert!(e.to_string().contains("contiguous"), "{e}");
    }
}

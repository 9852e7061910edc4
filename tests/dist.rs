//! Multi-process groups on torch.distributed's c10d (Gloo, CPU, ranks on this machine): two
//! microvision ranks under `torchrun`, and microvision and PyTorch ranks in one group (each
//! hosting the store in turn) agreeing on an all-reduce and a broadcast; a rank that never
//! comes is a clear error within the timeout.

mod common;

use std::process::{Child, Command, Output, Stdio};

/// `microvision dist check` as rank `rank` of `world` on `port`.
fn microvision_rank(rank: i64, world: i64, port: u16, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["dist", "check", "--elements", "50000"])
        .args(extra)
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env_remove("TORCHELASTIC_USE_AGENT_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// tests/oracle/dist_peer.py as rank `rank` of 2 on `port`.
fn pytorch_rank(py: &std::path::Path, rank: i64, port: u16) -> Child {
    Command::new(py)
        .arg(common::repo("tests/oracle/dist_peer.py"))
        .arg("50000")
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn json_line(o: &Output) -> serde_json::Value {
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn two_ranks_under_torchrun_agree() {
    let Some(py) = common::venv_python() else { return };
    let torchrun = py.with_file_name("torchrun");
    let o = Command::new(&torchrun)
        .args(["--standalone", "--nproc-per-node=2", "--no-python"])
        .arg(env!("CARGO_BIN_EXE_microvision"))
        .args(["dist", "check", "--elements", "50000", "--timeout", "120"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    let mut ranks: Vec<i64> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            assert_eq!(v["world"], 2);
            v["rank"].as_i64().unwrap()
        })
        .collect();
    ranks.sort();
    assert_eq!(ranks, [0, 1], "{out}");
}

#[test]
fn microvision_and_pytorch_ranks_share_one_group() {
    let Some(py) = common::venv_python() else { return };
    for microvision_hosts in [true, false] {
        let port = common::free_port();
        let (mv_rank, py_rank) = if microvision_hosts { (0, 1) } else { (1, 0) };
        let ours = microvision_rank(mv_rank, 2, port, &["--timeout", "120"]);
        let theirs = pytorch_rank(&py, py_rank, port);
        let (ours, theirs) = (ours.wait_with_output().unwrap(), theirs.wait_with_output().unwrap());
        // Each side checked the other's contribution: the sums (1 + 2) and rank 0's broadcast.
        assert_eq!(json_line(&ours)["rank"], mv_rank);
        let t = json_line(&theirs);
        assert_eq!(
            (t["rank"].as_i64(), t["sum_ok"].as_bool(), t["broadcast_ok"].as_bool()),
            (Some(py_rank), Some(true), Some(true))
        );
    }
}

#[test]
fn a_rank_that_never_comes_is_an_error_within_the_timeout() {
    let o = microvision_rank(0, 2, common::free_port(), &["--timeout", "3"]).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("rank 0 of 2 could not join the group at 127.0.0.1"), "{err}");
    // Outside torchrun: what to set.
    let o = Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["dist", "check"])
        .env_remove("WORLD_SIZE")
        .output()
        .unwrap();
    common::assert_user_error(&o, 2, &["WORLD_SIZE is not set", "torchrun"]);
}

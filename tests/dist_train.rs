//! `microvision train` on several processes (Gloo, CPU, two ranks on this machine):
//! - under `torchrun`, two ranks train bit for bit as one process with two replicas (the same
//!   slices of every global batch, dropout masks and ghost BatchNorm), and only rank 0 writes;
//! - without BatchNorm, two ranks match one process, and PyTorch DDP on the same data and
//!   initial weights, to fp32 rounding;
//! - a rank killed mid-epoch stops the other with a clear error, the last checkpoint intact, and
//!   the resumed run ends with the weights of an uninterrupted one.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Writes a config for the tests' runs (fp32, one thread per process) with `extra` TOML lines.
fn config(dir: &Path, data: &Path, extra: &str) -> PathBuf {
    let text = format!(
        "name = \"dist\"\n[data]\nroot = \"{}\"\ndownload = false\nofficial_files = false\n[train]\nthreads = 1\n\
         precision = \"fp32\"\nprogress = false\ndist_timeout_secs = 120\n[output]\nruns_dir = \"{}\"\n{extra}",
        data.display(),
        dir.join("runs").display()
    );
    let path = dir.join("dist.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `microvision ARGS` with the test's environment (no torchrun variables, data or W&B mode).
fn microvision() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_microvision"));
    for key in ["MICROVISION_DATA", "WANDB_MODE", "WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"] {
        c.env_remove(key);
    }
    c
}

/// `torchrun --standalone --nproc-per-node=N --no-python microvision ARGS`.
fn torchrun(py: &Path, n: usize, args: &[&str]) -> Output {
    let mut c = Command::new(py.with_file_name("torchrun"));
    c.args(["--standalone", &format!("--nproc-per-node={n}"), "--no-python", env!("CARGO_BIN_EXE_microvision")]);
    c.args(args).env_remove("MICROVISION_DATA").env_remove("WANDB_MODE").output().unwrap()
}

fn ok(o: &Output) -> &Output {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), common::stderr(o));
    o
}

/// The run directories under `runs`, oldest first.
fn runs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join("runs")) else { return Vec::new() }; // none yet
    let mut v: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// A checkpoint's trained tensors (BatchNorm's running statistics aside: rank 0's buffers in a
/// multi-process run, the replicas' average in one process) as flat f32 vectors.
fn weights(file: &Path) -> HashMap<String, Vec<f32>> {
    tch::Tensor::read_safetensors(file)
        .unwrap()
        .into_iter()
        .filter(|(k, t)| !k.contains("running_") && t.is_floating_point())
        .map(|(k, t)| (k, Vec::<f32>::try_from(t.to_kind(tch::Kind::Float).reshape([-1])).unwrap()))
        .collect()
}

/// Largest absolute difference between two sets of weights (which must hold the same names).
fn max_diff(a: &HashMap<String, Vec<f32>>, b: &HashMap<String, Vec<f32>>) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().map(|(k, x)| x.iter().zip(&b[k]).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max)).fold(0.0, f32::max)
}

/// The `(loss, acc)` of each epoch's training record in a run's metrics.jsonl.
fn train_records(run: &Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "epoch" && v["split"] == "train")
        .map(|v| (v["loss"].as_f64().unwrap(), v["acc"].as_f64().unwrap()))
        .collect()
}

#[test]
fn two_ranks_train_bit_for_bit_as_two_replicas_and_only_rank_0_writes() {
    let Some(py) = common::venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::synthetic_cifar10(&data, 64, 100);
    // Dropout, crops, flips, Cutout and a validation split: every draw must land on the same image.
    let extra = "[model]\nname = \"simple_cnn\"\n[augment]\ncutout = 8\n";
    let cfg = config(dir.path(), &data, extra);
    let cfg = cfg.to_str().unwrap();
    let set = ["--set", "data.batch_size=32", "--set", "data.val_split=0.1", "--set", "train.epochs=2"];
    let two = torchrun(&py, 2, &[&["train", "-c", cfg][..], &set].concat());
    ok(&two);
    let out = String::from_utf8_lossy(&two.stdout);
    assert!(common::stderr(&two).contains("training on 2 processes"), "{}", common::stderr(&two));
    assert_eq!(runs(dir.path()).len(), 1, "one run directory for the two ranks: {out}");
    let replicas = ["--set", "train.replicas=2", "--set", "train.threads=2"];
    ok(&microvision().args([&["train", "-c", cfg][..], &set, &replicas].concat()).output().unwrap());
    let [dist, one] = <[PathBuf; 2]>::try_from(runs(dir.path())).unwrap();
    let ckpt = |run: &Path, tag: &str| run.join("checkpoints").join(format!("{tag}.safetensors"));
    assert_eq!(max_diff(&weights(&ckpt(&dist, "last")), &weights(&ckpt(&one, "last"))), 0.0);
    assert_eq!(train_records(&dist), train_records(&one), "the logged training loss and accuracy");
    assert_eq!(train_records(&dist).len(), 2, "rank 0 alone logs: one record per epoch");
    for file in ["env.json", "eval.json", "config.toml", "checkpoints/best.safetensors"] {
        assert!(dist.join(file).exists(), "{file}");
    }
    // The ranks scored the test split with the model rank 0 saved: one process evaluating that
    // checkpoint finds the same (each rank's own BatchNorm statistics would not).
    ok(&microvision().args(["eval", dist.to_str().unwrap(), "--checkpoint", "last"]).output().unwrap());
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dist.join(f)).unwrap()).unwrap()
    };
    let (during, after) = (read("eval.json"), read("eval-last.json"));
    assert_eq!(during["predictions"], after["predictions"], "per-image predictions");
    let loss = |v: &serde_json::Value| v["loss"].as_f64().unwrap();
    assert!((loss(&during) - loss(&after)).abs() < 1e-5, "{} vs {}", loss(&during), loss(&after));
}

#[test]
fn without_batchnorm_two_ranks_match_one_process_and_pytorch_ddp() {
    let Some(py) = common::venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cifar = common::synthetic_cifar10(&data, 8, 20); // 40 training images: one global batch
    let init = dir.path().join("init.safetensors");
    let oracle = common::repo("tests/oracle/ddp_peer.py");
    ok(&Command::new(&py).arg(&oracle).args(["init", "vit_lite7"]).arg(&init).output().unwrap());
    let (steps, lr) = (3, 0.01);
    let extra = format!(
        "[model]\nname = \"vit_lite7\"\ndropout = 0.0\ndrop_path = 0.0\ninit_from = \"{}\"\n[schedule]\nname = \
         \"constant\"\n[optim]\nlr = {lr}\n",
        init.display()
    );
    let cfg = config(dir.path(), &data, &extra);
    let cfg = cfg.to_str().unwrap();
    let set = [
        "--set",
        "data.batch_size=40",
        "--set",
        "data.augment=false",
        "--set",
        "data.val_split=0",
        "--set",
        &format!("train.epochs={steps}"),
    ];
    ok(&torchrun(&py, 2, &[&["train", "-c", cfg][..], &set].concat()));
    ok(&microvision().args([&["train", "-c", cfg][..], &set].concat()).output().unwrap());
    let [dist, one] = <[PathBuf; 2]>::try_from(runs(dir.path())).unwrap();
    let ddp_out = dir.path().join("ddp.safetensors");
    let ddp = Command::new(py.with_file_name("torchrun"))
        .args(["--standalone", "--nproc-per-node=2"])
        .arg(&oracle)
        .args(["train", "vit_lite7", cifar.to_str().unwrap(), init.to_str().unwrap()])
        .arg(one.join("env.json"))
        .args([steps.to_string(), lr.to_string()])
        .arg(&ddp_out)
        .output()
        .unwrap();
    ok(&ddp);
    let last = |run: &Path| weights(&run.join("checkpoints/last.safetensors"));
    let start = weights(&init);
    let (dist, one, ddp) = (last(&dist), last(&one), weights(&ddp_out));
    let moved = max_diff(&start, &one);
    // fp32: the ranks sum their halves' gradients in another order than one process does.
    let tolerance = 1e-6;
    assert!(moved > 100.0 * tolerance, "training moved the weights by {moved} only");
    let (to_one, to_ddp) = (max_diff(&dist, &one), max_diff(&dist, &ddp));
    eprintln!("largest weight change {moved}; two ranks vs one process {to_one}, vs PyTorch DDP {to_ddp}");
    assert!(to_one < tolerance, "two ranks vs one process: {to_one}");
    assert!(to_ddp < tolerance, "microvision vs PyTorch DDP (two ranks each): {to_ddp}");
}

/// Rank `rank` of 2 on `port`, launched as torchrun would, with `env` besides.
fn rank(rank: usize, port: u16, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut c = microvision();
    c.args(args)
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.spawn().unwrap()
}

/// Waits for `child` up to `limit`; kills it and fails past that.
fn wait_within(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("still running after {limit:?}: {:?}", child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_rank_killed_mid_epoch_stops_the_other_and_the_resumed_run_ends_as_an_uninterrupted_one() {
    let Some(py) = common::venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::synthetic_cifar10(&data, 64, 100);
    let cfg = config(dir.path(), &data, "[model]\nname = \"simple_cnn\"\n");
    let args = ["train", "-c", cfg.to_str().unwrap(), "--set", "data.batch_size=32", "--set", "train.epochs=3"];
    ok(&torchrun(&py, 2, &args)); // the uninterrupted run
                                  // 10 steps per epoch: rank 1 dies (abort, as kill -9) after step 14, in the second epoch.
    let port = common::free_port();
    let zero = rank(0, port, &args, &[]);
    let one = rank(1, port, &args, &[("MICROVISION_FAILPOINT", "step.14")]);
    let one = wait_within(one, Duration::from_secs(120));
    assert!(!one.status.success() && common::stderr(&one).contains("failpoint step.14"), "{}", common::stderr(&one));
    let zero = wait_within(zero, Duration::from_secs(60));
    common::assert_user_error(&zero, 1, &["rank 0 of 2 lost the group", "another rank stopped", "--resume"]);
    let [full, killed] = <[PathBuf; 2]>::try_from(runs(dir.path())).unwrap();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(killed.join("checkpoints/last.state.json")).unwrap()).unwrap();
    assert_eq!((state["epoch"].as_i64(), state["step"].as_i64()), (Some(1), Some(10)), "the epoch-1 checkpoint");
    ok(&torchrun(&py, 2, &["train", "--resume", killed.to_str().unwrap()]));
    let last = |run: &Path| weights(&run.join("checkpoints/last.safetensors"));
    assert_eq!(max_diff(&last(&full), &last(&killed)), 0.0, "resumed vs uninterrupted");
    assert_eq!(train_records(&full), train_records(&killed));
}

#[test]
fn ctrl_c_under_torchrun_stops_every_rank_after_one_step_and_rank_0_saves_it() {
    use std::os::unix::process::CommandExt;
    let Some(py) = common::venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::synthetic_cifar10(&data, 640, 100); // 100 steps per epoch
    let cfg = config(dir.path(), &data, "[model]\nname = \"simple_cnn\"\n");
    let args = ["train", "-c", cfg.to_str().unwrap(), "--set", "data.batch_size=32", "--set", "train.epochs=6"];
    // In a process group of its own, signalled as a terminal's Ctrl-C signals its foreground group.
    let mut c = Command::new(py.with_file_name("torchrun"));
    c.args(["--standalone", "--nproc-per-node=2", "--no-python", env!("CARGO_BIN_EXE_microvision")]).args(args);
    let job = c.env_remove("MICROVISION_DATA").stderr(Stdio::piped()).stdout(Stdio::piped()).process_group(0);
    let job = job.spawn().unwrap();
    let start = Instant::now();
    let metrics = || runs(dir.path()).first().map(|r| r.join("metrics.jsonl"));
    while !metrics().is_some_and(|m| std::fs::read_to_string(m).unwrap_or_default().contains("\"split\":\"val\"")) {
        assert!(start.elapsed() < Duration::from_secs(120), "no epoch finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signals the test's own child process group.
    unsafe { libc::kill(-(job.id() as i32), libc::SIGINT) };
    let out = wait_within(job, Duration::from_secs(60));
    let err = common::stderr(&out);
    let run = runs(dir.path()).remove(0);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/last.state.json")).unwrap()).unwrap();
    let step = state["step"].as_i64().unwrap();
    assert!(err.contains(&format!("interrupted after step {step} ")), "rank 0 saved step {step}: {err}");
    assert!(!err.contains("lost the group") && !err.contains("second interrupt"), "{err}");
    let resumed = torchrun(&py, 2, &["train", "--resume", run.to_str().unwrap(), "--set", "train.progress=false"]);
    let err = common::stderr(ok(&resumed));
    assert!(err.contains(&format!("epoch {:>3}/6", state["epoch"].as_i64().unwrap() + 1)), "{err}");
}

#[test]
fn launcher_mistakes_are_config_errors_before_any_rank_waits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::synthetic_cifar10(&data, 16, 20);
    let cfg = config(dir.path(), &data, "");
    let cfg = cfg.to_str().unwrap();
    let as_rank_0 = |args: &[&str]| {
        let port = common::free_port().to_string();
        let vars = [("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", port.as_str())];
        microvision().args(args).envs(vars).output().unwrap()
    };
    let small = as_rank_0(&["train", "-c", cfg, "--set", "data.batch_size=3", "--set", "train.replicas=2"]);
    common::assert_user_error(&small, 2, &["`data.batch_size` = 3", "2 processes x 2 replicas", "at least 4"]);
    let space = dir.path().join("space.toml");
    std::fs::write(&space, "optim.lr = { log_float = [0.01, 0.3] }\n").unwrap();
    let tune = as_rank_0(&["tune", "-c", cfg, "--space", space.to_str().unwrap(), "--trials", "1"]);
    common::assert_user_error(&tune, 2, &["`tune`", "WORLD_SIZE = 2", "without torchrun"]);
}

//! Fault matrix, part 1: `kill -9` at 11 points (during steps, during a checkpoint write, during
//! evaluation) of a recipe with every stateful part: a validation split (so `best` is written),
//! progressive resizing, TrivialAugment, Random Erasing, Mixup/CutMix and an EMA of the weights.
//! After each, `train --resume` finishes and the final weights and optimizer state (momentum
//! buffers, the EMA) equal, bit for bit, those of a run that was never interrupted.

mod common;

use microvision::train::checkpoint;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("cfg.toml");
    let text = format!(
        r#"name = "k"
[data]
root = "{}"
batch_size = 32
download = false
official_files = false
val_split = 0.2
train_sizes = [24, 28]
[augment]
policy = "trivialaugment"
random_erasing = 0.25
mixup_alpha = 0.2
cutmix_alpha = 1.0
[model]
name = "searchnet"
[model.arch]
width1 = 8
width2 = 16
width3 = 32
[optim]
momentum = 0.9
[train]
epochs = 3
threads = 1
log_every = 1
progress = false
ema_decay = 0.9
"#,
        dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn train(cfg: &Path, runs: &Path, failpoint: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microvision"));
    // The config names the synthetic data; MICROVISION_DATA (set by `make`) would override it.
    cmd.env_remove("MICROVISION_DATA");
    cmd.args(["train", "-c", cfg.to_str().unwrap(), "--set"]).arg(format!("output.runs_dir=\"{}\"", runs.display()));
    if let Some(fp) = failpoint {
        cmd.env("MICROVISION_FAILPOINT", fp);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

fn run_dir(runs: &Path) -> PathBuf {
    std::fs::read_dir(runs).unwrap().next().unwrap().unwrap().path()
}

fn step_lines(runs: &Path) -> usize {
    let Some(Ok(entry)) = std::fs::read_dir(runs).ok().and_then(|mut d| d.next()) else { return 0 };
    std::fs::read_to_string(entry.path().join("metrics.jsonl")).map_or(0, |t| t.matches("\"kind\":\"step\"").count())
}

/// The epochs of the validation lines of a run's metrics.jsonl, in file order.
fn epoch_lines(run: &Path) -> Vec<i64> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines = text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    lines.filter(|v| v["kind"] == "epoch" && v["split"] == "val").filter_map(|v| v["epoch"].as_i64()).collect()
}

/// The final checkpoint's weights, then its optimizer tensors (momentum buffers, the EMA).
fn final_weights(run: &Path) -> Vec<(String, tch::Tensor)> {
    let last = checkpoint::load(&run.join("checkpoints"), "last").unwrap();
    let optim = last.optim.into_iter().map(|(n, t)| (format!("optim/{n}"), t));
    last.weights.into_iter().chain(optim).collect()
}

fn resume(run: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_microvision"))
        .env_remove("MICROVISION_DATA")
        .args(["train", "--resume"])
        .arg(run)
        .output()
        .unwrap();
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn assert_same(reference: &[(String, tch::Tensor)], run: &Path, case: &str) {
    let got = final_weights(run);
    assert_eq!(reference.len(), got.len(), "{case}");
    for ((na, a), (nb, b)) in reference.iter().zip(&got) {
        assert_eq!(na, nb, "{case}");
        assert!(a.equal(b), "{case}: {na} differs from the uninterrupted run");
    }
}

#[test]
fn kill_9_anywhere_then_resume_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 40); // 160 training images: 5 steps per epoch, 15 in all
    let cfg = config(tmp.path());
    let reference_runs = tmp.path().join("reference");
    let status = train(&cfg, &reference_runs, None).wait().unwrap();
    assert!(status.success());
    let reference = final_weights(&run_dir(&reference_runs));
    let optim: Vec<_> = reference.iter().filter(|(n, _)| n.starts_with("optim/")).map(|(n, _)| n.as_str()).collect();
    assert!(optim.iter().any(|n| n.contains("ema")), "the EMA is compared too: {optim:?}");
    assert!(optim.len() > 2, "momentum buffers are compared too: {optim:?}");

    // Points the process reaches itself and aborts at: inside a checkpoint write and evaluation.
    for fp in ["checkpoint.before_rename", "checkpoint.mid_rename", "checkpoint.between_best_and_last", "eval"] {
        let runs = tmp.path().join(fp);
        let out = train(&cfg, &runs, Some(fp)).wait_with_output().unwrap();
        assert!(!out.status.success(), "{fp}: the failpoint must abort the run");
        resume(&run_dir(&runs));
        assert_same(&reference, &run_dir(&runs), fp);
        // Every epoch a checkpoint covers keeps its record (a crash after `best`, before `last`,
        // once lost epoch 1's line for good).
        assert_eq!(epoch_lines(&run_dir(&runs)), [1, 2, 3], "{fp}: metrics.jsonl epochs");
    }
    // Records of epochs past the first without any checkpoint: the checkpoints were lost, and
    // starting over would replace the records, so the resume refuses and changes nothing.
    let lost = tmp.path().join("lost");
    assert!(train(&cfg, &lost, None).wait().unwrap().success());
    let lost = run_dir(&lost);
    std::fs::remove_dir_all(lost.join("checkpoints")).unwrap();
    let before = std::fs::read(lost.join("metrics.jsonl")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_microvision")).args(["train", "--resume"]).arg(&lost).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("though the run had finished epochs"), "{err}");
    assert_eq!(std::fs::read(lost.join("metrics.jsonl")).unwrap(), before, "the records are left as they were");

    // SIGKILL from outside after a given number of logged steps (during training steps).
    for after_steps in [1, 3, 5, 6, 8, 11, 13] {
        let runs = tmp.path().join(format!("kill-{after_steps}"));
        let mut child = train(&cfg, &runs, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while step_lines(&runs) < after_steps && child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "training did not progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The kill lands mid-run: the child is still training and has not written its final result.
        assert!(child.try_wait().unwrap().is_none(), "kill after {after_steps} steps: the run had already ended");
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert!(!run_dir(&runs).join("eval.json").exists(), "kill after {after_steps} steps: the run had finished");
        resume(&run_dir(&runs));
        assert_same(&reference, &run_dir(&runs), &format!("kill after {after_steps} steps"));
        let leftovers: Vec<_> = std::fs::read_dir(run_dir(&runs).join("checkpoints"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary checkpoint files are cleaned up");
    }
}

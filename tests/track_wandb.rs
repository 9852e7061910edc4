//! The W&B sink and `microvision sync wandb`, checked without a server or an account: runs are
//! written offline by W&B's own SDK (the pinned `wandb` of the project's venv) and read back
//! with `tests/oracle/read_wandb.py` (W&B's protobuf records), then compared with the run's
//! `metrics.jsonl`, `config.toml`, plots and `eval.json`.

mod common;

use common::{mv, stderr};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

use microvision::track::jsonl::read_records;
use microvision::track::MetricKind;
use microvision::train::Trainer;

/// The venv's Python with wandb, or None after `common::skip`.
fn wandb_python() -> Option<PathBuf> {
    let py = common::venv_python()?;
    if !Command::new(&py).args(["-c", "import wandb"]).status().is_ok_and(|s| s.success()) {
        common::skip("wandb is not in .venv (scripts/setup.sh --python installs it)");
        return None;
    }
    Some(py)
}

/// The offline W&B runs under `run/wandb/`, oldest first, read back by the oracle.
fn offline_runs(py: &Path, run: &Path) -> Vec<Value> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(run.join("wandb"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.file_name().is_some_and(|n| n.to_string_lossy().starts_with("offline-run-")));
    dirs.sort();
    dirs.iter()
        .map(|d| {
            let out = Command::new(py).arg(common::repo("tests/oracle/read_wandb.py")).arg(d).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
            v["dir"] = d.display().to_string().into();
            v
        })
        .collect()
}

/// Every metrics.jsonl record of `run` is in the W&B history at its step with equal values
/// (`batch/` before a step line's names, as the sink writes them), the config equals
/// config.toml's leaves, every plot is an image with the plot's bytes, and eval.json and
/// config.toml are files of the W&B run.
fn assert_mirrors_the_run(run: &Path, wandb: &[Value]) {
    let rows: Vec<&Value> = wandb.iter().flat_map(|w| w["history"].as_array().unwrap()).collect();
    let records = read_records(&run.join("metrics.jsonl")).unwrap();
    assert!(records.iter().any(|r| r.kind == MetricKind::Test), "the run finished");
    for r in &records {
        for (name, value) in &r.values {
            let key = if r.kind == MetricKind::Step { format!("batch/{name}") } else { name.clone() };
            let found = rows.iter().any(|row| row["_step"] == r.step && row[&key].as_f64() == Some(*value));
            assert!(found, "{key} = {value} at step {} is not in the W&B history", r.step);
        }
    }
    let last = wandb.last().unwrap();
    let cfg = microvision::run::read_config(run).unwrap();
    for (key, value) in cfg.leaves() {
        assert_eq!(last["config"][&key], serde_json::to_value(&value).unwrap(), "config {key}");
    }
    let offline = Path::new(last["dir"].as_str().unwrap());
    let mut plots = 0;
    for entry in std::fs::read_dir(run.join("plots")).unwrap() {
        let png = entry.unwrap().path();
        if png.extension().is_none_or(|x| x != "png") {
            continue;
        }
        let key = format!("plots/{}/path", png.file_stem().unwrap().to_string_lossy());
        let media = rows.iter().rev().find_map(|row| row[&key].as_str()).unwrap_or_else(|| panic!("no image {key}"));
        assert_eq!(std::fs::read(offline.join("files").join(media)).unwrap(), std::fs::read(&png).unwrap(), "{key}");
        plots += 1;
    }
    assert!(plots >= 4, "{plots} plots");
    for f in ["eval.json", "config.toml"] {
        assert_eq!(std::fs::read(offline.join("files").join(f)).unwrap(), std::fs::read(run.join(f)).unwrap(), "{f}");
    }
    assert_eq!(last["exit_code"], 0, "the run finished");
}

fn config_file(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("w.toml");
    let text = format!(
        "name = \"w\"\n[data]\nroot = \"{}\"\nbatch_size = 32\ndownload = false\nofficial_files = false\n\
         [train]\nepochs = 2\nthreads = 1\nlog_every = 1\n[output]\nruns_dir = \"{}\"\n{extra}",
        dir.display(),
        dir.join("runs").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn train(cfg: &Path, envs: &[(&str, &str)]) -> (std::process::Output, PathBuf) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microvision"));
    cmd.env_remove("MICROVISION_DATA").env_remove("WANDB_MODE").args(["train", "-c", cfg.to_str().unwrap()]);
    envs.iter().for_each(|(k, v)| {
        cmd.env(k, v);
    });
    let out = cmd.output().unwrap();
    let runs = cfg.parent().unwrap().join("runs");
    let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
    (out, run)
}

#[test]
fn training_writes_an_offline_wandb_run_that_mirrors_the_run_directory() {
    let Some(py) = wandb_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let cfg = config_file(tmp.path(), "[track]\nwandb = true\nwandb_project = \"mv-test\"\n");
    let (out, run) = train(&cfg, &[("WANDB_MODE", "offline")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wandb = offline_runs(&py, &run);
    assert_eq!(wandb.len(), 1);
    assert_eq!(wandb[0]["project"], "mv-test");
    assert_eq!(wandb[0]["run_id"].as_str().unwrap(), std::fs::read_to_string(run.join("wandb_run_id")).unwrap());
    assert_mirrors_the_run(&run, &wandb);
}

#[test]
fn sync_writes_a_run_trained_without_wandb() {
    let Some(py) = wandb_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let (out, run) = train(&config_file(tmp.path(), ""), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!run.join("wandb").exists() && !run.join("wandb_run_id").exists());
    let o = mv(&["sync", "wandb", run.to_str().unwrap(), "--mode", "offline", "--project", "later"], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("offline in") && said.contains("wandb sync"), "{said}");
    let wandb = offline_runs(&py, &run);
    assert_eq!(wandb.len(), 1);
    assert_eq!(wandb[0]["project"], "later");
    assert_mirrors_the_run(&run, &wandb);
    // Mistakes: not a run directory; an unknown mode.
    let o = mv(&["sync", "wandb", tmp.path().to_str().unwrap(), "--mode", "offline"], tmp.path());
    common::assert_user_error(&o, 4, &["is not a run directory", "config.toml"]);
    let o = mv(&["sync", "wandb", run.to_str().unwrap(), "--mode", "sideways"], tmp.path());
    common::assert_user_error(&o, 2, &["sideways", "online", "offline"]);
}

#[test]
fn a_resumed_run_continues_its_wandb_run() {
    let Some(py) = wandb_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20); // 3 steps per epoch
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    (cfg.train.epochs, cfg.track.wandb, cfg.track.wandb_mode) = (3, true, "offline".into());
    let mut t = Trainer::new(cfg).unwrap();
    let flag = t.stop.clone();
    t.add_callback(Box::new(common::StopAt(5, flag))); // Ctrl-C in epoch 2
    let Err(err) = microvision::lab::fit(&mut t) else { panic!("Ctrl-C must stop the run") };
    assert!(matches!(err, microvision::Error::Interrupted(_)), "{err}");
    let run = t.run_dir.clone();
    drop(t);
    let id = std::fs::read_to_string(run.join("wandb_run_id")).unwrap();
    // W&B names an offline session by its start second: the resumed one must start in another.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut again = Trainer::resume(&run).unwrap();
    microvision::lab::fit(&mut again).unwrap();
    assert_eq!(std::fs::read_to_string(run.join("wandb_run_id")).unwrap(), id, "the same W&B run");
    let wandb = offline_runs(&py, &run);
    assert_eq!(wandb.len(), 2, "two sessions of one W&B run");
    assert!(wandb.iter().all(|w| w["run_id"] == id.as_str()));
    assert_eq!(wandb[0]["exit_code"], 1, "the interrupted session ended as failed");
    assert_mirrors_the_run(&run, &wandb);
}

#[test]
fn without_wandb_training_warns_and_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    // A Python without site-packages: no wandb.
    let fake = tmp.path().join("python-without-wandb");
    std::fs::write(&fake, "#!/bin/sh\nexec python3 -S \"$@\"\n").unwrap();
    let mut perms = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).unwrap();
    let cfg = config_file(tmp.path(), "[track]\nwandb = true\n");
    let (out, run) = train(&cfg, &[("MICROVISION_PYTHON", fake.to_str().unwrap()), ("WANDB_MODE", "offline")]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("W&B logging is off") && err.contains("pip install wandb"), "{err}");
    assert!(run.join("eval.json").exists() && !run.join("wandb").exists());
}

#[test]
fn a_helper_that_dies_mid_run_is_a_warning_and_training_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    // A "Python" that answers the version and the init, then dies.
    let fake = tmp.path().join("dying-python");
    let script = "#!/bin/sh\nread l\necho '{\"ok\": true, \"wandb\": \"0.31.0\"}'\nread l\n\
                  echo '{\"ok\": true, \"id\": \"x\", \"url\": null, \"mode\": \"offline\", \"offline_dir\": null}'\n\
                  echo 'Segmentation fault' >&2\nexit 139\n";
    std::fs::write(&fake, script).unwrap();
    let mut perms = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).unwrap();
    let cfg = config_file(tmp.path(), "[track]\nwandb = true\n");
    let (out, run) = train(&cfg, &[("MICROVISION_PYTHON", fake.to_str().unwrap())]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("W&B logging stopped") && err.contains("Segmentation fault"), "{err}");
    assert!(run.join("eval.json").exists());
}

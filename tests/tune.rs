//! `microvision tune` end to end on a synthetic CIFAR-10: concurrent workers on one journal
//! file, the grid sampler, a worker killed mid-trial, the median pruner against its rule.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use microvision::search::optuna::Optuna;
use microvision::search::study::{Study, TrialState};

/// The venv's Python with Optuna, or None after `common::skip` (a failure under CI).
pub fn optuna_python() -> Option<PathBuf> {
    let py = common::venv_python()?;
    let ok = Command::new(&py).args(["-c", "import optuna"]).status().is_ok_and(|s| s.success());
    if !ok {
        common::skip("Optuna is not in the venv (scripts/setup.sh --python installs requirements.lock)");
        return None;
    }
    Some(py)
}

/// A tiny base config (SimpleCNN, `epochs` epochs, 20 images a class) and a data directory.
fn setup(tmp: &Path, epochs: i64) -> PathBuf {
    common::synthetic_cifar10(&tmp.join("data"), 40, 40);
    let cfg = tmp.join("base.toml");
    let text = format!(
        "name = \"t\"\n[data]\nroot = \"{}\"\nofficial_files = false\ndownload = false\nbatch_size = 50\n\
         val_split = 0.2\n[train]\nepochs = {epochs}\nthreads = 1\nprogress = false\n[output]\nruns_dir = \"{}\"\n",
        tmp.join("data").display(),
        tmp.join("runs").display()
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// `microvision tune` on `tmp`'s base config and space, with `args`.
fn tune_command(tmp: &Path, py: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microvision"));
    cmd.arg("tune")
        .args(["-c", tmp.join("base.toml").to_str().unwrap(), "--space", tmp.join("space.toml").to_str().unwrap()])
        .args(args)
        .env("MICROVISION_PYTHON", py)
        .env_remove("MICROVISION_DATA");
    cmd
}

fn tune(tmp: &Path, py: &Path, args: &[&str]) -> Output {
    tune_command(tmp, py, args).output().unwrap()
}

/// `microvision tune` in a process group of its own, so that a signal reaches the worker and its
/// Optuna driver as a terminal's would.
fn spawn_tune_group(tmp: &Path, py: &Path, args: &[&str]) -> std::process::Child {
    tune_command(tmp, py, args).stderr(std::process::Stdio::piped()).process_group(0).spawn().unwrap()
}

/// Waits until the run of trial `n` under `runs` has written a metrics line; returns it.
fn wait_for_training(runs: &Path, n: usize) -> PathBuf {
    let started = std::time::Instant::now();
    loop {
        let found = std::fs::read_dir(runs).into_iter().flatten().flatten().map(|e| e.path()).find(|p| {
            p.to_string_lossy().contains(&format!("trial{n:03}"))
                && std::fs::metadata(p.join("metrics.jsonl")).is_ok_and(|m| m.len() > 0)
        });
        if let Some(p) = found {
            return p;
        }
        assert!(started.elapsed().as_secs() < 120, "trial {n} never trained");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn read(py: &Path, storage: &Path, name: &str) -> Study {
    let mut o = Optuna::start(py.to_path_buf()).unwrap();
    Study::read(&mut o, name, storage.to_str().unwrap()).unwrap()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), common::stderr(o));
}

#[test]
fn three_workers_on_one_journal_file_leave_exactly_the_budget() {
    let Some(py) = optuna_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), 1);
    std::fs::write(tmp.path().join("space.toml"), "optim.lr = { log_float = [0.005, 0.1] }\n").unwrap();
    let o = tune(tmp.path(), &py, &["--trials", "7", "--workers", "3", "--pruner", "none", "--study", "w3"]);
    ok(&o);
    let s = read(&py, &tmp.path().join("runs/w3/study.journal"), "w3");
    let mut numbers: Vec<i64> = s.trials.iter().map(|t| t.number).collect();
    numbers.sort();
    assert_eq!(numbers, (0..7).collect::<Vec<_>>(), "exactly 7 trials, each number once");
    assert!(s.trials.iter().all(|t| t.state == TrialState::Complete), "{:?}", s.counts());
    // Every trial is an ordinary, finished run directory of its own, named by the trial.
    let mut dirs: Vec<String> = s.trials.iter().map(|t| t.attrs["run_dir"].as_str().unwrap().to_string()).collect();
    dirs.sort();
    dirs.dedup();
    assert_eq!(dirs.len(), 7);
    for (t, d) in s.trials.iter().map(|t| (t.number, t.attrs["run_dir"].as_str().unwrap())) {
        assert!(Path::new(d).join("eval.json").is_file() && d.contains(&format!("trial{t:03}")), "{d}");
    }
    // The same command again finds the budget spent and runs nothing.
    ok(&tune(tmp.path(), &py, &["--trials", "7", "--pruner", "none", "--study", "w3"]));
    assert_eq!(read(&py, &tmp.path().join("runs/w3/study.journal"), "w3").trials.len(), 7);
}

#[test]
fn the_grid_sampler_covers_its_grid_exactly_once_with_two_workers() {
    let Some(py) = optuna_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), 1);
    let space =
        "optim.lr = { categorical = [0.01, 0.05] }\noptim.weight_decay = { float = [0.0, 0.002], step = 0.001 }\n";
    std::fs::write(tmp.path().join("space.toml"), space).unwrap();
    ok(&tune(tmp.path(), &py, &["--sampler", "grid", "--workers", "2", "--pruner", "none", "--study", "g"]));
    let s = read(&py, &tmp.path().join("runs/g/study.journal"), "g");
    let mut points: Vec<(String, String)> = s
        .trials
        .iter()
        .map(|t| (t.params["optim.lr"].to_string(), t.params["optim.weight_decay"].to_string()))
        .collect();
    points.sort();
    let mut want = Vec::new();
    for lr in ["0.01", "0.05"] {
        for wd in ["0.0", "0.001", "0.002"] {
            want.push((lr.to_string(), wd.to_string()));
        }
    }
    assert_eq!(points, want, "each of the 6 grid points once");
}

#[test]
fn a_worker_killed_mid_trial_leaves_the_trial_failed_and_the_study_usable() {
    let Some(py) = optuna_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), 2);
    std::fs::write(tmp.path().join("space.toml"), "optim.lr = { log_float = [0.005, 0.1] }\n").unwrap();
    // 1. The worker dies as under kill -9 while evaluating (its Optuna driver lives on, sees the
    //    end of its input and fails the trial).
    let o = tune_command(tmp.path(), &py, &["--trials", "3", "--pruner", "none", "--study", "k"])
        .env("MICROVISION_FAILPOINT", "eval")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let journal = tmp.path().join("runs/k/study.journal");
    let s = read(&py, &journal, "k");
    assert_eq!(s.trials[0].state, TrialState::Fail, "{:?}", s.trials[0]);
    assert!(s.trials[0].attrs["error"].as_str().unwrap().contains("ended mid-trial"));
    // 2. SIGKILL of the whole process group (worker and driver) during the next trial: the
    //    trial is left RUNNING until the next worker finds its owner gone and fails it.
    let mut child = spawn_tune_group(tmp.path(), &py, &["--trials", "3", "--pruner", "none", "--study", "k"]);
    let trial1 = wait_for_training(&tmp.path().join("runs/k"), 1);
    // SAFETY: kill(2) on the child's own process group.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    child.wait().unwrap();
    assert_eq!(read(&py, &journal, "k").trials[1].state, TrialState::Running);
    // 3. The same command again: trial 1 failed (its owner is gone), trial 2 trained.
    ok(&tune(tmp.path(), &py, &["--trials", "3", "--pruner", "none", "--study", "k"]));
    let s = read(&py, &journal, "k");
    let states: Vec<TrialState> = s.trials.iter().map(|t| t.state).collect();
    assert_eq!(states, [TrialState::Fail, TrialState::Fail, TrialState::Complete]);
    assert!(trial1.join("checkpoints").exists() || trial1.join("metrics.jsonl").is_file());
}

/// Optuna's median rule (`MedianPruner(n_startup_trials=5, n_warmup_steps=1)`, maximising),
/// replayed on the recorded curves: the epoch at which trial `i` should stop, if any.
fn median_rule(curves: &[(TrialState, Vec<(i64, f64)>)], i: usize) -> Option<i64> {
    let complete: Vec<&Vec<(i64, f64)>> =
        curves[..i].iter().filter(|(s, _)| *s == TrialState::Complete).map(|(_, c)| c).collect();
    if complete.len() < 5 {
        return None;
    }
    let mut best = f64::MIN;
    for &(epoch, v) in &curves[i].1 {
        best = best.max(v);
        let mut at: Vec<f64> = complete.iter().filter_map(|c| c.iter().find(|p| p.0 == epoch).map(|p| p.1)).collect();
        at.sort_by(f64::total_cmp);
        let n = at.len();
        let median = if n % 2 == 1 { at[n / 2] } else { (at[n / 2 - 1] + at[n / 2]) / 2.0 };
        if epoch >= 1 && best < median {
            return Some(epoch);
        }
    }
    None
}

#[test]
fn the_median_pruner_stops_exactly_the_trials_its_rule_names() {
    let Some(py) = optuna_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), 3);
    // A grid, so the order is fixed: five good learning rates first (the startup trials), then
    // two that cannot learn in three epochs, then a good one.
    let space = "optim.lr = { categorical = [0.05, 0.04, 0.06, 0.03, 0.07, 1e-6, 2e-6, 0.045] }\n";
    std::fs::write(tmp.path().join("space.toml"), space).unwrap();
    ok(&tune(tmp.path(), &py, &["--sampler", "grid", "--pruner", "median", "--study", "m"]));
    let s = read(&py, &tmp.path().join("runs/m/study.journal"), "m");
    let curves: Vec<(TrialState, Vec<(i64, f64)>)> =
        s.trials.iter().map(|t| (t.state, t.intermediate.clone())).collect();
    for (i, t) in s.trials.iter().enumerate() {
        let rule = median_rule(&curves, i);
        match rule {
            Some(epoch) => {
                assert_eq!(t.state, TrialState::Pruned, "trial {i} should stop at epoch {epoch}: {:?}", t.intermediate);
                assert_eq!(t.intermediate.last().map(|p| p.0), Some(epoch), "reported nothing after the stop");
                // Stopped as Ctrl-C stops a run: `last` kept, no final evaluation.
                let run = Path::new(t.attrs["run_dir"].as_str().unwrap());
                assert!(run.join("checkpoints").read_dir().unwrap().count() > 0 && !run.join("eval.json").exists());
            }
            None => assert_eq!(t.state, TrialState::Complete, "trial {i}: {:?}", t.intermediate),
        }
    }
    let pruned: Vec<f64> = s
        .trials
        .iter()
        .filter(|t| t.state == TrialState::Pruned)
        .map(|t| t.params["optim.lr"].as_f64().unwrap())
        .collect();
    assert!(pruned.contains(&1e-6) && pruned.contains(&2e-6), "the learning rates that cannot learn: {pruned:?}");
}

#[test]
fn a_bad_space_is_refused_before_any_trial_naming_the_key() {
    let Some(py) = optuna_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), 1);
    for (space, needles) in [
        ("optim.lrr = { float = [0.1, 0.2] }", vec!["optim.lrr", "not a config key", "optim.lr"]),
        ("optim.lr = { float = [0.2, 0.1] }", vec!["optim.lr", "empty range"]),
        ("data.batch_size = { categorical = [\"big\", 64] }", vec!["data.batch_size", "big"]),
        ("optim.lr = { log_float = [0.0, 0.1] }", vec!["optim.lr", "low > 0"]),
        (
            "optim.momentum = { float = [0.8, 0.9], when = { \"optim.name\" = \"sgd\" } }",
            vec!["optim.name", "not searched"],
        ),
        ("train.threads = { int = [1, 2] }", vec!["train.threads", "set by the tuner"]),
        ("optim.lr = 0.1", vec!["optim.lr", "expected a distribution"]),
        ("data.batch_size = { int = [1, 10], step = 6 }", vec!["data.batch_size", "does not divide"]),
    ] {
        std::fs::write(tmp.path().join("space.toml"), space).unwrap();
        let o = tune(tmp.path(), &py, &["--trials", "2", "--study", "bad"]);
        common::assert_user_error(&o, 2, &needles);
        assert!(!tmp.path().join("runs/bad").exists(), "nothing is created for a bad space: {space}");
    }
}

#[test]
fn the_report_draws_the_study_and_its_command_rebuilds_the_best_trial() {
    let Some(py) = optuna_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), 1);
    std::fs::write(
        tmp.path().join("space.toml"),
        "optim.lr = { log_float = [0.005, 0.1] }\ntrain.label_smoothing = { float = [0.0, 0.2] }\n",
    )
    .unwrap();
    ok(&tune(tmp.path(), &py, &["--trials", "3", "--pruner", "none", "--study", "r", "--set", "optim.momentum=0.8"]));
    let dir = tmp.path().join("runs/r");
    let o = Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["tune", "report", dir.to_str().unwrap(), "--seeds", "2"])
        .env("MICROVISION_PYTHON", &py)
        .env_remove("MICROVISION_DATA")
        .output()
        .unwrap();
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    for f in ["tune_history.png", "tune_curves.svg", "tune_importance.png", "report.html"] {
        assert!(dir.join("report").join(f).is_file(), "{f}\n{out}");
    }
    let html = std::fs::read_to_string(dir.join("report/report.html")).unwrap();
    assert!(html.contains("id=\"rerun\"") && html.contains("data:image/png;base64,"), "{html}");
    // The printed command, run through the config loader, is the best trial's recipe.
    let s = read(&py, &dir.join("study.journal"), "r");
    let best = s.ranked()[0];
    let cmd = out.lines().skip_while(|l| !l.starts_with("re-run")).nth(1).unwrap().trim().to_string();
    let sets: Vec<String> = cmd.split(" --set ").skip(1).map(|s| s.trim_matches('\'').to_string()).collect();
    assert!(sets.contains(&"optim.momentum=0.8".to_string()), "the user's own overrides come first: {cmd}");
    let rebuilt = microvision::Config::load(&tmp.path().join("base.toml"), &sets).unwrap();
    let trial_run = Path::new(best.attrs["run_dir"].as_str().unwrap());
    let trained = microvision::run::read_config(trial_run).unwrap();
    let differ: Vec<String> = microvision::run::recipe::differences(&rebuilt, &trained)
        .into_iter()
        .filter(|d| !d.starts_with("name:") && !d.starts_with("output.runs_dir:") && !d.starts_with("data.root:"))
        .collect();
    assert!(differ.is_empty(), "{differ:?}");
    // optuna-dashboard (the venv's) serves the study from its journal file as it is.
    let served = dashboard_studies(&py, &dir.join("study.journal"));
    assert_eq!(served["study_summaries"][0]["study_name"], "r", "{served}");
    // --seeds 2: the best configuration trained twice more, compared as one recipe.
    let best_runs: Vec<_> =
        std::fs::read_dir(dir.join("best")).unwrap().flatten().filter(|e| e.path().is_dir()).collect();
    assert_eq!(best_runs.len(), 2);
    let row = out.lines().find(|l| l.contains("best-trial")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains(" 2 ") && row.contains("+-"), "{row}");
}

#[test]
fn an_architecture_search_scores_accuracy_against_macs_on_a_pareto_front() {
    let Some(py) = optuna_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), 1);
    let space =
        "[model.arch]\nwidth1 = { int = [8, 16], step = 8 }\nblock = { categorical = [\"basic\", \"inverted\"] }\n";
    std::fs::write(tmp.path().join("space.toml"), space).unwrap();
    let refused =
        tune(tmp.path(), &py, &["--trials", "4", "--objective", "val_acc,macs", "--pruner", "median", "--study", "a"]);
    common::assert_user_error(&refused, 2, &["--pruner median", "single-objective"]);
    let args = [
        "--trials",
        "4",
        "--objective",
        "val_acc,macs",
        "--sampler",
        "nsga2",
        "--study",
        "a",
        "--set",
        "model.name=searchnet",
    ];
    ok(&tune(tmp.path(), &py, &args));
    let s = read(&py, &tmp.path().join("runs/a/study.journal"), "a");
    assert_eq!(s.directions, ["maximize", "minimize"]);
    for t in &s.trials {
        assert_eq!(t.state, TrialState::Complete);
        // The cost objective is the trial's own model: the MACs its run recorded.
        let env: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(Path::new(t.attrs["run_dir"].as_str().unwrap()).join("env.json")).unwrap(),
        )
        .unwrap();
        let values = t.values.as_ref().unwrap();
        assert_eq!(values[1], env["macs_per_image"].as_f64().unwrap());
        assert!(values[0] >= 0.0 && values[0] <= 100.0);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["tune", "report", tmp.path().join("runs/a").to_str().unwrap()])
        .env("MICROVISION_PYTHON", &py)
        .output()
        .unwrap();
    ok(&o);
    assert!(tmp.path().join("runs/a/report/tune_pareto.svg").is_file());
}

/// `optuna-dashboard STORAGE` on a free loopback port: its `/api/studies` answer.
fn dashboard_studies(py: &Path, storage: &Path) -> serde_json::Value {
    let port = common::free_port();
    let mut child = Command::new(py.with_file_name("optuna-dashboard"))
        .arg(storage)
        .args(["--port", &port.to_string(), "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("optuna-dashboard is in the venv (requirements.lock)");
    let started = std::time::Instant::now();
    let answer = loop {
        match ureq::get(&format!("http://127.0.0.1:{port}/api/studies")).call() {
            Ok(r) => break r.into_string().unwrap(),
            Err(_) if started.elapsed().as_secs() < 60 => std::thread::sleep(std::time::Duration::from_millis(200)),
            Err(e) => panic!("optuna-dashboard did not answer: {e}"),
        }
    };
    // SAFETY: kill(2) on the group this test created for the dashboard.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
    let _ = child.wait();
    serde_json::from_str(&answer).unwrap()
}

#[test]
fn after_the_timeout_no_trial_starts_and_the_rest_wait_for_the_next_command() {
    let Some(py) = optuna_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), 1);
    std::fs::write(tmp.path().join("space.toml"), "optim.lr = { log_float = [0.005, 0.1] }\n").unwrap();
    ok(&tune(tmp.path(), &py, &["--trials", "2", "--pruner", "none", "--study", "t", "--timeout", "0"]));
    let journal = tmp.path().join("runs/t/study.journal");
    let states: Vec<TrialState> = read(&py, &journal, "t").trials.iter().map(|t| t.state).collect();
    assert_eq!(states, [TrialState::Waiting, TrialState::Waiting]);
    ok(&tune(tmp.path(), &py, &["--trials", "2", "--pruner", "none", "--study", "t"]));
    let states: Vec<TrialState> = read(&py, &journal, "t").trials.iter().map(|t| t.state).collect();
    assert_eq!(states, [TrialState::Complete, TrialState::Complete]);
}

#[test]
fn ctrl_c_fails_the_running_trial_and_leaves_the_rest_queued() {
    let Some(py) = optuna_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), 200);
    std::fs::write(tmp.path().join("space.toml"), "optim.lr = { log_float = [0.005, 0.1] }\n").unwrap();
    let child = spawn_tune_group(tmp.path(), &py, &["--trials", "2", "--pruner", "none", "--study", "c"]);
    let runs = tmp.path().join("runs/c");
    wait_for_training(&runs, 0);
    // As the terminal does: SIGINT to the whole group (the worker and its Optuna driver).
    // SAFETY: kill(2) on the child's own process group.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", common::stderr(&out));
    let s = read(&py, &runs.join("study.journal"), "c");
    let states: Vec<TrialState> = s.trials.iter().map(|t| t.state).collect();
    assert_eq!(states, [TrialState::Fail, TrialState::Waiting]);
    assert!(s.trials[0].attrs["error"].as_str().unwrap().contains("interrupted"));
}

#[test]
fn trials_failing_in_a_row_stop_the_worker_before_the_budget_is_spent() {
    let Some(py) = optuna_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), 1);
    std::fs::write(tmp.path().join("space.toml"), "optim.lr = { log_float = [0.005, 0.1] }\n").unwrap();
    let gone = tmp.path().join("no-data");
    let o = tune(
        tmp.path(),
        &py,
        &["--trials", "5", "--pruner", "none", "--study", "f", "--set", &format!("data.root={}", gone.display())],
    );
    let err = common::stderr(&o);
    assert!(!o.status.success() && err.contains("the last 3 trials failed") && err.contains("not found"), "{err}");
    let s = read(&py, &tmp.path().join("runs/f/study.journal"), "f");
    let states: Vec<TrialState> = s.trials.iter().map(|t| t.state).collect();
    use TrialState::*;
    assert_eq!(states, [Fail, Fail, Fail, Waiting, Waiting]);
    assert!(s.trials[0].attrs["error"].as_str().unwrap().contains("no-data"));
}

//! The MLflow sink against a real MLflow server (the `mlflow` package in the project's venv, on a
//! loopback port, its store in a temp dir): params, per-epoch metrics, plots as artifacts and the
//! run status are read back through MLflow's REST API. A server that is down is only a warning.

mod common;

use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use microvision::train::Trainer;

/// Kills the server when the test ends, whatever happens: its whole process group, since
/// `mlflow server` runs the web server (uvicorn) as a child that would outlive it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the group this test created for the server (see `start_server`).
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn start_server(mlflow: &Path, dir: &Path) -> (Server, String) {
    start_server_on(mlflow, dir, common::free_port())
}

/// An MLflow server on `port` with its store (sqlite) and artifacts in `dir`.
fn start_server_on(mlflow: &Path, dir: &Path, port: u16) -> (Server, String) {
    let child = Command::new(mlflow)
        .args(["server", "--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
        .arg("--artifacts-destination")
        .arg(dir.join("artifacts"))
        .stdout(Stdio::null())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let server = Server(child);
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while ureq::get(&format!("{url}/health")).call().is_err() {
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        assert!(start.elapsed() < Duration::from_secs(180), "MLflow server did not start:\n{log}");
        std::thread::sleep(Duration::from_millis(500));
    }
    (server, url)
}

fn get(url: &str) -> Value {
    serde_json::from_str(&ureq::get(url).call().unwrap().into_string().unwrap()).unwrap()
}

#[test]
fn mlflow_gets_params_metrics_plots_and_status() {
    let Some(py) = common::venv_python() else { return };
    let mlflow = py.with_file_name("mlflow");
    if !mlflow.exists() {
        return common::skip(&format!("{} not installed (scripts/setup.sh installs it)", mlflow.display()));
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url) = start_server(&mlflow, tmp.path());
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.track.mlflow_uri = url.clone();
    cfg.track.mlflow_experiment = "tiny-test".into();
    let mut t = Trainer::new(cfg).unwrap();
    microvision::lab::fit(&mut t).unwrap();

    let run_id = std::fs::read_to_string(t.run_dir.join("mlflow_run_id")).unwrap();
    let api = format!("{url}/api/2.0/mlflow");
    let run = get(&format!("{api}/runs/get?run_id={run_id}"))["run"].clone();
    assert_eq!(run["info"]["status"], "FINISHED");
    let params: Vec<(String, String)> = run["data"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["key"].as_str().unwrap().to_string(), p["value"].as_str().unwrap().to_string()))
        .collect();
    assert!(params.contains(&("model.name".into(), "simple_cnn".into())), "{params:?}");
    assert!(params.contains(&("train.epochs".into(), "2".into())), "{params:?}");

    // Per-epoch validation accuracy equals metrics.jsonl's.
    let history = get(&format!("{api}/metrics/get-history?run_id={run_id}&metric_key=val/acc"));
    let got: Vec<(i64, f64)> = history["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["step"].as_i64().unwrap(), m["value"].as_f64().unwrap()))
        .collect();
    let h = microvision::run::History::read(&t.run_dir).unwrap();
    let want: Vec<(i64, f64)> = h.epochs.iter().map(|r| (r.step, r.val_acc)).collect();
    assert_eq!(got, want);
    let test_acc = get(&format!("{api}/metrics/get-history?run_id={run_id}&metric_key=test/acc"));
    assert_eq!(test_acc["metrics"][0]["value"].as_f64().unwrap(), h.eval.as_ref().unwrap().accuracy);

    // The plots arrived as artifacts, byte for byte.
    let listing = get(&format!("{api}/artifacts/list?run_id={run_id}&path=plots"));
    let names: Vec<&str> = listing["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(names.contains(&"plots/accuracy.png") && names.contains(&"plots/confusion.svg"), "{names:?}");
    let stored = tmp.path().join("artifacts").join(
        run["info"]["artifact_uri"].as_str().unwrap().trim_start_matches("mlflow-artifacts:/").to_string()
            + "/plots/accuracy.png",
    );
    assert_eq!(std::fs::read(stored).unwrap(), std::fs::read(t.run_dir.join("plots/accuracy.png")).unwrap());
}

/// The `mlflow` program of the project's venv, or None after `common::skip`.
fn mlflow_program() -> Option<std::path::PathBuf> {
    let mlflow = common::venv_python()?.with_file_name("mlflow");
    if !mlflow.exists() {
        common::skip(&format!("{} not installed (scripts/setup.sh installs it)", mlflow.display()));
        return None;
    }
    Some(mlflow)
}

fn status(url: &str, run_id: &str) -> Value {
    get(&format!("{url}/api/2.0/mlflow/runs/get?run_id={run_id}"))["run"]["info"]["status"].clone()
}

#[test]
fn ctrl_c_marks_the_run_killed_and_a_resume_continues_it() {
    let Some(mlflow) = mlflow_program() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url) = start_server(&mlflow, tmp.path());
    common::synthetic_cifar10(tmp.path(), 20, 20); // 100 images: 3 steps per epoch
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.track.mlflow_uri = url.clone();
    cfg.train.epochs = 3;
    let mut t = Trainer::new(cfg).unwrap();
    let flag = t.stop.clone();
    t.add_callback(Box::new(common::StopAt(5, flag))); // Ctrl-C in epoch 2
    let Err(err) = microvision::lab::fit(&mut t) else { panic!("Ctrl-C must stop the run") };
    assert!(matches!(err, microvision::Error::Interrupted(_)), "{err}");
    let run_dir = t.run_dir.clone();
    drop(t);
    let run_id = std::fs::read_to_string(run_dir.join("mlflow_run_id")).unwrap();
    assert_eq!(status(&url, &run_id), "KILLED");

    let mut again = Trainer::resume(&run_dir).unwrap();
    microvision::lab::fit(&mut again).unwrap();
    assert_eq!(std::fs::read_to_string(run_dir.join("mlflow_run_id")).unwrap(), run_id, "the same MLflow run");
    assert_eq!(status(&url, &run_id), "FINISHED");
    let api = format!("{url}/api/2.0/mlflow");
    let history = get(&format!("{api}/metrics/get-history?run_id={run_id}&metric_key=val/acc"));
    let steps: Vec<i64> = history["metrics"].as_array().unwrap().iter().map(|m| m["step"].as_i64().unwrap()).collect();
    assert_eq!(steps, [3, 6, 9], "every epoch once, across the interruption");
    // The run's eval.json and config.toml went up as artifacts, byte for byte.
    let run = get(&format!("{api}/runs/get?run_id={run_id}"))["run"].clone();
    let stored = tmp
        .path()
        .join("artifacts")
        .join(run["info"]["artifact_uri"].as_str().unwrap().trim_start_matches("mlflow-artifacts:/"));
    for f in ["eval.json", "config.toml"] {
        assert_eq!(std::fs::read(stored.join(f)).unwrap(), std::fs::read(run_dir.join(f)).unwrap(), "{f}");
    }
}

/// Kills the MLflow server at the end of epoch 1 and starts it again (same port and store) at
/// the end of epoch 2.
struct ServerOutage {
    server: Option<Server>,
    mlflow: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

impl microvision::train::callbacks::Callback for ServerOutage {
    fn epoch_end(&mut self, e: &microvision::train::callbacks::EpochInfo) {
        if e.epoch == 1 {
            let server = self.server.take().unwrap();
            // SAFETY: kill(2) on the server's own process group.
            unsafe { libc::kill(-(server.0.id() as i32), libc::SIGKILL) };
            drop(server);
        } else if e.epoch == 2 {
            self.server = Some(start_server_on(&self.mlflow, &self.dir, self.port).0);
        }
    }
}

#[test]
fn a_server_that_dies_mid_run_marks_it_failed_once_back() {
    let Some(mlflow) = mlflow_program() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let (server, url) = start_server_on(&mlflow, tmp.path(), port);
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.track.mlflow_uri = url.clone();
    cfg.train.epochs = 3;
    let mut t = Trainer::new(cfg).unwrap();
    let outage = ServerOutage { server: Some(server), mlflow, dir: tmp.path().to_path_buf(), port };
    t.add_callback(Box::new(outage));
    let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = said.clone();
    microvision::notice::set_sink(Box::new(move |_, m| sink.lock().unwrap().push(m.to_string())));
    let fitted = microvision::lab::fit(&mut t);
    microvision::notice::reset_sink();
    assert!(fitted.unwrap().test.acc.is_finite(), "training goes on without the server");
    assert!(t.run_dir.join("eval.json").exists());
    let said = said.lock().unwrap();
    assert!(said.iter().any(|m| m.contains("MLflow logging stopped")), "{said:?}");
    let run_id = std::fs::read_to_string(t.run_dir.join("mlflow_run_id")).unwrap();
    assert_eq!(status(&url, &run_id), "FAILED", "the server back by the end hears the run failed");
    drop(t); // the outage callback holds the restarted server until here
}

#[test]
fn a_down_mlflow_server_only_warns() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.track.mlflow_uri = format!("http://127.0.0.1:{}", common::free_port()); // nothing listens there
    cfg.train.epochs = 1;
    let mut t = Trainer::new(cfg).unwrap();
    let test = microvision::lab::fit(&mut t).unwrap().test;
    assert!(test.acc.is_finite());
    assert!(t.run_dir.join("plots/accuracy.png").exists());
    assert!(!t.run_dir.join("mlflow_run_id").exists());
}

#[test]
fn tuning_trials_nest_under_the_study_run() {
    let Some(py) = common::venv_python() else { return };
    let mlflow = py.with_file_name("mlflow");
    if !mlflow.exists() || !Command::new(&py).args(["-c", "import optuna"]).status().is_ok_and(|s| s.success()) {
        return common::skip("mlflow or optuna missing from the venv (scripts/setup.sh installs them)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url) = start_server(&mlflow, tmp.path());
    common::synthetic_cifar10(&tmp.path().join("data"), 20, 20);
    let base = tmp.path().join("base.toml");
    let text = format!(
        "name = \"t\"\n[data]\nroot = \"{}\"\nofficial_files = false\ndownload = false\nbatch_size = 50\nval_split = 0.2\n\
         [train]\nepochs = 1\nthreads = 1\nprogress = false\n[track]\nmlflow_uri = \"{url}\"\nmlflow_experiment = \"tune-test\"\n\
         [output]\nruns_dir = \"{}\"\n",
        tmp.path().join("data").display(),
        tmp.path().join("runs").display()
    );
    std::fs::write(&base, text).unwrap();
    std::fs::write(tmp.path().join("space.toml"), "optim.lr = { log_float = [0.005, 0.1] }\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["tune", "-c", base.to_str().unwrap(), "--space", tmp.path().join("space.toml").to_str().unwrap()])
        .args(["--trials", "2", "--pruner", "none", "--study", "nest"])
        .env("MICROVISION_PYTHON", &py)
        .env_remove("MICROVISION_DATA") // `make` sets it; the config names the synthetic data
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let api = format!("{url}/api/2.0/mlflow");
    let exp = get(&format!("{api}/experiments/get-by-name?experiment_name=tune-test"))["experiment"]["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = serde_json::json!({"experiment_ids": [exp], "max_results": 100}).to_string();
    let found: Value = serde_json::from_str(
        &ureq::post(&format!("{api}/runs/search"))
            .set("Content-Type", "application/json")
            .send_string(&body)
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    let runs = found["runs"].as_array().unwrap();
    let tag = |r: &Value, k: &str| {
        r["data"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == k)
            .map(|t| t["value"].as_str().unwrap().to_string())
    };
    let study: Vec<&Value> = runs.iter().filter(|r| tag(r, "microvision.study").as_deref() == Some("nest")).collect();
    assert_eq!(study.len(), 1, "one run for the study");
    let parent = study[0]["info"]["run_id"].as_str().unwrap();
    assert_eq!(study[0]["info"]["status"], "FINISHED");
    let children: Vec<&Value> =
        runs.iter().filter(|r| tag(r, "mlflow.parentRunId").as_deref() == Some(parent)).collect();
    assert_eq!(children.len(), 2, "both trials nested under the study");
    assert!(children.iter().all(|c| c["info"]["status"] == "FINISHED"));
    let history = get(&format!("{api}/metrics/get-history?run_id={parent}&metric_key=trial/val_acc"));
    assert_eq!(history["metrics"].as_array().unwrap().len(), 2, "{history}");
}

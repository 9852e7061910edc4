//! Fault matrix, part 2: a full disk, a read-only file system, NaN losses, simultaneous runs with
//! one name, and corrupt or interrupted downloads. Each ends in a clear error (or a recovery) and
//! leaves what was already written intact.

mod common;

use microvision::config::OnNan;
use microvision::run;
use microvision::train::{checkpoint, Trainer};
use microvision::Error;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the test's lifetime (needs root; `None` when mounting is not allowed).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, options: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Tmpfs(dir.to_path_buf()))
        } else {
            common::skip("cannot mount a tmpfs here (needs root)");
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_reports_the_path_and_keeps_the_previous_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 10, 10);
    // Room for the first epoch's `last` and `best` (about 9.3 MB each), not for a third copy.
    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), "size=22m") else { return };
    let mut cfg = common::tiny_config(tmp.path(), &disk.0);
    cfg.train.epochs = 3;
    cfg.data.val_split = 0.2; // a validation split: `best` is written beside `last`
    let mut t = Trainer::new(cfg).unwrap();
    let err = t.fit().unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 4, "{msg}");
    assert!(msg.contains("No space left") && msg.contains("checkpoints"), "{msg}");
    let ckpt = t.run_dir.join("checkpoints");
    let last = checkpoint::load(&ckpt, "last").expect("the previous checkpoint is intact");
    assert_eq!(last.state.epoch, 1);
    let temporaries = std::fs::read_dir(&ckpt)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".tmp"))
        .count();
    assert_eq!(temporaries, 0, "a failed write leaves no temporary files");
}

#[test]
fn read_only_file_system_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 10, 10);
    let Some(ro) = Tmpfs::mount(&tmp.path().join("ro"), "size=1m,ro") else { return };
    let err = Trainer::new(common::tiny_config(tmp.path(), &ro.0.join("runs"))).err().expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains("Read-only file system") && msg.contains("runs"), "{msg}");
}

fn poisoned_after_one_epoch(on_nan: OnNan) -> (tempfile::TempDir, Trainer) {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 10);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.train.epochs = 3;
    cfg.train.on_nan = on_nan;
    let mut t = Trainer::new(cfg).unwrap();
    t.stop_after = Some(1);
    t.fit().unwrap();
    t.stop_after = None;
    tch::no_grad(|| {
        let _ = t.model.vs.variables()["classifier.3.weight"].shallow_clone().fill_(f64::NAN);
    });
    (tmp, t)
}

#[test]
fn nan_loss_stops_naming_the_step_and_writes_no_nan_checkpoint() {
    let (_tmp, mut t) = poisoned_after_one_epoch(OnNan::Stop);
    let err = t.fit().unwrap_err();
    assert!(matches!(err, Error::Diverged { .. }));
    let msg = err.to_string();
    assert!(msg.contains("loss became NaN at step 4 (epoch 2)") && msg.contains("--resume"), "{msg}");
    let last = checkpoint::load(&t.run_dir.join("checkpoints"), "last").unwrap();
    assert_eq!(last.state.epoch, 1);
    assert!(last.weights.iter().all(|(_, w)| !w.is_floating_point() || bool::try_from(w.isfinite().all()).unwrap()));
}

#[test]
fn nan_loss_with_restore_policy_recovers_at_a_lower_learning_rate() {
    let (_tmp, mut t) = poisoned_after_one_epoch(OnNan::Restore);
    let test = t.fit().unwrap();
    assert!(test.loss.is_finite());
    assert_eq!(t.state.epoch, 3);
    assert_eq!(t.state.lr_scale, 0.5);
}

/// Fills `weight` with NaN after every optimizer step from `.0` on: every restore diverges again.
struct PoisonFrom(i64, tch::Tensor);

impl microvision::train::callbacks::Callback for PoisonFrom {
    fn batch_end(&mut self, s: &microvision::train::callbacks::StepInfo) {
        if s.step >= self.0 {
            tch::no_grad(|| {
                let _ = self.1.fill_(f64::NAN);
            });
        }
    }
}

#[test]
fn divergence_restores_give_up_after_three() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 10); // 3 steps per epoch
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    (cfg.train.epochs, cfg.train.on_nan) = (3, OnNan::Restore);
    let mut t = Trainer::new(cfg).unwrap();
    let weight = t.model.vs.variables()["classifier.3.weight"].shallow_clone();
    t.add_callback(Box::new(PoisonFrom(4, weight)));
    let err = t.fit().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Diverged { .. }), "{msg}");
    assert!(msg.contains("Set a lower optim.lr or train.grad_clip") && !msg.contains("on_nan"), "{msg}");
    assert_eq!(t.state.lr_scale, 0.125, "three restores, each halving the learning rate");
    let last = checkpoint::load(&t.run_dir.join("checkpoints"), "last").unwrap();
    assert_eq!(last.state.epoch, 1, "the checkpoint before the divergence is kept");
    assert!(last.weights.iter().all(|(_, w)| !w.is_floating_point() || bool::try_from(w.isfinite().all()).unwrap()));
}

/// Fills a weight with NaN after optimizer step `at` (once): the next step's loss diverges.
struct PoisonAfter(i64, tch::Tensor, bool);

impl microvision::train::callbacks::Callback for PoisonAfter {
    fn batch_end(&mut self, s: &microvision::train::callbacks::StepInfo) {
        if s.step == self.0 && !self.2 {
            self.2 = true;
            tch::no_grad(|| {
                let _ = self.1.fill_(f64::NAN);
            });
        }
    }
}

#[test]
fn a_divergence_restore_rewinds_the_logs() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 10); // 100 images / 32: 3 steps per epoch
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    (cfg.train.epochs, cfg.train.on_nan, cfg.train.log_every) = (3, OnNan::Restore, 1);
    let mut t = Trainer::new(cfg.clone()).unwrap();
    t.add_callback(Box::new(microvision::track::Loggers::standard(&t.run_dir, &cfg)));
    let weight = t.model.vs.variables()["classifier.3.weight"].shallow_clone();
    t.add_callback(Box::new(PoisonAfter(5, weight, false))); // steps 4, 5 logged, 6 diverges
    t.fit().unwrap();
    assert_eq!(t.state.lr_scale, 0.5, "restored once");
    let text = std::fs::read_to_string(t.run_dir.join("metrics.jsonl")).unwrap();
    let steps: Vec<i64> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .map(|v| v["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, (1..=9).collect::<Vec<_>>(), "each step once, in order: {text}");
}

#[test]
fn runs_started_together_with_one_name_get_distinct_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    let dirs: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(|| run::create(&cfg).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let unique: std::collections::HashSet<_> = dirs.iter().collect();
    assert_eq!(unique.len(), 6, "{dirs:?}");
}

/// Serves `body` (claiming `length` bytes) to each of `connections` requests on a loopback port.
fn serve(body: Vec<u8>, length: usize, connections: usize) -> String {
    serve_then(body, length, connections, false)
}

/// [`serve`]; with `stall`, each connection is then held open without another byte.
fn serve_then(body: Vec<u8>, length: usize, connections: usize, stall: bool) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(connections) {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            if stall {
                held.push(stream);
            }
        }
        std::thread::sleep(std::time::Duration::from_secs(30)); // the held connections stay open
    });
    format!("http://{addr}/cifar-10-binary.tar.gz")
}

fn download(url: &str, root: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["data", "download", "cifar10", "--url", url, "--root"])
        .arg(root)
        .output()
        .unwrap()
}

fn assert_nothing_became_the_dataset(root: &Path) {
    let names: Vec<String> = std::fs::read_dir(root)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(names.is_empty(), "nothing is left behind: {names:?}");
}

#[test]
fn corrupt_download_is_detected_by_md5_and_never_becomes_the_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let url = serve(vec![7u8; 5000], 5000, 3);
    let out = download(&url, &tmp.path().join("data"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("MD5") && err.contains("c32a1d4ab5d03f1284b67883e8d87530") && err.contains("attempt 3/3"),
        "{err}"
    );
    assert_nothing_became_the_dataset(&tmp.path().join("data"));
}

#[test]
fn interrupted_download_is_reported_and_cleaned_up() {
    let tmp = tempfile::tempdir().unwrap();
    let url = serve(vec![1u8; 1000], 50_000, 3); // the connection closes 49,000 bytes early
    let out = download(&url, &tmp.path().join("data"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_nothing_became_the_dataset(&tmp.path().join("data"));
}

#[test]
fn stalled_download_gives_up_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let url = serve_then(vec![1u8; 1000], 50_000, 3, true);
    let out = Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["data", "download", "cifar10", "--url", &url, "--root"])
        .arg(tmp.path().join("data"))
        .env("MICROVISION_DOWNLOAD_STALL_SECS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("stalled: no data for 1 s") && err.contains("attempt 3/3"), "{err}");
    assert_nothing_became_the_dataset(&tmp.path().join("data"));
}

#[test]
fn corrupt_idx_download_is_rejected_per_file() {
    let tmp = tempfile::tempdir().unwrap();
    let url = serve(vec![3u8; 2000], 2000, 3);
    let base = url.trim_end_matches("cifar-10-binary.tar.gz");
    let out = Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["data", "download", "fashion_mnist", "--url", base, "--root"])
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    // The first file's official MD5 is named, and no partial file is left behind.
    assert!(err.contains("8d4fb7e6c68d591d4c3dfef9ec88bf0d") && err.contains("attempt 3/3"), "{err}");
    let dir = tmp.path().join("data/FashionMNIST");
    let left: Vec<_> = std::fs::read_dir(&dir).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

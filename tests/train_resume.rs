//! Checkpoint round trip and resume equivalence: 2 epochs straight equal 1 epoch + resume + 1
//! epoch, bit for bit, on CPU.

mod common;

use microvision::train::callbacks::{Callback, EpochInfo};
use microvision::train::checkpoint;
use microvision::train::Trainer;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use tch::Tensor;

/// An epoch's (number, training loss, training accuracy, images).
type TrainLine = (i64, f64, f64, i64);

/// Records each epoch's training line.
struct TrainLines(Rc<RefCell<Vec<TrainLine>>>);

impl Callback for TrainLines {
    fn epoch_end(&mut self, e: &EpochInfo) {
        let images = (e.img_per_s * e.epoch_secs).round() as i64;
        self.0.borrow_mut().push((e.epoch, e.train_loss, e.train_acc, images));
    }
}

/// A tiny run on 50 synthetic images under `root`, stopped after its first epoch (of the
/// config's two) with its checkpoint written.
fn stopped_after_one_epoch(root: &std::path::Path) -> Trainer {
    common::synthetic_cifar10(root, 10, 10);
    let mut cfg = common::tiny_config(root, &root.join("runs"));
    cfg.data.val_split = 0.2; // a validation split: the run keeps a `best` checkpoint too
    let mut t = Trainer::new(cfg).unwrap();
    t.stop_after = Some(1);
    t.fit().unwrap();
    t
}

/// Edits the run's config.toml as a user would, replacing `from` (which must be there) by `to`.
fn edit_config(run: &std::path::Path, from: &str, to: &str) {
    let config = run.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(from), "config.toml has no {from:?}");
    std::fs::write(&config, text.replace(from, to)).unwrap();
}

fn weights(run: &std::path::Path, tag: &str) -> HashMap<String, Tensor> {
    checkpoint::load(&run.join("checkpoints"), tag).unwrap().weights.into_iter().collect()
}

#[test]
fn resume_equals_uninterrupted_run_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 40);
    let cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));

    let mut straight = Trainer::new(cfg.clone()).unwrap();
    straight.fit().unwrap();

    let mut first = Trainer::new(cfg).unwrap();
    assert_ne!(first.run_dir, straight.run_dir, "runs never share a directory");
    first.stop_after = Some(1);
    first.fit().unwrap();
    assert_eq!(first.state.epoch, 1);
    assert!(!first.run_dir.join("eval.json").exists(), "interrupted run has no final eval");
    let mut resumed = Trainer::resume(&first.run_dir).unwrap();
    assert_eq!(resumed.state.epoch, 1);
    resumed.fit().unwrap();

    let a = weights(&straight.run_dir, "last");
    let b = weights(&resumed.run_dir, "last");
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after resume");
    }
    let sa = checkpoint::load(&straight.run_dir.join("checkpoints"), "last").unwrap();
    let sb = checkpoint::load(&resumed.run_dir.join("checkpoints"), "last").unwrap();
    assert_eq!((sa.state.step, sa.state.epoch), (sb.state.step, sb.state.epoch));
    for ((na, ta), (nb, tb)) in sa.optim.iter().zip(&sb.optim) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "optimizer state {na} differs");
    }
}

#[test]
fn run_directory_holds_every_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut t = Trainer::new(common::tiny_config(tmp.path(), &tmp.path().join("runs"))).unwrap();
    let test = microvision::lab::fit(&mut t).unwrap().test;
    let run = &t.run_dir;
    for f in [
        "config.toml",
        "env.json",
        "metrics.jsonl",
        "eval.json",
        "checkpoints/last.safetensors",
        "checkpoints/last.state.json",
    ] {
        assert!(run.join(f).exists(), "missing {f}");
    }
    assert!(!run.join("checkpoints/best.state.json").exists(), "data.val_split = 0: no test-chosen `best`");
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    assert_eq!(eval["confusion_matrix"].as_array().unwrap().len(), 10);
    assert!((eval["accuracy"].as_f64().unwrap() - test.acc).abs() < 1e-12);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let val_epochs: Vec<i64> =
        lines.iter().filter(|l| l["split"] == "val").map(|l| l["epoch"].as_i64().unwrap()).collect();
    assert_eq!(val_epochs, vec![1, 2]);
    let scored_on: Vec<_> = lines.iter().filter(|l| l["split"] == "val").map(|l| l["scored_on"].clone()).collect();
    assert!(scored_on.iter().all(|s| s == "test"), "without a validation split the epochs say so: {scored_on:?}");
    assert!(lines.iter().any(|l| l["kind"] == "step"), "step lines are logged");
    let env: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("env.json")).unwrap()).unwrap();
    assert_eq!(env["num_params"].as_i64().unwrap(), t.model.num_params());
    assert!(env["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert_eq!(env["device"], "cpu");
    // The tests run in the project's checkout: whether its tracked files differ from the commit.
    assert!(env["git_dirty"].is_boolean(), "{}", env["git_dirty"]);
    assert_eq!(env["data_md5"].as_array().unwrap().len(), 6);
}

#[test]
fn corrupt_last_checkpoint_falls_back_to_best() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.train.epochs = 3;
    cfg.data.val_split = 0.2; // a validation split: the run keeps a `best` checkpoint
    let mut t = Trainer::new(cfg).unwrap();
    t.stop_after = Some(2);
    t.fit().unwrap();
    let ckpt = t.run_dir.join("checkpoints");
    let w = ckpt.join("last.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    std::fs::write(&w, bytes).unwrap();
    let err = checkpoint::load(&ckpt, "last").unwrap_err().to_string();
    assert!(err.contains("last.safetensors") && err.contains("corrupt"), "{err}");
    let best = checkpoint::load(&ckpt, "best").unwrap().state.epoch;
    let resumed = Trainer::resume(&t.run_dir).unwrap();
    assert_eq!(resumed.state.epoch, best);
    drop(resumed);

    // Both unreadable: resume refuses (exit code 4) and leaves the files as they were.
    let b = ckpt.join("best.safetensors");
    std::fs::write(&b, &std::fs::read(&b).unwrap()[..100]).unwrap();
    let files = |dir: &std::path::Path| {
        let mut all: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        all.sort();
        all.into_iter().map(|p| (p.clone(), std::fs::read(p).unwrap())).collect::<Vec<_>>()
    };
    std::fs::write(ckpt.join(".tmp-1-last.safetensors"), b"a write in progress").unwrap();
    let before = files(&ckpt);
    let err = Trainer::resume(&t.run_dir).err().expect("no readable checkpoint: resume must refuse");
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(err.to_string().contains("no readable checkpoint"), "{err}");
    assert!(before == files(&ckpt), "the checkpoint files are left as they were");
}

#[test]
fn a_finished_run_without_checkpoints_or_metrics_is_not_trained_again() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.train.epochs = 1;
    let mut t = Trainer::new(cfg).unwrap();
    t.fit().unwrap();
    let run = t.run_dir.clone();
    drop(t);
    std::fs::write(run.join("eval.json"), "{\"accuracy\": 0.5}").unwrap(); // as the CLI's final evaluation
    std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
    let _ = std::fs::remove_file(run.join("metrics.jsonl")); // written by the CLI's sinks, not by a bare fit
    let err = Trainer::resume(&run).err().expect("the run finished: resume must refuse");
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(err.to_string().contains("no checkpoint in") && !err.to_string().contains("warnings above"), "{err}");
    assert_eq!(std::fs::read_to_string(run.join("eval.json")).unwrap(), "{\"accuracy\": 0.5}");
}

#[test]
fn checkpoint_of_another_model_is_refused_with_the_tensor_list() {
    let tmp = tempfile::tempdir().unwrap();
    let t = stopped_after_one_epoch(tmp.path());
    let loaded = checkpoint::load(&t.run_dir.join("checkpoints"), "last").unwrap();
    let args = microvision::models::ModelArgs { num_classes: 5, ..Default::default() };
    let other = microvision::models::Model::new("simple_cnn", &args, tch::Device::Cpu).unwrap();
    let err = checkpoint::load_weights(&other.vs, &loaded.weights, std::path::Path::new("x.safetensors")).unwrap_err();
    assert_eq!(err.exit_code(), 4);
    let msg = err.to_string();
    assert!(msg.contains("classifier.3.weight") && msg.contains("[5, 512]"), "{msg}");
    let vgg = microvision::models::Model::new("vgg11", &Default::default(), tch::Device::Cpu).unwrap();
    let msg = checkpoint::load_weights(&vgg.vs, &loaded.weights, std::path::Path::new("x")).unwrap_err().to_string();
    assert!(msg.contains("missing") && msg.contains("unexpected"), "{msg}");
}

#[test]
fn resume_after_a_config_edit_says_which_keys_changed() {
    // A run's recipe is fixed at its start (env.json records it): an edited config.toml is refused
    // before anything is loaded, naming each key with its recorded and its new value.
    let cases: [(&str, &str, &[&str]); 2] = [
        ("[optim]\nname = \"sgd\"", "[optim]\nname = \"adamw\"", &["optim.name: \"sgd\" -> \"adamw\"", "edited"]),
        ("batch_size = 32", "batch_size = 16", &["data.batch_size: 32 -> 16", "edited", "--set optim.lr"]),
    ];
    for (from, to, needles) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let run = stopped_after_one_epoch(tmp.path()).run_dir;
        edit_config(&run, from, to);
        let err = Trainer::resume(&run).err().expect("a resume that cannot continue the run");
        let msg = err.to_string();
        assert_eq!(err.exit_code(), 2, "{msg}");
        assert!(needles.iter().all(|n| msg.contains(n)) && msg.len() < 1_000, "{to}: {msg}");
    }
}

#[test]
fn a_finished_run_cannot_be_extended_by_editing_its_config() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 10, 10);
    let mut t = Trainer::new(common::tiny_config(tmp.path(), &tmp.path().join("runs"))).unwrap();
    t.fit().unwrap();
    let run = t.run_dir.clone();
    drop(t);
    let eval = std::fs::read(run.join("eval.json")).unwrap();
    edit_config(&run, "epochs = 2", "epochs = 4");
    let msg = Trainer::resume(&run).err().expect("refused").to_string();
    assert!(msg.contains("train.epochs: 2 -> 4") && msg.contains("model.init_from"), "{msg}");
    assert_eq!(std::fs::read(run.join("eval.json")).unwrap(), eval, "the results stay as they were");
    // Nor through an override: the epochs are not a setting a resume may change.
    edit_config(&run, "epochs = 4", "epochs = 2");
    let err = Trainer::resume_with(&run, &["train.epochs=4".into()]).err().expect("refused");
    assert!(err.to_string().contains("`train.epochs` cannot change when a run resumes"), "{err}");
}

#[test]
fn a_resume_override_is_written_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let run = stopped_after_one_epoch(tmp.path()).run_dir;
    let mut t = Trainer::resume_with(&run, &["optim.lr=0.01".into()]).unwrap();
    assert_eq!(t.cfg.optim.lr, 0.01);
    t.fit().unwrap();
    drop(t);
    let env = microvision::run::Env::read(&run).unwrap();
    assert_eq!(env.resume_overrides.len(), 1);
    assert_eq!(env.resume_overrides[0].set, vec!["optim.lr=0.01".to_string()]);
    assert!(env.resume_overrides[0].step > 0);
    // The recorded recipe is the overridden one: a later resume of the file as it is passes.
    let cfg = microvision::run::read_config(&run).unwrap();
    assert_eq!(cfg.optim.lr, 0.01);
    assert!(Trainer::resume(&run).is_ok());
}

#[test]
fn stop_mid_epoch_then_resume_equals_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 40); // 200 images / 32 = 6 steps per epoch
    let cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    let straight_epochs = Rc::new(RefCell::new(Vec::new()));
    let mut straight = Trainer::new(cfg.clone()).unwrap();
    straight.add_callback(Box::new(TrainLines(straight_epochs.clone())));
    straight.fit().unwrap();
    let a = weights(&straight.run_dir, "last");

    // Mid-epoch 2; and after epoch 1's last step, before its evaluation and checkpoint.
    for (stop_at, state, epoch_line) in [(8, (1, 8), 1), (6, (0, 6), 0)] {
        let mut first = Trainer::new(cfg.clone()).unwrap();
        let flag = first.stop.clone();
        first.add_callback(Box::new(common::StopAt(stop_at, flag)));
        let err = first.fit().unwrap_err();
        assert_eq!(err.exit_code(), 130);
        assert!(err.to_string().contains("--resume"), "{err}");
        let mut resumed = Trainer::resume(&first.run_dir).unwrap();
        assert_eq!((resumed.state.epoch, resumed.state.step), state);
        let resumed_epochs = Rc::new(RefCell::new(Vec::new()));
        resumed.add_callback(Box::new(TrainLines(resumed_epochs.clone())));
        resumed.fit().unwrap();
        // The interrupted epoch's line covers all its steps: the same loss, accuracy and images.
        assert_eq!(straight_epochs.borrow()[epoch_line], resumed_epochs.borrow()[0], "stopped at step {stop_at}");
        let b = weights(&resumed.run_dir, "last");
        for (name, t) in &a {
            assert!(t.equal(&b[name]), "{name} differs after a resume from step {stop_at}");
        }
    }
}

#[test]
fn resume_refuses_data_that_changed_since_the_run_started() {
    let tmp = tempfile::tempdir().unwrap();
    let t = stopped_after_one_epoch(tmp.path());
    let dir = tmp.path().join("cifar-10-batches-bin");
    let test = dir.join("test_batch.bin");
    let mut bytes = std::fs::read(&test).unwrap();
    bytes[0] = (bytes[0] + 1) % 10; // another label
    std::fs::write(&test, bytes).unwrap();
    let err = Trainer::resume(&t.run_dir).err().expect("changed data: resume must refuse");
    assert_eq!(err.exit_code(), 3, "{err}");
    assert!(err.to_string().contains("test_batch.bin is not the file this run started with"), "{err}");
}

#[test]
fn a_checkpoint_without_its_state_file_is_skipped_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let run = stopped_after_one_epoch(tmp.path()).run_dir;
    std::fs::remove_file(run.join("checkpoints/last.state.json")).unwrap();
    let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = said.clone();
    microvision::notice::set_sink(Box::new(move |_, m| sink.lock().unwrap().push(m.to_string())));
    let resumed = Trainer::resume(&run);
    microvision::notice::reset_sink();
    let t = resumed.unwrap();
    assert_eq!(t.state.epoch, 1, "resumed from `best`, the epoch-1 checkpoint");
    let said = said.lock().unwrap();
    assert!(said.iter().any(|m| m.contains("last.state.json is missing") && m.contains("ignoring it")), "{said:?}");
}

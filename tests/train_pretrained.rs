//! `model.init_from`: a new run starting from a run's or a file's weights; tensors of another
//! shape keep their fresh initialisation; another architecture or a missing source is refused
//! before the run directory exists.

mod common;

use microvision::models::{Model, ModelArgs};
use microvision::train::{checkpoint, pretrained, Trainer};
use tch::{Device, Tensor};

fn weights(vs: &tch::nn::VarStore) -> std::collections::BTreeMap<String, Tensor> {
    vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

#[test]
fn a_new_run_starts_from_the_source_runs_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 40);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.train.epochs = 1;
    let mut source = Trainer::new(cfg.clone()).unwrap();
    source.fit().unwrap();
    let last = checkpoint::load(&source.run_dir.join("checkpoints"), "last").unwrap();

    cfg.model.init_from = source.run_dir.display().to_string();
    cfg.train.seed = 8; // another seed: its own initialisation would differ everywhere
    let tuned = Trainer::new(cfg).unwrap();
    let now = weights(&tuned.model.vs);
    assert_eq!(now.len(), last.weights.len());
    for (name, t) in &last.weights {
        assert!(now[name].equal(t), "{name} is not the source's");
    }
    let recorded = std::fs::read_to_string(tuned.run_dir.join("config.toml")).unwrap();
    assert!(recorded.contains(&format!("init_from = \"{}\"", source.run_dir.display())), "{recorded}");
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tuned.run_dir.join("env.json")).unwrap()).unwrap();
    assert_eq!(env["init_from"]["epoch"], 1, "{env}");
    assert_eq!(env["init_from"]["weights_crc32c"], format!("{:08x}", last.state.weights_crc32c));

    // Killed before its first epoch ended: the resume starts from the source's weights too (the
    // initial weights were saved as an epoch-0 checkpoint), and refuses when that is gone.
    let run = tuned.run_dir.clone();
    drop(tuned);
    let resumed = Trainer::resume(&run).unwrap();
    assert_eq!(resumed.state.epoch, 0);
    let again = weights(&resumed.model.vs);
    assert!(last.weights.iter().all(|(n, t)| again[n].equal(t)), "the resume lost the source's weights");
    drop(resumed);
    for f in std::fs::read_dir(run.join("checkpoints")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let err = Trainer::resume(&run).err().expect("refused").to_string();
    assert!(err.contains("model.init_from") && err.contains("initial checkpoint"), "{err}");

    // A source that is being trained is refused (its `last` would be a snapshot of the moment).
    let _held = microvision::run::lock(&source.run_dir).unwrap();
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.model.init_from = source.run_dir.display().to_string();
    let err = Trainer::new(cfg).err().expect("refused").to_string();
    assert!(err.contains("model.init_from") && err.contains("being trained"), "{err}");
}

#[test]
fn tensors_of_another_shape_keep_their_fresh_initialisation() {
    let tmp = tempfile::tempdir().unwrap();
    let five = ModelArgs { num_classes: 5, ..ModelArgs::default() };
    let source = Model::new_seeded("simple_cnn", &five, Device::Cpu, 1).unwrap();
    let file = tmp.path().join("five.safetensors");
    let tensors: Vec<(String, Tensor)> = weights(&source.vs).into_iter().collect();
    Tensor::write_safetensors(&tensors, &file).unwrap();

    let target = Model::new_seeded("simple_cnn", &ModelArgs::default(), Device::Cpu, 2).unwrap();
    let fresh = weights(&target.vs);
    let p = pretrained::read(&file, &target.vs).unwrap();
    pretrained::apply(&p, &target.vs);
    let after = weights(&target.vs);
    let changed_shape: Vec<&String> =
        fresh.keys().filter(|n| fresh[*n].size() != source.vs.variables()[*n].size()).collect();
    assert_eq!(changed_shape.len(), 2, "the classifier's weight and bias: {changed_shape:?}");
    assert_eq!(p.fresh.len(), 2, "{:?}", p.fresh);
    for name in fresh.keys() {
        if changed_shape.contains(&name) {
            assert!(after[name].equal(&fresh[name]), "{name} should keep its initialisation");
            assert!(p.fresh.iter().any(|why| why.starts_with(name.as_str()) && why.contains("[5")), "{:?}", p.fresh);
        } else {
            assert!(after[name].equal(&source.vs.variables()[name]), "{name} should be the file's");
        }
    }
}

#[test]
fn another_architecture_or_a_missing_source_is_refused_before_the_run_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::synthetic_cifar10(tmp.path(), 20, 20);
    let other = Model::new_seeded("resnet18", &ModelArgs::default(), Device::Cpu, 1).unwrap();
    let file = tmp.path().join("resnet18.safetensors");
    Tensor::write_safetensors(&weights(&other.vs).into_iter().collect::<Vec<_>>(), &file).unwrap();
    let runs = tmp.path().join("runs");
    let mut cfg = common::tiny_config(tmp.path(), &runs);
    let dangling = tmp.path().join("dangling");
    std::os::unix::fs::symlink(tmp.path().join("gone"), &dangling).unwrap();
    for (source, expected) in [
        (file.display().to_string(), "another architecture's weights"),
        (tmp.path().join("nowhere").display().to_string(), "does not exist"),
        (dangling.display().to_string(), "is a link to nothing readable"),
        ("/dev/null".to_string(), "is not a regular file or directory"),
        (data.join("data_batch_1.bin").display().to_string(), "cannot read it as safetensors"),
        (data.display().to_string(), "expected a run directory or a .safetensors file"),
    ] {
        cfg.model.init_from = source;
        let err = Trainer::new(cfg.clone()).err().expect("refused").to_string();
        assert!(err.contains("model.init_from") && err.contains(expected), "{err}");
    }
    let export = tmp.path().join("export");
    std::fs::create_dir(&export).unwrap();
    std::fs::copy(&file, export.join("model.safetensors")).unwrap();
    cfg.model.init_from = export.display().to_string();
    let err = Trainer::new(cfg.clone()).err().expect("refused").to_string();
    assert!(err.contains("holds an exported model") && err.contains("model.safetensors"), "{err}");
    let left = std::fs::read_dir(&runs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no run directory is created for a refused source");
}

#[test]
fn a_source_run_with_a_weight_average_gives_the_average() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 40);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.train.epochs = 1;
    cfg.train.ema_decay = 0.9;
    let mut source = Trainer::new(cfg.clone()).unwrap();
    source.fit().unwrap();
    let last = checkpoint::load(&source.run_dir.join("checkpoints"), "last").unwrap();
    let average = microvision::train::ema::weights_from_checkpoint(&last.optim).unwrap();
    cfg.train.ema_decay = 0.0;
    cfg.model.init_from = source.run_dir.display().to_string();
    let tuned = Trainer::new(cfg).unwrap();
    let now = weights(&tuned.model.vs);
    assert!(average.iter().all(|(n, t)| now[n].equal(t)), "not the average");
    assert!(last.weights.iter().any(|(n, t)| !now[n].equal(t)), "the average differs from the raw weights");
}

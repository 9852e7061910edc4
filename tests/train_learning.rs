//! Learning, not just running: on data with a strong class signal (each class its own colour,
//! [`common::synthetic_colours`]), every registered model and every optimizer must reach a test
//! accuracy far above chance (10%) within a few steps, and the training loss must fall. A
//! consistent bug that every other test would pass (labels shuffled apart from their images, an
//! update against the gradient, an augmentation that destroys the signal) fails here.

mod common;

use microvision::run::History;
use microvision::train::trainer::Trainer;
use std::path::Path;

/// What a short training reached.
struct Learnt {
    /// Test accuracy of the final weights (evaluation mode).
    test_acc: f64,
    /// Training accuracy over the last epoch (training mode, on the augmented batches).
    train_acc: f64,
    /// Mean training loss of each epoch.
    losses: Vec<f64>,
}

/// Trains `cfg` to the end.
fn learn(cfg: microvision::Config) -> Learnt {
    let mut t = Trainer::new(cfg).unwrap();
    let test = microvision::lab::fit(&mut t).unwrap().test; // with the loggers: metrics.jsonl
    let h = History::read(&t.run_dir).unwrap();
    let learnt = Learnt {
        test_acc: test.acc,
        train_acc: h.epochs.last().map_or(0.0, |e| e.train_acc),
        losses: h.epochs.iter().map(|e| e.train_loss).collect(),
    };
    eprintln!(
        "{}: test accuracy {:.3}, last epoch's training accuracy {:.3}, losses {:?}",
        t.cfg.name, learnt.test_acc, learnt.train_acc, learnt.losses
    );
    learnt
}

/// A config on the colour data in `root`: batch 16, 3 epochs, one thread, then `sets`.
fn config(root: &Path, name: &str, sets: &[&str]) -> microvision::Config {
    let text = format!(
        "name = \"{name}\"\n[data]\nroot = \"{}\"\nbatch_size = 16\neval_batch_size = 50\ndownload = false\n\
         official_files = false\n[train]\nepochs = 3\nseed = 3\nthreads = 1\nprogress = false\nlog_every = 0\n\
         [output]\nruns_dir = \"{}\"\n",
        root.display(),
        root.join("runs").display()
    );
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    microvision::Config::from_toml_str(&text, name, &sets).unwrap()
}

fn assert_learns(what: &str, acc: f64, losses: &[f64], at_least: f64) {
    assert!(acc >= at_least, "{what}: accuracy {acc:.3}, expected at least {at_least} (chance is 0.1)");
    assert!(losses.len() >= 2 && losses.iter().all(|l| l.is_finite()), "{what}: losses {losses:?}");
    assert!(losses.last() < losses.first(), "{what}: the training loss did not fall: {losses:?}");
}

#[test]
fn every_registered_model_learns_a_class_signal() {
    // 160 training images in batches of 16 for 3 epochs (30 steps), two threads (ResNet-34 and
    // VGG-19 make this the file's longest test). The criterion is the last epoch's training
    // accuracy (training mode): 30 steps are too few for the BatchNorm running statistics of the
    // deep models (EfficientNet-B0 evaluates at chance until about epoch 5 here), and evaluation
    // mode is checked against PyTorch per model in tests/models.rs and learns in the tests below.
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_colours(tmp.path(), 32, 50);
    let results: Vec<_> = microvision::models::MODELS
        .iter()
        .map(|entry| {
            let model = format!("model.name=\"{}\"", entry.name);
            let sets = [model.as_str(), "optim.name=\"adamw\"", "optim.lr=0.002", "train.threads=2"];
            (entry.name, learn(config(tmp.path(), entry.name, &sets)))
        })
        .collect();
    for (name, l) in results {
        assert_learns(name, l.train_acc, &l.losses, 0.4);
    }
}

#[test]
fn every_optimizer_learns_a_class_signal() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_colours(tmp.path(), 32, 100);
    let cases: &[(&str, &[&str])] = &[
        ("sgd", &["optim.name=\"sgd\"", "optim.lr=0.02", "optim.momentum=0.9", "optim.nesterov=false"]),
        ("sgd-plain", &["optim.name=\"sgd\"", "optim.lr=0.05", "optim.momentum=0.0", "optim.nesterov=false"]),
        ("sgd-nesterov", &["optim.name=\"sgd\"", "optim.lr=0.02", "optim.momentum=0.9", "optim.nesterov=true"]),
        ("adamw", &["optim.name=\"adamw\"", "optim.lr=0.002"]),
        ("muon", &["optim.name=\"muon\"", "optim.lr=0.05", "optim.momentum=0.9"]),
        ("sgd+lookahead", &["optim.name=\"sgd\"", "optim.lr=0.02", "optim.momentum=0.9", "train.lookahead_every=5"]),
        ("sgd+ema", &["optim.name=\"sgd\"", "optim.lr=0.02", "optim.momentum=0.9", "train.ema_decay=0.8"]),
    ];
    for (name, sets) in cases {
        let l = learn(config(tmp.path(), name, sets));
        assert_learns(name, l.test_acc, &l.losses, 0.6);
    }
}

#[test]
fn the_recipe_augmentations_keep_the_signal() {
    // Crops, flips, every policy, erasing and mixing on: the images still teach their labels.
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_colours(tmp.path(), 32, 100);
    for policy in ["autoaugment", "randaugment", "trivialaugment"] {
        let sets = [
            "optim.name=\"adamw\"".to_string(),
            "optim.lr=0.002".into(),
            "train.epochs=3".into(),
            format!("augment.policy=\"{policy}\""),
            "augment.random_erasing=0.5".into(),
            "augment.cutout=8".into(),
            "augment.mixup_alpha=0.2".into(),
            "augment.cutmix_alpha=1.0".into(),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let l = learn(config(tmp.path(), policy, &sets));
        assert_learns(policy, l.test_acc, &l.losses, 0.6);
    }
}

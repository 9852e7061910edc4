//! The loader keeps each image with its label: a planted marker (every image a uniform grey whose
//! level encodes its label) is read back from every batch of shuffled, cropped, flipped, mixed
//! and resized epochs and compared with the batch's labels or soft targets. Every step used keeps
//! a uniform image uniform (reflect padding, flips, antialiased resizing), and Mixup and CutMix
//! mix the levels exactly as they mix the targets, so each image's mean level must equal
//! `sum_k target_k * level(k)`. (The augmentation policies change the levels; that they keep
//! the images with their labels is checked by learning, in tests/train_learning.rs.)

mod common;

use microvision::config::{AugmentConfig, FlipMode, PadMode};
use microvision::data::loader::Loader;
use std::path::Path;
use tch::{Kind, Tensor};

/// The grey level planted in every image of class `label`.
fn level(label: i64) -> f64 {
    20.0 + 20.0 * label as f64
}

/// A CIFAR-10 directory under `root` whose images are uniform greys of their label's level;
/// labels follow a seeded shuffle so that batches hold every mix of classes.
fn planted(root: &Path) {
    let dir = common::synthetic_cifar10(root, 30, 10);
    for (i, name) in (1..=5).map(|i| format!("data_batch_{i}.bin")).enumerate() {
        let mut bytes = Vec::new();
        for r in 0..30 {
            let label = ((r * 7 + i * 3 + r / 10) % 10) as u8;
            bytes.push(label);
            bytes.extend(std::iter::repeat_n(level(label as i64) as u8, 3072));
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn vals(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

/// Checks every batch of `epochs` epochs of the loader `cfg` describes; returns how many images
/// were mixed (their targets soft) and the image sides seen.
fn check_epochs(root: &Path, edit: impl Fn(&mut microvision::Config), epochs: u64) -> (usize, Vec<i64>) {
    let mut cfg = common::tiny_config(root, &root.join("runs"));
    cfg.data.batch_size = 16;
    edit(&mut cfg);
    let mut data = microvision::data::load(&cfg.data, cfg.train.seed).unwrap();
    // Unit normalisation: the batch values are the pixel levels / 255.
    (data.mean, data.std) = (vec![0.0; 3], vec![1.0; 3]);
    let spec = microvision::train::trainer::loader_spec(&cfg, &data, true);
    let loader = Loader::new(&data.train, spec);
    let n = data.train.labels.size()[0];
    let (mut mixed, mut sides) = (0, Vec::new());
    for epoch in 1..=epochs {
        let mut seen = 0;
        for b in loader.epoch(epoch) {
            let (bs, _, h, w) = b.images.size4().unwrap();
            sides.push(h);
            // Each image's mean level, and the level its label or soft target says it must have.
            let got = vals(&(b.images.mean_dim([1i64, 2, 3].as_slice(), false, Kind::Double) * 255.0));
            let levels = Tensor::from_slice(&(0..10).map(level).collect::<Vec<_>>());
            let want = match &b.targets {
                Some(t) => {
                    mixed += bs as usize;
                    vals(&t.to_kind(Kind::Double).matmul(&levels))
                }
                None => vals(&b.labels).iter().map(|&l| level(l as i64)).collect(),
            };
            // Resizing a CutMix image smooths its box edge, moving its mean a little; a wrong
            // label moves it by a multiple of the 20-level step weighted by the mixing share.
            let tol = if h < 32 { 0.5 } else { 0.05 };
            for (i, (g, w_)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w_).abs() < tol,
                    "epoch {epoch}, image {i} of a {h}x{w} batch: level {g:.3}, its label says {w_:.3}"
                );
            }
            // Mixed or not, the images themselves are uniform: nothing else leaked in.
            let spread =
                vals(&(b.images.amax([1i64, 2, 3].as_slice(), false) - b.images.amin([1i64, 2, 3].as_slice(), false)));
            if b.targets.is_none() {
                assert!(spread.iter().all(|s| s * 255.0 < 0.05), "unmixed images stay uniform: {spread:?}");
            }
            seen += bs;
        }
        assert_eq!(seen, n / 16 * 16, "epoch {epoch}: every full batch");
    }
    (mixed, sides)
}

#[test]
fn shuffled_cropped_flipped_batches_keep_their_labels() {
    let tmp = tempfile::tempdir().unwrap();
    planted(tmp.path());
    for flip in [FlipMode::Random, FlipMode::Alternate] {
        let (mixed, _) = check_epochs(
            tmp.path(),
            |c| {
                c.data.augment = true;
                c.data.crop_padding = 4;
                c.data.pad_mode = PadMode::Reflect;
                c.data.flip_mode = flip;
            },
            3,
        );
        assert_eq!(mixed, 0);
    }
}

#[test]
fn mixup_and_cutmix_mix_the_targets_as_they_mix_the_images() {
    let tmp = tempfile::tempdir().unwrap();
    planted(tmp.path());
    for (mixup, cutmix) in [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)] {
        let (mixed, _) = check_epochs(
            tmp.path(),
            |c| {
                c.data.augment = true;
                c.data.pad_mode = PadMode::Reflect;
                c.augment = AugmentConfig { mixup_alpha: mixup, cutmix_alpha: cutmix, ..Default::default() };
            },
            3,
        );
        assert!(mixed >= 3 * 144, "mix_prob 1: every batch is mixed ({mixed} images)");
    }
}

#[test]
fn progressive_resizing_keeps_the_labels() {
    let tmp = tempfile::tempdir().unwrap();
    planted(tmp.path());
    let (_, sides) = check_epochs(
        tmp.path(),
        |c| {
            c.train.epochs = 3;
            c.data.augment = true;
            c.data.pad_mode = PadMode::Reflect;
            c.data.train_sizes = vec![16, 24];
            c.augment = AugmentConfig { cutmix_alpha: 1.0, ..Default::default() };
        },
        3,
    );
    let mut distinct = sides.clone();
    distinct.dedup();
    assert_eq!(distinct, [16, 24, 32], "{sides:?}");
}

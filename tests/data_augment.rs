//! Recipe augmentations against hand-computed cases: erasing boxes, colour jitter, Mixup, CutMix,
//! the parameter draws, soft-target cross-entropy, and the loader and trainer with them on.

mod common;

use rand::SeedableRng;
use rand_pcg::Pcg64;
use tch::{Kind, Tensor};

use microvision::config::AugmentConfig;
use microvision::data::augment::{self, color_jitter, cutmix, erase, mixup, Mix};

fn vals(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1)).unwrap()
}

#[test]
fn erase_zeroes_exactly_the_boxes() {
    let x = Tensor::ones([2, 1, 4, 4], (Kind::Float, tch::Device::Cpu));
    // Image 0: rows 1..3, cols 0..2 and an empty box; image 1: nothing, and the bottom-right pixel.
    let y = erase(&x, &[[1, 0, 3, 2], [0, 0, 0, 0], [0, 0, 0, 0], [3, 3, 4, 4]], 2);
    let v = vals(&y);
    #[rustfmt::skip]
    let want = [1., 1., 1., 1.,  0., 0., 1., 1.,  0., 0., 1., 1.,  1., 1., 1., 1.,
                1., 1., 1., 1.,  1., 1., 1., 1.,  1., 1., 1., 1.,  1., 1., 1., 0.];
    assert_eq!(v, want);
}

#[test]
fn color_jitter_matches_torchvision_formulas() {
    // One 1x2 RGB image: pixels (0.2, 0.4, 0.6) and (0.8, 0.6, 0.4).
    let x = Tensor::from_slice(&[0.2f32, 0.8, 0.4, 0.6, 0.6, 0.4]).view([1, 3, 1, 2]);
    let gray = |r: f32, g: f32, b: f32| 0.2989 * r + 0.587 * g + 0.114 * b;
    // Brightness 1.5 only: x * 1.5 clamped to [0, 1].
    let y = vals(&color_jitter(&x, &Tensor::from_slice(&[1.5f32, 1.0, 1.0]).view([1, 3])));
    let want = [0.3, 1.0, 0.6, 0.9, 0.9, 0.6];
    assert!(y.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{y:?}");
    // Contrast 0: every pixel becomes the mean of the grayscale image.
    let m = (gray(0.2, 0.4, 0.6) + gray(0.8, 0.6, 0.4)) / 2.0;
    let y = vals(&color_jitter(&x, &Tensor::from_slice(&[1.0f32, 0.0, 1.0]).view([1, 3])));
    assert!(y.iter().all(|v| (v - m).abs() < 1e-6), "{y:?} vs {m}");
    // Saturation 0: each pixel becomes its own gray value in all channels.
    let y = vals(&color_jitter(&x, &Tensor::from_slice(&[1.0f32, 1.0, 0.0]).view([1, 3])));
    let (g0, g1) = (gray(0.2, 0.4, 0.6), gray(0.8, 0.6, 0.4));
    let want = [g0, g1, g0, g1, g0, g1];
    assert!(y.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{y:?}");
}

#[test]
fn mixup_and_cutmix_by_hand() {
    let x = Tensor::from_slice(&[1.0f32, 1., 1., 1., 3., 3., 3., 3.]).view([2, 1, 2, 2]);
    let t = Tensor::from_slice(&[1.0f32, 0., 0., 1.]).view([2, 2]);
    let perm = Tensor::from_slice(&[1i64, 0]);
    let (xm, tm) = mixup(&x, &t, 0.75, &perm);
    assert_eq!(vals(&xm), [1.5, 1.5, 1.5, 1.5, 2.5, 2.5, 2.5, 2.5]);
    assert_eq!(vals(&tm), [0.75, 0.25, 0.25, 0.75]);
    // Box = top row (2 of 4 pixels): lam = 0.5.
    let (xc, tc) = cutmix(&x, &t, [0, 0, 1, 2], &perm);
    assert_eq!(vals(&xc), [3., 3., 1., 1., 1., 1., 3., 3.]);
    assert_eq!(vals(&tc), [0.5, 0.5, 0.5, 0.5]);
}

#[test]
fn draws_are_seeded_bounded_and_absent_when_off() {
    let cfg = AugmentConfig {
        cutout: 16,
        cutout_count: 2,
        random_erasing: 0.5,
        cutmix_alpha: 1.0,
        brightness: 0.4,
        ..Default::default()
    };
    let a = augment::draw(&cfg, 64, 32, 32, &mut Pcg64::seed_from_u64(3));
    let b = augment::draw(&cfg, 64, 32, 32, &mut Pcg64::seed_from_u64(3));
    assert_eq!(format!("{a:?}"), format!("{b:?}"), "same seed, same draws");
    let cutout = a.cutout.unwrap();
    assert_eq!(cutout.len(), 128);
    for [y0, x0, y1, x1] in &cutout {
        assert!(
            0 <= *y0 && y0 <= y1 && *y1 <= 32 && y1 - y0 <= 16 && 0 <= *x0 && x0 <= x1 && *x1 <= 32 && x1 - x0 <= 16
        );
    }
    let erased: Vec<_> = a.erasing.unwrap().into_iter().filter(|b| b[2] > b[0]).collect();
    assert!((10..=54).contains(&erased.len()), "p = 0.5 of 64: {}", erased.len());
    for [y0, x0, y1, x1] in erased {
        let frac = ((y1 - y0) * (x1 - x0)) as f64 / 1024.0;
        assert!((0.01..0.4).contains(&frac), "area fraction {frac}");
    }
    assert!(a.jitter.unwrap().iter().flatten().all(|f| (0.6..=1.4).contains(f) || *f == 1.0));
    assert!(matches!(a.mix, Some((Mix::CutMix(_), _))));
    // All off: nothing drawn, the generator untouched (the crop/flip stream stays as before).
    let mut rng = Pcg64::seed_from_u64(9);
    let none = augment::draw(&AugmentConfig::default(), 64, 32, 32, &mut rng);
    assert!(none.jitter.is_none() && none.cutout.is_none() && none.erasing.is_none() && none.mix.is_none());
    assert_eq!(format!("{rng:?}"), format!("{:?}", Pcg64::seed_from_u64(9)));
}

#[test]
fn soft_target_cross_entropy_with_smoothing_by_hand() {
    let logits = Tensor::from_slice(&[2.0f32, 0.0, -1.0]).view([1, 3]);
    let soft = Tensor::from_slice(&[0.7f32, 0.3, 0.0]).view([1, 3]);
    let (loss, _) = {
        let l = logits.cross_entropy_loss::<Tensor>(&soft, None, tch::Reduction::Mean, -100, 0.1);
        (l.double_value(&[]), ())
    };
    let z = [2.0f64, 0.0, -1.0];
    let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
    let t: Vec<f64> = [0.7, 0.3, 0.0].iter().map(|p| p * 0.9 + 0.1 / 3.0).collect();
    let want: f64 = -t.iter().zip(z).map(|(t, z)| t * (z - lse)).sum::<f64>();
    assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
}

#[test]
fn training_with_every_augmentation_on_runs_and_resumes_the_same_batches() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.augment = AugmentConfig {
        cutout: 8,
        random_erasing: 0.5,
        mixup_alpha: 0.2,
        cutmix_alpha: 1.0,
        contrast: 0.3,
        ..Default::default()
    };
    let data = microvision::data::load(&cfg.data, cfg.train.seed).unwrap();
    let spec = microvision::train::trainer::loader_spec(&cfg, &data, true);
    let loader = microvision::data::loader::Loader::new(&data.train, spec);
    let first: Vec<_> = loader.epoch(1).collect();
    let again: Vec<_> = loader.epoch_from(1, 1).collect();
    assert!(first[1].images.equal(&again[0].images), "resumed batches differ");
    let t = first[0].targets.as_ref().expect("mix_prob 1: every batch is mixed");
    assert!(vals(&t.sum_dim_intlist([1i64].as_slice(), false, Kind::Float)).iter().all(|s| (s - 1.0).abs() < 1e-6));
    let mut trainer = microvision::train::Trainer::new(cfg).unwrap();
    let test = trainer.fit().unwrap();
    assert!(test.loss.is_finite());
}

#[test]
fn progressive_resizing_trains_small_then_full_and_refuses_fixed_size_heads() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.data.train_sizes = vec![24];
    let e = microvision::train::Trainer::new(cfg.clone()).err().expect("simple_cnn's head is sized for 32 px");
    let msg = e.to_string();
    assert!(msg.contains("`data.train_sizes` contains 24") && msg.contains("smallest side it takes is 32"), "{msg}");
    let mut airbench = cfg.clone();
    (airbench.model.name, airbench.data.train_sizes) = ("airbench94".into(), vec![16, 8]);
    let msg = microvision::train::trainer::check_model(&airbench).unwrap_err().to_string();
    assert!(msg.contains("contains 8") && msg.contains("smallest side it takes is 9"), "{msg}");
    cfg.model.name = "improved_cnn".into();
    let data = microvision::data::load(&cfg.data, cfg.train.seed).unwrap();
    let spec = |train| microvision::train::trainer::loader_spec(&cfg, &data, train).train_sizes;
    assert_eq!((spec(true), spec(false)), (vec![24], vec![]), "training batches only");
    let mut trainer = microvision::train::Trainer::new(cfg.clone()).unwrap();
    let test = trainer.fit().unwrap();
    assert!(test.loss.is_finite());
}

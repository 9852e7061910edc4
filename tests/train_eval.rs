//! `train::eval`: test-time augmentation (levels, the cutoff that augments only the unsure
//! images, file names) and the metrics computed from the final logits.

use microvision::train::eval::top_k_accuracy;
use tch::{Device, Kind, Tensor};

#[test]
fn top_k_accuracy_by_hand() {
    let logits = Tensor::from_slice(&[
        10f32, 9., 8., 7., 6., 5., // label 0: first
        10., 9., 8., 7., 6., 5., // label 5: sixth, outside the top 5
        1., 2., 3., 4., 5., 6., // label 2: fourth
    ])
    .view([3, 6]);
    let labels = Tensor::from_slice(&[0i64, 5, 2]);
    assert!((top_k_accuracy(&logits, &labels, 1) - 1.0 / 3.0).abs() < 1e-12);
    assert!((top_k_accuracy(&logits, &labels, 5) - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(top_k_accuracy(&logits, &labels, 10), 1.0, "k above the class count: every label is in");
    assert_eq!(top_k_accuracy(&logits.narrow(0, 0, 0), &labels.narrow(0, 0, 0), 5), 0.0);
}

#[test]
fn tta_levels_agree_where_the_augmentations_change_nothing() {
    use microvision::models::{Model, ModelArgs};
    use microvision::train::eval::tta_logits;
    let m = Model::new_seeded("simple_cnn", &ModelArgs::default(), Device::Cpu, 3).unwrap();
    let x = Tensor::arange(3 * 32 * 32, (Kind::Float, Device::Cpu)).sin().view([1, 3, 32, 32]);
    let sym = (&x + x.flip([3])) * 0.5; // mirror-symmetric: level 1 = level 0
    let close = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]) < 1e-5;
    assert!(close(&tta_logits(&m, &sym, None, 1), &tta_logits(&m, &sym, None, 0)));
    assert!(!close(&tta_logits(&m, &x, None, 1), &tta_logits(&m, &x, None, 0)), "level 1 does something");
    // A constant image is unchanged by reflect-padded translations and by mirroring.
    let c = Tensor::full([2, 3, 32, 32], 0.3, (Kind::Float, Device::Cpu));
    assert!(close(&tta_logits(&m, &c, None, 2), &tta_logits(&m, &c, None, 0)));
    assert!(!close(&tta_logits(&m, &x, None, 2), &tta_logits(&m, &x, None, 1)), "level 2 does something");
}

#[test]
fn evaluations_with_other_tta_settings_get_their_own_file_names() {
    use microvision::train::eval::Tta;
    let name = |level, cutoff| Tta { level, cutoff }.file_suffix();
    assert_eq!(name(0, 0.0), "");
    assert_eq!(name(0, 0.7), "", "without TTA the cutoff does nothing");
    assert_eq!(name(1, 0.0), "-tta1");
    assert_eq!(name(2, 0.7), "-tta2-cutoff0.7");
}

#[test]
fn tta_cutoff_augments_exactly_the_unsure_images() {
    use microvision::data::loader::{Loader, LoaderSpec};
    use microvision::data::Dataset;
    use microvision::models::{Model, ModelArgs};
    use microvision::train::eval::{evaluate, Tta};
    let mut m = Model::new_seeded("simple_cnn", &ModelArgs::default(), Device::Cpu, 3).unwrap();
    m.to_channels_last();
    tch::manual_seed(1);
    let data = Dataset {
        images: Tensor::randint(256, [11, 3, 32, 32], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8),
        labels: Tensor::arange(11, (Kind::Int64, Device::Cpu)).remainder(10),
        classes: (0..10).map(|i| i.to_string()).collect(),
    };
    // Batches of 4, 4, 3: the unsure images queue across batches.
    let spec = LoaderSpec::evaluation(4, vec![0.5; 3], vec![0.25; 3], true);
    let loader = Loader::new(&data, spec);
    let eval = |level, cutoff| evaluate(&m, &loader, None, 10, Tta { level, cutoff });
    let (plain, full) = (eval(0, 0.0), eval(2, 0.0));
    assert_eq!((plain.tta_share, full.tta_share), (0.0, 1.0));
    let mut sorted = plain.confidences.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let cutoff = f64::from(sorted[5] + sorted[6]) / 2.0; // the 6 least confident get the views
    let mixed = eval(2, cutoff);
    assert!((mixed.tta_share - 6.0 / 11.0).abs() < 1e-12, "{}", mixed.tta_share);
    for (i, c) in plain.confidences.iter().enumerate() {
        let want = if f64::from(*c) < cutoff { &full } else { &plain };
        assert_eq!(mixed.predictions[i], want.predictions[i], "image {i}");
        assert!(
            (mixed.confidences[i] - want.confidences[i]).abs() < 1e-5,
            "image {i}: confidence {c}, cutoff {cutoff}"
        );
    }
    assert_ne!(plain.confidences, full.confidences, "the views change something");
    // A cutoff below 1 / classes augments nothing.
    assert_eq!(eval(2, 1e-9).confidences, plain.confidences);
    let e = microvision::Config::from_toml_str("[train]\ntta = 2\ntta_cutoff = 1.5\n", "t", &[]).unwrap_err();
    assert!(e.to_string().contains("train.tta_cutoff"), "{e}");
}

//! Checks on the real CIFAR-10 (run with `make test-real`; reads the directory from
//! MICROVISION_DATA). They pin the reader and the normalisation constants to the dataset's facts.

use microvision::config::DataConfig;
use microvision::data::{self, cifar};

fn real() -> Option<data::DataSplits> {
    let Some(root) = std::env::var_os("MICROVISION_DATA") else {
        eprintln!("SKIP: MICROVISION_DATA is not set");
        return None;
    };
    let cfg = DataConfig { root: root.into(), download: false, verify_md5: true, ..DataConfig::default() };
    Some(data::load(&cfg, 0).expect("real CIFAR-10 loads and matches the official MD5s"))
}

#[test]
#[ignore = "real data: make test-real"]
fn mean_and_std_constants_match_the_training_set() {
    let Some(d) = real() else { return };
    let (mean, std) = d.train.mean_std();
    for c in 0..3 {
        assert!((mean[c] - cifar::CIFAR10.mean[c]).abs() < 1e-6, "mean {c}: {} vs {}", mean[c], cifar::CIFAR10.mean[c]);
        assert!((std[c] - cifar::CIFAR10.std[c]).abs() < 1e-6, "std {c}: {} vs {}", std[c], cifar::CIFAR10.std[c]);
    }
}

#[test]
#[ignore = "real data: make test-real"]
fn counts_and_first_images_match_the_dataset_facts() {
    let Some(d) = real() else { return };
    assert_eq!((d.train.len(), d.test.len()), (50_000, 10_000));
    // The sums verified while loading travel with the splits (provenance reuses them).
    let official: Vec<(String, String)> = cifar::CIFAR10
        .train_files
        .iter()
        .chain(cifar::CIFAR10.test_files)
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect();
    assert_eq!(d.md5.as_deref(), Some(&official[..]));
    assert_eq!(d.train.class_counts(), vec![5000; 10]);
    assert_eq!(d.test.class_counts(), vec![1000; 10]);
    let first_batch = d.train.labels.narrow(0, 0, 10_000).bincount::<tch::Tensor>(None, 10);
    assert_eq!(
        Vec::<i64>::try_from(first_batch).unwrap(),
        vec![1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    );
    assert_eq!(d.train.labels.int64_value(&[0]), 6, "first training image is a frog");
    let red: Vec<i64> = (0..3).map(|i| d.train.images.int64_value(&[0, 0, 0, i])).collect();
    assert_eq!(red, vec![59, 43, 50]);
    assert_eq!(d.test.labels.int64_value(&[0]), 3, "first test image is a cat");
    let red: Vec<i64> = (0..3).map(|i| d.test.images.int64_value(&[0, 0, 0, i])).collect();
    assert_eq!(red, vec![158, 159, 165]);
    assert_eq!(d.train.classes[3], "cat");
}

/// The official MNIST when `$MICROVISION_DATA/MNIST` holds it (e.g. written by
/// `scripts/mnist_family_from_npm.py mnist`); skipped otherwise.
#[test]
#[ignore = "real data: make test-real"]
fn mnist_matches_the_official_sets_facts() {
    let Some(root) = std::env::var_os("MICROVISION_DATA").map(std::path::PathBuf::from) else {
        return eprintln!("SKIP: MICROVISION_DATA is not set");
    };
    if !root.join("MNIST").is_dir() {
        return eprintln!("SKIP: no {}", root.join("MNIST").display());
    }
    let cfg = DataConfig { root, dataset: "mnist".into(), download: false, ..DataConfig::default() };
    let d = data::load(&cfg, 0).expect("MNIST loads");
    assert_eq!(d.train.class_counts(), vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    assert_eq!(d.test.class_counts(), vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    let first = |labels: &tch::Tensor| Vec::<i64>::try_from(labels.narrow(0, 0, 10)).unwrap();
    assert_eq!(first(&d.train.labels), vec![5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(first(&d.test.labels), vec![7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    // The statistics the loader computes for the normalisation (no published ones for MNIST).
    let (mean, std) = (d.mean[0], d.std[0]);
    assert!((mean - 0.1306604762738429).abs() < 1e-6 && (std - 0.3081078038564626).abs() < 1e-6, "{mean} {std}");
}

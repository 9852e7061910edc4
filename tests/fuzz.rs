//! Property-based fuzzing (proptest) of the config parser and the dataset reader: arbitrary input
//! gives `Ok` or a user error, never a panic.

use microvision::config::DataConfig;
use microvision::data::cifar::CIFAR10;
use microvision::Config;
use proptest::prelude::*;

const KEYS: &[&str] = &[
    "name",
    "data.batch_size",
    "data.root",
    "data.val_split",
    "optim.lr",
    "optim.name",
    "optim.betas",
    "train.epochs",
    "train.precision",
    "schedule.name",
    "schedule.pct_start",
    "model.name",
    "model.dropout",
    "data",
    "train.nope",
    "x.y.z",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        "[a-z0-9_]{0,8}".prop_map(|s| format!("\"{s}\"")),
        Just("true".to_string()),
        Just("[0.9, 0.99]".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        ".{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = Config::from_toml_str(&text, "fuzz", &[]);
    }

    #[test]
    fn arbitrary_overrides_never_panic(pairs in prop::collection::vec((prop::sample::select(KEYS), value()), 0..6)) {
        let overrides: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if let Ok(cfg) = Config::from_toml_str("", "fuzz", &overrides) {
            prop_assert!(cfg.validate().is_ok());
        }
    }

    #[test]
    fn arbitrary_dataset_bytes_never_panic(records in 0usize..3, extra in 0usize..3, seed in any::<u8>()) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cifar-10-batches-bin");
        std::fs::create_dir_all(&dir).unwrap();
        let len = records * 3073 + extra;
        let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        for (name, _) in CIFAR10.train_files.iter().chain(CIFAR10.test_files) {
            std::fs::write(dir.join(name), &bytes).unwrap();
        }
        let cfg = DataConfig { root: tmp.path().to_path_buf(), download: false, official_files: false, ..DataConfig::default() };
        match microvision::data::load(&cfg, 0) {
            Ok(d) => prop_assert_eq!(d.train.len() as usize, 5 * records),
            Err(e) => prop_assert_eq!(e.exit_code(), 3),
        }
    }
}

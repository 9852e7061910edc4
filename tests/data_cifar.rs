//! The CIFAR binary reader on good, truncated and corrupt files (synthetic, written here).

mod common;

use microvision::config::DataConfig;
use microvision::data::{self, cifar};

fn cfg(root: &std::path::Path) -> DataConfig {
    DataConfig { root: root.to_path_buf(), download: false, official_files: false, ..DataConfig::default() }
}

#[test]
fn reads_good_files_in_layout_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::synthetic_cifar10(tmp.path(), 20, 10);
    let splits = data::load(&cfg(tmp.path()), 0).unwrap();
    assert_eq!(splits.train.images.size(), [100, 3, 32, 32]);
    assert_eq!(splits.test.len(), 10);
    assert_eq!(splits.train.classes[6], "frog");
    // First record of data_batch_1: label 0, then its first red byte.
    let bytes = std::fs::read(dir.join("data_batch_1.bin")).unwrap();
    assert_eq!(splits.train.labels.int64_value(&[0]), bytes[0] as i64);
    assert_eq!(splits.train.images.int64_value(&[0, 0, 0, 0]), bytes[1] as i64);
    // Plane order: byte 1 + 1024 is the first green pixel; byte 1 + 32 is row 1 of red.
    assert_eq!(splits.train.images.int64_value(&[0, 1, 0, 0]), bytes[1 + 1024] as i64);
    assert_eq!(splits.train.images.int64_value(&[0, 0, 1, 0]), bytes[1 + 32] as i64);
    assert_eq!(splits.train.class_counts(), vec![10; 10]);
}

#[test]
fn root_may_be_the_dataset_directory_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::synthetic_cifar10(tmp.path(), 10, 10);
    assert!(data::load(&cfg(&dir), 0).is_ok());
}

#[test]
fn truncated_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::synthetic_cifar10(tmp.path(), 10, 10);
    let f = dir.join("data_batch_3.bin");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
    let e = data::load(&cfg(tmp.path()), 0).unwrap_err();
    assert_eq!(e.exit_code(), 3);
    let msg = e.to_string();
    assert!(msg.contains("data_batch_3.bin") && msg.contains("truncated"), "{msg}");
}

#[test]
fn label_out_of_range_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::synthetic_cifar10(tmp.path(), 10, 10);
    let f = dir.join("test_batch.bin");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[common::RECORD * 4] = 42;
    std::fs::write(&f, bytes).unwrap();
    let msg = data::load(&cfg(tmp.path()), 0).unwrap_err().to_string();
    assert!(msg.contains("test_batch.bin") && msg.contains("record 4") && msg.contains("label 42"), "{msg}");
}

#[test]
fn python_pickle_version_is_recognised() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::synthetic_cifar10(tmp.path(), 10, 10);
    std::fs::write(dir.join("data_batch_1.bin"), [0x80u8, 0x02, 0x7d, 0x71, 0x00]).unwrap();
    let msg = data::load(&cfg(tmp.path()), 0).unwrap_err().to_string();
    assert!(msg.contains("pickle") && msg.contains("binary version"), "{msg}");
}

#[test]
fn missing_batch_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::synthetic_cifar10(tmp.path(), 10, 10);
    std::fs::remove_file(dir.join("data_batch_5.bin")).unwrap();
    let msg = data::load(&cfg(tmp.path()), 0).unwrap_err().to_string();
    assert!(msg.contains("data_batch_5.bin"), "{msg}");
}

#[test]
fn missing_dataset_offline_says_where_to_put_it() {
    let tmp = tempfile::tempdir().unwrap();
    let e = data::load(&cfg(tmp.path()), 0).unwrap_err();
    assert_eq!(e.exit_code(), 3);
    let msg = e.to_string();
    assert!(
        msg.contains("cifar-10-binary.tar.gz") && msg.contains("MICROVISION_DATA") && msg.contains("c32a1d4a"),
        "{msg}"
    );
}

/// Files of the official sizes (sparse, all zeros: read as label 0, black images).
fn official_size_files(root: &std::path::Path) -> std::path::PathBuf {
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in cifar::CIFAR10.official_sizes() {
        std::fs::File::create(dir.join(name)).unwrap().set_len(bytes).unwrap();
    }
    dir
}

#[test]
fn md5_mismatch_is_reported_when_verifying() {
    let tmp = tempfile::tempdir().unwrap();
    official_size_files(tmp.path());
    let c = DataConfig { official_files: true, verify_md5: true, ..cfg(tmp.path()) };
    let msg = data::load(&c, 0).unwrap_err().to_string();
    assert!(msg.contains("data_batch_1.bin") && msg.contains("does not match the official 5dd7e06a"), "{msg}");
}

#[test]
fn a_file_cut_on_a_record_boundary_is_not_read_as_a_smaller_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = official_size_files(tmp.path());
    // 9,000 whole records: before the size check this trained on 49,000 images without a word.
    std::fs::File::options().write(true).open(dir.join("data_batch_3.bin")).unwrap().set_len(9_000 * 3073).unwrap();
    let c = DataConfig { official_files: true, verify_md5: true, ..cfg(tmp.path()) };
    let e = data::load(&c, 0).unwrap_err();
    assert_eq!(e.exit_code(), 3);
    let msg = e.to_string();
    for want in ["data_batch_3.bin", "27657000 bytes", "30730000 bytes", "data.official_files = false"] {
        assert!(msg.contains(want), "{want:?} in {msg}");
    }
    // Said to be the user's own files, the same directory reads as what it holds.
    let own = data::load(&DataConfig { official_files: false, ..c }, 0).unwrap();
    assert_eq!(own.train.len(), 49_000);
}

#[test]
fn md5_sums_are_cached_by_size_and_modification_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::synthetic_cifar10(tmp.path(), 10, 10);
    let src = data::source::source("cifar10").unwrap();
    let cache = tmp.path().join("cache/md5.json");
    let fresh = data::checksums::md5s(&src, &dir, None).unwrap();
    assert_eq!(data::checksums::md5s(&src, &dir, Some(&cache)).unwrap(), fresh);
    assert!(cache.is_file(), "the cache is written");
    // A planted sum under the same size and mtime is believed: the cache is read, not recomputed.
    let text = std::fs::read_to_string(&cache).unwrap().replace(&fresh[0].1, &"0".repeat(32));
    std::fs::write(&cache, text).unwrap();
    assert_eq!(data::checksums::md5s(&src, &dir, Some(&cache)).unwrap()[0].1, "0".repeat(32));
    // Rewriting the file (new mtime) makes it hashed again.
    let f = dir.join(&fresh[0].0);
    let bytes = std::fs::read(&f).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&f, &bytes).unwrap();
    assert_eq!(data::checksums::md5s(&src, &dir, Some(&cache)).unwrap(), fresh);
    // A cache that is not JSON only costs time.
    std::fs::write(&cache, b"\xff not json").unwrap();
    assert_eq!(data::checksums::md5s(&src, &dir, Some(&cache)).unwrap(), fresh);
}

#[test]
fn own_files_need_official_files_false_and_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 10, 10);
    let c = DataConfig { official_files: true, verify_md5: true, ..cfg(tmp.path()) };
    let msg = data::load(&c, 0).unwrap_err().to_string();
    assert!(msg.contains("data_batch_1.bin") && msg.contains("data.official_files = false"), "{msg}");
}

#[test]
fn validation_split_is_deterministic_and_disjoint() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 10);
    let c = DataConfig { val_split: 0.2, ..cfg(tmp.path()) };
    let a = data::load(&c, 5).unwrap();
    let b = data::load(&c, 5).unwrap();
    assert_eq!((a.train.len(), a.val.len()), (80, 20));
    assert!(a.val.images.equal(&b.val.images) && a.train.labels.equal(&b.train.labels));
    let other = data::load(&c, 6).unwrap();
    assert!(!a.val.images.equal(&other.val.images), "another seed gives another split");
}

#[test]
fn cifar100_layout_reads_fine_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-100-binary");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, n) in [("train.bin", 30usize), ("test.bin", 10)] {
        let mut bytes = Vec::new();
        for i in 0..n {
            bytes.push((i % 20) as u8); // coarse
            bytes.push((i % 100) as u8 + 50 * (i % 2) as u8); // fine, 0..99
            bytes.extend(std::iter::repeat_n(i as u8, 3072));
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let c = DataConfig { dataset: "cifar100".into(), num_classes: 100, ..cfg(tmp.path()) };
    let splits = data::load(&c, 0).unwrap();
    assert_eq!(splits.train.len(), 30);
    assert_eq!(splits.train.labels.int64_value(&[1]), 51);
    assert_eq!(splits.train.images.int64_value(&[3, 2, 31, 31]), 3);
    assert_eq!(cifar::CIFAR100.num_classes, 100);
}

#[test]
fn limits_take_the_same_seeded_subset_for_every_seed() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 30); // 100 training images, 30 test images
    let limited = DataConfig { limit_train: 40, limit_test: 10, ..cfg(tmp.path()) };
    let (a, b) = (data::load(&limited, 0).unwrap(), data::load(&limited, 7).unwrap());
    assert_eq!((a.train.len(), a.test.len()), (40, 10));
    assert!(a.train.images.equal(&b.train.images) && a.test.labels.equal(&b.test.labels), "seed-independent");
    let all = data::load(&cfg(tmp.path()), 0).unwrap();
    assert!(!a.train.images.equal(&all.train.images.narrow(0, 0, 40)), "a random subset, not the first images");
    assert_eq!(data::load_test(&limited).unwrap().labels, a.test.labels, "plots redraw the same test images");
    let more = DataConfig { limit_train: 1_000, ..cfg(tmp.path()) };
    assert_eq!(data::load(&more, 0).unwrap().train.len(), 100, "a limit above the split's size keeps it whole");
}

//! Reader for the CIFAR-10 and CIFAR-100 "binary version" layout.
//!
//! CIFAR-10: each record is 1 label byte (0-9) + 3,072 pixel bytes (1,024 red, 1,024 green,
//! 1,024 blue, each plane row-major 32x32); `data_batch_1..5.bin` hold 10,000 records each,
//! `test_batch.bin` 10,000. CIFAR-100 records carry one more byte in front: coarse label (0-19),
//! then fine label (0-99); `train.bin` holds 50,000 records and `test.bin` 10,000.
//! Source: <https://www.cs.toronto.edu/~kriz/cifar.html>.

use md5::{Digest, Md5};
use std::path::{Path, PathBuf};
use tch::Tensor;

use super::Dataset;
use crate::data_err;
use crate::error::{Error, Result};

/// Pixels per image (3 x 32 x 32).
pub const IMAGE_BYTES: usize = 3 * 32 * 32;

/// One of the two CIFAR datasets: its file layout, official checksums and statistics.
#[derive(Debug, Clone, Copy)]
pub struct CifarSpec {
    /// Config name.
    pub name: &'static str,
    /// Directory name inside the archive (and inside `data.root`).
    pub dir: &'static str,
    /// Training files with their official MD5 sums.
    pub train_files: &'static [(&'static str, &'static str)],
    /// Test files with their official MD5 sums.
    pub test_files: &'static [(&'static str, &'static str)],
    /// Records per training file and per test file.
    pub records: (usize, usize),
    /// Label bytes before the pixels (1 for CIFAR-10, 2 for CIFAR-100).
    pub label_bytes: usize,
    /// Number of classes of the label that is read.
    pub num_classes: usize,
    /// File listing the class names, one per line.
    pub names_file: &'static str,
    /// Official archive and its MD5.
    pub url: &'static str,
    /// MD5 of the archive at `url`.
    pub archive_md5: &'static str,
    /// Per-channel mean of the training images on the [0, 1] scale.
    pub mean: [f64; 3],
    /// Per-channel standard deviation of the training images on the [0, 1] scale.
    pub std: [f64; 3],
}

/// CIFAR-10. Mean/std: population statistics of the 50,000 training images on the [0, 1]
/// scale, recomputed on the real files by `tests/data_real.rs` (they match the values commonly
/// quoted, e.g. in kuangliu/pytorch-cifar, to 4 decimals).
pub const CIFAR10: CifarSpec = CifarSpec {
    name: "cifar10",
    dir: "cifar-10-batches-bin",
    train_files: &[
        ("data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"),
        ("data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"),
        ("data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"),
        ("data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"),
        ("data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"),
    ],
    test_files: &[("test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d")],
    records: (10_000, 10_000),
    label_bytes: 1,
    num_classes: 10,
    names_file: "batches.meta.txt",
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    archive_md5: "c32a1d4ab5d03f1284b67883e8d87530",
    mean: [0.49139968, 0.48215841, 0.44653091],
    std: [0.24703223, 0.24348513, 0.26158784],
};

/// CIFAR-100 (fine labels). Mean/std: training-set statistics as published with the dataset's
/// common recipes (e.g. weiaicunzai/pytorch-cifar100).
pub const CIFAR100: CifarSpec = CifarSpec {
    name: "cifar100",
    dir: "cifar-100-binary",
    train_files: &[("train.bin", "")],
    test_files: &[("test.bin", "")],
    records: (50_000, 10_000),
    label_bytes: 2,
    num_classes: 100,
    names_file: "fine_label_names.txt",
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    archive_md5: "03b5dce01913d631647c71ecec9e9cb8",
    mean: [0.5071, 0.4865, 0.4409],
    std: [0.2673, 0.2564, 0.2762],
};

/// Looks a CIFAR spec up by config name.
pub fn spec(name: &str) -> Option<&'static CifarSpec> {
    [&CIFAR10, &CIFAR100].into_iter().find(|s| s.name == name)
}

impl CifarSpec {
    /// The directory holding the files: `root/<dir>` or `root` itself when it holds them.
    pub fn locate(&self, root: &Path) -> Option<PathBuf> {
        let first = self.train_files[0].0;
        [root.join(self.dir), root.to_path_buf()].into_iter().find(|d| d.join(first).is_file())
    }

    fn record_bytes(&self) -> usize {
        self.label_bytes + IMAGE_BYTES
    }

    /// Reads the training (`train = true`) or test split from `dir`.
    pub fn read_split(&self, dir: &Path, train: bool) -> Result<Dataset> {
        let (files, per_file) =
            if train { (self.train_files, self.records.0) } else { (self.test_files, self.records.1) };
        let capacity = files.len() * per_file;
        let mut pixels = Vec::with_capacity(capacity * IMAGE_BYTES);
        let mut labels = Vec::with_capacity(capacity);
        for (name, _) in files {
            self.read_file(&dir.join(name), per_file, &mut pixels, &mut labels)?;
        }
        let images = Tensor::from_slice(&pixels).view([labels.len() as i64, 3, 32, 32]);
        Ok(Dataset { images, labels: Tensor::from_slice(&labels), classes: self.class_names(dir) })
    }

    fn read_file(&self, path: &Path, records: usize, pixels: &mut Vec<u8>, labels: &mut Vec<i64>) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| {
            data_err!("cannot read {}: {e}; expected the {} binary file here", path.display(), self.name)
        })?;
        // The official files hold `records` records (checked before reading unless
        // `data.official_files = false`); other whole files (subsets, fixtures) are read, a partial
        // record never is.
        let rb = self.record_bytes();
        if bytes.is_empty() || bytes.len() % rb != 0 {
            return Err(data_err!(
                "{} is truncated or corrupt: {} bytes is not a whole number of {rb}-byte records \
                 (the official file has {records} records, {} bytes). {}",
                path.display(),
                bytes.len(),
                records * rb,
                hint_for(&bytes)
            ));
        }
        for (i, rec) in bytes.chunks_exact(self.record_bytes()).enumerate() {
            let label = rec[self.label_bytes - 1] as usize;
            if label >= self.num_classes {
                return Err(data_err!(
                    "{}: record {i} has label {label}, expected 0..{}; the file is corrupt or not {} binary",
                    path.display(),
                    self.num_classes - 1,
                    self.name
                ));
            }
            labels.push(label as i64);
            pixels.extend_from_slice(&rec[self.label_bytes..]);
        }
        Ok(())
    }

    /// Class names from the names file, or "0", "1", ... when it is absent.
    pub fn class_names(&self, dir: &Path) -> Vec<String> {
        let path = dir.join(self.names_file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        if names.len() == self.num_classes {
            return names;
        }
        // Once a process: the train and test splits both read the names.
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if path.exists() && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            crate::notice::warn(format!(
                "{} lists {} class names, expected {}: the classes are numbered instead",
                path.display(),
                names.len(),
                self.num_classes
            ));
        }
        (0..self.num_classes).map(|i| i.to_string()).collect()
    }

    /// Each file with its official size in bytes.
    pub fn official_sizes(&self) -> Vec<(&'static str, u64)> {
        let train = self.train_files.iter().map(|(f, _)| (*f, self.records.0));
        let test = self.test_files.iter().map(|(f, _)| (*f, self.records.1));
        train.chain(test).map(|(f, n)| (f, (n * self.record_bytes()) as u64)).collect()
    }

    /// MD5 sums of the data files in `dir` (name, hex digest), for provenance and verification.
    pub fn md5s(&self, dir: &Path) -> Result<Vec<(String, String)>> {
        self.train_files
            .iter()
            .chain(self.test_files)
            .map(|(name, _)| Ok((name.to_string(), md5_file(&dir.join(name))?)))
            .collect()
    }
}

fn hint_for(bytes: &[u8]) -> &'static str {
    // The Python version of CIFAR is a pickle: protocol 2 starts with 0x80 0x02.
    if bytes.starts_with(&[0x80, 0x02]) || bytes.starts_with(&[0x80, 0x03]) {
        "This looks like the Python (pickle) version; microvision reads the binary version (cifar-10-binary.tar.gz)."
    } else {
        "The file is truncated or corrupt: delete it and download the dataset again."
    }
}

/// Hex MD5 of a file.
pub fn md5_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    Ok(format!("{:x}", Md5::digest(&bytes)))
}

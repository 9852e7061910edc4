//! `[data]` and `[augment]`: the dataset, its splits and batches, and the training-time
//! augmentations.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::{AugmentPolicy, FlipMode, OnCorrupt, PadMode};

/// `[data]`: which dataset, where it lives and how batches are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Dataset name: "cifar10", "cifar100", "mnist", "fashion_mnist", "kmnist" or "image_folder"
    /// (`root/train/<class>/*.png|jpg` and `root/test/...`, resized to `input_size`).
    pub dataset: String,
    /// Directory holding the dataset (or its parent). The environment variable
    /// `MICROVISION_DATA` overrides the file's value; `--set data.root=...` overrides both.
    pub root: PathBuf,
    /// Download the official archive when the files are missing.
    pub download: bool,
    /// Where to download the archive from (empty = the official URL); for mirrors and proxies.
    /// The official MD5 is checked whatever the source.
    pub url: String,
    /// The files are the dataset's official ones: before training, each CIFAR file must have its
    /// official size and every file its published MD5 (sums cached per file by size and
    /// modification time). `false` for your own files in the same layout (subsets, re-packed
    /// sets): any whole number of records is read and nothing is compared.
    pub official_files: bool,
    /// Hash every file again before training instead of trusting the MD5 cache.
    pub verify_md5: bool,
    /// Number of classes the model predicts.
    pub num_classes: i64,
    /// Side of the (square) input images in pixels.
    pub input_size: i64,
    /// Images per training step.
    pub batch_size: i64,
    /// Images per evaluation step.
    pub eval_batch_size: i64,
    /// Batches prepared ahead by the loader thread (0 = prepare inline).
    pub workers: i64,
    /// Train-time augmentation (random crop with padding + horizontal flip).
    pub augment: bool,
    /// Horizontal flips in the train-time augmentation (off for digits and text).
    pub hflip: bool,
    /// `image_folder`: a file that does not decode is "error" (stop) or "skip" (warn, leave out).
    pub on_corrupt: OnCorrupt,
    /// Padding for the random crop, in pixels.
    pub crop_padding: i64,
    /// Fraction of the training set held out for validation (0 = none: the epochs are scored on
    /// the test split, and no `best` checkpoint or early stopping selects on them).
    pub val_split: f64,
    /// Train on a fixed random subset of this many training images (0 = all): quick smoke runs,
    /// learning curves over data size. The subset is the same for every seed.
    pub limit_train: i64,
    /// Evaluate on a fixed random subset of this many test images (0 = all); the test accuracy
    /// is then that subset's.
    pub limit_test: i64,
    /// How the random crop pads: "zeros" or "reflect" (airbench's translate).
    pub pad_mode: PadMode,
    /// "random": each image flipped with probability 1/2 each epoch; "alternate": a random half
    /// flipped in odd epochs and exactly the other half in even ones (airbench's derandomised
    /// flipping, every image seen both ways every two epochs).
    pub flip_mode: FlipMode,
    /// Progressive resizing: epoch `i` (1-based) trains on images downscaled to `train_sizes[i-1]`
    /// pixels (after augmentation, antialiased bilinear); later epochs and evaluation use
    /// `input_size`. Empty = off.
    pub train_sizes: Vec<i64>,
}

impl DataConfig {
    /// Whether a validation split is held out of the training images (`val_split` > 0). Without
    /// one the epochs are scored on the test split, and nothing may be chosen on them.
    pub fn has_val_split(&self) -> bool {
        self.val_split > 0.0
    }

    /// The split the per-epoch evaluation runs on, as labels name it: "val", or "test" without
    /// a validation split.
    pub fn scored_on(&self) -> &'static str {
        if self.has_val_split() {
            "val"
        } else {
            "test"
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: "cifar10".into(),
            root: PathBuf::from("data"),
            download: true,
            url: String::new(),
            official_files: true,
            verify_md5: false,
            num_classes: 10,
            input_size: 32,
            batch_size: 128,
            eval_batch_size: 500,
            workers: 1,
            augment: true,
            hflip: true,
            on_corrupt: OnCorrupt::Error,
            crop_padding: 4,
            val_split: 0.0,
            limit_train: 0,
            limit_test: 0,
            pad_mode: PadMode::Zeros,
            flip_mode: FlipMode::Random,
            train_sizes: Vec::new(),
        }
    }
}

/// `[augment]`: training-time augmentations, batched on the compute device and seeded by
/// `(seed, epoch)`. Applied after crop and flip; each is off at its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Augmentation policy applied after crop and flip: "" (none), "autoaugment" (CIFAR-10
    /// policy), "randaugment" or "trivialaugment"; each operation equals torchvision's.
    pub policy: AugmentPolicy,
    /// RandAugment: operations per image (N, 1-10).
    pub randaugment_n: i64,
    /// RandAugment: magnitude bin M of 31 (0-30).
    pub randaugment_m: i64,
    /// Cutout square side in pixels (0 = off); DeVries & Taylor use 16 on CIFAR-10.
    pub cutout: i64,
    /// Cutout squares per image (1-32).
    pub cutout_count: i64,
    /// Random Erasing probability per image (0 = off; torchvision's scale and ratio ranges).
    pub random_erasing: f64,
    /// Mixup Beta(alpha, alpha) (0 = off).
    pub mixup_alpha: f64,
    /// CutMix Beta(alpha, alpha) (0 = off). With Mixup also on, each batch uses one of the two.
    pub cutmix_alpha: f64,
    /// Probability that a batch is mixed when Mixup or CutMix is on.
    pub mix_prob: f64,
    /// Colour jitter: brightness factor drawn from [1 - b, 1 + b] (0 = off).
    pub brightness: f64,
    /// Colour jitter: contrast factor range.
    pub contrast: f64,
    /// Colour jitter: saturation factor range.
    pub saturation: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            policy: AugmentPolicy::None,
            randaugment_n: 2,
            randaugment_m: 9,
            cutout: 0,
            cutout_count: 1,
            random_erasing: 0.0,
            mixup_alpha: 0.0,
            cutmix_alpha: 0.0,
            mix_prob: 1.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
        }
    }
}

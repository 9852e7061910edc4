//! Datasets, batched transforms and the prefetching loader.
//!
//! The data path is one trip: disk (uint8 records) -> [`Dataset`] (uint8 `N x C x H x W` tensor in
//! memory, moved to the compute device) -> [`loader::Loader`] (seeded permutation, gather, batched
//! augmentation, normalisation) -> the trainer.

pub mod augment;
pub mod checksums;
pub mod cifar;
pub mod download;
pub mod idx;
pub mod image_folder;
pub mod image_ops;
pub mod loader;
pub mod policies;
pub mod source;
pub mod transforms;

use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

use crate::config::DataConfig;
use crate::data_err;
use crate::error::Result;

/// An image classification split held in memory.
#[derive(Debug)]
pub struct Dataset {
    /// Images, uint8, `(N, C, H, W)`.
    pub images: Tensor,
    /// Labels, int64, `(N,)`.
    pub labels: Tensor,
    /// Class names in label order.
    pub classes: Vec<String>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves images and labels to `device`.
    pub fn to_device(&self, device: Device) -> Dataset {
        Dataset {
            images: self.images.to_device(device),
            labels: self.labels.to_device(device),
            classes: self.classes.clone(),
        }
    }

    /// Splits off the last `fraction` of a seeded permutation as a validation set. The same seed
    /// always gives the same split.
    pub fn split(&self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let n = self.len();
        let n_val = ((n as f64) * fraction).round() as i64;
        let perm = loader::permutation(n as usize, seed ^ crate::seed::SPLIT_SALT);
        let perm = Tensor::from_slice(&perm).to_device(self.images.device());
        (self.take(&perm.narrow(0, 0, n - n_val)), self.take(&perm.narrow(0, n - n_val, n_val)))
    }

    /// The images (and labels) at `idx`, in that order.
    fn take(&self, idx: &Tensor) -> Dataset {
        Dataset {
            images: self.images.index_select(0, idx),
            labels: self.labels.index_select(0, idx),
            classes: self.classes.clone(),
        }
    }

    /// A seeded random subset of `count` images (all of them when there are no more), in their
    /// original order.
    pub fn subset(&self, count: i64, seed: u64) -> Dataset {
        if count >= self.len() {
            return self.to_device(self.images.device());
        }
        let mut keep = loader::permutation(self.len() as usize, seed);
        keep.truncate(count as usize);
        keep.sort_unstable();
        self.take(&Tensor::from_slice(&keep).to_device(self.images.device()))
    }

    /// Number of images per class.
    pub fn class_counts(&self) -> Vec<i64> {
        let counts = self.labels.bincount::<Tensor>(None, self.classes.len() as i64);
        Vec::<i64>::try_from(&counts).unwrap_or_default()
    }

    /// Per-channel mean and (population) standard deviation on the [0, 1] scale, summed in
    /// chunks of 1,024 images so the f64 copy never holds more than a chunk.
    pub fn mean_std(&self) -> (Vec<f64>, Vec<f64>) {
        let (n, c) = (self.len(), self.images.size()[1]);
        let (mut sum, mut sq) = (vec![0f64; c as usize], vec![0f64; c as usize]);
        let dims: &[i64] = &[0, 2, 3];
        for start in (0..n).step_by(1024) {
            let x = self.images.narrow(0, start, 1024.min(n - start)).to_kind(Kind::Double) / 255.0;
            let s = Vec::<f64>::try_from(x.sum_dim_intlist(dims, false, Kind::Double)).unwrap_or_default();
            let q = Vec::<f64>::try_from(x.square().sum_dim_intlist(dims, false, Kind::Double)).unwrap_or_default();
            sum.iter_mut().zip(&s).for_each(|(a, b)| *a += b);
            sq.iter_mut().zip(&q).for_each(|(a, b)| *a += b);
        }
        let count = (n * self.images.size()[2] * self.images.size()[3]).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sq.iter().zip(&mean).map(|(q, m)| (q / count - m * m).max(0.0).sqrt()).collect();
        (mean, std)
    }
}

/// Seed of `data.limit_train` / `data.limit_test` subsets: fixed, so every seed of a recipe sees
/// the same images.
const LIMIT_SEED: u64 = 0x1157_5eed;

/// The split as `data.limit_<name>` (0 = all) restricts it, said on the console: a result on a
/// subset must not pass for one on the whole split.
fn limited(split: Dataset, limit: i64, name: &str) -> Dataset {
    if limit > split.len() {
        crate::notice::warn(format!(
            "data.limit_{name} = {limit} is more than the {} {name} images: using all of them",
            split.len()
        ));
    }
    if limit <= 0 || limit >= split.len() {
        return split;
    }
    crate::notice::note(format!("data.limit_{name} = {limit}: using {limit} of the {} {name} images", split.len()));
    split.subset(limit, LIMIT_SEED)
}

/// The train, validation (when held out) and test splits of a dataset, with its normalisation
/// statistics.
#[derive(Debug)]
pub struct DataSplits {
    /// Training split (without the validation hold-out).
    pub train: Dataset,
    /// Validation split: held out of train when `data.val_split > 0`, else the test split.
    pub val: Dataset,
    /// Test split.
    pub test: Dataset,
    /// Per-channel normalisation mean (published, or computed from the training split).
    pub mean: Vec<f64>,
    /// Per-channel normalisation std.
    pub std: Vec<f64>,
    /// Directory the files were read from.
    pub dir: PathBuf,
    /// MD5 of each file (name, hex), when loading checked them (`data.official_files`).
    pub md5: Option<Vec<(String, String)>>,
}

/// Finds (or downloads) the configured dataset and reads both splits into memory.
pub fn load(cfg: &DataConfig, seed: u64) -> Result<DataSplits> {
    let src = source::for_config(cfg)?;
    let dir = locate_or_download(cfg)?;
    let md5 = if cfg.official_files {
        let cache = if cfg.verify_md5 { None } else { checksums::default_cache() };
        Some(checksums::check_official(&src, &dir, cache.as_deref())?)
    } else {
        None
    };
    let full_train = limited(src.read_split(&dir, true)?, cfg.limit_train, "train");
    let test = limited(src.read_split(&dir, false)?, cfg.limit_test, "test");
    if let Some(name) = [("training", &full_train), ("test", &test)].iter().find(|(_, s)| s.is_empty()).map(|p| p.0) {
        // Only a result over no images could follow (0% "accuracy"), or no step at all.
        let skipped = matches!(src, source::Source::ImageFolder { skip_corrupt: true, .. });
        let why = if skipped { " (files skipped as unreadable are listed above)" } else { "" };
        return Err(data_err!("{}: the {name} split has no images{why}; expected at least one", dir.display()));
    }
    if test.classes != full_train.classes {
        return Err(data_err!(
            "{}: the training split's classes ({}) differ from the test split's ({}); expected the same class folders in both",
            dir.display(),
            full_train.classes.join(", "),
            test.classes.join(", ")
        ));
    }
    let found = full_train.classes.len();
    if found as i64 != cfg.num_classes {
        return Err(crate::config_err!(
            "`data.num_classes` = {}: {} has {found} classes ({}); set data.num_classes = {found}",
            cfg.num_classes,
            dir.display(),
            full_train.classes.join(", ")
        ));
    }
    // Statistics of the whole training split (before any validation hold-out), as published.
    let (mean, std) = src.known_stats().unwrap_or_else(|| full_train.mean_std());
    if let Some(c) = std.iter().position(|s| *s < 1e-6) {
        return Err(data_err!(
            "{}: channel {c} of the training images is constant (std {:.2e}): it cannot be normalised",
            dir.display(),
            std[c]
        ));
    }
    let (train, val) = if cfg.has_val_split() {
        let n = full_train.len();
        let (train, val) = full_train.split(cfg.val_split, seed);
        if val.is_empty() || train.is_empty() {
            return Err(crate::config_err!(
                "`data.val_split` = {}: holds out {} of the {n} training images; expected a fraction that leaves at \
                 least one image on each side",
                cfg.val_split,
                val.len()
            ));
        }
        (train, val)
    } else {
        let val = Dataset {
            images: test.images.shallow_clone(),
            labels: test.labels.shallow_clone(),
            classes: test.classes.clone(),
        };
        (full_train, val)
    };
    Ok(DataSplits { train, val, test, mean, std, dir, md5 })
}

/// [`load`] for the existing run in `run` with its config `cfg`: a data error says where such a
/// run takes its data from (its own `config.toml`, whatever MICROVISION_DATA says now).
pub fn load_for_run(run: &std::path::Path, cfg: &crate::config::Config) -> Result<DataSplits> {
    load(&cfg.data, cfg.train.seed).map_err(|e| match e {
        crate::Error::Data(msg) => crate::Error::Data(format!(
            "{msg}\nThis run reads its data from `data.root` in {} (MICROVISION_DATA applies to new runs only): edit \
             it there, or give `eval` --set data.root=DIR.",
            run.join("config.toml").display()
        )),
        other => other,
    })
}

/// The test split of a dataset that is already on disk (never downloads): for re-drawing a
/// finished run's plots.
pub fn load_test(cfg: &DataConfig) -> Result<Dataset> {
    let src = source::for_config(cfg)?;
    let dir = src.locate(&cfg.root).ok_or_else(|| missing(src, &cfg.root, "not downloaded"))?;
    Ok(limited(src.read_split(&dir, false)?, cfg.limit_test, "test"))
}

/// The dataset directory under `data.root`, downloading the official files when allowed.
pub fn locate_or_download(cfg: &DataConfig) -> Result<PathBuf> {
    locate_or_download_archive(cfg, None)
}

/// [`locate_or_download`], with the MD5 the archive at `data.url` must have when it is not the
/// official archive (`archive_md5`; a re-packed or subset mirror).
pub fn locate_or_download_archive(cfg: &DataConfig, archive_md5: Option<&str>) -> Result<PathBuf> {
    let src = source::for_config(cfg)?;
    if let Some(dir) = src.locate(&cfg.root) {
        return Ok(dir);
    }
    if !cfg.download {
        return Err(missing(src, &cfg.root, "data.download = false"));
    }
    let root_existed = cfg.root.exists();
    src.fetch(&cfg.url, &cfg.root, archive_md5).map_err(|e| {
        if !root_existed {
            remove_empty_dirs(&cfg.root); // a failed download leaves no empty directories behind
        }
        match e {
            crate::error::Error::Data(msg) => data_err!("{msg}\n{}", missing(src, &cfg.root, "download failed")),
            other => other,
        }
    })?;
    src.locate(&cfg.root).ok_or_else(|| missing(src, &cfg.root, "the download did not contain the expected files"))
}

/// Removes `root` and the empty directories under it (`remove_dir` refuses non-empty ones).
fn remove_empty_dirs(root: &Path) {
    if let Ok(entries) = std::fs::read_dir(root) {
        // file_type does not follow symlinks: never walk out of `root`.
        for entry in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            remove_empty_dirs(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(root);
}

fn missing(src: source::Source, root: &Path, why: &str) -> crate::error::Error {
    let expected_dir = match src {
        source::Source::Cifar(spec) => Some(root.join(spec.dir)),
        source::Source::Idx(spec) => Some(root.join(spec.dir)),
        source::Source::ImageFolder { .. } => None,
    };
    if let Some(dir) = expected_dir.filter(|d| d.exists() && !d.is_dir()) {
        return data_err!("{} is a file; expected the directory of {} files", dir.display(), src.name());
    }
    let hint = match src {
        source::Source::Cifar(spec) => format!(
            "Put the official binary files ({}, ...) in {}, or download {} (MD5 {}) and extract it there",
            spec.train_files[0].0,
            root.join(spec.dir).display(),
            spec.url,
            spec.archive_md5
        ),
        source::Source::ImageFolder { .. } => {
            format!("Expected {}/train/<class>/<image> and test/ (or val/)", root.display())
        }
        source::Source::Idx(spec) => format!(
            "Put the four IDX files ({}, ..., gzip-compressed or not) in {}, or download them from {}",
            spec.files[0].0,
            root.join(spec.dir).display(),
            spec.url
        ),
    };
    data_err!(
        "{} not found under {} ({why}). {hint}, or point `data.root` / MICROVISION_DATA at a directory that holds them.",
        src.name(),
        root.display()
    )
}

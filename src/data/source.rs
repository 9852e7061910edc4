//! Which reader a dataset name means: the CIFAR binary layout or the MNIST family's IDX files.
//! Everything downstream (loader, models, plots) follows the source's channels, size and classes.

use std::path::{Path, PathBuf};

use super::cifar::{self, CifarSpec};
use super::idx::{self, IdxSpec};
use super::Dataset;
use crate::data_err;
use crate::error::Result;

/// Dataset names `data.dataset` accepts.
pub const DATASETS: &[&str] = &["cifar10", "cifar100", "mnist", "fashion_mnist", "kmnist"];

/// A dataset's reader.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// CIFAR-10/100 binary version.
    Cifar(&'static CifarSpec),
    /// MNIST, Fashion-MNIST, KMNIST (IDX).
    Idx(&'static IdxSpec),
}

/// The reader of dataset `name`; an unknown name lists the valid ones.
pub fn source(name: &str) -> Result<Source> {
    cifar::spec(name)
        .map(Source::Cifar)
        .or_else(|| idx::spec(name).map(Source::Idx))
        .ok_or_else(|| data_err!("unknown dataset {name:?}; expected one of {}", DATASETS.join(", ")))
}

impl Source {
    /// Image channels (3 for CIFAR, 1 for the MNIST family).
    pub fn channels(&self) -> i64 {
        match self {
            Source::Cifar(_) => 3,
            Source::Idx(_) => 1,
        }
    }

    /// Side of the square images.
    pub fn image_size(&self) -> i64 {
        match self {
            Source::Cifar(_) => 32,
            Source::Idx(_) => 28,
        }
    }

    /// Number of classes.
    pub fn num_classes(&self) -> i64 {
        match self {
            Source::Cifar(s) => s.num_classes as i64,
            Source::Idx(s) => s.classes.len() as i64,
        }
    }

    /// Directory name under `data.root`.
    pub fn dir_name(&self) -> &'static str {
        match self {
            Source::Cifar(s) => s.dir,
            Source::Idx(s) => s.dir,
        }
    }

    /// The directory holding the files under `root`, if present.
    pub fn locate(&self, root: &Path) -> Option<PathBuf> {
        match self {
            Source::Cifar(s) => s.locate(root),
            Source::Idx(s) => s.locate(root),
        }
    }

    /// Reads the training or test split.
    pub fn read_split(&self, dir: &Path, train: bool) -> Result<Dataset> {
        match self {
            Source::Cifar(s) => s.read_split(dir, train),
            Source::Idx(s) => s.read_split(dir, train),
        }
    }

    /// Checks the files against the official MD5 sums.
    pub fn verify(&self, dir: &Path) -> Result<()> {
        match self {
            Source::Cifar(s) => s.verify(dir),
            Source::Idx(s) => s.verify(dir),
        }
    }

    /// MD5 of every data file present in `dir`, for provenance.
    pub fn md5s(&self, dir: &Path) -> Result<Vec<(String, String)>> {
        match self {
            Source::Cifar(s) => s.md5s(dir),
            Source::Idx(s) => {
                let mut out = Vec::new();
                for (name, _) in &s.files {
                    let raw = name.trim_end_matches(".gz");
                    if let Some(f) = [*name, raw].into_iter().find(|f| dir.join(f).is_file()) {
                        out.push((f.to_string(), cifar::md5_file(&dir.join(f))?));
                    }
                }
                Ok(out)
            }
        }
    }

    /// Normalisation statistics known in advance (CIFAR); None means: compute them from the
    /// training split.
    pub fn known_stats(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        match self {
            Source::Cifar(s) => Some((s.mean.to_vec(), s.std.to_vec())),
            Source::Idx(_) => None,
        }
    }

    /// Downloads the official files into `root` (from `url` instead when not empty), MD5-checked.
    pub fn fetch(&self, url: &str, root: &Path) -> Result<()> {
        match self {
            Source::Cifar(s) => super::download::fetch_and_extract(s, if url.is_empty() { s.url } else { url }, root),
            Source::Idx(s) => {
                let base = if url.is_empty() { s.url } else { url };
                super::download::fetch_files(base, &s.files, &root.join(s.dir))
            }
        }
    }

    /// Where the official files come from (for messages).
    pub fn official_url(&self) -> &'static str {
        match self {
            Source::Cifar(s) => s.url,
            Source::Idx(s) => s.url,
        }
    }
}

//! Which reader a dataset name means: the CIFAR binary layout, the MNIST family's IDX files or an
//! image-folder tree.
//! Everything downstream (loader, models, plots) follows the source's channels, size and classes.

use std::path::{Path, PathBuf};

use super::cifar::{self, CifarSpec};
use super::idx::{self, IdxSpec};
use super::Dataset;
use crate::config::{dataset_facts, DatasetFacts};
use crate::data_err;
use crate::error::Result;

pub use crate::config::DATASETS;

/// A dataset's reader.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// CIFAR-10/100 binary version.
    Cifar(&'static CifarSpec),
    /// MNIST, Fashion-MNIST, KMNIST (IDX).
    Idx(&'static IdxSpec),
    /// A local tree `root/<split>/<class>/<image>`, resized to `size`.
    ImageFolder {
        /// Side of the square images after resizing (`data.input_size`).
        size: i64,
        /// Skip files that do not decode (else they are an error).
        skip_corrupt: bool,
    },
}

/// The reader for a data config (for `image_folder`, with its size and corrupt-file policy).
pub fn for_config(cfg: &crate::config::DataConfig) -> Result<Source> {
    Ok(match source(&cfg.dataset)? {
        Source::ImageFolder { .. } => {
            Source::ImageFolder { size: cfg.input_size, skip_corrupt: cfg.on_corrupt == crate::config::OnCorrupt::Skip }
        }
        other => other,
    })
}

/// The reader of dataset `name`; an unknown name lists the valid ones.
pub fn source(name: &str) -> Result<Source> {
    cifar::spec(name)
        .map(Source::Cifar)
        .or_else(|| idx::spec(name).map(Source::Idx))
        .or_else(|| (name == "image_folder").then_some(Source::ImageFolder { size: 32, skip_corrupt: false }))
        .ok_or_else(|| crate::config_err!("unknown dataset {name:?}; expected one of {}", DATASETS.join(", ")))
}

/// A data file's name and its published MD5 (empty when none was published).
type Md5Entry<'a> = (&'a str, &'a str);

impl Source {
    /// The config name.
    pub fn name(&self) -> &'static str {
        match self {
            Source::Cifar(s) => s.name,
            Source::Idx(s) => s.name,
            Source::ImageFolder { .. } => "image_folder",
        }
    }

    /// The facts the config was checked against (channels, image side, classes).
    pub fn facts(&self) -> DatasetFacts {
        dataset_facts(self.name()).expect("every source is a dataset of config::DATASETS")
    }

    /// Image channels (3 for CIFAR, 1 for the MNIST family).
    pub fn channels(&self) -> i64 {
        self.facts().channels
    }

    /// Side of the square images.
    pub fn image_size(&self) -> i64 {
        match self {
            Source::ImageFolder { size, .. } => *size,
            _ => self.facts().image_size(0),
        }
    }

    /// Number of classes (None for an image folder: its class directories tell).
    pub fn num_classes(&self) -> Option<i64> {
        self.facts().num_classes
    }

    /// The directory holding the files under `root`, if present.
    pub fn locate(&self, root: &Path) -> Option<PathBuf> {
        match self {
            Source::Cifar(s) => s.locate(root),
            Source::Idx(s) => s.locate(root),
            Source::ImageFolder { .. } => super::image_folder::split_dir(root, true).map(|_| root.to_path_buf()),
        }
    }

    /// Reads the training or test split.
    pub fn read_split(&self, dir: &Path, train: bool) -> Result<Dataset> {
        match self {
            Source::Cifar(s) => s.read_split(dir, train),
            Source::Idx(s) => s.read_split(dir, train),
            Source::ImageFolder { size, skip_corrupt } => {
                super::image_folder::read_split(dir, train, *size, *skip_corrupt)
            }
        }
    }

    /// Checks the files are the official ones (sizes and MD5 sums, hashing every file now);
    /// returns the sums (as [`Source::md5s`]) so the run's provenance need not read the files again.
    pub fn verify(&self, dir: &Path) -> Result<Vec<(String, String)>> {
        super::checksums::check_official(self, dir, None)
    }

    /// How many of `sums` (from [`Source::md5s`]) had an official MD5 to compare with: raw IDX
    /// files and files published without one are hashed but cannot be verified.
    pub fn officially_checked(&self, sums: &[(String, String)]) -> usize {
        sums.iter().filter(|(file, _)| self.official_md5(file).is_some()).count()
    }

    /// An MD5 of one's own for the download (a mirror's archive, `--md5`) applies only to the
    /// datasets downloaded as one archive (CIFAR-10/100), not to per-file ones.
    pub fn check_archive_md5_applies(&self) -> Result<()> {
        match self {
            Source::Cifar(_) => Ok(()),
            Source::Idx(_) | Source::ImageFolder { .. } => {
                Err(crate::config_err!("--md5: expected a dataset downloaded as one archive (cifar10, cifar100)"))
            }
        }
    }

    /// The official size in bytes of each file whose size is known (the CIFAR files; IDX files
    /// carry their counts in their headers).
    pub fn official_sizes(&self) -> Vec<(&'static str, u64)> {
        match self {
            Source::Cifar(s) => s.official_sizes(),
            Source::Idx(_) | Source::ImageFolder { .. } => Vec::new(),
        }
    }

    /// The data files present in `dir` that [`Source::md5s`] hashes, in its order.
    pub fn data_files(&self, dir: &Path) -> Vec<String> {
        match self {
            Source::Cifar(s) => s.train_files.iter().chain(s.test_files).map(|(f, _)| f.to_string()).collect(),
            Source::Idx(s) => s.present_files(dir),
            Source::ImageFolder { .. } => Vec::new(),
        }
    }

    /// The published MD5 of `file` (image folders, raw IDX files and files published without one
    /// have none).
    pub fn official_md5(&self, file: &str) -> Option<&str> {
        let (train, test): (&[Md5Entry], &[Md5Entry]) = match self {
            Source::Cifar(s) => (s.train_files, s.test_files),
            Source::Idx(s) => (&s.files, &[]),
            Source::ImageFolder { .. } => (&[], &[]),
        };
        train.iter().chain(test).find(|(name, _)| *name == file).map(|&(_, md5)| md5).filter(|md5| !md5.is_empty())
    }

    /// MD5 of every data file present in `dir`, for provenance.
    pub fn md5s(&self, dir: &Path) -> Result<Vec<(String, String)>> {
        match self {
            Source::Cifar(s) => s.md5s(dir),
            Source::Idx(s) => s.md5s(dir),
            Source::ImageFolder { .. } => Ok(Vec::new()),
        }
    }

    /// Normalisation statistics known in advance (CIFAR); None means: compute them from the
    /// training split.
    pub fn known_stats(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        match self {
            Source::Cifar(s) => Some((s.mean.to_vec(), s.std.to_vec())),
            Source::Idx(_) | Source::ImageFolder { .. } => None,
        }
    }

    /// Downloads the official files into `root` (from `url` instead when not empty), MD5-checked
    /// against the published sums, or for a single-archive dataset against `archive_md5` when
    /// given (an archive that is not the official one).
    pub fn fetch(&self, url: &str, root: &Path, archive_md5: Option<&str>) -> Result<()> {
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(crate::config_err!("`data.url` / --url = {url:?}: expected an http:// or https:// URL"));
        }
        match self {
            Source::Cifar(s) => {
                let md5 = archive_md5.unwrap_or(s.archive_md5);
                super::download::fetch_and_extract(s, if url.is_empty() { s.url } else { url }, md5, root)
            }
            Source::Idx(_) if archive_md5.is_some() => self.check_archive_md5_applies(),
            Source::Idx(s) => {
                let base = if url.is_empty() { s.url } else { url };
                super::download::fetch_files(base, &s.files, &root.join(s.dir))
            }
            Source::ImageFolder { .. } => Err(data_err!("image_folder datasets are local: nothing to download")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config checks a dataset against `config::dataset_facts`; the readers read files by
    /// their own specs. They must agree, or a config that passes would meet other data.
    #[test]
    fn the_config_facts_agree_with_the_readers_specs() {
        for name in DATASETS {
            let src = source(name).unwrap();
            assert_eq!(src.name(), *name);
            match src {
                Source::Cifar(s) => {
                    assert_eq!(src.num_classes(), Some(s.num_classes as i64), "{name}");
                    assert_eq!((src.channels(), src.image_size()), (3, 32), "{name}");
                }
                Source::Idx(s) => {
                    assert_eq!(src.num_classes(), Some(s.classes.len() as i64), "{name}");
                    assert_eq!((src.channels(), src.image_size()), (1, idx::IMAGE_SIDE as i64), "{name}");
                }
                Source::ImageFolder { .. } => assert_eq!((src.channels(), src.num_classes()), (3, None)),
            }
        }
        assert!(dataset_facts("imagenet").is_none() && source("imagenet").is_err());
    }
}

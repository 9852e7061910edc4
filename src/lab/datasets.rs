//! Datasets without a config file: download and verify one, describe it (counts per class,
//! image size, mean/std), preview it as a grid of training images.

use std::path::{Path, PathBuf};

use crate::config::DataConfig;
use crate::data;
use crate::error::Result;

/// What [`data_download`] left on disk.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// The dataset's directory.
    pub dir: PathBuf,
    /// Its files with their MD5 sums.
    pub md5: Vec<(String, String)>,
    /// How many of them have an official MD5 (all of them matched it).
    pub officially_checked: usize,
}

/// One split as [`data_info`] describes it.
#[derive(Debug, Clone)]
pub struct SplitInfo {
    /// `train` or `test`.
    pub name: &'static str,
    /// Number of images.
    pub images: i64,
    /// Image shape `(C, H, W)`.
    pub shape: [i64; 3],
    /// Class names.
    pub classes: Vec<String>,
    /// Images per class.
    pub class_counts: Vec<i64>,
    /// Per-channel mean of the pixels in [0, 1].
    pub mean: Vec<f64>,
    /// Per-channel standard deviation.
    pub std: Vec<f64>,
}

/// What [`data_info`] found.
#[derive(Debug, Clone)]
pub struct DatasetInfo {
    /// The dataset's directory.
    pub dir: PathBuf,
    /// The training and test splits.
    pub splits: Vec<SplitInfo>,
}

/// The data config of `dataset` under `root` (default: `$MICROVISION_DATA`, else `data`).
fn data_config(dataset: &str, root: Option<PathBuf>) -> Result<DataConfig> {
    data::source::source(dataset)?;
    let root = root.or_else(crate::config::data_env).unwrap_or_else(|| "data".into());
    if root.as_os_str().is_empty() {
        return Err(crate::config_err!("--root \"\": expected a directory"));
    }
    Ok(DataConfig { dataset: dataset.into(), root, ..DataConfig::default() })
}

/// The dataset's directory under its root (never downloads), or an error saying how to get it.
fn find(cfg: &DataConfig) -> Result<PathBuf> {
    let src = data::source::for_config(cfg)?;
    if let Some(dir) = src.locate(&cfg.root) {
        return Ok(dir);
    }
    let root = std::path::absolute(&cfg.root).unwrap_or_else(|_| cfg.root.clone());
    let get = match src {
        data::source::Source::ImageFolder { .. } => {
            format!("expected {}/train/<class>/<image> and test/", root.display())
        }
        _ => format!("fetch it with `microvision data download {} --root {}`", cfg.dataset, cfg.root.display()),
    };
    Err(crate::data_err!(
        "{} not found under {}: {get}, or give --root DIR (or MICROVISION_DATA) where it is",
        cfg.dataset,
        root.display()
    ))
}

/// Downloads `dataset`'s official files into `root` (from `url`, a mirror, when given) unless
/// they are there, and checks their MD5 sums.
pub fn data_download(
    dataset: &str,
    root: Option<PathBuf>,
    url: Option<String>,
    md5: Option<String>,
) -> Result<Downloaded> {
    let cfg = DataConfig { url: url.unwrap_or_default(), ..data_config(dataset, root)? };
    if dataset == "image_folder" {
        return Err(crate::config_err!(
            "image_folder datasets are local, there is nothing to download: point --root (or data.root) at \
             ROOT/train/<class>/<image> and ROOT/test/"
        ));
    }
    let src = data::source::source(dataset)?;
    let md5 = md5.map(|m| m.to_ascii_lowercase());
    if let Some(sum) = &md5 {
        check_archive_md5(sum, &cfg.url)?;
        src.check_archive_md5_applies()?;
        if let Some(dir) = src.locate(&cfg.root) {
            // Nothing would be downloaded, so nothing checked against the sum.
            return Err(crate::config_err!(
                "--md5: {dataset} is already in {}; a mirror's archive is downloaded only into a root without \
                 it (remove it, or choose another --root)",
                dir.display()
            ));
        }
    }
    let dir = data::locate_or_download_archive(&cfg, md5.as_deref())?;
    if md5.is_some() {
        // Not the official archive: its files are hashed for the record, not compared.
        return Ok(Downloaded { md5: src.md5s(&dir)?, dir, officially_checked: 0 });
    }
    let md5 = src.verify(&dir)?;
    let officially_checked = src.officially_checked(&md5);
    Ok(Downloaded { dir, md5, officially_checked })
}

/// `--md5` names the sum of an archive that is not the official one: it needs the `--url` that
/// serves it, and is 32 hexadecimal digits.
fn check_archive_md5(sum: &str, url: &str) -> Result<()> {
    if url.is_empty() {
        return Err(crate::config_err!(
            "--md5 {sum}: expected --url too (the official archive is always checked against its published MD5)"
        ));
    }
    if sum.len() != 32 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(crate::config_err!("--md5 {sum:?}: expected an MD5 sum, 32 hexadecimal digits"));
    }
    Ok(())
}

/// Counts per class, image size and mean/std of both splits of `dataset` under `root`.
pub fn data_info(dataset: &str, root: Option<PathBuf>) -> Result<DatasetInfo> {
    let cfg = data_config(dataset, root)?;
    let src = data::source::for_config(&cfg)?;
    let dir = find(&cfg)?;
    let mut splits = Vec::new();
    for (name, train) in [("train", true), ("test", false)] {
        let split = src.read_split(&dir, train)?;
        let (mean, std) = split.mean_std();
        let size = split.images.size();
        splits.push(SplitInfo {
            name,
            images: split.len(),
            shape: [size[1], size[2], size[3]],
            class_counts: split.class_counts(),
            classes: split.classes,
            mean,
            std,
        });
    }
    Ok(DatasetInfo { dir, splits })
}

/// One split of `dataset` under `root` (default `$MICROVISION_DATA`, else `data`): uint8 images
/// `(N, C, H, W)`, int64 labels and the class names. Never downloads.
pub fn load_split(dataset: &str, root: Option<PathBuf>, train: bool) -> Result<data::Dataset> {
    let cfg = data_config(dataset, root)?;
    let src = data::source::for_config(&cfg)?;
    src.read_split(&find(&cfg)?, train)
}

/// A grid of `per_class` training images per class of `dataset`, saved as `data_preview.png`
/// and `.svg` in `out`; returns the files.
pub fn data_preview(dataset: &str, root: Option<PathBuf>, per_class: usize, out: &Path) -> Result<Vec<PathBuf>> {
    let cfg = data_config(dataset, root)?;
    let src = data::source::source(dataset)?;
    let dir = find(&cfg)?;
    let train = src.read_split(&dir, true)?;
    let grid = crate::analysis::plots::class_grid(&train, per_class);
    crate::analysis::plots::save(&grid, out, "data_preview")
}

//! `microvision data ...`: download, inspect and preview a dataset without a config file.

use std::path::{Path, PathBuf};

use crate::config::DataConfig;
use crate::data;
use crate::error::Result;

fn data_config(dataset: &str, root: Option<PathBuf>) -> Result<DataConfig> {
    data::source::source(dataset)?;
    let root = root.or_else(crate::config::data_env).unwrap_or_else(|| "data".into());
    if root.as_os_str().is_empty() {
        return Err(crate::config_err!("--root \"\": expected a directory"));
    }
    Ok(DataConfig { dataset: dataset.into(), root, ..DataConfig::default() })
}

/// The dataset's directory under `--root` (never downloads), or an error saying how to get it
/// with this command's own flags.
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

/// `microvision data download`: fetches and MD5-checks a dataset's official files.
pub fn data_download(dataset: &str, root: Option<PathBuf>, url: Option<String>) -> Result<()> {
    let cfg = DataConfig { url: url.unwrap_or_default(), ..data_config(dataset, root)? };
    if dataset == "image_folder" {
        return Err(crate::config_err!(
            "image_folder datasets are local, there is nothing to download: point --root (or data.root) at \
             ROOT/train/<class>/<image> and ROOT/test/"
        ));
    }
    let dir = data::locate_or_download(&cfg)?;
    let src = data::source::source(dataset)?;
    let sums = src.verify(&dir)?;
    let checked = src.officially_checked(&sums);
    let how = if checked == sums.len() {
        "MD5 verified".to_string()
    } else {
        format!("MD5 verified for {checked} of {} files; the others have no official MD5", sums.len())
    };
    println!("{dataset} is ready in {} ({how})", dir.display());
    Ok(())
}

/// `microvision data info`: counts per class, image size and mean/std of a dataset.
pub fn data_info(dataset: &str, root: Option<PathBuf>) -> Result<()> {
    let cfg = data_config(dataset, root)?;
    let src = data::source::for_config(&cfg)?;
    let dir = find(&cfg)?;
    println!("{dataset} in {}", dir.display());
    for (name, train) in [("train", true), ("test", false)] {
        let split = src.read_split(&dir, train)?;
        let (mean, std) = split.mean_std();
        let size = split.images.size();
        println!(
            "{name}: {} images of {}x{}x{}, {} classes",
            split.len(),
            size[1],
            size[2],
            size[3],
            split.classes.len()
        );
        println!("  mean {:.4?}  std {:.4?}", mean, std);
        for (c, n) in split.classes.iter().zip(split.class_counts()) {
            println!("  {c:<12} {n}");
        }
    }
    Ok(())
}

/// `microvision data preview`: a grid image of a few images per class.
pub fn data_preview(dataset: &str, root: Option<PathBuf>, per_class: usize, out: &Path) -> Result<()> {
    let cfg = data_config(dataset, root)?;
    let src = data::source::source(dataset)?;
    let dir = find(&cfg)?;
    let train = src.read_split(&dir, true)?;
    let grid = crate::analysis::plots::class_grid(&train, per_class);
    let files = crate::analysis::plots::save(&grid, out, "data_preview")?;
    println!("wrote {} and {}", files[0].display(), files[1].display());
    Ok(())
}

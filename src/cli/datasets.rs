//! `microvision data ...`: download, inspect and preview a dataset without a config file.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::lab;

/// `microvision data download`: fetches and MD5-checks a dataset's official files.
pub fn data_download(dataset: &str, root: Option<PathBuf>, url: Option<String>, md5: Option<String>) -> Result<()> {
    let own_archive = md5.is_some();
    let d = lab::data_download(dataset, root, url, md5)?;
    let how = if own_archive {
        "the archive's MD5 verified against --md5; not the official files: train with data.official_files = false"
            .to_string()
    } else if d.officially_checked == d.md5.len() {
        "MD5 verified".to_string()
    } else {
        format!("MD5 verified for {} of {} files; the others have no official MD5", d.officially_checked, d.md5.len())
    };
    println!("{dataset} is ready in {} ({how})", d.dir.display());
    Ok(())
}

/// `microvision data info`: counts per class, image size and mean/std of a dataset.
pub fn data_info(dataset: &str, root: Option<PathBuf>) -> Result<()> {
    let info = lab::data_info(dataset, root)?;
    println!("{dataset} in {}", info.dir.display());
    for s in &info.splits {
        let [c, h, w] = s.shape;
        println!("{}: {} images of {c}x{h}x{w}, {} classes", s.name, s.images, s.classes.len());
        println!("  mean {:.4?}  std {:.4?}", s.mean, s.std);
        for (c, n) in s.classes.iter().zip(&s.class_counts) {
            println!("  {c:<12} {n}");
        }
    }
    Ok(())
}

/// `microvision data preview`: a grid image of a few images per class.
pub fn data_preview(dataset: &str, root: Option<PathBuf>, per_class: usize, out: &Path) -> Result<()> {
    let files = lab::data_preview(dataset, root, per_class, out)?;
    println!("wrote {} and {}", files[0].display(), files[1].display());
    Ok(())
}

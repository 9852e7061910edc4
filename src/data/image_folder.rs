//! `image_folder`: a directory tree `root/<split>/<class>/<image>` of PNG or JPEG files of any
//! size (split = `train`, and `test` or `val`). Images are decoded once, in parallel (rayon),
//! converted to RGB, resized so the shorter side is `input_size` and centre-cropped square, into
//! the in-memory uint8 store. A cache file per split (`root/.microvision-<split>-<size>.cache`,
//! keyed by the file list with sizes and modification times) makes the next run start at once.
//! A file that does not decode is reported by path, then skipped or fatal (`data.on_corrupt`).

use md5::{Digest, Md5};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use tch::Tensor;

use super::Dataset;
use crate::data_err;
use crate::error::{Error, Result};

const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];
const MAGIC: &[u8; 8] = b"MVCACHE1";

/// The split directory of `root`: `train`, or `test` / `val` for the test split.
pub fn split_dir(root: &Path, train: bool) -> Option<PathBuf> {
    let names: &[&str] = if train { &["train"] } else { &["test", "val"] };
    names.iter().map(|n| root.join(n)).find(|d| d.is_dir())
}

/// Image files with their labels.
type Labelled = Vec<(PathBuf, i64)>;

/// Class directories (sorted by name, as torchvision's `ImageFolder`) and their image files.
fn scan(dir: &Path) -> Result<(Vec<String>, Labelled)> {
    let read = |d: &Path| std::fs::read_dir(d).map_err(|e| Error::io("cannot read", d, e));
    let mut classes: Vec<String> = read(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    let mut files = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let mut imgs: Vec<PathBuf> = read(&dir.join(class))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| EXTENSIONS.contains(&x.to_string_lossy().to_lowercase().as_str()))
            })
            .collect();
        imgs.sort();
        if imgs.is_empty() {
            crate::notice::warn(format!(
                "{} has no .png/.jpg images: class {class:?} has no examples",
                dir.join(class).display()
            ));
        }
        files.extend(imgs.into_iter().map(|p| (p, label as i64)));
    }
    if classes.is_empty() || files.is_empty() {
        return Err(data_err!("{}: expected <class>/<image>.png|jpg directories, found no images", dir.display()));
    }
    Ok((classes, files))
}

/// Decodes one file to `size x size` RGB, planar (3, size, size).
fn decode(path: &Path, size: u32) -> std::result::Result<Vec<u8>, String> {
    decode_image(path, size, 3)
}

/// Decodes an image file as the datasets hold images: the shorter side resized to `size`, the
/// centre `size x size` cropped, `channels` 3 (RGB) or 1 (grey), planar (channels, size, size).
pub fn decode_image(path: &Path, size: u32, channels: usize) -> std::result::Result<Vec<u8>, String> {
    // By content, not by extension: a JPEG named .png is a JPEG.
    let reader = image::io::Reader::open(path).and_then(|r| r.with_guessed_format()).map_err(|e| e.to_string())?;
    let img = reader.decode().map_err(|e| e.to_string())?;
    let img = if channels == 1 { image::DynamicImage::ImageLuma8(img.to_luma8()).to_rgb8() } else { img.to_rgb8() };
    let (w, h) = img.dimensions();
    let scale = size as f64 / w.min(h) as f64;
    let (nw, nh) = (((w as f64 * scale).round() as u32).max(size), ((h as f64 * scale).round() as u32).max(size));
    let resized = image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
    let (x0, y0) = ((nw - size) / 2, (nh - size) / 2);
    let crop = image::imageops::crop_imm(&resized, x0, y0, size, size).to_image();
    let mut planar = vec![0u8; channels * (size * size) as usize];
    for (i, p) in crop.pixels().enumerate() {
        for c in 0..channels {
            planar[c * (size * size) as usize + i] = p.0[c];
        }
    }
    Ok(planar)
}

/// The cache key: every file's path, size and modification time, and the image size.
fn cache_key(files: &[(PathBuf, i64)], size: u32, skip_corrupt: bool) -> String {
    let mut h = Md5::new();
    h.update(size.to_le_bytes());
    h.update([skip_corrupt as u8]); // a cache without the corrupt files must not serve "error" runs
    for (p, l) in files {
        let meta = std::fs::metadata(p).ok();
        let mtime =
            meta.as_ref().and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        h.update(format!("{}|{l}|{:?}|{:?}\n", p.display(), meta.map(|m| m.len()), mtime));
    }
    format!("{:x}", h.finalize())
}

/// Reads the training or test split of the tree at `root`, resized to `size`.
pub fn read_split(root: &Path, train: bool, size: i64, skip_corrupt: bool) -> Result<Dataset> {
    let dir = split_dir(root, train).ok_or_else(|| {
        data_err!("{}: no {} directory", root.display(), if train { "train/" } else { "test/ (or val/)" })
    })?;
    let (classes, files) = scan(&dir)?;
    let key = cache_key(&files, size as u32, skip_corrupt);
    let cache = root.join(format!(".microvision-{}-{size}.cache", if train { "train" } else { "test" }));
    if let Some(ds) = read_cache(&cache, &key, &classes, size) {
        return Ok(ds);
    }
    let decoded: Vec<(usize, std::result::Result<Vec<u8>, String>)> =
        files.par_iter().enumerate().map(|(i, (p, _))| (i, decode(p, size as u32))).collect();
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (i, r) in decoded {
        match r {
            Ok(px) => {
                pixels.extend_from_slice(&px);
                labels.push(files[i].1);
            }
            Err(e) if skip_corrupt => crate::notice::warn(format!("skipping {}: {e}", files[i].0.display())),
            Err(e) => {
                return Err(data_err!(
                    "{}: cannot decode: {e} (set data.on_corrupt = \"skip\" to leave such files out)",
                    files[i].0.display()
                ))
            }
        }
    }
    let n = labels.len() as i64;
    write_cache(&cache, &key, &labels, &pixels);
    Ok(Dataset {
        images: Tensor::from_slice(&pixels).view([n, 3, size, size]),
        labels: Tensor::from_slice(&labels),
        classes,
    })
}

fn write_cache(path: &Path, key: &str, labels: &[i64], pixels: &[u8]) {
    let mut bytes = Vec::with_capacity(pixels.len() + labels.len() * 8 + 64);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(&(labels.len() as u64).to_le_bytes());
    labels.iter().for_each(|l| bytes.extend_from_slice(&l.to_le_bytes()));
    bytes.extend_from_slice(pixels);
    // A cache that cannot be written only costs the next run its decoding time.
    if let Err(e) = crate::fsio::write_atomic(path, &bytes) {
        crate::notice::warn(format!("image cache not written: {e}"));
    }
}

fn read_cache(path: &Path, key: &str, classes: &[String], size: i64) -> Option<Dataset> {
    let bytes = std::fs::read(path).ok()?;
    let rest = bytes.strip_prefix(MAGIC)?.strip_prefix(key.as_bytes())?;
    let n = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?) as usize;
    let (lab, px) = rest.get(8..)?.split_at_checked(n.checked_mul(8)?)?;
    if px.len() != n.checked_mul(3 * (size * size) as usize)? {
        return None;
    }
    let labels: Vec<i64> = lab.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    let images = Tensor::from_slice(px).view([n as i64, 3, size, size]);
    Some(Dataset { images, labels: Tensor::from_slice(&labels), classes: classes.to_vec() })
}

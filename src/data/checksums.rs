//! Are these the official files? Sizes and MD5 sums of a dataset's files, checked before
//! training unless the user says the files are their own (`data.official_files = false`).
//!
//! Hashing CIFAR-10's 180 MB takes a noticeable fraction of a second on every run, so sums are
//! cached per file in the user's cache directory (`md5.json`), keyed by absolute path, size and
//! modification time: a file rewritten or cut since it was hashed is hashed again.
//! `data.verify_md5 = true` ignores the cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::source::Source;
use crate::data_err;
use crate::error::Result;

/// A file's size and modification time when it was hashed, with its MD5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    size: u64,
    mtime_ns: u128,
    md5: String,
}

/// The MD5 cache file: `$MICROVISION_CACHE`, else `$XDG_CACHE_HOME/microvision`, else
/// `~/.cache/microvision`, then `md5.json`. None when no home is known.
pub fn default_cache() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = var("MICROVISION_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("microvision")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/microvision")))?;
    Some(dir.join("md5.json"))
}

/// Checks the files in `dir` are the official ones: each CIFAR file has its official size and
/// every file with a published MD5 matches it. Returns the MD5 of every data file (for the
/// run's provenance). `cache` is the MD5 cache file (None: hash every file now).
pub fn check_official(src: &Source, dir: &Path, cache: Option<&Path>) -> Result<Vec<(String, String)>> {
    for (file, want) in src.official_sizes() {
        let path = dir.join(file);
        let got = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if got != want {
            return Err(data_err!(
                "{}: {got} bytes, but the official {} file has {want} bytes; the file is cut short or is \
                 not the official one. Delete it and download the dataset again, or, if these are your own \
                 files in the same layout (a subset, a re-packed set), set data.official_files = false",
                path.display(),
                src.name()
            ));
        }
    }
    let sums = md5s(src, dir, cache)?;
    for (file, got) in &sums {
        if let Some(want) = src.official_md5(file).filter(|want| want != got) {
            return Err(data_err!(
                "{}: MD5 {got} does not match the official {want}; the file is corrupt: delete it and download \
                 the dataset again (or set data.official_files = false if these are your own files)",
                dir.join(file).display()
            ));
        }
    }
    Ok(sums)
}

/// MD5 of every data file in `dir` (as [`Source::md5s`]), from `cache` where a file's size and
/// modification time are those it had when hashed. The cache is updated; a cache that cannot be
/// read or written is ignored (it only saves time). Only official files go through it (your own
/// files are hashed each time), so it holds a few data directories, not every copy ever read.
pub fn md5s(src: &Source, dir: &Path, cache: Option<&Path>) -> Result<Vec<(String, String)>> {
    let Some(cache) = cache else { return src.md5s(dir) };
    let mut known: BTreeMap<PathBuf, Entry> =
        std::fs::read(cache).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let mut changed = false;
    let mut out = Vec::new();
    for file in src.data_files(dir) {
        let path = std::path::absolute(dir.join(&file)).unwrap_or_else(|_| dir.join(&file));
        let stamp = stamp(&path);
        let md5 = match (known.get(&path), stamp) {
            (Some(e), Some((size, mtime_ns))) if e.size == size && e.mtime_ns == mtime_ns => e.md5.clone(),
            _ => {
                let md5 = super::cifar::md5_file(&path)?;
                if let Some((size, mtime_ns)) = stamp {
                    known.insert(path, Entry { size, mtime_ns, md5: md5.clone() });
                    changed = true;
                }
                md5
            }
        };
        out.push((file, md5));
    }
    if changed {
        let written = cache.parent().map_or(Ok(()), std::fs::create_dir_all).is_ok()
            && serde_json::to_vec_pretty(&known).is_ok_and(|b| crate::fsio::write_atomic(cache, &b).is_ok());
        let _ = written; // a read-only cache only costs time
    }
    Ok(out)
}

/// Size and modification time (ns since the epoch) of a file.
fn stamp(path: &Path) -> Option<(u64, u128)> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some((meta.len(), mtime.as_nanos()))
}

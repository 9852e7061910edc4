//! Downloads an official dataset archive, verifies its MD5 and extracts it atomically: the
//! archive is streamed to a `.partial` file, checked, unpacked into a temporary directory and
//! only then renamed into place, so a partial download never becomes the dataset.

use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use super::cifar::CifarSpec;
use crate::data_err;
use crate::error::{Error, Result};

const ATTEMPTS: usize = 3;

/// Seconds without a byte (or without a connection) after which an attempt gives up, so that a
/// stalled server or proxy ends in a message instead of a hang. `MICROVISION_DOWNLOAD_STALL_SECS`
/// changes it (slow links; tests).
const STALL_SECS: u64 = 60;

fn stall_timeout() -> std::time::Duration {
    let secs = std::env::var("MICROVISION_DOWNLOAD_STALL_SECS").ok().and_then(|v| v.parse().ok());
    std::time::Duration::from_secs(secs.filter(|s| *s > 0).unwrap_or(STALL_SECS))
}

/// Downloads `url` (normally `spec.url`) into `root`, verifies its MD5 (normally the official
/// `spec.archive_md5`) and extracts `spec.dir` atomically.
pub fn fetch_and_extract(spec: &CifarSpec, url: &str, md5: &str, root: &Path) -> Result<()> {
    in_new_dirs(root, || {
        let archive = root.join(format!("{}.tar.gz", spec.dir));
        let partial = root.join(format!(".{}.tar.gz.partial", spec.dir));
        if !(archive.is_file() && md5_matches(&archive, md5)?) {
            fetch_verified(url, &partial, &archive, md5)?;
        }
        extract(&archive, root, spec.dir)
    })
}

/// Creates `dir` (and its missing parents) and runs `fetch`; when it fails, the directories it
/// created and left empty are removed again, so a failed download leaves nothing behind.
fn in_new_dirs(dir: &Path, fetch: impl FnOnce() -> Result<()>) -> Result<()> {
    let absent: Vec<&Path> = dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
    // A data root that cannot be made a directory is a data error (exit 3), as a missing dataset.
    crate::error::create_dir_all(dir, "cannot create data directory (data.root)").map_err(|e| match e {
        crate::Error::Config(msg) => crate::Error::Data(msg),
        other => other,
    })?;
    let result = fetch();
    if result.is_err() {
        for d in absent {
            let _ = std::fs::remove_dir(d); // deepest first; one that holds files stays
        }
    }
    result
}

/// Downloads `url` to `partial` (up to `ATTEMPTS` tries), checks `md5`, renames it to `dest`.
fn fetch_verified(url: &str, partial: &Path, dest: &Path, md5: &str) -> Result<()> {
    let mut last_err = None;
    for attempt in 1..=ATTEMPTS {
        match download(url, partial, md5) {
            Ok(()) => return std::fs::rename(partial, dest).map_err(|e| Error::io("cannot rename", partial, e)),
            Err(e) => {
                crate::notice::info(format!("download attempt {attempt}/{ATTEMPTS} failed: {e}"));
                last_err = Some(e);
            }
        }
    }
    let _ = std::fs::remove_file(partial);
    Err(last_err.unwrap_or_else(|| data_err!("cannot download {url}")))
}

/// Downloads each `(name, md5)` of `files` from `base` + name into `dir` (skipping files already
/// there with the right MD5), each through a `.partial` file that is renamed only once verified.
pub fn fetch_files(base: &str, files: &[(&str, &str)], dir: &Path) -> Result<()> {
    in_new_dirs(dir, || {
        for (name, md5) in files {
            let dest = dir.join(name);
            if dest.is_file() && md5_matches(&dest, md5)? {
                continue;
            }
            let partial = dir.join(format!(".{name}.partial"));
            fetch_verified(&format!("{}/{name}", base.trim_end_matches('/')), &partial, &dest, md5)?;
        }
        Ok(())
    })
}

fn md5_matches(path: &Path, want: &str) -> Result<bool> {
    Ok(super::cifar::md5_file(path)? == want)
}

fn download(url: &str, dest: &Path, want_md5: &str) -> Result<()> {
    let stall = stall_timeout();
    let agent = ureq::AgentBuilder::new().timeout_connect(stall).timeout_read(stall).build();
    let resp = agent.get(url).call().map_err(|e| data_err!("cannot download {url}: {e}"))?;
    let total: Option<u64> = resp.header("Content-Length").and_then(|v| v.parse().ok());
    let bar = ProgressBar::new(total.unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("downloading");
    let file = File::create(dest).map_err(|e| Error::io("cannot create", dest, e))?;
    let mut out = BufWriter::new(file);
    let mut reader = resp.into_reader();
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                data_err!("download of {url} stalled: no data for {} s", stall.as_secs())
            }
            _ => data_err!("download of {url} interrupted: {e}"),
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| Error::io("cannot write", dest, e))?;
        bar.inc(n as u64);
    }
    out.into_inner()
        .map_err(|e| Error::io("cannot write", dest, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io("cannot sync", dest, e))?;
    bar.finish_and_clear();
    let got = format!("{:x}", hasher.finalize());
    if got != want_md5 {
        return Err(data_err!("downloaded {url} has MD5 {got}, expected {want_md5}: corrupted in transit"));
    }
    Ok(())
}

fn extract(archive: &Path, root: &Path, dir: &str) -> Result<()> {
    let tmp = root.join(format!(".extract-{}-{}", dir, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let file = File::open(archive).map_err(|e| Error::io("cannot open", archive, e))?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(&tmp)
        .map_err(|e| data_err!("cannot extract {}: {e}; delete it to download again", archive.display()))?;
    let inner = tmp.join(dir);
    if !inner.is_dir() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(data_err!("{} does not contain a {dir}/ directory", archive.display()));
    }
    let target = root.join(dir);
    std::fs::rename(&inner, &target).map_err(|e| Error::io("cannot move extracted data to", &target, e))?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

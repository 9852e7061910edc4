//! Crash-safe file writes shared by every layer (run files, checkpoints, dataset caches): write
//! to a temporary file beside the target, fsync, rename over it. A crash leaves either the old
//! file or the new one, never a torn mix.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// The temporary file that [`write_atomic`] writes before renaming it to `path`: hidden, in the
/// same directory (a rename is atomic only within one file system), named by the process id so
/// two processes never share one.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("f");
    path.with_file_name(format!(".tmp-{}-{name}", std::process::id()))
}

/// Writes `bytes` to `path` and fsyncs it; on failure removes the partial file.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    write_synced_naming(path, bytes, path)
}

/// [`write_synced`], with errors naming `shown` (the target of a temporary file).
fn write_synced_naming(path: &Path, bytes: &[u8], shown: &Path) -> Result<()> {
    use std::io::Write;
    let mut f = File::create(path).map_err(|e| Error::io("cannot create", shown, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| {
        let _ = std::fs::remove_file(path);
        Error::io("cannot write", shown, e)
    })
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename). Errors name `path`, not
/// the temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    write_synced_naming(&tmp, bytes, path)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("cannot rename to", path, e)
    })
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, &serde_json::to_vec_pretty(value).expect("serialisable"))
}

/// Makes the renames in `dir` durable; not supported on every file system, hence best effort.
pub fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

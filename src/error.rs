//! The user-facing error type. Every failure a user can cause (a bad config, missing data, an
//! incompatible checkpoint) is one of these variants, and `main` maps it to a message and an exit
//! code instead of a panic: 2 = usage or config, 3 = data, 4 = checkpoint, 1 = anything else.

use std::path::{Path, PathBuf};

/// A microvision error; the message says what was wrong and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad command line, config file, key or value.
    #[error("{0}")]
    Config(String),
    /// Missing, truncated or corrupt dataset files.
    #[error("{0}")]
    Data(String),
    /// A missing, corrupt or incompatible checkpoint or run directory.
    #[error("{0}")]
    Checkpoint(String),
    /// A file-system operation that failed, with the path it failed on.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "cannot write".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// An error raised inside LibTorch (shape mismatch, out of memory...).
    #[error("libtorch: {}", without_backtrace(&.0.to_string()))]
    Torch(#[from] tch::TchError),
    /// Stopped by a signal or a stop request; the message says how to resume.
    #[error("{0}")]
    Interrupted(String),
    /// The loss or the weights became NaN or infinite: what happened, and what to do about it.
    #[error("{what}. {advice}")]
    Diverged {
        /// What happened, where (step, epoch).
        what: String,
        /// What the user can change before resuming.
        advice: String,
    },
    /// Another runtime condition stopped the run.
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    /// The process exit code for this error (documented in docs/run-directory.md).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => 2,
            Error::Data(_) => 3,
            Error::Checkpoint(_) => 4,
            Error::Interrupted(_) => 130,
            Error::Io { .. } | Error::Torch(_) | Error::Runtime(_) | Error::Diverged { .. } => 1,
        }
    }

    /// Wraps an `std::io::Error` with the action and path it happened on.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io { action, path: path.to_path_buf(), source }
    }
}

/// `std::fs::create_dir_all` whose error says so when the path, or a parent of it, exists and is
/// not a directory (a file or a device given where a directory was expected).
pub fn create_dir_all(dir: &Path, action: &'static str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| match dir.ancestors().find(|p| p.exists() && !p.is_dir()) {
        Some(f) => Error::Config(format!(
            "{action} {}: {} exists and is not a directory; expected a directory there",
            dir.display(),
            f.display()
        )),
        None => Error::io(action, dir, e),
    })
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for building a config error from a format string.
#[macro_export]
macro_rules! config_err {
    ($($arg:tt)*) => { $crate::error::Error::Config(format!($($arg)*)) };
}

/// Shorthand for building a data error from a format string.
#[macro_export]
macro_rules! data_err {
    ($($arg:tt)*) => { $crate::error::Error::Data(format!($($arg)*)) };
}

/// Shorthand for building a checkpoint error from a format string.
#[macro_export]
macro_rules! ckpt_err {
    ($($arg:tt)*) => { $crate::error::Error::Checkpoint(format!($($arg)*)) };
}

/// A LibTorch message without the C++ stack trace it carries (`Exception raised from ...` and
/// the frames after it): the first lines say what went wrong, the frames are LibTorch's.
fn without_backtrace(msg: &str) -> &str {
    msg.find("Exception raised from").map_or(msg, |i| &msg[..i]).trim_end()
}

#[cfg(test)]
mod tests {
    #[test]
    fn libtorch_messages_lose_their_stack_trace() {
        let msg = "Internal torch error: [enforce fail at inline_container.cc:747] . open file failed\n\
                   Exception raised from PyTorchStreamWriter at ../caffe2/serialize/inline_container.cc:747 \
                   (most recent call first):\nframe #0: c10::Error::Error(...) + 0x1\nframe #1: ...";
        assert_eq!(
            super::without_backtrace(msg),
            "Internal torch error: [enforce fail at inline_container.cc:747] . open file failed"
        );
        assert_eq!(super::without_backtrace("shape mismatch"), "shape mismatch");
    }
}

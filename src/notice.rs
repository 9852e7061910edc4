//! What the library has to tell the user while it works (warnings, notes), through one sink
//! that the shell chooses: standard error by default, as the command line wants; a notebook or
//! a service can route them to its own log or warnings instead ([`set_sink`]). The verbs of
//! `lab` print nothing else (the console's progress bars are a callback the caller asks for).

use std::sync::RwLock;

/// How much a message matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something went wrong that did not stop the work (`warning: ...`).
    Warning,
    /// Something the user should know (`note: ...`).
    Note,
    /// Plain information (a download attempt, the weights a run starts from).
    Info,
}

/// A destination for messages.
pub type Sink = Box<dyn Fn(Level, &str) + Send + Sync>;

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Sends every later message to `sink` instead of standard error.
pub fn set_sink(sink: Sink) {
    *SINK.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
}

/// Sends messages to standard error again.
pub fn reset_sink() {
    *SINK.write().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Emits `message` at `level`.
pub fn emit(level: Level, message: &str) {
    match SINK.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(sink) => sink(level, message),
        None => match level {
            Level::Warning => eprintln!("warning: {message}"),
            Level::Note => eprintln!("note: {message}"),
            Level::Info => eprintln!("{message}"),
        },
    }
}

/// `warning: <message>`.
pub fn warn(message: impl AsRef<str>) {
    emit(Level::Warning, message.as_ref());
}

/// `note: <message>`.
pub fn note(message: impl AsRef<str>) {
    emit(Level::Note, message.as_ref());
}

/// `<message>`.
pub fn info(message: impl AsRef<str>) {
    emit(Level::Info, message.as_ref());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_sink_receives_the_messages_until_reset() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        set_sink(Box::new(move |level, m| g.lock().unwrap().push((level, m.to_string()))));
        warn("disk almost full");
        note(format!("{} of {}", 1, 2));
        reset_sink();
        assert_eq!(
            *got.lock().unwrap(),
            vec![(Level::Warning, "disk almost full".to_string()), (Level::Note, "1 of 2".to_string())]
        );
    }
}

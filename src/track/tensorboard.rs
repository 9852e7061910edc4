//! TensorBoard event files, written without TensorFlow: the TFRecord framing (length, masked
//! CRC32C of the length, payload, masked CRC32C of the payload) around hand-encoded protobuf
//! `Event` messages (tensorflow/core/util/event.proto, summary.proto). Scalars and text summaries
//! are supported; `tensorboard --logdir runs` shows them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::train::callbacks::{Callback, EpochInfo, FitInfo};

/// TFRecord's masked CRC32C: rotate right by 15 and add a constant, so that CRCs of data that
/// itself contains CRCs stay well distributed.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: `u64 len | u32 masked_crc(len) | data | u32 masked_crc(data)`, little-endian.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// Minimal protobuf encoder: just the wire types the event protos use.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    fn double(&mut self, field: u32, v: f64) -> &mut Self {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }
    fn message(&mut self, field: u32, m: &Pb) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// `Event { wall_time = 1, step = 2, file_version = 3, summary = 5 }`.
fn event(step: i64, summary: Option<&Pb>, file_version: Option<&str>) -> Vec<u8> {
    let mut e = Pb::default();
    e.double(1, now()).int(2, step);
    if let Some(v) = file_version {
        e.bytes(3, v.as_bytes());
    }
    if let Some(s) = summary {
        e.message(5, s);
    }
    e.0
}

/// `Summary { value = 1: Value { tag = 1, simple_value = 2 } }`.
fn scalar_summary(tag: &str, value: f32) -> Pb {
    let mut v = Pb::default();
    v.bytes(1, tag.as_bytes()).float(2, value);
    let mut s = Pb::default();
    s.message(1, &v);
    s
}

/// A text summary: `Value { tag, metadata = 9 { plugin_data = 1 { plugin_name = 1: "text" } },
/// tensor = 8 { dtype = 1: DT_STRING (7), tensor_shape = 2 { dim = 2 { size = 1: 1 } },
/// string_val = 8 } }`.
fn text_summary(tag: &str, text: &str) -> Pb {
    let mut plugin = Pb::default();
    plugin.bytes(1, b"text");
    let mut meta = Pb::default();
    meta.message(1, &plugin);
    let mut dim = Pb::default();
    dim.int(1, 1);
    let mut shape = Pb::default();
    shape.message(2, &dim);
    let mut tensor = Pb::default();
    tensor.int(1, 7).message(2, &shape).bytes(8, text.as_bytes());
    let mut v = Pb::default();
    v.bytes(1, tag.as_bytes()).message(9, &meta).message(8, &tensor);
    let mut s = Pb::default();
    s.message(1, &v);
    s
}

/// Writes one `events.out.tfevents.*` file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir/events.out.tfevents.<seconds>.<host>` with the file-version header event.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!("events.out.tfevents.{}.{}", now() as u64, host.trim()));
        let file = File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
        let mut w = EventWriter { path, out: BufWriter::new(file) };
        w.write(&event(0, None, Some("brain.Event:2")))?;
        Ok(w)
    }

    fn write(&mut self, event: &[u8]) -> Result<()> {
        self.out
            .write_all(&frame(event))
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::io("cannot write", &self.path, e))
    }

    /// A scalar at `step`.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<()> {
        self.write(&event(step, Some(&scalar_summary(tag, value as f32)), None))
    }

    /// A text (Markdown) summary at `step`.
    pub fn text(&mut self, tag: &str, step: i64, text: &str) -> Result<()> {
        self.write(&event(step, Some(&text_summary(tag, text)), None))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Logs each epoch's metrics (at the global step) and the resolved config as text.
pub struct TensorBoardLogger {
    writer: Option<EventWriter>,
}

impl TensorBoardLogger {
    /// A logger writing into the run directory; a failure to create the file is a warning.
    pub fn new(run_dir: &Path) -> Self {
        let writer =
            EventWriter::create(run_dir).map_err(|e| eprintln!("warning: TensorBoard logging is off: {e}")).ok();
        TensorBoardLogger { writer }
    }

    fn log(&mut self, f: impl FnOnce(&mut EventWriter) -> Result<()>) {
        if let Some(w) = &mut self.writer {
            if let Err(e) = f(w) {
                eprintln!("warning: TensorBoard logging stopped: {e}");
                self.writer = None;
            }
        }
    }
}

/// The scalars of an epoch, by TensorBoard tag (also the names checked against metrics.jsonl).
pub fn epoch_scalars(e: &EpochInfo) -> [(&'static str, f64); 7] {
    [
        ("train/loss", e.train_loss),
        ("train/acc", e.train_acc),
        ("val/loss", e.val.loss),
        ("val/acc", e.val.acc),
        ("lr", e.lr),
        ("img_per_s", e.img_per_s),
        ("epoch_secs", e.epoch_secs),
    ]
}

impl Callback for TensorBoardLogger {
    fn fit_start(&mut self, info: &FitInfo) {
        let text = config_markdown(info.config);
        self.log(|w| w.text("config", 0, &text));
    }

    fn epoch_end(&mut self, e: &EpochInfo) {
        self.log(|w| epoch_scalars(e).iter().try_for_each(|(tag, v)| w.scalar(tag, e.step, *v)));
    }
}

fn config_markdown(cfg: &Config) -> String {
    // Indented by four spaces: TensorBoard renders it as a code block.
    cfg.to_toml().lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

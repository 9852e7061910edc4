//! TensorBoard event files, written without TensorFlow: the TFRecord framing (length, masked
//! CRC32C of the length, payload, masked CRC32C of the payload) around hand-encoded protobuf
//! `Event` messages (tensorflow/core/util/event.proto, summary.proto). Scalars, text and PNG image
//! summaries are supported; `tensorboard --logdir runs` shows them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Logger, Metrics};
use crate::config::Config;
use crate::error::{Error, Result};

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

/// `Event { wall_time = 1, step = 2, session_log = 7: SessionLog { status = 1: START (1) } }`.
/// TensorBoard's loader discards the events of earlier files at this step and after
/// (`purge_orphaned_data`), as PyTorch's `SummaryWriter(purge_step=...)` does.
fn session_start(step: i64) -> Vec<u8> {
    let mut log = Pb::default();
    log.int(1, 1);
    let mut e = Pb::default();
    e.double(1, now()).int(2, step).message(7, &log);
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

/// `Summary { value = 1: Value { tag = 1, image = 4: Image { height = 1, width = 2,
/// colorspace = 3 (3 = RGB), encoded_image_string = 4 } } }`.
fn image_summary(tag: &str, width: u32, height: u32, png: &[u8]) -> Pb {
    let mut img = Pb::default();
    img.int(1, height as i64).int(2, width as i64).int(3, 3).bytes(4, png);
    let mut v = Pb::default();
    v.bytes(1, tag.as_bytes()).message(4, &img);
    let mut s = Pb::default();
    s.message(1, &v);
    s
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    Some((be(16), be(20)))
}

/// Writes one `events.out.tfevents.*` file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir/events.out.tfevents.<seconds>.<host>.<pid>.<n>` (as PyTorch names them: a
    /// later second sorts later, and a second file of the same second never overwrites the
    /// first) with the file-version header event.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        static CREATED: AtomicU64 = AtomicU64::new(0);
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "localhost".into());
        let n = CREATED.fetch_add(1, Ordering::Relaxed);
        let name = format!("events.out.tfevents.{}.{}.{}.{n:04}", now() as u64, host.trim(), std::process::id());
        let path = dir.join(name);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("cannot create", &path, e))?;
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

    /// Marks a restart at `step`: what earlier files logged at `step` and after is void.
    pub fn restart_at(&mut self, step: i64) -> Result<()> {
        self.write(&session_start(step))
    }

    /// A scalar at `step`.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<()> {
        self.write(&event(step, Some(&scalar_summary(tag, value as f32)), None))
    }

    /// A text (Markdown) summary at `step`.
    pub fn text(&mut self, tag: &str, step: i64, text: &str) -> Result<()> {
        self.write(&event(step, Some(&text_summary(tag, text)), None))
    }

    /// A PNG image (`Summary.Image`), e.g. the grid of test predictions.
    pub fn image(&mut self, tag: &str, step: i64, png: &[u8]) -> Result<()> {
        let (width, height) =
            png_size(png).ok_or_else(|| Error::Runtime(format!("TensorBoard image {tag:?}: not a PNG file")))?;
        self.write(&event(step, Some(&image_summary(tag, width, height, png)), None))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Logs metrics as scalars (epoch values under their names, step values under `batch/*`, test
/// values under `test/*`), the config as text and PNG artifacts as images (the prediction grid
/// and the other plots).
pub struct TensorBoardLogger {
    writer: EventWriter,
    last_step: i64,
    /// The run directory already had event files: this session continues an earlier one.
    continues: bool,
}

impl TensorBoardLogger {
    /// A logger writing a new event file into the run directory.
    pub fn new(run_dir: &Path) -> Result<Self> {
        let continues = std::fs::read_dir(run_dir)
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents.")))
            .unwrap_or(false);
        Ok(TensorBoardLogger { writer: EventWriter::create(run_dir)?, last_step: 0, continues })
    }
}

impl Logger for TensorBoardLogger {
    fn name(&self) -> &'static str {
        "TensorBoard"
    }

    fn log_params(&mut self, cfg: &Config) -> Result<()> {
        if self.continues {
            return Ok(()); // written by the session that started the run
        }
        self.writer.text("config", 0, &config_markdown(cfg))
    }

    fn resume_after(&mut self, step: i64) -> Result<()> {
        self.last_step = step;
        if self.continues {
            self.writer.restart_at(step + 1)?;
        }
        Ok(())
    }

    fn rewind_to(&mut self, step: i64) -> Result<()> {
        self.last_step = step;
        self.writer.restart_at(step + 1) // TensorBoard drops the events of this file from there on
    }

    fn log_metrics(&mut self, m: &Metrics) -> Result<()> {
        self.last_step = self.last_step.max(m.step);
        for (name, v) in m.values {
            self.writer.scalar(&m.tracker_name(name), m.step, *v)?;
        }
        Ok(())
    }

    fn log_artifact(&mut self, path: &Path, name: &str) -> Result<()> {
        let Some(tag) = name.strip_suffix(".png") else { return Ok(()) };
        let png = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
        self.writer.image(tag, self.last_step, &png)
    }

    fn close(&mut self) -> Result<()> {
        Ok(()) // every record is flushed when written
    }
}
fn config_markdown(cfg: &Config) -> String {
    // Indented by four spaces: TensorBoard renders it as a code block.
    cfg.to_toml().lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

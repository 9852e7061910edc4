//! Embeddings for TensorBoard's projector: the vectors and their labels as TSV, a sprite sheet of
//! the images, and `projector_config.pbtxt` in the run directory (TensorBoard's log directory),
//! whose paths are relative to it. `tensorboard --logdir RUN` then shows them under "Projector".

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::fsio;

/// The side of TensorBoard's largest sprite sheet, in pixels.
const MAX_SPRITE_SIDE: i64 = 8192;

/// What the projector shows for each point.
pub struct ProjectorData<'a> {
    /// Vectors `(N, D)`.
    pub vectors: &'a Tensor,
    /// Images `(N, C, H, W)` uint8, for the sprite (skipped when the sheet would exceed 8192 px).
    pub images: &'a Tensor,
    /// True labels `(N,)`.
    pub labels: &'a [i64],
    /// Predicted labels `(N,)`.
    pub predicted: &'a [i64],
    /// Class names.
    pub classes: &'a [String],
}

/// Writes the projector files: `dir/tensors.tsv`, `dir/metadata.tsv`, `dir/sprite.png` and
/// `run_dir/projector_config.pbtxt` (`dir` under `run_dir`); returns the files written.
pub fn write(run_dir: &Path, dir: &Path, name: &str, d: &ProjectorData) -> Result<Vec<PathBuf>> {
    crate::error::create_dir_all(dir, "cannot create")?;
    let rel = |p: &Path| p.strip_prefix(run_dir).unwrap_or(p).display().to_string();
    let mut files = Vec::new();

    let vectors = Vec::<f32>::try_from(d.vectors.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
        .map_err(|e| Error::Runtime(format!("embeddings: {e}")))?;
    let dim = d.vectors.size()[1].max(1) as usize;
    let mut tsv = String::with_capacity(vectors.len() * 10);
    for row in vectors.chunks(dim) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        let _ = writeln!(tsv, "{}", cells.join("\t"));
    }
    let tensors = dir.join("tensors.tsv");
    fsio::write_atomic(&tensors, tsv.as_bytes())?;
    files.push(tensors.clone());

    let mut meta = String::from("label\tpredicted\tcorrect\n");
    for (&t, &p) in d.labels.iter().zip(d.predicted) {
        let name = |c: i64| d.classes.get(c as usize).cloned().unwrap_or_else(|| c.to_string());
        let _ = writeln!(meta, "{}\t{}\t{}", name(t), name(p), t == p);
    }
    let metadata = dir.join("metadata.tsv");
    fsio::write_atomic(&metadata, meta.as_bytes())?;
    files.push(metadata.clone());

    let mut config = format!(
        "embeddings {{\n  tensor_name: {name:?}\n  tensor_path: {:?}\n  metadata_path: {:?}\n",
        rel(&tensors),
        rel(&metadata)
    );
    if let Some((sprite, side)) = sprite(dir, d.images)? {
        let _ = write!(
            config,
            "  sprite {{\n    image_path: {:?}\n    single_image_dim: {side}\n    single_image_dim: {side}\n  }}\n",
            rel(&sprite)
        );
        files.push(sprite);
    }
    config.push_str("}\n");
    let config_file = run_dir.join("projector_config.pbtxt");
    fsio::write_atomic(&config_file, config.as_bytes())?;
    files.push(config_file);
    Ok(files)
}

/// The images as one square sheet, row by row (`dir/sprite.png`), and the side of one image;
/// `None` when the sheet would be larger than TensorBoard accepts.
fn sprite(dir: &Path, images: &Tensor) -> Result<Option<(PathBuf, i64)>> {
    let (n, c, h, w) = images.size4().map_err(|e| Error::Runtime(format!("sprite images: {e}")))?;
    let per_row = (n as f64).sqrt().ceil() as i64;
    if h != w || per_row * h > MAX_SPRITE_SIDE || n == 0 {
        return Ok(None);
    }
    let rgb = if c == 1 { images.repeat([1, 3, 1, 1]) } else { images.shallow_clone() };
    let padded = Tensor::cat(
        &[rgb.to_device(Device::Cpu), Tensor::zeros([per_row * per_row - n, 3, h, w], (Kind::Uint8, Device::Cpu))],
        0,
    );
    // (R*R, 3, h, w) -> (R, R, h, w, 3) -> (R, h, R, w, 3): row-major tiles.
    let sheet = padded.view([per_row, per_row, 3, h, w]).permute([0, 3, 1, 4, 2]).contiguous();
    let side = (per_row * h) as u32;
    let bytes = Vec::<u8>::try_from(sheet.flatten(0, -1)).map_err(|e| Error::Runtime(format!("sprite: {e}")))?;
    let path = dir.join("sprite.png");
    let img =
        image::RgbImage::from_raw(side, side, bytes).ok_or_else(|| Error::Runtime("sprite: wrong size".into()))?;
    let tmp = fsio::tmp_path(&path);
    img.save(&tmp).map_err(|e| Error::Runtime(format!("cannot write {}: {e}", path.display())))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("cannot write", &path, e))?;
    Ok(Some((path, h)))
}

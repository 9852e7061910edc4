//! Running a trained model on new images: a [`Predictor`] holds a run's model, normalisation and
//! class names; [`predict`] classifies image files with it.

use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

use super::model::{class_names, load_model, normalisation, Checkpoint};
use crate::device::Precision;
use crate::error::Result;
use crate::models::context::autocast;
use crate::models::Model;
use crate::run::Run;

/// A class and its softmax probability.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassScore {
    /// Class index (the label).
    pub index: usize,
    /// Class name.
    pub name: String,
    /// Softmax probability, in [0, 1].
    pub probability: f32,
}

/// The most probable classes of one image, most probable first.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The image file.
    pub image: PathBuf,
    /// The top classes.
    pub top: Vec<ClassScore>,
}

/// A run's model ready to classify images the way its test images were prepared.
pub struct Predictor {
    model: Model,
    device: Device,
    precision: Precision,
    mean: Vec<f64>,
    std: Vec<f64>,
    channels_last: bool,
    /// The run's input side in pixels (images are resized and centre-cropped to it).
    pub input_size: i64,
    /// The class names, in label order.
    pub classes: Vec<String>,
    /// Whether the weights are the run's exponential moving average.
    pub averaged: bool,
}

impl Predictor {
    /// Loads checkpoint `which` of the run in `run_dir` on the run's device and precision
    /// (`train.device`, `train.precision`).
    pub fn open(run_dir: &Path, which: Checkpoint) -> Result<Predictor> {
        let run = Run::open(run_dir)?;
        let cfg = run.config();
        let (device, precision) = crate::device::resolve(&cfg.train)?;
        let (mean, std) = normalisation(&run)?;
        let classes = class_names(&run);
        let loaded = load_model(&run, which, device)?;
        Ok(Predictor {
            model: loaded.model,
            device,
            precision,
            mean,
            std,
            channels_last: cfg.train.channels_last,
            input_size: cfg.data.input_size,
            classes,
            averaged: loaded.averaged,
        })
    }

    /// Input channels (1 for the MNIST family, 3 for colour images).
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Class probabilities `(N, classes)` (fp32, on the CPU) of images `(N, C, H, W)` at the
    /// run's input size, with pixel values 0..255 (uint8) or in [0, 1] (a float kind).
    pub fn probabilities(&self, images: &Tensor) -> Result<Tensor> {
        let (c, s) = (self.channels() as i64, self.input_size);
        if images.dim() != 4 || images.size()[1..] != [c, s, s] {
            return Err(crate::config_err!(
                "images of shape {:?}: expected (N, {c}, {s}, {s}), the run's channels and input size",
                images.size()
            ));
        }
        // `normalize` takes 0..255 values, as the dataset's uint8 images.
        let x = match images.kind() {
            Kind::Uint8 => images.shallow_clone(),
            _ => images.to_kind(Kind::Float) * 255.0,
        };
        let mut x = crate::data::transforms::normalize(&x.to_device(self.device), &self.mean, &self.std);
        if self.channels_last {
            x = crate::data::transforms::channels_last(&x);
        }
        let logits = tch::no_grad(|| autocast(self.precision.autocast_kind(), || self.model.forward(&x, false)));
        Ok(logits.to_kind(Kind::Float).softmax(1, Kind::Float).to_device(Device::Cpu))
    }

    /// The `top` most probable classes of an image file (PNG, JPEG, ...), prepared as the
    /// dataset's images are: shorter side resized to the input size, centre crop.
    pub fn predict_file(&self, path: &Path, top: usize) -> Result<Prediction> {
        let (size, channels) = (self.input_size, self.channels());
        let pixels = crate::data::image_folder::decode_image(path, size as u32, channels)
            .map_err(|e| crate::data_err!("{}: cannot read the image: {e}", path.display()))?;
        let x = Tensor::from_slice(&pixels).view([1, channels as i64, size, size]);
        let probs = self.probabilities(&x)?.squeeze_dim(0);
        Ok(Prediction { image: path.to_path_buf(), top: self.top_classes(&probs, top) })
    }

    /// The `top` classes of one image's probabilities `(classes,)`, most probable first.
    pub fn top_classes(&self, probs: &Tensor, top: usize) -> Vec<ClassScore> {
        let (p, idx) = probs.topk(top.min(self.classes.len()).max(1) as i64, 0, true, true);
        let (p, idx) = (Vec::<f32>::try_from(p).unwrap_or_default(), Vec::<i64>::try_from(idx).unwrap_or_default());
        idx.iter()
            .zip(&p)
            .map(|(&c, &q)| ClassScore { index: c as usize, name: self.classes[c as usize].clone(), probability: q })
            .collect()
    }
}

/// The `top` most probable classes of each image file under checkpoint `which` of the run in
/// `run_dir`, the images prepared as the dataset's (shorter side resized to the input size,
/// centre crop, the run's normalisation).
pub fn predict(run_dir: &Path, images: &[PathBuf], which: Checkpoint, top: usize) -> Result<Vec<Prediction>> {
    let predictor = Predictor::open(run_dir, which)?;
    let mut files = Vec::new();
    for path in images {
        files.extend(image_files(path)?);
    }
    files.iter().map(|path| predictor.predict_file(path, top)).collect()
}

/// `path` itself, or for a directory the image files in it (by content), sorted by name.
fn image_files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| crate::Error::io("cannot read", path, e))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            image::io::Reader::open(p).and_then(|r| r.with_guessed_format()).is_ok_and(|r| r.format().is_some())
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(crate::data_err!("{}: a directory without image files (PNG, JPEG, ...)", path.display()));
    }
    Ok(files)
}

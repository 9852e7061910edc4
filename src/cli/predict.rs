//! Running a trained model: the checkpoint loading that `eval` and `predict` share, and
//! `microvision predict` on image files.

use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

use crate::config::Config;
use crate::error::Result;
use crate::models::layers::autocast;
use crate::models::Model;
use crate::train::checkpoint::{self, Loaded};
use crate::train::run_dir;
use crate::train::trainer::model_args;

/// The run's model with checkpoint `which` loaded (its weight average, when the run kept one:
/// that is what was evaluated), in channels-last memory when the run trained so; and the
/// checkpoint.
pub(super) fn checkpointed_model(run: &Path, cfg: &Config, which: &str, device: Device) -> Result<(Model, Loaded)> {
    let mut model = Model::new(&cfg.model.name, &model_args(cfg), device)?;
    if cfg.train.channels_last {
        model.to_channels_last(); // as in training: the batches are channels-last too
    }
    let dir = run.join(&cfg.output.checkpoint_dir);
    let loaded = checkpoint::load(&dir, which)?;
    let files = checkpoint::files(&dir, which);
    checkpoint::load_weights(&model.vs, &loaded.weights, &files.weights)?;
    if let Some(avg) = crate::train::ema::weights_from_checkpoint(&loaded.optim) {
        eprintln!("using the exponential moving average of the weights (train.ema_decay)");
        checkpoint::load_weights(&model.vs, &avg, &files.optim)?;
    }
    Ok((model, loaded))
}

/// `microvision predict`: the `top` most probable classes of each image file under checkpoint
/// `which` of the run, the images prepared as the dataset's (shorter side resized to the input
/// size, centre crop, the run's normalisation).
pub fn predict(run: &Path, images: &[PathBuf], which: &str, top: usize) -> Result<()> {
    let cfg = run_dir::read_config(run)?;
    let (device, precision) = crate::device::resolve(&cfg.train)?;
    let (mean, std) = run_dir::normalisation(run, &cfg).ok_or_else(|| {
        crate::ckpt_err!(
            "{}: expected norm_mean and norm_std (the normalisation the model trained with)",
            run.join("env.json").display()
        )
    })?;
    let classes = class_names(run, &cfg);
    let (model, _) = checkpointed_model(run, &cfg, which, device)?;
    let (size, channels) = (cfg.data.input_size, mean.len());
    for path in images {
        let pixels = crate::data::image_folder::decode_image(path, size as u32, channels)
            .map_err(|e| crate::data_err!("{}: cannot read the image: {e}", path.display()))?;
        let x = Tensor::from_slice(&pixels).view([1, channels as i64, size, size]).to_device(device);
        let mut x = crate::data::transforms::normalize(&x, &mean, &std);
        if cfg.train.channels_last {
            x = crate::data::transforms::channels_last(&x);
        }
        let logits = tch::no_grad(|| autocast(precision.autocast_kind(), || model.forward(&x, false)));
        let probs = logits.to_kind(Kind::Float).softmax(1, Kind::Float).squeeze_dim(0).to_device(Device::Cpu);
        let (p, idx) = probs.topk(top.min(classes.len()).max(1) as i64, 0, true, true);
        let (p, idx) = (Vec::<f32>::try_from(p).unwrap_or_default(), Vec::<i64>::try_from(idx).unwrap_or_default());
        let ranked: Vec<String> =
            idx.iter().zip(&p).map(|(&c, &q)| format!("{} {:.1}%", classes[c as usize], q * 100.0)).collect();
        println!("{}: {}", path.display(), ranked.join(", "));
    }
    Ok(())
}

/// The class names: from the run's eval.json, else from the dataset's test split, else numbers.
pub(super) fn class_names(run: &Path, cfg: &Config) -> Vec<String> {
    let from_eval = std::fs::read_to_string(run.join("eval.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<crate::train::eval::EvalFile>(&t).ok())
        .map(|e| e.classes);
    from_eval
        .or_else(|| crate::data::load_test(&cfg.data).ok().map(|d| d.classes))
        .filter(|c| c.len() as i64 == cfg.data.num_classes)
        .unwrap_or_else(|| (0..cfg.data.num_classes).map(|i| i.to_string()).collect())
}

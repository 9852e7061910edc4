//! Pictures of a training recipe: the LR finder's loss curve and a grid of augmented images.

use tch::{Kind, Tensor};

use super::{ImageGrid, LineChart, Tile};
use crate::data::loader::Batch;
use crate::train::trainer::LrFind;

/// Loss against log10(learning rate), raw and smoothed, with the suggestion in the title.
pub fn lr_find_chart(rec: &LrFind, model: &str) -> LineChart {
    // Losses above 1.5x the starting loss (the explosion that ends the sweep) would flatten the
    // interesting part of the curve: they are left out of the picture (not of lr_find.json).
    let first = rec.smoothed.first().copied().unwrap_or(f64::INFINITY);
    let cap = 1.5 * first;
    let pts = |v: &[f64]| {
        rec.lrs.iter().zip(v).filter(|(_, l)| **l <= cap).map(|(lr, l)| (lr.log10(), *l)).collect::<Vec<_>>()
    };
    let mut series = vec![("batch loss".into(), pts(&rec.losses)), ("smoothed".into(), pts(&rec.smoothed))];
    if let Some(lr) = rec.suggested_lr {
        // A line across the whole plotted loss range, so the suggestion stands out.
        let ys = || series.iter().flat_map(|s: &(String, Vec<(f64, f64)>)| s.1.iter().map(|p| p.1));
        let (low, high) = (ys().fold(f64::INFINITY, f64::min), ys().fold(f64::NEG_INFINITY, f64::max));
        series.push((format!("suggested {lr:.2e}"), vec![(lr.log10(), low), (lr.log10(), high)]));
    }
    let suggestion = rec.suggested_lr.map_or("no suggestion".into(), |lr| format!("suggested lr {lr:.2e}"));
    LineChart {
        title: format!("LR range test ({model}): {suggestion}"),
        x_label: "learning rate (log scale)".into(),
        y_label: "training loss".into(),
        series,
        log10_x: true,
        bands: Vec::new(),
    }
}

/// The first `per_class` images of each class of `data`, one row per class, the row captioned
/// with the class name (`microvision data preview`).
pub fn class_grid(data: &crate::data::Dataset, per_class: usize) -> ImageGrid {
    let per_class = per_class.max(1); // a grid has at least one column
    let labels = Vec::<i64>::try_from(data.labels.to_device(tch::Device::Cpu)).unwrap_or_default();
    let mut tiles = Vec::new();
    for (c, name) in data.classes.iter().enumerate() {
        let idx = labels.iter().enumerate().filter(|(_, &l)| l == c as i64).map(|(i, _)| i).take(per_class);
        let caption = |k: usize| if k == 0 { vec![name.clone()] } else { Vec::new() };
        tiles.extend(idx.enumerate().map(|(k, i)| Tile::from_images(&data.images, i as i64, caption(k), false)));
    }
    ImageGrid { title: format!("{} training images per class", per_class), tiles, cols: per_class, judged: false }
}

/// The images of a training batch as the model sees them (de-normalised), captioned with their
/// label, or with the two largest target weights when the batch was mixed.
pub fn augment_grid(batch: &Batch, classes: &[String], mean: &[f64], std: &[f64]) -> ImageGrid {
    let dev = batch.images.device();
    let c = mean.len() as i64;
    let m = Tensor::from_slice(mean).to_kind(Kind::Float).view([1, c, 1, 1]).to_device(dev);
    let s = Tensor::from_slice(std).to_kind(Kind::Float).view([1, c, 1, 1]).to_device(dev);
    let images = ((batch.images.to_kind(Kind::Float) * s + m) * 255.0).round().clamp(0.0, 255.0).to_kind(Kind::Uint8);
    let images = images.contiguous();
    let labels = Vec::<i64>::try_from(batch.labels.to_device(tch::Device::Cpu)).unwrap_or_default();
    let name = |c: i64| classes.get(c as usize).cloned().unwrap_or_else(|| c.to_string());
    let tiles = (0..labels.len())
        .map(|i| {
            let caption = match &batch.targets {
                Some(t) => {
                    let (w, c) = t.get(i as i64).topk(2, 0, true, true);
                    let (w, c) =
                        (Vec::<f32>::try_from(w).unwrap_or_default(), Vec::<i64>::try_from(c).unwrap_or_default());
                    w.iter().zip(&c).map(|(w, c)| format!("{} {:.0}%", name(*c), w * 100.0)).collect()
                }
                None => vec![name(labels[i])],
            };
            Tile::from_images(&images, i as i64, caption, false)
        })
        .collect();
    ImageGrid { title: "Augmented training images (first batch of epoch 1)".into(), tiles, cols: 10, judged: false }
}

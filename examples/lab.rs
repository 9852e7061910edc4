//! The library alone, end to end: train a run, evaluate it, classify an image file with it and
//! export it, through `microvision::lab` (no command line, no shell).
//!
//! ```text
//! cargo run --release --example lab -- [CONFIG] [--image FILE] [--set key=value ...]
//! ```
//! CONFIG defaults to `configs/demo.toml` with one epoch (`--set train.epochs=10` for the full
//! demo). Without `--image`, the first test image is written as a PNG into the run directory and
//! classified from there.

use std::path::{Path, PathBuf};

use microvision::lab::{self, Checkpoint, Format, TrainOptions};
use microvision::{Config, Result};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}

fn run() -> Result<()> {
    let (config, image, overrides) = parse_args();
    let cfg = Config::load(&config, &overrides)?;

    // Train: a fresh run directory with metrics.jsonl, TensorBoard events, checkpoints, plots.
    let trained = lab::train(cfg, &TrainOptions { console: true, ..TrainOptions::default() })?;
    let run = &trained.run_dir;
    println!("trained {} (epoch {})", run.display(), trained.epoch);

    // Evaluate the last checkpoint again (eval-last.json) and read the figures back.
    let eval = lab::eval(run, Checkpoint::Last, &[])?;
    println!("test accuracy {:.2}% (top-5 {:.2}%)", eval.result.acc * 100.0, eval.result.acc_top5 * 100.0);

    // Classify an image file.
    let image = match image {
        Some(path) => path,
        None => first_test_image(run)?,
    };
    for p in lab::predict(run, std::slice::from_ref(&image), Checkpoint::Last, 3)? {
        let top: Vec<String> = p.top.iter().map(|c| format!("{} {:.1}%", c.name, c.probability * 100.0)).collect();
        println!("{}: {}", p.image.display(), top.join(", "));
    }

    // Export for PyTorch: weights (safetensors) and a TorchScript module.
    for format in [Format::Safetensors, Format::TorchScript] {
        let exported = lab::export(run, Checkpoint::Last, format, None)?;
        println!("exported {}", exported.file.display());
    }
    Ok(())
}

/// `[CONFIG] [--image FILE] [--set key=value ...]`; the default config trains one epoch.
fn parse_args() -> (PathBuf, Option<PathBuf>, Vec<String>) {
    let (mut config, mut image, mut overrides) = (None, None, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--image" => image = args.next().map(PathBuf::from),
            "--set" => overrides.extend(args.next()),
            _ => config = Some(PathBuf::from(arg)),
        }
    }
    if config.is_none() {
        overrides.insert(0, "train.epochs=1".into());
    }
    (config.unwrap_or_else(|| PathBuf::from("configs/demo.toml")), image, overrides)
}

/// Writes the run's first test image as `RUN/test-image-0.png` and returns its path.
fn first_test_image(run: &Path) -> Result<PathBuf> {
    let cfg = microvision::run::Run::open(run)?.config().clone();
    let test = microvision::data::load_test(&cfg.data)?;
    // (C, H, W) uint8 -> (H, W, C) bytes for the PNG encoder.
    let pixels = test.images.get(0).permute([1, 2, 0]).contiguous();
    let (h, w, c) = (pixels.size()[0] as u32, pixels.size()[1] as u32, pixels.size()[2]);
    let bytes = Vec::<u8>::try_from(pixels.flatten(0, -1)).map_err(|e| microvision::Error::Runtime(e.to_string()))?;
    let path = run.join("test-image-0.png");
    let saved = match c {
        1 => image::GrayImage::from_raw(w, h, bytes).map(|img| img.save(&path)),
        _ => image::RgbImage::from_raw(w, h, bytes).map(|img| img.save(&path)),
    };
    match saved {
        Some(Ok(())) => Ok(path),
        _ => Err(microvision::Error::Runtime(format!("cannot write {}", path.display()))),
    }
}

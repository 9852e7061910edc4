//! Explaining a run's model on its test images: class activation maps, saliency and attention
//! rollout drawn over chosen images (a few per class, and the most confidently wrong), and the
//! penultimate-layer embeddings with their t-SNE, into `RUN/explain/` (raw tensors as
//! safetensors, `summary.json`), `RUN/plots/` (PNG + SVG) and TensorBoard's projector files.

use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

mod embed;
mod pictures;

use super::model::{load_model, normalisation, Checkpoint};
use crate::analysis::explain::{attribution as attr, maps, ExplainSummary};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::Model;
use crate::run::Run;

pub use crate::analysis::explain::maps::MapMethod;
pub use crate::analysis::explain::tsne::TsneParams;

/// What to explain, and how.
#[derive(Debug, Clone)]
pub struct ExplainArgs {
    /// Map methods to run (empty: none).
    pub methods: Vec<MapMethod>,
    /// Whether to compute the embeddings, their t-SNE and the projector files.
    pub embeddings: bool,
    /// The layer of Grad-CAM, Grad-CAM++ and Score-CAM (default: the model's last block).
    pub layer: Option<String>,
    /// Explain this class (a name or an index) for every image instead of the predicted one.
    pub class: Option<String>,
    /// Skip the methods the model does not support (rollout without attention) instead of
    /// failing: for "every method" requests.
    pub skip_unsupported: bool,
    /// Images per class in the per-class grids.
    pub per_class: usize,
    /// Most confidently wrong images in the wrong-image grids.
    pub wrong: usize,
    /// Maps of the first this many test images too (0: none), timed: the cost over a test set.
    pub test_images: usize,
    /// Test images embedded (0: all).
    pub limit: usize,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// t-SNE settings.
    pub tsne: TsneParams,
    /// Map settings other than the layer: SmoothGrad's samples, noise and seed, Score-CAM's batch.
    pub smooth_samples: usize,
    /// SmoothGrad's noise, as a fraction of each image's value range.
    pub smooth_noise: f64,
    /// SmoothGrad's seed.
    pub seed: u64,
}

impl Default for ExplainArgs {
    fn default() -> Self {
        ExplainArgs {
            methods: vec![MapMethod::GradCam],
            embeddings: false,
            layer: None,
            class: None,
            skip_unsupported: false,
            per_class: 3,
            wrong: 12,
            test_images: 0,
            limit: 0,
            checkpoint: Checkpoint::Best,
            tsne: TsneParams::default(),
            smooth_samples: 25,
            smooth_noise: 0.15,
            seed: 0,
        }
    }
}

impl ExplainArgs {
    /// The defaults with the methods named as on the command line: map methods, `embeddings`,
    /// or `all` (every one the model supports); none named: all but the slow Score-CAM.
    pub fn with_methods(names: &[String]) -> Result<ExplainArgs> {
        use MapMethod::*;
        let every = |maps: Vec<MapMethod>| ExplainArgs {
            methods: maps,
            embeddings: true,
            skip_unsupported: true,
            ..Default::default()
        };
        if names.is_empty() {
            return Ok(every(vec![GradCam, GradCamPlusPlus, Saliency, SmoothGrad, Rollout]));
        }
        if names.iter().any(|n| n == "all") {
            return Ok(every(MapMethod::ALL.to_vec()));
        }
        let (mut maps, mut embeddings) = (Vec::new(), false);
        for n in names {
            match MapMethod::ALL.iter().find(|m| m.name() == n.as_str()) {
                Some(m) if !maps.contains(m) => maps.push(*m),
                Some(_) => {}
                None if n == "embeddings" => embeddings = true,
                None => {
                    let valid: Vec<&str> = MapMethod::ALL.iter().map(|m| m.name()).collect();
                    return Err(crate::config_err!("method {n:?}: expected {}, embeddings or all", valid.join(", ")));
                }
            }
        }
        Ok(ExplainArgs { methods: maps, embeddings, ..Default::default() })
    }
}

/// What [`explain`] wrote.
#[derive(Debug, Clone)]
pub struct Explained {
    /// This call's part of `explain/summary.json`.
    pub summary: ExplainSummary,
    /// Every file written.
    pub files: Vec<PathBuf>,
}

/// The model, its normalised test images and their predictions, loaded once.
struct Subject {
    model: Model,
    test: Dataset,
    x: Tensor,
    probs: Tensor,
}

/// Explains checkpoint `args.checkpoint` of the run in `run_dir` (see [`ExplainArgs`]).
pub fn explain(run_dir: &Path, args: &ExplainArgs) -> Result<Explained> {
    let run = Run::open(run_dir)?;
    let s = open_subject(&run, args)?;
    let points = attr::layers(&s.model, s.x.size()[1], s.x.size()[2]);
    let layer = match &args.layer {
        Some(l) => {
            attr::check_layer(&s.model, &points, l)?;
            l.clone()
        }
        None => attr::default_cam_layer(&s.model, &points)?,
    };
    if !args.methods.is_empty() && args.per_class + args.wrong == 0 {
        return Err(crate::config_err!(
            "--per-class 0 and --wrong 0: no images to draw the maps of; expected one of them above 0"
        ));
    }
    let class = args.class.as_deref().map(|c| class_index(c, &s.test.classes)).transpose()?;
    let has_attention = points.iter().any(|p| p.kind == crate::models::context::TapKind::Attention);
    let settings = maps::MapSettings {
        layer,
        score_cam_batch: 64,
        smooth_samples: args.smooth_samples,
        smooth_noise: args.smooth_noise,
        seed: args.seed,
    };
    let (explain_dir, plots_dir) = (run_dir.join("explain"), run_dir.join("plots"));
    crate::error::create_dir_all(&explain_dir, "cannot create")?;
    let mut summary = ExplainSummary { checkpoint: args.checkpoint.as_str().into(), ..Default::default() };
    let mut files = Vec::new();
    for &method in &args.methods {
        if method == MapMethod::Rollout && !has_attention && args.skip_unsupported {
            continue;
        }
        let (m, written) = pictures::explain_maps(&s, method, &settings, args, class, &explain_dir, &plots_dir)?;
        summary.maps.push(m);
        files.extend(written);
    }
    if args.embeddings {
        let head = attr::head_layer(&points).ok_or_else(|| Error::Runtime("the model has no linear head".into()))?;
        let (e, written) = embed::explain_embeddings(&s, &head, args, run.dir(), &plots_dir)?;
        summary.embedding = Some(e);
        files.extend(written);
    }
    summary.write_merged(run_dir)?;
    files.push(explain_dir.join(crate::analysis::explain::SUMMARY_FILE));
    Ok(Explained { summary, files })
}

/// The tap points of the run's model that `--layer` accepts (name, shape) and its default.
pub fn explain_layers(run_dir: &Path) -> Result<(Vec<crate::models::context::TapPoint>, String)> {
    let run = Run::open(run_dir)?;
    let cfg = run.config();
    let args = crate::train::trainer::model_args(cfg);
    let model = Model::new(&cfg.model.name, &args, Device::Cpu)?;
    let points = attr::layers(&model, args.in_channels, args.input_size);
    let default = attr::default_cam_layer(&model, &points)?;
    Ok((attr::cam_layers(&points).into_iter().cloned().collect(), default))
}

/// A class given by name or by index.
fn class_index(c: &str, classes: &[String]) -> Result<i64> {
    if let Some(i) = classes.iter().position(|n| n == c) {
        return Ok(i as i64);
    }
    match c.parse::<i64>() {
        Ok(i) if (0..classes.len() as i64).contains(&i) => Ok(i),
        _ => Err(crate::config_err!(
            "--class {c:?}: expected a class name ({}) or an index from 0 to {}",
            classes.join(", "),
            classes.len().saturating_sub(1)
        )),
    }
}

/// The checkpoint to explain: `best` by default, but a run without a validation split keeps
/// none (its epochs were scored on the test split), so its `last` is explained instead.
fn explained_checkpoint(cfg: &crate::config::Config, asked: Checkpoint) -> Checkpoint {
    if asked == Checkpoint::Best && !cfg.data.has_val_split() {
        crate::notice::info(
            "the run has no validation split (data.val_split = 0), so no `best` checkpoint: explaining `last`",
        );
        return Checkpoint::Last;
    }
    asked
}

fn open_subject(run: &Run, args: &ExplainArgs) -> Result<Subject> {
    let cfg = run.config();
    let (device, _) = crate::device::resolve(&cfg.train)?;
    let model = load_model(run, explained_checkpoint(cfg, args.checkpoint), device)?.model;
    let test = crate::data::load_for_run(run.dir(), cfg)?.test;
    let (mean, std) = normalisation(run)?;
    let x = crate::data::transforms::normalize(&test.images.to_device(device), &mean, &std).to_kind(Kind::Float);
    let probs = tch::no_grad(|| {
        let chunks: Vec<Tensor> = x
            .split(256, 0)
            .iter()
            .map(|b| model.forward(b, false).softmax(1, Kind::Float).to_device(Device::Cpu))
            .collect();
        Tensor::cat(&chunks, 0)
    });
    Ok(Subject { model, test, x, probs })
}

/// Writes named tensors as safetensors under a temporary name and renames it into place, so an
/// interrupted call leaves the earlier file whole.
fn save_tensors(path: &Path, tensors: &[(&str, Tensor)]) -> Result<()> {
    let tensors: Vec<(&str, Tensor)> = tensors.iter().map(|(n, t)| (*n, t.contiguous())).collect();
    let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let tmp = crate::fsio::tmp_path(path);
    Tensor::write_safetensors(&named, &tmp).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Runtime(format!("cannot write {}: {e}", path.display()))
    })?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot write", path, e))
}

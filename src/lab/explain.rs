//! Explaining a run's model on its test images: class activation maps, saliency and attention
//! rollout drawn over chosen images (a few per class, and the most confidently wrong), and the
//! penultimate-layer embeddings with their t-SNE, into `RUN/explain/` (raw tensors as
//! safetensors, `summary.json`), `RUN/plots/` (PNG + SVG) and TensorBoard's projector files.

use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

use super::model::{load_model, normalisation, Checkpoint};
use crate::analysis::explain::{attribution as attr, draw, maps, projector, tsne};
use crate::analysis::explain::{EmbeddingSummary, ExplainSummary, Figure, MapSummary};
use crate::analysis::plots::{save, ImageGrid, Tile};
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
    pub all_maps: usize,
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
            all_maps: 0,
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
        let (m, written) = explain_maps(&s, method, &settings, args, class, &explain_dir, &plots_dir)?;
        summary.maps.push(m);
        files.extend(written);
    }
    if args.embeddings {
        let head = attr::head_layer(&points).ok_or_else(|| Error::Runtime("the model has no linear head".into()))?;
        let (e, written) = explain_embeddings(&s, &head, args, run.dir(), &plots_dir)?;
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

fn open_subject(run: &Run, args: &ExplainArgs) -> Result<Subject> {
    let cfg = run.config();
    let (device, _) = crate::device::resolve(&cfg.train)?;
    let model = load_model(run, args.checkpoint, device)?.model;
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

/// Test images to draw: the first `per_class` of each class, then the `wrong` most confidently
/// wrong ones. Returns their indices and whether each is from the wrong set.
fn pick(s: &Subject, per_class: usize, wrong: usize) -> Vec<(i64, bool)> {
    let labels = Vec::<i64>::try_from(&s.test.labels.to_device(Device::Cpu)).unwrap_or_default();
    let (conf, pred) = s.probs.max_dim(1, false);
    let (conf, pred) = (Vec::<f32>::try_from(conf).unwrap_or_default(), Vec::<i64>::try_from(pred).unwrap_or_default());
    let mut picks = Vec::new();
    for c in 0..s.test.classes.len() as i64 {
        picks
            .extend(labels.iter().enumerate().filter(|(_, &l)| l == c).take(per_class).map(|(i, _)| (i as i64, false)));
    }
    let mut wrongs: Vec<usize> = (0..labels.len()).filter(|&i| pred[i] != labels[i]).collect();
    wrongs.sort_by(|&a, &b| conf[b].total_cmp(&conf[a]));
    picks.extend(wrongs.into_iter().take(wrong).map(|i| (i as i64, true)));
    picks
}

/// The class each image is explained for: the one asked, else the predicted one.
fn targets(s: &Subject, idx: &Tensor, class: Option<i64>) -> Tensor {
    match class {
        Some(c) => Tensor::full([idx.size()[0]], c, (Kind::Int64, s.x.device())),
        None => s.probs.index_select(0, idx).argmax(1, false).to_device(s.x.device()),
    }
}

/// Maps of `idx` in batches of 32: raw maps and image-sized maps, concatenated.
fn batched_maps(
    s: &Subject,
    m: MapMethod,
    idx: &[i64],
    st: &maps::MapSettings,
    class: Option<i64>,
) -> Result<(Tensor, Tensor)> {
    let (mut raws, mut images) = (Vec::new(), Vec::new());
    for chunk in idx.chunks(32) {
        let i = Tensor::from_slice(chunk);
        let x = s.x.index_select(0, &i.to_device(s.x.device()));
        let (raw, img) = maps::maps(&s.model, m, &x, &targets(s, &i, class), st)?;
        raws.push(raw.to_device(Device::Cpu));
        images.push(img.to_device(Device::Cpu));
    }
    Ok((Tensor::cat(&raws, 0), Tensor::cat(&images, 0)))
}

fn explain_maps(
    s: &Subject,
    m: MapMethod,
    st: &maps::MapSettings,
    args: &ExplainArgs,
    class: Option<i64>,
    explain_dir: &Path,
    plots_dir: &Path,
) -> Result<(MapSummary, Vec<PathBuf>)> {
    let picks = pick(s, args.per_class, args.wrong);
    let idx: Vec<i64> = picks.iter().map(|p| p.0).collect();
    let started = Instant::now();
    let (raw, images) = batched_maps(s, m, &idx, st, class)?;
    let (mut timed, mut secs) = (idx.len(), started.elapsed().as_secs_f64());
    let file = explain_dir.join(format!("{}.safetensors", m.stem()));
    let index = Tensor::from_slice(&idx);
    let target = targets(s, &index, class).to_device(Device::Cpu);
    let mut tensors = vec![("raw", raw), ("maps", images.shallow_clone()), ("index", index), ("target", target)];
    if args.all_maps > 0 {
        let all: Vec<i64> = (0..(args.all_maps as i64).min(s.test.len())).collect();
        let started = Instant::now();
        let (raw_all, _) = batched_maps(s, m, &all, st, class)?;
        (timed, secs) = (all.len(), started.elapsed().as_secs_f64());
        tensors.push(("raw_all", raw_all));
    }
    let tensors: Vec<(&str, Tensor)> = tensors.into_iter().map(|(n, t)| (n, t.contiguous())).collect();
    let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    Tensor::write_safetensors(&named, &file)
        .map_err(|e| Error::Runtime(format!("cannot write {}: {e}", file.display())))?;
    let (figures, mut files) = draw_maps(s, m, &picks, &images, &tensors[3].1, st, plots_dir)?;
    files.push(file.clone());
    let layer = m.uses_layer().then(|| st.layer.clone());
    let file = format!("explain/{}", file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
    Ok((MapSummary { method: m, layer, images: timed, secs, file, figures }, files))
}

/// The per-class and the wrong-image grids of one method: each image, then its map.
fn draw_maps(
    s: &Subject,
    m: MapMethod,
    picks: &[(i64, bool)],
    maps: &Tensor,
    target: &Tensor,
    st: &maps::MapSettings,
    plots_dir: &Path,
) -> Result<(Vec<Figure>, Vec<PathBuf>)> {
    let images = s.test.images.to_device(Device::Cpu);
    let labels = Vec::<i64>::try_from(&s.test.labels.to_device(Device::Cpu)).unwrap_or_default();
    let name = |c: i64| s.test.classes.get(c as usize).cloned().unwrap_or_else(|| c.to_string());
    let what = if m.uses_layer() { format!("{} at {}", m.name(), st.layer) } else { m.name().to_string() };
    let (mut figures, mut files) = (Vec::new(), Vec::new());
    for (wrong_set, stem_part, title) in
        [(false, "classes", "by true class"), (true, "wrong", "the most confidently wrong test images")]
    {
        let mut tiles: Vec<Tile> = Vec::new();
        for (k, &(i, wrong)) in picks.iter().enumerate().filter(|(_, p)| p.1 == wrong_set) {
            let (t, p) = (target.int64_value(&[k as i64]), s.probs.get(i));
            let pred = p.argmax(0, false).int64_value(&[]);
            let caption = vec![format!("true {}", name(labels[i as usize]))];
            tiles.push(Tile::from_images(&images, i, caption, wrong));
            let explained = vec![format!("{} {:.2}", name(t), p.double_value(&[t])), format!("(pred {})", name(pred))];
            let map = maps.get(k as i64);
            tiles.push(if m.overlays() {
                draw::overlay_tile(&images, i, &map, explained, wrong)
            } else {
                draw::heat_tile(&map, explained)
            });
        }
        if tiles.is_empty() {
            continue;
        }
        let cols =
            if wrong_set { 8 } else { (2 * picks.iter().filter(|p| !p.1).count() / s.test.classes.len()).clamp(2, 12) };
        let stem = format!("explain_{}_{stem_part}", m.stem());
        let caption = format!("{what}: {title} (each image, then its map for the class named under it)");
        let grid = ImageGrid { title: format!("{what}, {stem_part}"), tiles, cols, judged: wrong_set };
        files.extend(save(&grid, plots_dir, &stem)?);
        figures.push(Figure { stem, caption });
    }
    Ok((figures, files))
}

fn explain_embeddings(
    s: &Subject,
    head: &str,
    args: &ExplainArgs,
    run_dir: &Path,
    plots_dir: &Path,
) -> Result<(EmbeddingSummary, Vec<PathBuf>)> {
    let n = if args.limit == 0 { s.test.len() } else { (args.limit as i64).min(s.test.len()) };
    let started = Instant::now();
    let mut feats = Vec::new();
    for b in s.x.narrow(0, 0, n).split(256, 0) {
        feats.push(attr::features(&s.model, &b, head)?.0.to_device(Device::Cpu));
    }
    let features = Tensor::cat(&feats, 0);
    let features_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let y = tsne::tsne(&features, &args.tsne)?;
    let tsne_secs = started.elapsed().as_secs_f64();
    let labels = Vec::<i64>::try_from(&s.test.labels.narrow(0, 0, n).to_device(Device::Cpu)).unwrap_or_default();
    let predicted = Vec::<i64>::try_from(&s.probs.narrow(0, 0, n).argmax(1, false)).unwrap_or_default();
    let k = 5;
    let (knn_features, knn_tsne) = (tsne::knn_accuracy(&features, &labels, k), tsne::knn_accuracy(&y, &labels, k));
    let explain_dir = run_dir.join("explain");
    let file = explain_dir.join("embeddings.safetensors");
    let (lt, pt) = (Tensor::from_slice(&labels), Tensor::from_slice(&predicted));
    Tensor::write_safetensors(&[("features", &features), ("tsne", &y), ("labels", &lt), ("predicted", &pt)], &file)
        .map_err(|e| Error::Runtime(format!("cannot write {}: {e}", file.display())))?;
    let title = format!(
        "t-SNE of {head} inputs: {k}-NN accuracy {:.1}% (features {:.1}%)",
        100.0 * knn_tsne,
        100.0 * knn_features
    );
    let caption = format!(
        "t-SNE of the penultimate features ({head} inputs) of {n} test images, perplexity {}: {k}-NN accuracy {:.1}% in 2-D, {:.1}% in the features",
        args.tsne.perplexity,
        100.0 * knn_tsne,
        100.0 * knn_features
    );
    let yv = Vec::<f32>::try_from(y.flatten(0, -1)).unwrap_or_default();
    let points = yv.chunks(2).zip(&labels).map(|(p, &l)| (p[0], p[1], l as usize)).collect();
    let scatter = draw::Scatter { title, points, classes: s.test.classes.clone() };
    let mut files = save(&scatter, plots_dir, "explain_tsne")?;
    files.push(file);
    let images = s.test.images.narrow(0, 0, n);
    let data = projector::ProjectorData {
        vectors: &features,
        images: &images,
        labels: &labels,
        predicted: &predicted,
        classes: &s.test.classes,
    };
    files.extend(projector::write(run_dir, &explain_dir.join("projector"), &format!("{head} inputs"), &data)?);
    let summary = EmbeddingSummary {
        layer: head.to_string(),
        points: n as usize,
        dim: features.size()[1] as usize,
        knn_k: k,
        knn_acc_features: knn_features,
        knn_acc_tsne: knn_tsne,
        perplexity: args.tsne.perplexity,
        features_secs,
        tsne_secs,
        file: "explain/embeddings.safetensors".into(),
        figures: vec![Figure { stem: "explain_tsne".into(), caption }],
    };
    Ok((summary, files))
}

//! The embeddings of the test images: penultimate features, their t-SNE and kNN accuracies,
//! the scatter plot and TensorBoard's projector files.

use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Tensor};

use super::{ExplainArgs, Subject};
use crate::analysis::explain::{attribution as attr, draw, projector, tsne, EmbeddingSummary, Figure};
use crate::analysis::plots::save;
use crate::error::Result;

pub(super) fn explain_embeddings(
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
    let named =
        [("features", features.shallow_clone()), ("tsne", y.shallow_clone()), ("labels", lt), ("predicted", pt)];
    super::save_tensors(&file, &named)?;
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

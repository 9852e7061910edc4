//! `microvision explain`: what a trained model looks at, and how it sees the classes.

use std::path::PathBuf;

use crate::error::Result;
use crate::lab::{self, ExplainArgs};

/// Arguments of `microvision explain`.
#[derive(clap::Args, Debug)]
pub struct ExplainCmd {
    /// Run directory.
    run_dir: PathBuf,
    /// Methods, comma-separated: gradcam, gradcam++, scorecam, saliency, smoothgrad, rollout
    /// (transformers), embeddings (features, t-SNE, TensorBoard projector); `all` for every one
    /// the model supports. Default: all but the slow scorecam.
    #[arg(long, value_delimiter = ',', value_name = "METHODS")]
    method: Vec<String>,
    /// The layer of the CAM methods (default: the model's last block; --list-layers shows them).
    #[arg(long)]
    layer: Option<String>,
    /// Explain this class (name or index) for every image instead of the predicted one.
    #[arg(long)]
    class: Option<String>,
    /// Images per class in the per-class grids.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=50))]
    per_class: u64,
    /// Most confidently wrong images in the wrong-image grids.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(0..=200))]
    wrong: u64,
    /// Also compute (and time) the maps of the first N test images, saved in explain/.
    #[arg(long, default_value_t = 0, value_name = "N")]
    test_images: usize,
    /// Test images to embed (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// t-SNE perplexity.
    #[arg(long, default_value_t = 30.0)]
    perplexity: f64,
    /// t-SNE iterations.
    #[arg(long, default_value_t = 1000)]
    tsne_iterations: usize,
    /// SmoothGrad's noisy copies per image.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=1000))]
    smooth_samples: u64,
    /// Which checkpoint (`best`: a run without a validation split has none, and `last` is used).
    #[arg(long, default_value = "best", value_parser = ["best", "last"])]
    checkpoint: String,
    /// List the layers --layer accepts, with their output shapes, and stop.
    #[arg(long)]
    list_layers: bool,
}

/// Runs `microvision explain`.
pub fn explain(c: ExplainCmd) -> Result<()> {
    if c.list_layers {
        let (layers, default) = lab::explain_layers(&c.run_dir)?;
        for l in layers {
            let mark = if l.name == default { "  (default)" } else { "" };
            println!("{:<28} {:?} {:?}{mark}", l.name, l.kind, l.shape);
        }
        return Ok(());
    }
    let args = ExplainArgs {
        layer: c.layer,
        class: c.class,
        per_class: c.per_class as usize,
        wrong: c.wrong as usize,
        test_images: c.test_images,
        limit: c.limit,
        checkpoint: c.checkpoint.parse()?,
        tsne: lab::TsneParams { perplexity: c.perplexity, iterations: c.tsne_iterations, ..Default::default() },
        smooth_samples: c.smooth_samples as usize,
        ..ExplainArgs::with_methods(&c.method)?
    };
    let e = lab::explain(&c.run_dir, &args)?;
    for m in &e.summary.maps {
        let at = m.layer.as_ref().map(|l| format!(" at {l}")).unwrap_or_default();
        let rate = m.images as f64 / m.secs.max(1e-9);
        println!("{}{at}: {} images in {:.2} s ({rate:.1} images/s) -> {}", m.method.name(), m.images, m.secs, m.file);
    }
    if let Some(emb) = &e.summary.embedding {
        println!(
            "embeddings: {} x {} ({}) in {:.1} s; t-SNE in {:.1} s; {}-NN accuracy {:.2}% in the features, {:.2}% in the t-SNE",
            emb.points,
            emb.dim,
            emb.layer,
            emb.features_secs,
            emb.tsne_secs,
            emb.knn_k,
            100.0 * emb.knn_acc_features,
            100.0 * emb.knn_acc_tsne
        );
        println!("TensorBoard projector: tensorboard --logdir {}", c.run_dir.display());
    }
    println!("wrote {} files under {} (pictures in plots/, tensors in explain/)", e.files.len(), c.run_dir.display());
    Ok(())
}

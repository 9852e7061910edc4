//! `RUN/explain/summary.json`: what `explain` computed, how long it took and which pictures it
//! drew, for the report and for readers of the run directory.

use std::path::Path;

use super::maps::MapMethod;
use crate::error::Result;

/// The summary's file name under `RUN/explain/`.
pub const SUMMARY_FILE: &str = "summary.json";

/// A picture in `RUN/plots/` (PNG and SVG) and its caption.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Figure {
    /// File stem in `plots/`.
    pub stem: String,
    /// What it shows.
    pub caption: String,
}

/// One map method's run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MapSummary {
    /// The method.
    pub method: MapMethod,
    /// Its layer, for the layer methods.
    pub layer: Option<String>,
    /// Images explained in the timed pass.
    pub images: usize,
    /// Seconds for them (maps only: no file writing).
    pub secs: f64,
    /// The raw and image-sized maps (`explain/<method>.safetensors`).
    pub file: String,
    /// Its pictures.
    pub figures: Vec<Figure>,
}

/// The embeddings' run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmbeddingSummary {
    /// The layer whose input is the embedding (the last linear layer).
    pub layer: String,
    /// Test images embedded.
    pub points: usize,
    /// Embedding size.
    pub dim: usize,
    /// Neighbours of the k-nearest-neighbour vote.
    pub knn_k: usize,
    /// Leave-one-out kNN accuracy in the embedding.
    pub knn_acc_features: f64,
    /// The same in the 2-D t-SNE.
    pub knn_acc_tsne: f64,
    /// t-SNE perplexity.
    pub perplexity: f64,
    /// Seconds for the features and for the t-SNE.
    pub features_secs: f64,
    /// Seconds of the t-SNE.
    pub tsne_secs: f64,
    /// Features, labels, predictions and the t-SNE (`explain/embeddings.safetensors`).
    pub file: String,
    /// Its pictures.
    pub figures: Vec<Figure>,
}

/// What one `explain` call did.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct ExplainSummary {
    /// The checkpoint explained.
    pub checkpoint: String,
    /// The map methods run.
    pub maps: Vec<MapSummary>,
    /// The embeddings, when computed.
    pub embedding: Option<EmbeddingSummary>,
}

impl ExplainSummary {
    /// Reads `RUN/explain/summary.json`; `None` when the run was never explained or the file
    /// does not parse (the report then has no explanations section).
    pub fn read(run: &Path) -> Option<ExplainSummary> {
        let text = std::fs::read_to_string(run.join("explain").join(SUMMARY_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes it, merged with the earlier summary: methods run now replace their earlier
    /// entries, the others stay (explaining with one method keeps the rest of the page).
    pub fn write_merged(&self, run: &Path) -> Result<()> {
        let mut merged = ExplainSummary::read(run).unwrap_or_default();
        merged.checkpoint.clone_from(&self.checkpoint);
        merged.maps.retain(|m| !self.maps.iter().any(|n| n.method == m.method));
        merged.maps.extend(self.maps.iter().cloned());
        merged.maps.sort_by_key(|m| MapMethod::ALL.iter().position(|a| *a == m.method));
        if self.embedding.is_some() {
            merged.embedding.clone_from(&self.embedding);
        }
        crate::fsio::write_json(&run.join("explain").join(SUMMARY_FILE), &merged)
    }
}

//! Looking inside a trained model: class activation maps (Grad-CAM, Grad-CAM++, Score-CAM),
//! input-gradient saliency and SmoothGrad, attention rollout for transformers, and the
//! penultimate-layer embeddings with their t-SNE and TensorBoard projector files.
//!
//! The math is in pure functions ([`cam`], [`rollout`], [`tsne`]); [`attribution`] runs a model
//! for it through the model layer's tap points ([`crate::models::context::tap`]); [`draw`] and
//! [`projector`] write the pictures and files. The verb that puts them in a run directory is
//! `lab::explain`.

pub mod attribution;
pub mod cam;
pub mod draw;
pub mod maps;
pub mod projector;
pub mod rollout;
pub mod tsne;

mod summary;
pub use summary::{EmbeddingSummary, ExplainSummary, Figure, MapSummary, SUMMARY_FILE};

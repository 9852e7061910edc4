//! `[optim]`: the optimizer's choice and hyper-parameters.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[optim]`: optimizer choice and hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// "sgd", "adamw" or "muon" (Muon for conv filters, Nesterov SGD for the rest).
    pub name: super::OptimName,
    /// Peak learning rate.
    pub lr: f64,
    /// SGD momentum (with Muon: the momentum of the parameters that take SGD steps).
    pub momentum: f64,
    /// Nesterov momentum (SGD and Muon).
    pub nesterov: bool,
    /// Weight-decay coefficient.
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW-style `w -= lr * wd * w`) instead of L2 added to the gradient
    /// (SGD, and the SGD part of Muon). AdamW is always decoupled.
    pub decoupled_wd: bool,
    /// Exclude biases and normalisation weights from weight decay.
    pub wd_exclude_bn_bias: bool,
    /// Learning-rate multiplier of the BatchNorm parameters (airbench's `bias_scaler`, 64); their
    /// weight-decay coefficient is divided by it, so the decay per step is unchanged.
    pub norm_lr_scale: f64,
    /// Learning-rate multipliers by parameter name: a key applies to the parameter of that name
    /// and to every parameter under it (`"head"` covers `head.weight`), the longest key winning;
    /// it replaces `norm_lr_scale` for the parameters it covers. As there, the weight-decay
    /// coefficient is divided by the multiplier. Every key must name a parameter of the model.
    pub lr_scales: BTreeMap<String, f64>,
    /// Muon: peak learning rate of the conv filters (the schedule scales it like `lr`).
    pub muon_lr: f64,
    /// Muon: momentum of the conv filters (the Muon repository's default, 0.95).
    pub muon_momentum: f64,
    /// Muon: Newton-Schulz iterations per update (5 in the Muon repository, 3 in airbench94_muon).
    pub muon_ns_steps: i64,
    /// Muon: before each update, rescale every filter tensor to Frobenius norm
    /// `sqrt(out_channels)` (airbench94_muon). The filters' norm is then fixed, so weight decay
    /// does not apply to them.
    pub muon_weight_norm: bool,
    /// Adam betas.
    pub betas: [f64; 2],
    /// Adam epsilon.
    pub eps: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            name: super::OptimName::Sgd,
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            decoupled_wd: false,
            wd_exclude_bn_bias: false,
            norm_lr_scale: 1.0,
            lr_scales: BTreeMap::new(),
            muon_lr: 0.05,
            muon_momentum: 0.95,
            muon_ns_steps: 5,
            muon_weight_norm: false,
            betas: [0.9, 0.999],
            eps: 1e-8,
        }
    }
}

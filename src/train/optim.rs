//! Optimizers written on tensor ops so their whole state can be checkpointed and restored exactly:
//! SGD (momentum, Nesterov, coupled or decoupled weight decay), AdamW and Muon. The update rules
//! are PyTorch's `torch.optim.SGD` and `torch.optim.AdamW` (single-tensor path) and Keller
//! Jordan's Muon reference (github.com/KellerJordan/Muon, 2024): momentum, then the update
//! orthogonalised by a quintic Newton-Schulz iteration, for conv filters; the other parameters
//! (biases, norms, the linear head) take SGD steps, as Muon's authors recommend.

use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::config::{OptimConfig, OptimName};
use crate::device::Precision;

/// A trainable parameter with its `state_dict` name.
#[derive(Debug)]
pub struct Param {
    /// Name, e.g. `layer1.0.conv1.weight`.
    pub name: String,
    /// The parameter tensor (requires grad).
    pub tensor: Tensor,
    /// Whether weight decay applies to it.
    pub decay: bool,
    /// Learning-rate multiplier (from `optim.lr_scales` when a key covers the name, else
    /// `optim.norm_lr_scale` for BatchNorm parameters, else 1; Muon filters' rate too); the
    /// weight-decay coefficient is divided by it.
    pub lr_scale: f64,
    /// Frozen: skipped by every update (its state kept), as a tensor without gradient is in
    /// PyTorch.
    pub frozen: bool,
}

/// Optimizer hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// SGD with momentum.
    Sgd {
        /// Momentum factor (0 = plain SGD).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// Decoupled weight decay (`p -= lr * wd * p`) instead of L2 in the gradient.
        decoupled: bool,
    },
    /// Muon for 4-d (conv) weights at `lr * lr_ratio`, SGD (momentum, Nesterov) for the rest.
    Muon {
        /// Momentum of the conv filters.
        momentum: f64,
        /// Nesterov momentum (both parts).
        nesterov: bool,
        /// Muon learning rate over the SGD one (`optim.muon_lr / optim.lr`).
        lr_ratio: f64,
        /// Newton-Schulz iterations.
        ns_steps: usize,
        /// Rescale each filter tensor to Frobenius norm `sqrt(out_channels)` before its update.
        weight_norm: bool,
        /// The kind the Newton-Schulz iteration computes in (see [`Optimizer::new`]).
        ns_kind: Kind,
        /// Momentum of the other parameters' SGD steps.
        sgd_momentum: f64,
        /// Decoupled weight decay for the SGD steps.
        decoupled: bool,
    },
    /// Adam with decoupled weight decay.
    AdamW {
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Denominator epsilon.
        eps: f64,
    },
}

/// An optimizer over a fixed list of parameters; `state` holds one or two buffers per parameter.
#[derive(Debug)]
pub struct Optimizer {
    /// The update rule.
    pub rule: Rule,
    /// Weight-decay coefficient.
    pub weight_decay: f64,
    /// Parameters, sorted by name.
    pub params: Vec<Param>,
    /// Per-parameter buffers: `[momentum]` for SGD, `[exp_avg, exp_avg_sq]` for AdamW.
    pub state: Vec<Vec<Tensor>>,
    /// Number of steps taken (AdamW bias correction).
    pub steps: i64,
}

impl Optimizer {
    /// An optimizer for every trainable variable of `vs`, for training in `precision`.
    ///
    /// The precision only matters to Muon: its Newton-Schulz iteration computes in bf16 under
    /// bf16 and fp16 training, as Muon's reference does, and in fp32 under fp32 training. Where
    /// `auto` resolves to fp32, bf16 matmuls are emulated, and slow: on an AVX2-only CPU (AMD EPYC
    /// Zen 3) the iteration for airbench94's filters took 2.7 s per step in bf16, 65 ms in fp32.
    pub fn new(vs: &VarStore, cfg: &OptimConfig, precision: Precision) -> Self {
        let rule = match cfg.name {
            OptimName::AdamW => Rule::AdamW { beta1: cfg.betas[0], beta2: cfg.betas[1], eps: cfg.eps },
            OptimName::Muon => Rule::Muon {
                momentum: cfg.muon_momentum,
                nesterov: cfg.nesterov,
                lr_ratio: cfg.muon_lr / cfg.lr,
                ns_steps: cfg.muon_ns_steps.max(1) as usize,
                weight_norm: cfg.muon_weight_norm,
                ns_kind: if precision == Precision::Fp32 { Kind::Float } else { Kind::BFloat16 },
                sgd_momentum: cfg.momentum,
                decoupled: cfg.decoupled_wd,
            },
            OptimName::Sgd => Rule::Sgd { momentum: cfg.momentum, nesterov: cfg.nesterov, decoupled: cfg.decoupled_wd },
        };
        let all = vs.variables();
        // BatchNorm parameters: those of a module that keeps running statistics.
        let is_norm = |name: &str| {
            let module = name.rsplit_once('.').map_or("", |(m, _)| m);
            all.contains_key(&format!("{module}.running_mean"))
        };
        let mut vars: Vec<(String, Tensor)> =
            all.iter().filter(|(_, t)| t.requires_grad()).map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params: Vec<Param> = vars
            .into_iter()
            .map(|(name, tensor)| {
                // Biases and normalisation scales are 1-d: excluded from decay when asked.
                let decay = !(cfg.wd_exclude_bn_bias && tensor.dim() <= 1);
                let lr_scale =
                    lr_scale_for(&name, &cfg.lr_scales).unwrap_or(if is_norm(&name) { cfg.norm_lr_scale } else { 1.0 });
                Param { name, tensor, decay, lr_scale, frozen: false }
            })
            .collect();
        let buffers = if matches!(rule, Rule::AdamW { .. }) { 2 } else { 1 };
        let state = params.iter().map(|p| (0..buffers).map(|_| p.tensor.zeros_like()).collect()).collect();
        Optimizer { rule, weight_decay: cfg.weight_decay, params, state, steps: 0 }
    }

    /// Checks that every key of `optim.lr_scales` covers a trainable parameter; the error names
    /// the key and the model's top-level modules.
    pub fn check_lr_scales(&self, scales: &std::collections::BTreeMap<String, f64>) -> Result<(), String> {
        let bad: Vec<&String> = scales.keys().filter(|k| !self.params.iter().any(|p| covers(k, &p.name))).collect();
        if bad.is_empty() {
            return Ok(());
        }
        let mut tops: Vec<&str> = self.params.iter().map(|p| p.name.split('.').next().unwrap_or("")).collect();
        tops.dedup();
        Err(format!(
            "`optim.lr_scales`: {bad:?} names no trainable parameter of this model; expected a parameter name or a \
             dotted prefix of one, under: {}",
            tops.join(", ")
        ))
    }

    /// Freezes the parameters of `schedule` (`(name, epochs)`: trained during the first `epochs`
    /// epochs only) that are past their epochs at (1-based) `epoch`; unfreezes the others.
    pub fn freeze_trained_out(&mut self, schedule: &[(String, i64)], epoch: i64) {
        for (name, epochs) in schedule {
            if let Some(p) = self.params.iter_mut().find(|p| &p.name == name) {
                p.frozen = epoch > *epochs;
                // No gradient for it either: LibTorch then skips the backward work it needed.
                let _ = p.tensor.set_requires_grad(!p.frozen);
            }
        }
    }

    /// Clears all gradients.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.tensor.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Clamps every gradient element to `[-value, value]` (`clip_grad_value_`).
    pub fn clip_grad_value(&mut self, value: f64) {
        let _guard = tch::no_grad_guard();
        for p in &self.params {
            let mut g = p.tensor.grad();
            if g.defined() {
                let _ = g.clamp_(-value, value);
            }
        }
    }

    /// One update with learning rate `lr`, using the gradients in `.grad()`.
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let _guard = tch::no_grad_guard();
        for (p, state) in self.params.iter_mut().zip(&mut self.state) {
            let g = p.tensor.grad();
            if !g.defined() || p.frozen {
                continue;
            }
            let lr = lr * p.lr_scale;
            let wd = if p.decay { self.weight_decay / p.lr_scale } else { 0.0 };
            match self.rule {
                Rule::Sgd { momentum, nesterov, decoupled } => {
                    sgd_update(&mut p.tensor, &g, &mut state[0], lr, wd, momentum, nesterov, decoupled)
                }
                Rule::Muon { momentum, nesterov, lr_ratio, ns_steps, weight_norm, ns_kind, .. }
                    if p.tensor.dim() == 4 =>
                {
                    let wd = if weight_norm { 0.0 } else { wd };
                    let h = MuonStep { lr: lr * lr_ratio, wd, mom: momentum, nesterov, ns_steps, ns_kind, weight_norm };
                    muon_update(&mut p.tensor, &g, &mut state[0], &h)
                }
                Rule::Muon { sgd_momentum, nesterov, decoupled, .. } => {
                    sgd_update(&mut p.tensor, &g, &mut state[0], lr, wd, sgd_momentum, nesterov, decoupled)
                }
                Rule::AdamW { beta1, beta2, eps } => {
                    let (m, v) = state.split_at_mut(1);
                    adamw_update(&mut p.tensor, &g, &mut m[0], &mut v[0], lr, wd, (beta1, beta2, eps), self.steps)
                }
            }
        }
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = self.params.iter().map(|p| p.tensor.grad()).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let sq: Vec<Tensor> = grads.iter().map(|g| g.square().sum(tch::Kind::Float)).collect();
        let total = Tensor::stack(&sq, 0).sum(tch::Kind::Float).sqrt().double_value(&[]);
        let coef = max_norm / (total + 1e-6);
        if coef < 1.0 {
            for mut g in grads {
                let _ = g.g_mul_scalar_(coef);
            }
        }
        total
    }

    /// Named state tensors for checkpointing: `<param>.momentum_buffer` or `.exp_avg`/`.exp_avg_sq`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let names: &[&str] = match self.rule {
            Rule::Sgd { .. } | Rule::Muon { .. } => &["momentum_buffer"],
            Rule::AdamW { .. } => &["exp_avg", "exp_avg_sq"],
        };
        let mut out = Vec::new();
        for (p, bufs) in self.params.iter().zip(&self.state) {
            for (n, b) in names.iter().zip(bufs) {
                out.push((format!("{}.{n}", p.name), b.shallow_clone()));
            }
        }
        out.push(("__steps__".into(), Tensor::from(self.steps)));
        out
    }

    /// Restores the state written by [`Optimizer::state_tensors`]; names and shapes must match.
    pub fn load_state(&mut self, tensors: &[(String, Tensor)]) -> Result<(), String> {
        let expected = self.state_tensors();
        let map: std::collections::HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut problems = Vec::new();
        for (name, dst) in &expected {
            match map.get(name.as_str()) {
                Some(src) if src.size() == dst.size() => {}
                Some(src) => problems.push(format!("{name}: shape {:?}, expected {:?}", src.size(), dst.size())),
                None => problems.push(format!("{name}: missing")),
            }
        }
        if !problems.is_empty() {
            let more = problems.len().saturating_sub(4);
            let tail = if more > 0 { format!("; ... and {more} more") } else { String::new() };
            return Err(format!("{}{tail}", problems[..problems.len().min(4)].join("; ")));
        }
        let _guard = tch::no_grad_guard();
        for (name, dst) in expected {
            let src = map[name.as_str()];
            if name == "__steps__" {
                self.steps = src.int64_value(&[]);
            } else {
                dst.shallow_clone().copy_(src);
            }
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn sgd_update(
    p: &mut Tensor,
    g: &Tensor,
    buf: &mut Tensor,
    lr: f64,
    wd: f64,
    mom: f64,
    nesterov: bool,
    decoupled: bool,
) {
    let mut d = if wd != 0.0 && !decoupled { g + &*p * wd } else { g.shallow_clone() };
    if mom != 0.0 {
        // buf = mom * buf + d  (zero-initialised buf makes the first step buf = d, as in PyTorch)
        let _ = buf.g_mul_scalar_(mom).g_add_(&d);
        d = if nesterov { d + &*buf * mom } else { buf.shallow_clone() };
    }
    if wd != 0.0 && decoupled {
        let _ = p.g_mul_scalar_(1.0 - lr * wd);
    }
    let _ = p.g_sub_(&(d * lr));
}

/// The Newton-Schulz quintic iteration that maps `g` (2-d) to about `U V^T` of its SVD (singular
/// values pushed towards 1), computed in `kind` (Muon's reference: bf16), coefficients
/// (3.4445, -4.7750, 2.0315).
pub fn newton_schulz5(g: &Tensor, steps: usize, kind: Kind) -> Tensor {
    let (a, b, c) = (3.4445, -4.7750, 2.0315);
    let tall = g.size()[0] > g.size()[1];
    let mut x = g.to_kind(kind);
    if tall {
        x = x.tr();
    }
    x = &x / (x.norm() + 1e-7);
    for _ in 0..steps {
        let gram = x.matmul(&x.tr());
        let poly = &gram * b + (&gram * c).matmul(&gram); // (c A) A, as the reference evaluates it
        x = &x * a + poly.matmul(&x);
    }
    if tall {
        x = x.tr();
    }
    x
}

/// The hyper-parameters of one Muon update.
struct MuonStep {
    lr: f64,
    wd: f64,
    mom: f64,
    nesterov: bool,
    ns_steps: usize,
    ns_kind: Kind,
    weight_norm: bool,
}

/// Muon's update: `buf = lerp(buf, g, 1 - mom)`, Nesterov `lerp(g, buf, mom)`, orthogonalised
/// (conv filters as `(out, in * k * k)`), scaled by `max(1, rows / cols)^0.5` of the last two
/// dimensions, decoupled weight decay. airbench94_muon accumulates `buf = mom * buf + g` instead:
/// the same direction times `1 / (1 - mom)`, which the orthogonalisation's normalisation removes.
/// With `weight_norm` the filters are first rescaled to norm `sqrt(out)`, as airbench94_muon does.
fn muon_update(p: &mut Tensor, g: &Tensor, buf: &mut Tensor, h: &MuonStep) {
    let _ = buf.lerp_(g, 1.0 - h.mom);
    let u = if h.nesterov { g.lerp(&*buf, h.mom) } else { buf.shallow_clone() };
    let s = g.size();
    // reshape, not view: channels_last weights (the default) have gradients that cannot be viewed.
    let o = newton_schulz5(&u.reshape([s[0], -1]), h.ns_steps, h.ns_kind).to_kind(p.kind()).reshape(s.as_slice());
    let scale = (s[s.len() - 2] as f64 / s[s.len() - 1] as f64).max(1.0).sqrt();
    if h.weight_norm {
        // A tensor factor, not a number: no device sync on a GPU.
        let factor = p.norm().clamp_min(1e-12).reciprocal() * (s[0] as f64).sqrt();
        let _ = p.g_mul_(&factor);
    }
    let _ = p.g_mul_scalar_(1.0 - h.lr * h.wd);
    let _ = p.g_sub_(&(o * (h.lr * scale)));
}

/// Whether key `key` covers parameter `name`: equal to it or one of its dotted prefixes.
fn covers(key: &str, name: &str) -> bool {
    name == key || name.strip_prefix(key).is_some_and(|rest| rest.starts_with('.'))
}

/// The learning-rate multiplier `optim.lr_scales` gives parameter `name`: that of the longest key
/// equal to the name or to one of its dotted prefixes (`"head"` covers `head.weight`).
pub fn lr_scale_for(name: &str, scales: &std::collections::BTreeMap<String, f64>) -> Option<f64> {
    scales.iter().filter(|(k, _)| covers(k, name)).max_by_key(|(k, _)| k.len()).map(|(_, v)| *v)
}

#[allow(clippy::too_many_arguments)]
fn adamw_update(
    p: &mut Tensor,
    g: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    lr: f64,
    wd: f64,
    h: (f64, f64, f64),
    t: i64,
) {
    let (b1, b2, eps) = h;
    let _ = p.g_mul_scalar_(1.0 - lr * wd);
    let _ = m.g_mul_scalar_(b1).g_add_(&(g * (1.0 - b1)));
    let _ = v.g_mul_scalar_(b2).g_add_(&(g.square() * (1.0 - b2)));
    let bc1 = 1.0 - b1.powi(t as i32);
    let bc2 = 1.0 - b2.powi(t as i32);
    let denom = v.sqrt() / bc2.sqrt() + eps;
    let _ = p.g_sub_(&(&*m / denom * (lr / bc1)));
}

//! The layers every architecture is built from, with PyTorch's parameter names, shapes and default
//! initialisation, so weights round-trip with `torch.nn` models by `state_dict` key.
//!
//! Mixed precision: [`autocast`] sets, for the current thread, the dtype in which [`Conv2d`] and
//! [`Linear`] compute (bf16/fp16), the way `torch.autocast` does (one exception: on a CPU in
//! bf16, depthwise convs with kernels of 5 or more compute in fp32 and return bf16, see
//! `Conv2d::fp32_island`). Weights stay fp32 (the casts are differentiable, so gradients reach
//! the fp32 master weights) and [`BatchNorm2d`] keeps fp32 parameters and statistics whatever
//! the activation dtype.

use rand::RngCore;
use tch::nn::{Init, ModuleT, Path};
use tch::{Kind, Tensor};

use super::context::{add_macs, autocast_kind, cast, is_recomputing, record, tap, with_dropout_rng, TapKind};

/// The dotted name of a parameter path (`layer4.1`), as PyTorch's `named_modules` spells it.
pub fn path_name(p: &Path) -> String {
    p.components().collect::<Vec<_>>().join(".")
}

/// PyTorch's default init for conv and linear weights and biases: `kaiming_uniform_(a=sqrt(5))`,
/// i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
fn torch_default(fan_in: i64) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -bound, up: bound }
}

/// `nn.Conv2d`: weight `(out, in / groups, k, k)`, optional bias `(out,)`.
#[derive(Debug)]
pub struct Conv2d {
    /// Kernel.
    pub weight: Tensor,
    /// Bias, when the layer has one.
    pub bias: Option<Tensor>,
    stride: i64,
    padding: i64,
    groups: i64,
    /// Depthwise with a kernel of 5 or more: computes in fp32 under bf16 autocast on a CPU.
    depthwise_large: bool,
    name: String,
}

/// Conv options: stride, padding, groups and bias.
#[derive(Debug, Clone, Copy)]
pub struct ConvOpts {
    /// Stride.
    pub stride: i64,
    /// Zero padding on each side.
    pub padding: i64,
    /// Groups (channels for depthwise).
    pub groups: i64,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl ConvOpts {
    /// Stride 1, "same" padding for an odd kernel `k`, one group, with bias (PyTorch's default).
    pub fn same(k: i64) -> Self {
        ConvOpts { stride: 1, padding: k / 2, groups: 1, bias: true }
    }
    /// The same without bias (conv followed by BatchNorm).
    pub fn same_no_bias(k: i64) -> Self {
        ConvOpts { bias: false, ..Self::same(k) }
    }
}

impl Conv2d {
    /// A `k x k` convolution `cin -> cout` registered under `p`.
    pub fn new(p: &Path, cin: i64, cout: i64, k: i64, o: ConvOpts) -> Self {
        let fan_in = cin / o.groups * k * k;
        let weight = p.var("weight", &[cout, cin / o.groups, k, k], torch_default(fan_in));
        let bias = o.bias.then(|| p.var("bias", &[cout], torch_default(fan_in)));
        Self::assemble(p, weight, bias, o)
    }

    /// The same conv with a weight that is registered (saved, loaded, exported) but not trained,
    /// e.g. a filter bank set from the data; the weight is initialised as [`Conv2d::new`] does,
    /// the bias (trained) at zero, as airbench's `Conv.reset_parameters`.
    pub fn fixed_weight(p: &Path, cin: i64, cout: i64, k: i64, o: ConvOpts) -> Self {
        let bound = 1.0 / ((cin / o.groups * k * k) as f64).sqrt();
        let init = Tensor::empty([cout, cin / o.groups, k, k], (Kind::Float, p.device())).uniform_(-bound, bound);
        let weight = p.add("weight", init, false);
        let bias = o.bias.then(|| p.var("bias", &[cout], Init::Const(0.0)));
        Self::assemble(p, weight, bias, o)
    }

    fn assemble(p: &Path, weight: Tensor, bias: Option<Tensor>, o: ConvOpts) -> Self {
        let size = weight.size();
        let depthwise_large = o.groups > 1 && size[1] == 1 && size[2] >= 5;
        let (stride, padding, groups) = (o.stride, o.padding, o.groups);
        Conv2d { weight, bias, stride, padding, groups, depthwise_large, name: path_name(p) }
    }

    /// Whether this conv computes in fp32 inside bf16 autocast: a depthwise conv with a kernel of
    /// 5 or more, on a CPU. LibTorch 2.11's bf16 backward of those is slow on the AMX Xeon this
    /// was developed on (forward + backward at batch 64, bf16 input: 30-37 ms in bf16 against
    /// 10 ms in fp32 including the casts, ~3.5x); in bf16 they took half of EfficientNet-B0's step
    /// (`pytorch/profile_step.py`), and fp32 for its 3x3 depthwise convs too gained nothing.
    /// Inference is about as fast either way; one path keeps evaluation's numerics training's.
    fn fp32_island(&self, x: &Tensor) -> bool {
        self.depthwise_large && autocast_kind() == Some(Kind::BFloat16) && x.device() == tch::Device::Cpu
    }
}

impl ModuleT for Conv2d {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        let conv = |input: &Tensor, w: &Tensor, b: Option<&Tensor>| {
            input.conv2d(w, b, [self.stride], [self.padding], [1], self.groups)
        };
        let y = if self.fp32_island(x) {
            // Output back in bf16: the BatchNorm and activation after it stay in bf16.
            conv(&x.to_kind(Kind::Float), &self.weight, self.bias.as_ref()).to_kind(Kind::BFloat16)
        } else {
            conv(&cast(x), &cast(&self.weight), self.bias.as_ref().map(cast).as_ref())
        };
        let (_, cout, h, w) = y.size4().unwrap_or((0, 0, 0, 0));
        let per_out = self.weight.size()[1] * self.weight.size()[2] * self.weight.size()[3];
        let macs = (cout * h * w * per_out) as u64;
        add_macs(macs);
        let kind = || {
            let k = self.weight.size()[2];
            let groups = if self.groups > 1 { format!(" g{}", self.groups) } else { String::new() };
            format!("Conv2d {k}x{k} s{}{groups}", self.stride)
        };
        record(&self.name, kind, &y, &[Some(&self.weight), self.bias.as_ref()], macs);
        tap(&self.name, TapKind::Layer, y)
    }
}

/// `nn.Linear`: weight `(out, in)`, bias `(out,)`.
#[derive(Debug)]
pub struct Linear {
    /// Weight.
    pub weight: Tensor,
    /// Bias, when the layer has one.
    pub bias: Option<Tensor>,
    name: String,
}

impl Linear {
    /// A fully connected layer `cin -> cout` registered under `p`.
    pub fn new(p: &Path, cin: i64, cout: i64) -> Self {
        Linear {
            weight: p.var("weight", &[cout, cin], torch_default(cin)),
            bias: Some(p.var("bias", &[cout], torch_default(cin))),
            name: path_name(p),
        }
    }

    /// The same without bias (`nn.Linear(cin, cout, bias=False)`).
    pub fn no_bias(p: &Path, cin: i64, cout: i64) -> Self {
        Linear { weight: p.var("weight", &[cout, cin], torch_default(cin)), bias: None, name: path_name(p) }
    }
}

impl ModuleT for Linear {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        let x = tap(&self.name, TapKind::LinearInput, x.shallow_clone());
        // One (out x in) product per row: a (B, in) batch has one row per image, a (B, N, in)
        // sequence N of them.
        let cin = self.weight.size()[1];
        let rows = (x.numel() as i64 / x.size()[0].max(1) / cin).max(1);
        let macs = (self.weight.size()[0] * cin * rows) as u64;
        add_macs(macs);
        let y = cast(&x).linear(&cast(&self.weight), self.bias.as_ref().map(cast));
        record(&self.name, || "Linear".into(), &y, &[Some(&self.weight), self.bias.as_ref()], macs);
        y
    }
}

/// `nn.BatchNorm2d` (also used as BatchNorm1d): affine weight and bias, running statistics and
/// `num_batches_tracked`, with PyTorch's momentum 0.1 and eps 1e-5 by default.
#[derive(Debug)]
pub struct BatchNorm2d {
    /// Scale.
    pub weight: Tensor,
    /// Shift.
    pub bias: Tensor,
    /// Running mean (not trained).
    pub running_mean: Tensor,
    /// Running variance (not trained).
    pub running_var: Tensor,
    /// Number of training batches seen (int64 scalar, as in PyTorch).
    pub num_batches_tracked: Tensor,
    momentum: f64,
    eps: f64,
    name: String,
}

impl BatchNorm2d {
    /// BatchNorm over `c` channels registered under `p`.
    pub fn new(p: &Path, c: i64) -> Self {
        BatchNorm2d {
            weight: p.var("weight", &[c], Init::Const(1.0)),
            bias: p.var("bias", &[c], Init::Const(0.0)),
            running_mean: p.zeros_no_train("running_mean", &[c]),
            running_var: p.ones_no_train("running_var", &[c]),
            num_batches_tracked: p.add("num_batches_tracked", Tensor::zeros([], (Kind::Int64, p.device())), false),
            momentum: 0.1,
            eps: 1e-5,
            name: path_name(p),
        }
    }

    /// BatchNorm with a given running-statistics `momentum` (PyTorch's convention: the weight of
    /// the new batch) and `eps`, whose scale is fixed at 1 (registered, but not trained), as
    /// airbench's BatchNorm with `weight.requires_grad = False`.
    pub fn fixed_scale(p: &Path, c: i64, momentum: f64, eps: f64) -> Self {
        BatchNorm2d {
            weight: p.ones_no_train("weight", &[c]),
            bias: p.var("bias", &[c], Init::Const(0.0)),
            running_mean: p.zeros_no_train("running_mean", &[c]),
            running_var: p.ones_no_train("running_var", &[c]),
            num_batches_tracked: p.add("num_batches_tracked", Tensor::zeros([], (Kind::Int64, p.device())), false),
            momentum,
            eps,
            name: path_name(p),
        }
    }
}

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        if train && is_recomputing() {
            let (w, b) = (Some(&self.weight), Some(&self.bias));
            return Tensor::batch_norm(x, w, b, None::<&Tensor>, None::<&Tensor>, true, self.momentum, self.eps, true);
        }
        if train {
            tch::no_grad(|| {
                let _ = self.num_batches_tracked.shallow_clone().g_add_scalar_(1);
            });
        }
        // Native mixed-dtype batch norm: bf16/fp16 activations with fp32 parameters and stats.
        let y = Tensor::batch_norm(
            x,
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            self.momentum,
            self.eps,
            true,
        );
        record(&self.name, || "BatchNorm".into(), &y, &[Some(&self.weight), Some(&self.bias)], 0);
        tap(&self.name, TapKind::Layer, y)
    }
}

/// `nn.LayerNorm` over the last dimension: weight (ones), bias (zeros), eps 1e-5. It computes in
/// fp32 whatever the input dtype, as under `torch.autocast`.
#[derive(Debug)]
pub struct LayerNorm {
    /// Scale.
    pub weight: Tensor,
    /// Shift.
    pub bias: Tensor,
    name: String,
}

impl LayerNorm {
    /// LayerNorm over `d` features registered under `p`.
    pub fn new(p: &Path, d: i64) -> Self {
        let (weight, bias) = (p.var("weight", &[d], Init::Const(1.0)), p.var("bias", &[d], Init::Const(0.0)));
        LayerNorm { weight, bias, name: path_name(p) }
    }
}

impl ModuleT for LayerNorm {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        let d = self.weight.size()[0];
        let y = x.to_kind(Kind::Float).layer_norm([d], Some(&self.weight), Some(&self.bias), 1e-5, false);
        record(&self.name, || "LayerNorm".into(), &y, &[Some(&self.weight), Some(&self.bias)], 0);
        y
    }
}

/// `nn.Dropout`.
#[derive(Debug)]
pub struct Dropout(pub f64);

impl ModuleT for Dropout {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        if train && self.0 > 0.0 {
            // Inverted dropout, as nn.Dropout: keep with probability 1 - p, scale by 1 / (1 - p).
            // The mask holds the scale already, so applying it is one multiply.
            let (threshold, scale) = ((self.0 * u32::MAX as f64) as u32, (1.0 / (1.0 - self.0)) as f32);
            let mask: Vec<f32> = with_dropout_rng(|r| {
                (0..x.numel()).map(|_| if r.next_u32() >= threshold { scale } else { 0.0 }).collect()
            });
            let mask = Tensor::from_slice(&mask).view(x.size().as_slice()).to_device(x.device()).to_kind(x.kind());
            x * mask
        } else {
            x.shallow_clone()
        }
    }
}

/// Global average pool, dropout, linear: the classification head of ResNet, VGG and EfficientNet.
#[derive(Debug)]
pub struct PoolLinear {
    /// Dropout before the linear layer (0 = none).
    pub dropout: Dropout,
    /// The classifier.
    pub fc: Linear,
}

impl ModuleT for PoolLinear {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = x.mean_dim([2i64, 3].as_slice(), false, x.kind()); // (B, C)
        self.fc.forward_t(&self.dropout.forward_t(&x, train), train)
    }
}

//! EfficientNet-B0 (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
//! Networks", ICML 2019) adapted to 32x32 inputs.
//!
//! The ImageNet network downsamples by 32 (stem stride 2 plus four stride-2 stages), which turns a
//! 32x32 image into 1x1 after the fourth stage and throws away most spatial information. Here the
//! stem and the first stride-2 stage (16 -> 24 channels) use stride 1, so the total stride is 8
//! and the last feature map is 4x4, as in CIFAR ResNets. Everything else is B0: MBConv blocks
//! (inverted residual, depthwise conv, squeeze-excitation with 1/4 of the block's input channels,
//! SiLU), the head conv to 1280 channels, dropout before the classifier (`model.dropout`; B0 uses
//! 0.2) and stochastic depth rising linearly to `model.drop_path` (B0 uses 0.2).
//!
//! Key names are torchvision's `efficientnet_b0` (`features.<stage>.<block>.block.<i>...`,
//! `classifier.1`), so weights move between the two.
//!
//! ```text
//! input                                             (B,    3, 32, 32)
//! features.0  stem conv3x3 s1, BN, SiLU          -> (B,   32, 32, 32)
//! features.1  MBConv1 k3 s1 x1                   -> (B,   16, 32, 32)
//! features.2  MBConv6 k3 s1 x2   (s2 on ImageNet) -> (B,  24, 32, 32)
//! features.3  MBConv6 k5 s2 x2                   -> (B,   40, 16, 16)
//! features.4  MBConv6 k3 s2 x3                   -> (B,   80,  8,  8)
//! features.5  MBConv6 k5 s1 x3                   -> (B,  112,  8,  8)
//! features.6  MBConv6 k5 s2 x4                   -> (B,  192,  4,  4)
//! features.7  MBConv6 k3 s1 x1                   -> (B,  320,  4,  4)
//! features.8  conv1x1, BN, SiLU                  -> (B, 1280,  4,  4)
//! avgpool, dropout, classifier.1                 -> (B, classes)
//! ```
//! Parameters (10 classes): 4,020,358 (torchvision's B0 with a 10-class head).

use rand::Rng;
use tch::nn::{ModuleT, Path};
use tch::Tensor;

use super::context::{tap, TapKind};
use super::layers::{path_name, BatchNorm2d, Conv2d, ConvOpts, Dropout, Linear, PoolLinear};
use super::{chain, run_segments, ModelArgs, Network};

/// (expand ratio, kernel, stride on 32x32, output channels, repeats) per stage.
const STAGES: [(i64, i64, i64, i64, usize); 7] = [
    (1, 3, 1, 16, 1),
    (6, 3, 1, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
];

/// Conv + BN (+ SiLU when `act`): torchvision's `Conv2dNormActivation`, keys `<p>.0`, `<p>.1`.
#[derive(Debug)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm2d,
    act: bool,
    /// `<p>`: a tap point (the unit's output).
    name: String,
}

impl ConvBn {
    fn new(p: &Path, cin: i64, cout: i64, k: i64, stride: i64, groups: i64, act: bool) -> Self {
        let opts = ConvOpts { stride, padding: (k - 1) / 2, groups, bias: false };
        let (conv, bn) = (Conv2d::new(&(p / 0), cin, cout, k, opts), BatchNorm2d::new(&(p / 1), cout));
        ConvBn { conv, bn, act, name: path_name(p) }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.bn.forward_t(&self.conv.forward_t(x, train), train);
        let y = if self.act { y.silu() } else { y };
        // The stem and head units (`features.0`, `features.8`) are blocks; the rest, layers of one.
        let kind = if self.name.matches('.').count() <= 1 { TapKind::Block } else { TapKind::Layer };
        tap(&self.name, kind, y)
    }
}

/// Squeeze-excitation: global average pool, 1x1 conv down, SiLU, 1x1 conv up, sigmoid gate.
#[derive(Debug)]
struct SqueezeExcite {
    fc1: Conv2d,
    fc2: Conv2d,
}

impl SqueezeExcite {
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let s = x.mean_dim([2i64, 3].as_slice(), true, x.kind()); // (B, C, 1, 1)
        let s = self.fc2.forward_t(&self.fc1.forward_t(&s, train).silu(), train).sigmoid();
        x * s
    }
}

/// Inverted-residual block: [expand 1x1] -> depthwise kxk -> SE -> project 1x1 (+ residual).
#[derive(Debug)]
struct MbConv {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    se: SqueezeExcite,
    project: ConvBn,
    residual: bool,
    drop_prob: f64,
    /// `features.{s}.{b}`: a tap point (the block's output).
    name: String,
}

impl MbConv {
    fn new(p: &Path, cin: i64, cout: i64, expand: i64, k: i64, stride: i64, drop_prob: f64) -> Self {
        let b = p / "block";
        let mid = cin * expand;
        let mut i = 0;
        let mut next = || {
            i += 1;
            &b / (i - 1)
        };
        let expand = (expand != 1).then(|| ConvBn::new(&next(), cin, mid, 1, 1, 1, true));
        let depthwise = ConvBn::new(&next(), mid, mid, k, stride, mid, true);
        let se_p = next();
        let squeeze = (cin / 4).max(1);
        let se = SqueezeExcite {
            fc1: Conv2d::new(&(&se_p / "fc1"), mid, squeeze, 1, ConvOpts { padding: 0, ..ConvOpts::same(1) }),
            fc2: Conv2d::new(&(&se_p / "fc2"), squeeze, mid, 1, ConvOpts { padding: 0, ..ConvOpts::same(1) }),
        };
        let project = ConvBn::new(&next(), mid, cout, 1, 1, 1, false);
        let residual = stride == 1 && cin == cout;
        MbConv { expand, depthwise, se, project, residual, drop_prob, name: path_name(p) }
    }
}

impl ModuleT for MbConv {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        tap(&self.name, TapKind::Block, self.branch_plus_residual(x, train))
    }
}

impl MbConv {
    fn branch_plus_residual(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = match &self.expand {
            Some(e) => e.forward(x, train),
            None => x.shallow_clone(),
        };
        y = self.se.forward(&self.depthwise.forward(&y, train), train);
        y = self.project.forward(&y, train);
        if !self.residual {
            return y;
        }
        if train && self.drop_prob > 0.0 {
            y = stochastic_depth(&y, self.drop_prob);
        }
        y + x
    }
}

/// Drops the whole residual branch per sample with probability `p` and rescales the survivors
/// (torchvision's `StochasticDepth(mode="row")`), drawing from the dropout generator.
fn stochastic_depth(y: &Tensor, p: f64) -> Tensor {
    let b = y.size()[0];
    let keep: Vec<f32> =
        super::context::with_dropout_rng(|r| (0..b).map(|_| if r.gen::<f64>() >= p { 1.0 } else { 0.0 }).collect());
    let mask = Tensor::from_slice(&keep).view([b, 1, 1, 1]).to_device(y.device()).to_kind(y.kind());
    y * mask * (1.0 / (1.0 - p))
}

impl ModuleT for ConvBn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward(x, train)
    }
}

/// Head conv to 1280 channels, global average pool, dropout, classifier.
#[derive(Debug)]
struct Head {
    conv: ConvBn,
    pool_fc: PoolLinear,
}

impl ModuleT for Head {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.pool_fc.forward_t(&self.conv.forward(x, train), train)
    }
}

#[derive(Debug)]
struct EfficientNet {
    stem: ConvBn,
    blocks: Vec<MbConv>,
    head: Head,
}

/// EfficientNet-B0 for 32x32 inputs.
pub fn efficientnet_b0(p: &Path, args: &ModelArgs) -> Box<dyn Network> {
    let f = p / "features";
    let stem = ConvBn::new(&(&f / 0), args.in_channels, 32, 3, 1, 1, true);
    let total: usize = STAGES.iter().map(|s| s.4).sum();
    let (mut blocks, mut cin, mut id) = (Vec::new(), 32, 0);
    for (s, &(expand, k, stride, cout, repeats)) in STAGES.iter().enumerate() {
        for r in 0..repeats {
            let drop = args.drop_path * id as f64 / total as f64;
            let st = if r == 0 { stride } else { 1 };
            blocks.push(MbConv::new(&(&f / (s + 1) / r), cin, cout, expand, k, st, drop));
            (cin, id) = (cout, id + 1);
        }
    }
    let head = Head {
        conv: ConvBn::new(&(&f / 8), cin, 1280, 1, 1, 1, true),
        pool_fc: PoolLinear {
            dropout: Dropout(args.dropout),
            fc: Linear::new(&(p / "classifier" / 1), 1280, args.num_classes),
        },
    };
    Box::new(EfficientNet { stem, blocks, head })
}

impl Network for EfficientNet {
    /// Stem, each MBConv block, head.
    fn segments(&self) -> Option<Vec<&dyn ModuleT>> {
        Some(chain(&self.stem, &self.blocks, &self.head))
    }
}

impl ModuleT for EfficientNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        run_segments(&self.segments().expect("EfficientNet is segmented"), x, train)
    }
}

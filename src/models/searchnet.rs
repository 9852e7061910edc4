//! SearchNet: the searchable family for architecture search (`microvision tune` over
//! `[model.arch]`). In the spirit of NATS-Bench's size search space (Dong et al., "NATS-Bench:
//! Benchmarking NAS Algorithms for Architecture Topology and Size", TPAMI 2021), where a fixed
//! topology is searched over channel counts, it fixes a three-stage residual network and lets
//! each stage's width and depth, the block type and the kernel size vary:
//!
//! - `basic`: two k x k convs with a shortcut (He et al., CVPR 2016);
//! - `bottleneck`: 1x1 to a quarter of the width, k x k, 1x1 back, with a shortcut (ibid.);
//! - `inverted`: 1x1 expansion x4, depthwise k x k, linear 1x1 projection, ReLU6, a shortcut only
//!   where shapes match (Sandler et al., "MobileNetV2", CVPR 2018).
//!
//! Key names follow `pytorch/models.py`'s `SearchNet` (`stem.conv`, `layer2.0.conv1`,
//! `layer2.0.downsample.0`, `fc`).
//!
//! ```text
//! input                              (B,  C, 32, 32)
//! stem kxk conv, bn, relu         -> (B, w1, 32, 32)
//! layer1: depth1 blocks, stride 1 -> (B, w1, 32, 32)
//! layer2: depth2 blocks, stride 2 -> (B, w2, 16, 16)
//! layer3: depth3 blocks, stride 2 -> (B, w3,  8,  8)
//! avgpool, flatten, fc            -> (B, classes)
//! ```
//! Default (`[32, 64, 128]`, one basic block each, k = 3): 308,650 parameters for 10 classes.

use tch::nn::{ModuleT, Path};
use tch::Tensor;

use super::context::{tap, TapKind};
use super::layers::{path_name, BatchNorm2d, Conv2d, ConvOpts, Dropout, Linear, PoolLinear};
use super::{chain, run_segments, ModelArgs, Network};

/// A searchnet architecture (`[model.arch]`, checked by the config).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Arch {
    /// Channels per stage.
    pub widths: [i64; 3],
    /// Blocks per stage.
    pub depths: [i64; 3],
    /// "basic", "bottleneck" or "inverted".
    pub block: String,
    /// Spatial kernel size.
    pub kernel: i64,
}

impl Default for Arch {
    fn default() -> Self {
        Arch { widths: [32, 64, 128], depths: [1, 1, 1], block: "basic".into(), kernel: 3 }
    }
}

/// A conv followed by BatchNorm.
#[derive(Debug)]
struct ConvBn(Conv2d, BatchNorm2d);

impl ConvBn {
    fn new(p: &Path, conv: &str, bn: &str, (cin, cout): (i64, i64), k: i64, (stride, groups): (i64, i64)) -> Self {
        let o = ConvOpts { stride, padding: k / 2, groups, bias: false };
        ConvBn(Conv2d::new(&(p / conv), cin, cout, k, o), BatchNorm2d::new(&(p / bn), cout))
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.1.forward_t(&self.0.forward_t(x, train), train)
    }
}

/// One block of any type: its conv-BN layers in order, the activation between them, and the
/// shortcut.
#[derive(Debug)]
struct Block {
    layers: Vec<ConvBn>,
    relu6: bool,
    /// Projection shortcut (1x1 conv + BN) where the shape changes (basic, bottleneck).
    downsample: Option<ConvBn>,
    /// Whether the input is added back (always for basic and bottleneck; inverted: when shapes
    /// match).
    residual: bool,
    /// `layer{s}.{b}`: a tap point (the block's output).
    name: String,
}

impl Block {
    fn new(p: &Path, kind: &str, (cin, cout): (i64, i64), k: i64, stride: i64) -> Self {
        let changes = stride != 1 || cin != cout;
        let projection = || ConvBn::new(&(p / "downsample"), "0", "1", (cin, cout), 1, (stride, 1));
        let (layers, relu6, residual) = match kind {
            "bottleneck" => {
                let mid = (cout / 4).max(4);
                let l = vec![
                    ConvBn::new(p, "conv1", "bn1", (cin, mid), 1, (1, 1)),
                    ConvBn::new(p, "conv2", "bn2", (mid, mid), k, (stride, 1)),
                    ConvBn::new(p, "conv3", "bn3", (mid, cout), 1, (1, 1)),
                ];
                (l, false, true)
            }
            "inverted" => {
                let hidden = cin * 4;
                let l = vec![
                    ConvBn::new(p, "conv1", "bn1", (cin, hidden), 1, (1, 1)),
                    ConvBn::new(p, "conv2", "bn2", (hidden, hidden), k, (stride, hidden)),
                    ConvBn::new(p, "conv3", "bn3", (hidden, cout), 1, (1, 1)),
                ];
                (l, true, !changes)
            }
            _ => {
                let l = vec![
                    ConvBn::new(p, "conv1", "bn1", (cin, cout), k, (stride, 1)),
                    ConvBn::new(p, "conv2", "bn2", (cout, cout), k, (1, 1)),
                ];
                (l, false, true)
            }
        };
        let downsample = (residual && changes && kind != "inverted").then(projection);
        Block { layers, relu6, downsample, residual, name: path_name(p) }
    }

    fn act(&self, x: Tensor) -> Tensor {
        if self.relu6 {
            x.clamp(0.0, 6.0)
        } else {
            x.relu()
        }
    }
}

impl ModuleT for Block {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        let mut y = x.shallow_clone();
        for (i, l) in self.layers.iter().enumerate() {
            y = l.forward(&y, train);
            if i < last {
                y = self.act(y);
            }
        }
        let y = match (&self.downsample, self.residual) {
            (Some(d), _) => y + d.forward(x, train),
            (None, true) => y + x,
            (None, false) => y,
        };
        // MobileNetV2's projection is linear; the ResNet blocks end with a ReLU after the sum.
        let y = if self.relu6 { y } else { y.relu() };
        tap(&self.name, TapKind::Block, y)
    }
}

/// `stem.conv -> stem.bn -> ReLU`.
#[derive(Debug)]
struct Stem(ConvBn);

impl ModuleT for Stem {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.0.forward(x, train).relu()
    }
}

#[derive(Debug)]
struct SearchNet {
    stem: Stem,
    blocks: Vec<Block>,
    head: PoolLinear,
}

/// SearchNet with `args.arch`.
pub fn searchnet(p: &Path, args: &ModelArgs) -> Box<dyn Network> {
    let a = &args.arch;
    let stem = Stem(ConvBn::new(&(p / "stem"), "conv", "bn", (args.in_channels, a.widths[0]), a.kernel, (1, 1)));
    let mut blocks = Vec::new();
    let mut cin = a.widths[0];
    for s in 0..3 {
        let lp = p / format!("layer{}", s + 1);
        for b in 0..a.depths[s] {
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            blocks.push(Block::new(&(&lp / b), &a.block, (cin, a.widths[s]), a.kernel, stride));
            cin = a.widths[s];
        }
    }
    let head = PoolLinear { dropout: Dropout(0.0), fc: Linear::new(&(p / "fc"), cin, args.num_classes) };
    Box::new(SearchNet { stem, blocks, head })
}

impl Network for SearchNet {
    /// Stem, each block, head.
    fn segments(&self) -> Option<Vec<&dyn ModuleT>> {
        Some(chain(&self.stem, &self.blocks, &self.head))
    }
}

impl ModuleT for SearchNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        run_segments(&self.segments().expect("SearchNet is segmented"), x, train)
    }
}

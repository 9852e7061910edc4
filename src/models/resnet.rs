//! ResNet for 32x32 inputs (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
//! section 4.2 style CIFAR stem): a 3x3 stride-1 stem with 64 channels and no max-pool, then
//! four stages of BasicBlocks (widths 64/128/256/512, stride 2 at the start of stages 2-4),
//! global average pool and a linear head.
//!
//! Key names are torchvision's (`conv1`, `bn1`, `layer1.0.conv1`, `layer2.0.downsample.0`, `fc`),
//! so this equals `torchvision.models.resnet18(num_classes=C)` with `conv1` replaced by a 3x3
//! stride-1 conv and `maxpool` by `nn.Identity()`.
//!
//! ```text
//! input                          (B,   3, 32, 32)
//! conv1 3x3, bn1, relu        -> (B,  64, 32, 32)
//! layer1 (stride 1)           -> (B,  64, 32, 32)
//! layer2 (stride 2)           -> (B, 128, 16, 16)
//! layer3 (stride 2)           -> (B, 256,  8,  8)
//! layer4 (stride 2)           -> (B, 512,  4,  4)
//! avgpool, flatten, fc        -> (B, classes)
//! ```
//! Parameters (10 classes): resnet18 11,173,962; resnet34 21,282,122.

use tch::nn::{ModuleT, Path};
use tch::Tensor;

use super::context::{tap, TapKind};
use super::layers::{path_name, BatchNorm2d, Conv2d, ConvOpts, Dropout, Linear, PoolLinear};
use super::{chain, run_segments, ModelArgs, Network};

/// Two 3x3 convs with an identity (or 1x1-conv projection) shortcut.
#[derive(Debug)]
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
    /// `layer{s}.{b}`: a tap point (the block's output).
    name: String,
}

impl BasicBlock {
    fn new(p: &Path, cin: i64, cout: i64, stride: i64) -> Self {
        let opts = ConvOpts { stride, ..ConvOpts::same_no_bias(3) };
        let downsample = (stride != 1 || cin != cout).then(|| {
            let d = p / "downsample";
            let o = ConvOpts { stride, padding: 0, groups: 1, bias: false };
            (Conv2d::new(&(&d / 0), cin, cout, 1, o), BatchNorm2d::new(&(&d / 1), cout))
        });
        BasicBlock {
            conv1: Conv2d::new(&(p / "conv1"), cin, cout, 3, opts),
            bn1: BatchNorm2d::new(&(p / "bn1"), cout),
            conv2: Conv2d::new(&(p / "conv2"), cout, cout, 3, ConvOpts::same_no_bias(3)),
            bn2: BatchNorm2d::new(&(p / "bn2"), cout),
            downsample,
            name: path_name(p),
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.bn1.forward_t(&self.conv1.forward_t(x, train), train).relu();
        let y = self.bn2.forward_t(&self.conv2.forward_t(&y, train), train);
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&conv.forward_t(x, train), train),
            None => x.shallow_clone(),
        };
        tap(&self.name, TapKind::Block, (y + shortcut).relu())
    }
}

/// `conv1 -> bn1 -> ReLU`.
#[derive(Debug)]
struct Stem {
    conv1: Conv2d,
    bn1: BatchNorm2d,
}

impl ModuleT for Stem {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn1.forward_t(&self.conv1.forward_t(x, train), train).relu()
    }
}

#[derive(Debug)]
struct ResNet {
    stem: Stem,
    blocks: Vec<BasicBlock>,
    head: PoolLinear,
}

fn resnet(p: &Path, args: &ModelArgs, depths: [usize; 4]) -> Box<dyn Network> {
    let widths = [64, 128, 256, 512];
    let mut blocks = Vec::new();
    let mut cin = 64;
    for (s, (&depth, &width)) in depths.iter().zip(&widths).enumerate() {
        let lp = p / format!("layer{}", s + 1);
        for b in 0..depth {
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            blocks.push(BasicBlock::new(&(&lp / b), cin, width, stride));
            cin = width;
        }
    }
    let stem = Stem {
        conv1: Conv2d::new(&(p / "conv1"), args.in_channels, 64, 3, ConvOpts::same_no_bias(3)),
        bn1: BatchNorm2d::new(&(p / "bn1"), 64),
    };
    let head = PoolLinear { dropout: Dropout(0.0), fc: Linear::new(&(p / "fc"), 512, args.num_classes) };
    Box::new(ResNet { stem, blocks, head })
}

/// ResNet-18: BasicBlocks [2, 2, 2, 2].
pub fn resnet18(p: &Path, args: &ModelArgs) -> Box<dyn Network> {
    resnet(p, args, [2, 2, 2, 2])
}

/// ResNet-34: BasicBlocks [3, 4, 6, 3].
pub fn resnet34(p: &Path, args: &ModelArgs) -> Box<dyn Network> {
    resnet(p, args, [3, 4, 6, 3])
}

impl Network for ResNet {
    /// Stem, each BasicBlock, head.
    fn segments(&self) -> Option<Vec<&dyn ModuleT>> {
        Some(chain(&self.stem, &self.blocks, &self.head))
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        run_segments(&self.segments().expect("ResNet is segmented"), x, train)
    }
}

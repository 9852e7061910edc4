//! VGG with BatchNorm for 32x32 inputs (Simonyan & Zisserman, "Very Deep Convolutional Networks
//! for Large-Scale Image Recognition", ICLR 2015; BN after every conv as in torchvision's `*_bn`).
//! The five max-pools bring 32x32 to 1x1, so the CIFAR head is a single `Linear(512, classes)`
//! (as in kuangliu/pytorch-cifar) instead of ImageNet's 4096-wide MLP.
//!
//! Key names are torchvision's: `features.<i>` numbers conv, BN, ReLU and pool layers in order
//! (conv at i, BN at i+1, ReLU at i+2; a pool takes one index), the head is `classifier`.
//!
//! ```text
//! input                                   (B,   3, 32, 32)
//! features (vgg11: 64 M 128 M 256 256 M 512 512 M 512 512 M) -> (B, 512, 1, 1)
//! flatten, classifier                  -> (B, classes)
//! ```
//! Parameters (10 classes): vgg11 9,231,114; vgg13 9,416,010; vgg16 14,728,266; vgg19 20,040,522.

use tch::nn::{ModuleT, Path};
use tch::Tensor;

use super::context::{tap, TapKind};
use super::layers::{BatchNorm2d, Conv2d, ConvOpts, Dropout, Linear, PoolLinear};
use super::{run_segments, ModelArgs, Network};

/// A layer list entry: a conv of this width, or a max-pool.
#[derive(Debug, Clone, Copy)]
enum L {
    C(i64),
    M,
}
use L::{C, M};

const VGG11: &[L] = &[C(64), M, C(128), M, C(256), C(256), M, C(512), C(512), M, C(512), C(512), M];
const VGG13: &[L] = &[C(64), C(64), M, C(128), C(128), M, C(256), C(256), M, C(512), C(512), M, C(512), C(512), M];
const VGG16: &[L] = &[
    C(64),
    C(64),
    M,
    C(128),
    C(128),
    M,
    C(256),
    C(256),
    C(256),
    M,
    C(512),
    C(512),
    C(512),
    M,
    C(512),
    C(512),
    C(512),
    M,
];
const VGG19: &[L] = &[
    C(64),
    C(64),
    M,
    C(128),
    C(128),
    M,
    C(256),
    C(256),
    C(256),
    C(256),
    M,
    C(512),
    C(512),
    C(512),
    C(512),
    M,
    C(512),
    C(512),
    C(512),
    C(512),
    M,
];

#[derive(Debug)]
enum Layer {
    /// Conv, BN and the ReLU's name (`features.{i+2}`, a tap point).
    Conv(Conv2d, BatchNorm2d, String),
    Pool,
}

impl ModuleT for Layer {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Layer::Conv(conv, bn, relu) => {
                tap(relu, TapKind::Block, bn.forward_t(&conv.forward_t(x, train), train).relu())
            }
            Layer::Pool => x.max_pool2d_default(2),
        }
    }
}

#[derive(Debug)]
struct Vgg {
    layers: Vec<Layer>,
    head: PoolLinear,
}

fn vgg(p: &Path, args: &ModelArgs, plan: &[L]) -> Box<dyn Network> {
    let f = p / "features";
    let (mut idx, mut cin) = (0, args.in_channels);
    let mut layers = Vec::new();
    for l in plan {
        match *l {
            C(w) => {
                let conv = Conv2d::new(&(&f / idx), cin, w, 3, ConvOpts::same(3));
                let relu = format!("features.{}", idx + 2);
                layers.push(Layer::Conv(conv, BatchNorm2d::new(&(&f / (idx + 1)), w), relu));
                (idx, cin) = (idx + 3, w);
            }
            M => {
                layers.push(Layer::Pool);
                idx += 1;
            }
        }
    }
    let head = PoolLinear { dropout: Dropout(0.0), fc: Linear::new(&(p / "classifier"), cin, args.num_classes) };
    Box::new(Vgg { layers, head })
}

/// VGG-11 with BatchNorm.
pub fn vgg11(p: &Path, a: &ModelArgs) -> Box<dyn Network> {
    vgg(p, a, VGG11)
}
/// VGG-13 with BatchNorm.
pub fn vgg13(p: &Path, a: &ModelArgs) -> Box<dyn Network> {
    vgg(p, a, VGG13)
}
/// VGG-16 with BatchNorm.
pub fn vgg16(p: &Path, a: &ModelArgs) -> Box<dyn Network> {
    vgg(p, a, VGG16)
}
/// VGG-19 with BatchNorm.
pub fn vgg19(p: &Path, a: &ModelArgs) -> Box<dyn Network> {
    vgg(p, a, VGG19)
}

impl Network for Vgg {
    /// Each conv unit and pool, then the head. (Any spatial extent left after the pools, for
    /// inputs larger than 32x32, is averaged away by the head.)
    fn segments(&self) -> Option<Vec<&dyn ModuleT>> {
        let mut s: Vec<&dyn ModuleT> = self.layers.iter().map(|l| l as &dyn ModuleT).collect();
        s.push(&self.head);
        Some(s)
    }
}

impl ModuleT for Vgg {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        run_segments(&self.segments().expect("VGG is segmented"), x, train)
    }
}

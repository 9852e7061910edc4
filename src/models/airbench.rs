//! airbench94: the small network of Keller Jordan's fast CIFAR-10 recipe ("94% on CIFAR-10 in
//! 3.29 seconds on a single GPU", arXiv 2404.00498; github.com/KellerJordan/cifar10-airbench,
//! `airbench94.py`).
//!
//! ```text
//! input                                             (B,   3, 32, 32)
//! whiten: conv2x2 3->24 (+bias, weight frozen), GELU  (B,  24, 31, 31)
//! block1: conv3x3 24->64, maxpool2, BN, GELU,
//!         conv3x3 64->64, BN, GELU                   (B,  64, 15, 15)
//! block2: 64->256 the same                            (B, 256,  7,  7)
//! block3: 256->256 the same                           (B, 256,  3,  3)
//! global max pool (= airbench's MaxPool2d(3))         (B, 256)
//! head: Linear 256->classes (no bias), x 1/9          (B, classes)
//! ```
//! What makes it train fast, as in the paper:
//! - the first layer is a fixed 2x2 patch-whitening filter bank, set from the training images'
//!   patch covariance by [`Network::init_from_data`] (eigenvectors scaled by `1/sqrt(eigenvalue +
//!   5e-4)`, each with its negation: 2 x 12 filters); only its bias trains, for the first 3 epochs;
//! - the 3x3 convs start as identity on their first `in` output channels (dirac init);
//! - BatchNorm scales are fixed at 1 (only the shifts train), eps 1e-12, running-statistics
//!   momentum 0.4 (airbench's `momentum=0.6` in its own convention);
//! - the logits are scaled by 1/9.
//!
//! Key names follow the PyTorch transcription in `pytorch/models.py`. Parameters (10 classes):
//! 1,971,352 trainable, plus the 288 fixed whitening weights and 1,152 fixed BN scales.

use tch::nn::{ModuleT, Path};
use tch::{Kind, Tensor};

use super::context::{tap, TapKind};
use super::layers::{path_name, BatchNorm2d, Conv2d, ConvOpts, Linear};
use super::{ModelArgs, Network};

/// Widths of the three conv groups.
const WIDTHS: [i64; 3] = [64, 256, 256];
/// Side of the whitening patches.
const PATCH: i64 = 2;
/// Epochs during which the whitening bias trains (airbench's `whiten_bias_epochs`).
const WHITEN_BIAS_EPOCHS: i64 = 3;
/// Added to the patch-covariance eigenvalues before the inverse square root.
const WHITEN_EPS: f64 = 5e-4;
/// BatchNorm running-statistics momentum (PyTorch convention) and epsilon.
const BN_MOMENTUM: f64 = 0.4;
const BN_EPS: f64 = 1e-12;
/// Logit scale.
const SCALE: f64 = 1.0 / 9.0;

/// conv -> pool -> BN -> GELU -> conv -> BN -> GELU.
#[derive(Debug)]
struct ConvGroup {
    conv1: Conv2d,
    norm1: BatchNorm2d,
    conv2: Conv2d,
    norm2: BatchNorm2d,
    /// `block{i}`: a tap point (the group's output).
    name: String,
}

impl ConvGroup {
    fn new(p: &Path, cin: i64, cout: i64) -> Self {
        ConvGroup {
            conv1: dirac_conv(&(p / "conv1"), cin, cout),
            norm1: BatchNorm2d::fixed_scale(&(p / "norm1"), cout, BN_MOMENTUM, BN_EPS),
            conv2: dirac_conv(&(p / "conv2"), cout, cout),
            norm2: BatchNorm2d::fixed_scale(&(p / "norm2"), cout, BN_MOMENTUM, BN_EPS),
            name: path_name(p),
        }
    }
}

impl ModuleT for ConvGroup {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = self.conv1.forward_t(x, train).max_pool2d_default(2);
        let x = self.norm1.forward_t(&x, train).gelu("none");
        tap(&self.name, TapKind::Block, self.norm2.forward_t(&self.conv2.forward_t(&x, train), train).gelu("none"))
    }
}

/// A bias-free 3x3 "same" conv (PyTorch's default init) whose first `cin` filters are the
/// identity (`nn.init.dirac_` on `weight[:cin]`).
fn dirac_conv(p: &Path, cin: i64, cout: i64) -> Conv2d {
    let conv = Conv2d::new(p, cin, cout, 3, ConvOpts::same_no_bias(3));
    tch::no_grad(|| {
        let mut head = conv.weight.narrow(0, 0, cin.min(cout));
        let _ = head.zero_();
        let eye =
            Tensor::eye(cin.min(cout), (Kind::Float, conv.weight.device())).view([cin.min(cout), cin.min(cout), 1, 1]);
        head.narrow(1, 0, cin.min(cout)).narrow(2, 1, 1).narrow(3, 1, 1).copy_(&eye);
    });
    conv
}

#[derive(Debug)]
struct Airbench94 {
    whiten: Conv2d,
    blocks: Vec<ConvGroup>,
    head: Linear,
}

/// Builds airbench94 for `args.in_channels`-channel inputs.
pub fn airbench94(p: &Path, args: &ModelArgs) -> Box<dyn Network> {
    let c = args.in_channels;
    let whiten_width = 2 * c * PATCH * PATCH;
    let whiten =
        Conv2d::fixed_weight(&(p / "whiten"), c, whiten_width, PATCH, ConvOpts { padding: 0, ..ConvOpts::same(1) });
    let mut cin = whiten_width;
    let blocks = WIDTHS
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let g = ConvGroup::new(&(p / format!("block{}", i + 1)), cin, w);
            cin = w;
            g
        })
        .collect();
    Box::new(Airbench94 { whiten, blocks, head: Linear::no_bias(&(p / "head"), cin, args.num_classes) })
}

impl ModuleT for Airbench94 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = self.whiten.forward_t(x, train).gelu("none");
        for b in &self.blocks {
            x = b.forward_t(&x, train);
        }
        let x = x.amax([2i64, 3].as_slice(), false); // (B, 256)
        self.head.forward_t(&x, train) * SCALE
    }
}

impl Network for Airbench94 {
    fn init_from_data(&self, images: &Tensor) {
        let w = whitening_filters(images, PATCH, WHITEN_EPS);
        tch::no_grad(|| self.whiten.weight.shallow_clone().copy_(&w));
    }

    fn trained_for_epochs(&self) -> Vec<(String, i64)> {
        vec![("whiten.bias".into(), WHITEN_BIAS_EPOCHS)]
    }
}

/// The whitening filter bank of `images` (normalised, `(N, C, H, W)`): the eigenvectors of the
/// `k x k` patch covariance (`C*k*k` of them, largest eigenvalue first), each divided by
/// `sqrt(eigenvalue + eps)`, followed by their negations: `(2*C*k*k, C, k, k)`, fp32.
/// Computed in fp64 on the CPU so the result does not depend on the device.
pub fn whitening_filters(images: &Tensor, k: i64, eps: f64) -> Tensor {
    let x = images.to_device(tch::Device::Cpu).to_kind(Kind::Double);
    let c = x.size()[1];
    // (N, C, H', W', k, k) -> (N, H', W', C, k, k) -> (P, C*k*k)
    let patches = x.unfold(2, k, 1).unfold(3, k, 1).permute([0, 2, 3, 1, 4, 5]).reshape([-1, c * k * k]);
    let n = patches.size()[0] as f64;
    let cov = patches.tr().matmul(&patches) / n;
    let (eigenvalues, eigenvectors) = cov.linalg_eigh("U");
    // eigh sorts ascending; the columns of `eigenvectors` are the eigenvectors.
    let (eigenvalues, eigenvectors) = (eigenvalues.flip([0]), eigenvectors.tr().flip([0]));
    let scaled = eigenvectors / (eigenvalues + eps).sqrt().unsqueeze(1);
    let filters = Tensor::cat(&[&scaled, &(-&scaled)], 0).view([2 * c * k * k, c, k, k]);
    filters.to_kind(Kind::Float).to_device(images.device())
}

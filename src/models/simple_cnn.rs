//! SimpleCNN: the foundation spec's baseline network (three conv blocks and an MLP head).
//!
//! ```text
//! input                                  (B,   3, 32, 32)
//! conv3x3 3->32, BN, ReLU, maxpool2   -> (B,  32, 16, 16)   features.0 / features.1
//! conv3x3 32->64, BN, ReLU, maxpool2  -> (B,  64,  8,  8)   features.4 / features.5
//! conv3x3 64->128, BN, ReLU, maxpool2 -> (B, 128,  4,  4)   features.8 / features.9
//! flatten                             -> (B, 2048)
//! Linear 2048->512, ReLU, Dropout     -> (B, 512)           classifier.0
//! Linear 512->classes                 -> (B, classes)       classifier.3
//! ```
//! Key names follow the PyTorch `nn.Sequential` transcription in `pytorch/models.py`.
//! Parameters (10 classes): 1,147,914.

use tch::nn::{ModuleT, Path};
use tch::Tensor;

use super::context::{tap, TapKind};
use super::layers::{BatchNorm2d, Conv2d, ConvOpts, Dropout, Linear};
use super::{ModelArgs, Network};

/// The ReLUs' names in the transcription's `features` Sequential (conv, BN, ReLU, pool per block).
const RELUS: [&str; 3] = ["features.2", "features.6", "features.10"];

#[derive(Debug)]
struct SimpleCnn {
    blocks: Vec<(Conv2d, BatchNorm2d)>,
    fc1: Linear,
    dropout: Dropout,
    fc2: Linear,
}

/// Builds SimpleCNN for `args.input_size`-pixel square inputs.
pub fn build(p: &Path, args: &ModelArgs) -> Box<dyn Network> {
    let f = p / "features";
    let widths = [args.in_channels, 32, 64, 128];
    let blocks = (0..3)
        .map(|i| {
            let conv = Conv2d::new(&(&f / (4 * i)), widths[i], widths[i + 1], 3, ConvOpts::same(3));
            let bn = BatchNorm2d::new(&(&f / (4 * i + 1)), widths[i + 1]);
            (conv, bn)
        })
        .collect();
    let side = args.input_size / 8;
    let c = p / "classifier";
    Box::new(SimpleCnn {
        blocks,
        fc1: Linear::new(&(&c / 0), 128 * side * side, 512),
        dropout: Dropout(args.dropout),
        fc2: Linear::new(&(&c / 3), 512, args.num_classes),
    })
}

impl Network for SimpleCnn {}

impl ModuleT for SimpleCnn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = x.shallow_clone();
        for (i, (conv, bn)) in self.blocks.iter().enumerate() {
            // The ReLU, `features.{4i+2}`, is the block's tap point (before pooling: 2x the resolution).
            let y = bn.forward_t(&conv.forward_t(&x, train), train).relu();
            x = tap(RELUS[i], TapKind::Block, y).max_pool2d_default(2);
        }
        let x = self.fc1.forward_t(&x.flatten(1, -1), train).relu();
        self.fc2.forward_t(&self.dropout.forward_t(&x, train), train)
    }
}

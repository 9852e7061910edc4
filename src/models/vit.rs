//! ViT-Lite-7/4: a Vision Transformer sized for 32x32 images (Hassani et al., "Escaping the Big
//! Data Paradigm with Compact Transformers", arXiv 2104.05704, table 1: 7 layers, 4 heads, dim
//! 256, MLP ratio 2, patch 4, class token; 3.72M parameters, 91.38% on CIFAR-10 after 300
//! epochs with heavy augmentation). The ViT of Dosovitskiy et al. 2021 otherwise: learned
//! position embeddings, pre-norm blocks, GELU MLP, LayerNorm before the head.
//!
//! The attention probabilities are computed explicitly (softmax of `q k^T / sqrt(d)`) and tapped
//! as `blocks.{i}.attn`, so attention rollout can read them.
//!
//! ```text
//! input                                              (B,   3, 32, 32)
//! patch_embed: conv4x4 s4 3->256                  -> (B, 256,  8,  8) -> tokens (B, 64, 256)
//! [cls_token; tokens] + pos_embed, dropout        -> (B, 65, 256)
//! blocks.0..6: x + attn(norm1(x)); x + mlp(norm2(x))  (B, 65, 256)
//!   attn: qkv Linear 256->768 (no bias), 4 heads of 64, softmax (B, 4, 65, 65), proj 256->256
//!   mlp:  fc1 256->512, GELU, fc2 512->256
//! norm, class token                               -> (B, 256)
//! head: Linear 256->classes                       -> (B, classes)
//! ```
//! Key names follow the PyTorch transcription in `pytorch/models.py`. Parameters (10 classes):
//! 3,716,874. Dropout (`model.dropout`) after the position embeddings, the attention
//! projection and in the MLP; stochastic depth rising linearly to `model.drop_path`.

use rand::Rng;
use tch::nn::{Init, ModuleT, Path};
use tch::{Kind, Tensor};

use super::context::{add_macs, record, tap, with_dropout_rng, TapKind};
use super::layers::{path_name, Conv2d, ConvOpts, Dropout, LayerNorm, Linear};
use super::{ModelArgs, Network};

const DIM: i64 = 256;
const DEPTH: usize = 7;
const HEADS: i64 = 4;
const MLP_RATIO: i64 = 2;
const PATCH: i64 = 4;

#[derive(Debug)]
struct Attention {
    qkv: Linear,
    proj: Linear,
    dropout: Dropout,
    /// `blocks.{i}.attn`: the tap point of the attention probabilities.
    name: String,
}

impl ModuleT for Attention {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let (n, head_dim) = (x.size()[1], DIM / HEADS);
        // (B, N, 3D) -> (3, B, H, N, d); the batch stays -1 so a traced graph keeps it free.
        let qkv = self.qkv.forward_t(x, train).reshape([-1, n, 3, HEADS, head_dim]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let scores = q.matmul(&k.transpose(-2, -1)) * (head_dim as f64).powf(-0.5); // (B, H, N, N)
                                                                                    // Softmax in fp32 (as autocast runs it), back to the activations' dtype for the product.
        let attn = tap(&self.name, TapKind::Attention, scores.softmax(-1, Kind::Float)).to_kind(v.kind());
        let macs = (2 * HEADS * n * n * head_dim) as u64; // q k^T and attn v
        add_macs(macs);
        let y = attn.matmul(&v).transpose(1, 2).reshape([-1, n, DIM]); // (B, N, D)
        record(&self.name, || format!("Attention {HEADS} heads"), &y, &[], macs);
        self.dropout.forward_t(&self.proj.forward_t(&y, train), train)
    }
}

#[derive(Debug)]
struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    dropout: Dropout,
    drop_path: f64,
    /// `blocks.{i}`: a tap point (the block's output tokens).
    name: String,
}

impl Block {
    fn new(p: &Path, dropout: f64, drop_path: f64) -> Self {
        let a = p / "attn";
        let m = p / "mlp";
        Block {
            norm1: LayerNorm::new(&(p / "norm1"), DIM),
            attn: Attention {
                qkv: Linear::no_bias(&(&a / "qkv"), DIM, 3 * DIM),
                proj: Linear::new(&(&a / "proj"), DIM, DIM),
                dropout: Dropout(dropout),
                name: path_name(&a),
            },
            norm2: LayerNorm::new(&(p / "norm2"), DIM),
            fc1: Linear::new(&(&m / "fc1"), DIM, MLP_RATIO * DIM),
            fc2: Linear::new(&(&m / "fc2"), MLP_RATIO * DIM, DIM),
            dropout: Dropout(dropout),
            drop_path,
            name: path_name(p),
        }
    }

    /// The residual branch, dropped per sample with probability `drop_path` in training.
    fn residual(&self, branch: Tensor, train: bool) -> Tensor {
        if !train || self.drop_path == 0.0 {
            return branch;
        }
        let b = branch.size()[0];
        let p = self.drop_path;
        let keep: Vec<f32> =
            with_dropout_rng(|r| (0..b).map(|_| if r.gen::<f64>() >= p { 1.0 } else { 0.0 }).collect());
        let mask = Tensor::from_slice(&keep).view([b, 1, 1]).to_device(branch.device()).to_kind(branch.kind());
        branch * mask * (1.0 / (1.0 - p))
    }
}

impl ModuleT for Block {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // `norm1`'s output is a tap point: Grad-CAM's usual layer for a ViT, whose last block's
        // output tokens other than the class token reach no logit.
        let h = tap(&format!("{}.norm1", self.name), TapKind::Layer, self.norm1.forward_t(x, train));
        let x = x + self.residual(self.attn.forward_t(&h, train), train);
        let h = self.fc1.forward_t(&self.norm2.forward_t(&x, train), train).gelu("none");
        let h = self.dropout.forward_t(&self.fc2.forward_t(&self.dropout.forward_t(&h, train), train), train);
        tap(&self.name, TapKind::Block, &x + self.residual(h, train))
    }
}

#[derive(Debug)]
struct Vit {
    patch_embed: Conv2d,
    cls_token: Tensor,
    pos_embed: Tensor,
    dropout: Dropout,
    blocks: Vec<Block>,
    norm: LayerNorm,
    head: Linear,
}

/// ViT-Lite-7/4 for `args.input_size`-pixel square inputs (`(input_size / 4)^2` patches).
pub fn vit_lite7(p: &Path, args: &ModelArgs) -> Box<dyn Network> {
    let grid = args.input_size / PATCH;
    let opts = ConvOpts { stride: PATCH, padding: 0, groups: 1, bias: true };
    let blocks = (0..DEPTH)
        .map(|i| Block::new(&(p / "blocks" / i), args.dropout, args.drop_path * i as f64 / (DEPTH - 1) as f64))
        .collect();
    // Normal with std 0.02 for the class token and positions (timm truncates it at +-2 std).
    let trunc = Init::Randn { mean: 0.0, stdev: 0.02 };
    Box::new(Vit {
        patch_embed: Conv2d::new(&(p / "patch_embed"), args.in_channels, DIM, PATCH, opts),
        cls_token: p.var("cls_token", &[1, 1, DIM], trunc),
        pos_embed: p.var("pos_embed", &[1, 1 + grid * grid, DIM], trunc),
        dropout: Dropout(args.dropout),
        blocks,
        norm: LayerNorm::new(&(p / "norm"), DIM),
        head: Linear::new(&(p / "head"), DIM, args.num_classes),
    })
}

impl Network for Vit {
    fn cam_layer(&self) -> Option<String> {
        self.blocks.last().map(|b| format!("{}.norm1", b.name))
    }
}

impl ModuleT for Vit {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let tokens = self.patch_embed.forward_t(x, train).flatten(2, -1).transpose(1, 2); // (B, g*g, D)
        let kind = tokens.kind();
        let cls = self.cls_token.expand_as(&tokens.narrow(1, 0, 1)).to_kind(kind); // (B, 1, D)
        let x = Tensor::cat(&[cls, tokens], 1) + self.pos_embed.to_kind(kind); // (B, 1+g*g, D)
        record("cls_token+pos_embed", || "Tokens".into(), &x, &[Some(&self.cls_token), Some(&self.pos_embed)], 0);
        let mut x = self.dropout.forward_t(&x, train);
        for b in &self.blocks {
            x = b.forward_t(&x, train);
        }
        let cls = self.norm.forward_t(&x, train).select(1, 0); // (B, D)
        self.head.forward_t(&cls, train)
    }
}

//! Batched image transforms: each takes a whole batch `(B, C, H, W)` on the compute device and
//! its per-image random parameters as tensors, so the transforms are pure functions (the loader
//! draws the parameters from a seeded generator) and can be tested against a naive reference.

use tch::{Device, Kind, Tensor};

/// Random crop with zero padding: pads by `pad` on every side, then cuts the `H x W` window whose
/// top-left corner is `(dy[b], dx[b])` in the padded image (`0 <= dy, dx <= 2 * pad`).
/// `dy` and `dx` are int64 `(B,)`. Works on any dtype; one gather for the whole batch.
pub fn random_crop(x: &Tensor, pad: i64, dy: &Tensor, dx: &Tensor) -> Tensor {
    let (b, c, h, w) = x.size4().expect("random_crop takes a (B, C, H, W) batch");
    if pad == 0 {
        return x.shallow_clone();
    }
    let dev = x.device();
    let padded = x.constant_pad_nd([pad, pad, pad, pad]); // (B, C, H+2p, W+2p)
    let rows = dy.unsqueeze(1) + Tensor::arange(h, (Kind::Int64, dev)); // (B, H)
    let cols = dx.unsqueeze(1) + Tensor::arange(w, (Kind::Int64, dev)); // (B, W)
    let bi = Tensor::arange(b, (Kind::Int64, dev)).view([b, 1, 1, 1]);
    let ci = Tensor::arange(c, (Kind::Int64, dev)).view([1, c, 1, 1]);
    padded.index(&[Some(bi), Some(ci), Some(rows.view([b, 1, h, 1])), Some(cols.view([b, 1, 1, w]))])
}

/// Random crop with reflect padding (airbench's translate): as [`random_crop`], but the pixels
/// outside the image are its mirror image (`F.pad(x, mode="reflect")`, edge not repeated).
/// Needs `pad < H, W`. One gather, no padded copy: the source row of output row `i` is
/// `reflect(dy + i - pad)`.
pub fn random_crop_reflect(x: &Tensor, pad: i64, dy: &Tensor, dx: &Tensor) -> Tensor {
    let (b, c, h, w) = x.size4().expect("random_crop_reflect takes a (B, C, H, W) batch");
    let dev = x.device();
    let reflect = |offset: &Tensor, n: i64| {
        let i = (offset.unsqueeze(1) + Tensor::arange(n, (Kind::Int64, dev)) - pad).abs(); // (B, n), >= 0
        i.minimum(&(-&i + 2 * (n - 1))) // past the far edge: 2 (n - 1) - i
    };
    let (rows, cols) = (reflect(dy, h), reflect(dx, w));
    let bi = Tensor::arange(b, (Kind::Int64, dev)).view([b, 1, 1, 1]);
    let ci = Tensor::arange(c, (Kind::Int64, dev)).view([1, c, 1, 1]);
    x.index(&[Some(bi), Some(ci), Some(rows.view([b, 1, h, 1])), Some(cols.view([b, 1, 1, w]))])
}

/// Horizontal flip of the images whose entry in `mask` (bool `(B,)`) is true.
pub fn hflip(x: &Tensor, mask: &Tensor) -> Tensor {
    let b = x.size()[0];
    x.flip([3]).where_self(&mask.view([b, 1, 1, 1]), x)
}

/// Downscales a float batch `(B, C, H, W)` to `size x size` with antialiased bilinear
/// interpolation (torchvision's `Resize(size, antialias=True)` on tensors); progressive resizing
/// trains early epochs on such smaller views. A batch already at that size is returned as is.
pub fn resize(x: &Tensor, size: i64) -> Tensor {
    let s = x.size();
    if s[2] == size && s[3] == size {
        return x.shallow_clone();
    }
    x.internal_upsample_bilinear2d_aa([size, size], false, None, None)
}

/// uint8 `[0, 255]` -> float `(x / 255 - mean) / std`, per channel, as one fused multiply-add.
pub fn normalize(x: &Tensor, mean: &[f64], std: &[f64]) -> Tensor {
    let (dev, c) = (x.device(), mean.len() as i64);
    let scale: Vec<f32> = std.iter().map(|s| (1.0 / (255.0 * s)) as f32).collect();
    let shift: Vec<f32> = mean.iter().zip(std).map(|(m, s)| (-m / s) as f32).collect();
    let scale = Tensor::from_slice(&scale).view([1, c, 1, 1]).to_device(dev);
    let shift = Tensor::from_slice(&shift).view([1, c, 1, 1]).to_device(dev);
    x.to_kind(Kind::Float) * scale + shift
}

/// Per-image random parameters of one batch: crop offsets and flip decisions.
#[derive(Debug)]
pub struct AugmentParams {
    /// Crop row offsets, int64 `(B,)`.
    pub dy: Tensor,
    /// Crop column offsets, int64 `(B,)`.
    pub dx: Tensor,
    /// Flip mask, bool `(B,)`.
    pub flip: Tensor,
}

impl AugmentParams {
    /// Packs host-side draws into tensors on `device`.
    pub fn new(dy: &[i64], dx: &[i64], flip: &[bool], device: Device) -> Self {
        AugmentParams {
            dy: Tensor::from_slice(dy).to_device(device),
            dx: Tensor::from_slice(dx).to_device(device),
            flip: Tensor::from_slice(flip).to_device(device),
        }
    }
}

/// The standard CIFAR train transform: crop with `pad` padding, then flip.
pub fn crop_flip(x: &Tensor, pad: i64, p: &AugmentParams) -> Tensor {
    hflip(&random_crop(x, pad, &p.dy, &p.dx), &p.flip)
}

pub use crate::device::channels_last;

//! The image operations of AutoAugment, RandAugment and TrivialAugment, on uint8 batches
//! `(B, C, H, W)` with one magnitude per image, computed as torchvision's tensor functional does
//! (`torchvision.transforms.autoaugment._apply_op`: same float32 arithmetic, truncating and
//! rounding casts, nearest-neighbour affine warps with zero fill, the same equalisation table),
//! so that each operation's output equals torchvision's on the same image and magnitude
//! (tests/data_policies.rs checks every one against torchvision).

use tch::{Device, Kind, Tensor};

/// An operation of the augmentation spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// No change.
    Identity,
    /// Shear along x by `atan(magnitude)` (centre at the top-left corner).
    ShearX,
    /// Shear along y.
    ShearY,
    /// Shift by `int(magnitude)` pixels along x.
    TranslateX,
    /// Shift along y.
    TranslateY,
    /// Rotate by `magnitude` degrees (counter-clockwise) about the centre.
    Rotate,
    /// Brightness factor `1 + magnitude`.
    Brightness,
    /// Saturation factor `1 + magnitude`.
    Color,
    /// Contrast factor `1 + magnitude`.
    Contrast,
    /// Sharpness factor `1 + magnitude`.
    Sharpness,
    /// Keep `magnitude` bits.
    Posterize,
    /// Invert pixels at or above `magnitude`.
    Solarize,
    /// Stretch each channel to [0, 255].
    AutoContrast,
    /// Histogram-equalise each channel.
    Equalize,
    /// `255 - x`.
    Invert,
}

/// Applies `op` to each image of the uint8 batch `x` with its own magnitude.
pub fn apply(x: &Tensor, op: Op, mags: &[f64]) -> Tensor {
    let b = x.size()[0];
    let per_image = |v: Vec<f64>| {
        Tensor::from_slice(&v.iter().map(|&m| m as f32).collect::<Vec<_>>()).view([b, 1, 1, 1]).to_device(x.device())
    };
    match op {
        Op::Identity => x.shallow_clone(),
        Op::ShearX | Op::ShearY | Op::TranslateX | Op::TranslateY | Op::Rotate => warp(x, op, mags),
        Op::Brightness | Op::Color | Op::Contrast | Op::Sharpness => {
            let other = match op {
                Op::Brightness => x.zeros_like(),
                Op::Color => grayscale_u8(x),
                Op::Contrast => {
                    grayscale_u8(x).to_kind(Kind::Float).mean_dim([1i64, 2, 3].as_slice(), true, Kind::Float)
                }
                _ => blurred(x),
            };
            // Factor and 1 - factor in f64, then to float32, as torchvision's Python floats are.
            let factor: Vec<f64> = mags.iter().map(|m| 1.0 + m).collect();
            blend(x, &other, &per_image(factor.clone()), &per_image(factor.iter().map(|f| 1.0 - f).collect()))
        }
        Op::Posterize => {
            let masks: Vec<u8> = mags.iter().map(|&bits| (256 - (1i64 << (8 - bits as i64))) as u8).collect();
            x.bitwise_and_tensor(&Tensor::from_slice(&masks).view([b, 1, 1, 1]).to_device(x.device()))
        }
        Op::Solarize => {
            let t = per_image(mags.to_vec());
            x.bitwise_not().where_self(&x.to_kind(Kind::Float).ge_tensor(&t), x)
        }
        Op::AutoContrast => autocontrast(x),
        Op::Equalize => equalize(x),
        Op::Invert => x.bitwise_not(),
    }
}

/// torchvision `_blend` for uint8: `(r * a + (1 - r) * b).clamp(0, 255)`, truncated to uint8.
fn blend(a: &Tensor, b: &Tensor, ratio: &Tensor, one_minus: &Tensor) -> Tensor {
    (a * ratio + b * one_minus).clamp(0.0, 255.0).to_kind(Kind::Uint8)
}

/// torchvision `rgb_to_grayscale` for uint8: `0.2989 r + 0.587 g + 0.114 b`, truncated.
fn grayscale_u8(x: &Tensor) -> Tensor {
    let (r, g, bl) = (x.select(1, 0), x.select(1, 1), x.select(1, 2));
    (r * 0.2989 + g * 0.587 + bl * 0.114).to_kind(Kind::Uint8).unsqueeze(1)
}

/// The smoothed image `adjust_sharpness` blends with: a 3x3 kernel (1 1 1 / 1 5 1 / 1 1 1) / 13 on
/// the interior, rounded; the one-pixel border unchanged.
fn blurred(x: &Tensor) -> Tensor {
    let c = x.size()[1];
    let k = Tensor::ones([3, 3], (Kind::Float, x.device()));
    let _ = k.get(1).get(1).fill_(5.0);
    let k = (&k / k.sum(Kind::Float)).expand([c, 1, 3, 3], false);
    let inner = x.to_kind(Kind::Float).conv2d(&k, None::<Tensor>, [1], [0], [1], c).round().to_kind(Kind::Uint8);
    let (h, w) = (x.size()[2], x.size()[3]);
    let out = x.copy();
    out.narrow(2, 1, h - 2).narrow(3, 1, w - 2).copy_(&inner);
    out
}

fn autocontrast(x: &Tensor) -> Tensor {
    let min = x.amin([2i64, 3].as_slice(), true).to_kind(Kind::Float);
    let max = x.amax([2i64, 3].as_slice(), true).to_kind(Kind::Float);
    let scale = (&max - &min).reciprocal() * 255.0;
    let flat = scale.isfinite().logical_not();
    let min = min.masked_fill(&flat, 0.0);
    let scale = scale.masked_fill(&flat, 1.0);
    ((x - min) * scale).clamp(0.0, 255.0).to_kind(Kind::Uint8)
}

/// torchvision `equalize`: per channel, a lookup table from the cumulative histogram, in integer
/// arithmetic (exact), computed on the host.
fn equalize(x: &Tensor) -> Tensor {
    let (b, c, h, w) = x.size4().expect("(B, C, H, W)");
    let mut px = Vec::<u8>::try_from(x.to_device(Device::Cpu).contiguous().flatten(0, -1)).unwrap_or_default();
    for chan in px.chunks_mut((h * w) as usize) {
        let mut hist = [0i64; 256];
        chan.iter().for_each(|&v| hist[v as usize] += 1);
        let last = hist.iter().rposition(|&n| n != 0).unwrap_or(0);
        let step = (hist.iter().sum::<i64>() - hist[last]) / 255;
        if step == 0 {
            continue;
        }
        let mut lut = [0u8; 256];
        let mut cum = 0;
        for v in 0..255 {
            cum += hist[v];
            lut[v + 1] = ((cum + step / 2) / step).clamp(0, 255) as u8;
        }
        chan.iter_mut().for_each(|v| *v = lut[*v as usize]);
    }
    Tensor::from_slice(&px).view([b, c, h, w]).to_device(x.device())
}

/// The inverse affine matrix of torchvision's `_get_inverse_affine_matrix`.
fn inverse_affine(center: (f64, f64), angle: f64, translate: (f64, f64), shear: (f64, f64)) -> [f64; 6] {
    let (rot, sx, sy) = (angle.to_radians(), shear.0.to_radians(), shear.1.to_radians());
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0];
    let ((cx, cy), (tx, ty)) = (center, translate);
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

/// The matrix of a geometric op, as `_apply_op` calls `F.affine` / `F.rotate` for a `w x h` image.
fn op_matrix(op: Op, m: f64, w: i64, h: i64) -> [f64; 6] {
    let corner = (-(w as f64) * 0.5, -(h as f64) * 0.5); // center=[0, 0] in F.affine's convention
    match op {
        Op::ShearX => inverse_affine(corner, 0.0, (0.0, 0.0), (m.atan().to_degrees(), 0.0)),
        Op::ShearY => inverse_affine(corner, 0.0, (0.0, 0.0), (0.0, m.atan().to_degrees())),
        Op::TranslateX => inverse_affine((0.0, 0.0), 0.0, (m.trunc(), 0.0), (0.0, 0.0)),
        Op::TranslateY => inverse_affine((0.0, 0.0), 0.0, (0.0, m.trunc()), (0.0, 0.0)),
        _ => inverse_affine((0.0, 0.0), -m, (0.0, 0.0), (0.0, 0.0)), // Rotate
    }
}

/// torchvision `_gen_affine_grid` for one image (float32, the same operations in the same order).
fn affine_grid(matrix: &[f64; 6], w: i64, h: i64, dev: Device) -> Tensor {
    let theta = Tensor::from_slice(&matrix.map(|v| v as f32)).view([1, 2, 3]).to_device(dev);
    let base = Tensor::empty([1, h, w, 3], (Kind::Float, dev));
    let xs = Tensor::linspace(-(w as f64) * 0.5 + 0.5, w as f64 * 0.5 + 0.5 - 1.0, w, (Kind::Float, dev));
    let ys = Tensor::linspace(-(h as f64) * 0.5 + 0.5, h as f64 * 0.5 + 0.5 - 1.0, h, (Kind::Float, dev));
    base.select(3, 0).copy_(&xs);
    base.select(3, 1).copy_(&ys.unsqueeze(-1));
    let _ = base.select(3, 2).fill_(1.0);
    let scale = Tensor::from_slice(&[0.5 * w as f32, 0.5 * h as f32]).to_device(dev);
    let rescaled = theta.transpose(1, 2) / scale;
    base.view([1, h * w, 3]).bmm(&rescaled).view([1, h, w, 2])
}

/// Nearest-neighbour warp with zero fill, one matrix per image, rounded back to uint8.
fn warp(x: &Tensor, op: Op, mags: &[f64]) -> Tensor {
    let (_, _, h, w) = x.size4().expect("(B, C, H, W)");
    let grids: Vec<Tensor> = mags.iter().map(|&m| affine_grid(&op_matrix(op, m, w, h), w, h, x.device())).collect();
    let grid = Tensor::cat(&grids, 0);
    // grid_sampler(input, grid, interpolation 1 = nearest, padding 0 = zeros, align_corners false)
    x.to_kind(Kind::Float).grid_sampler(&grid, 1, 0, false).round().to_kind(Kind::Uint8)
}

//! The recipe augmentations beyond crop and flip, batched on the compute device: a policy
//! (AutoAugment, RandAugment, TrivialAugment; see [`super::policies`]), colour jitter, Cutout,
//! Random Erasing, Mixup and CutMix. Each transform is a pure function of the batch and
//! per-image parameters; [`draw`] draws those parameters on the host from the loader's seeded
//! generator, so every epoch's augmentations are reproducible and resumable.
//!
//! References: Cutout (DeVries & Taylor 2017, arXiv 1708.04552), Random Erasing (Zhong et al.
//! 2020, AAAI; torchvision `RandomErasing` defaults), Mixup (Zhang et al. 2018, ICLR), CutMix
//! (Yun et al. 2019, ICCV), colour jitter as torchvision's `adjust_brightness/contrast/saturation`.

use rand::Rng;
use rand_distr::{Beta, Distribution};
use rand_pcg::Pcg64;
use tch::{Device, Kind, Tensor};

use super::policies::{Chain, Policy};
use crate::config::{AugmentConfig, AugmentPolicy};

/// Rectangles to erase, `(y0, x0, y1, x1)` with exclusive ends; `y0 == y1` is "none".
pub type Boxes = Vec<[i64; 4]>;

/// Sets the pixels inside each image's boxes to 0 (after normalisation: the dataset mean).
/// `boxes` has `m` boxes per image, image-major (`boxes.len() == B * m`).
pub fn erase(x: &Tensor, boxes: &[[i64; 4]], m: usize) -> Tensor {
    let (b, _, h, w) = x.size4().expect("erase takes a (B, C, H, W) batch");
    let dev = x.device();
    let flat: Vec<i64> = boxes.iter().flatten().copied().collect();
    let bx = Tensor::from_slice(&flat).view([b, m as i64, 4]).to_device(dev);
    let rows = Tensor::arange(h, (Kind::Int64, dev)).view([1, 1, h, 1]);
    let cols = Tensor::arange(w, (Kind::Int64, dev)).view([1, 1, 1, w]);
    let part = |i: i64| bx.select(2, i).view([b, m as i64, 1, 1]);
    let inside =
        rows.ge_tensor(&part(0)) * rows.lt_tensor(&part(2)) * cols.ge_tensor(&part(1)) * cols.lt_tensor(&part(3));
    let keep = inside.any_dim(1, true).logical_not(); // (B, 1, H, W)
    x * keep.to_kind(x.kind())
}

/// Colour jitter on float images in [0, 1]: per image, brightness, then contrast, then saturation
/// factors (`factors` is `(B, 3)`), each result clamped to [0, 1] as torchvision does.
pub fn color_jitter(x: &Tensor, factors: &Tensor) -> Tensor {
    let b = x.size()[0];
    let f = |i: i64| factors.select(1, i).view([b, 1, 1, 1]).to_kind(x.kind());
    let x = (x * f(0)).clamp(0.0, 1.0);
    let mean = grayscale(&x).mean_dim([1i64, 2, 3].as_slice(), true, x.kind());
    let rest = |i: i64| -f(i) + 1.0;
    let x: Tensor = (&x * f(1) + mean * rest(1)).clamp(0.0, 1.0);
    let gray = grayscale(&x);
    (&x * f(2) + gray * rest(2)).clamp(0.0, 1.0)
}

/// ITU-R 601-2 luma, as torchvision's `rgb_to_grayscale`: `(B, 3, H, W)` -> `(B, 1, H, W)`.
pub fn grayscale(x: &Tensor) -> Tensor {
    let w = Tensor::from_slice(&[0.2989f32, 0.587, 0.114]).view([1, 3, 1, 1]).to_device(x.device()).to_kind(x.kind());
    (x * w).sum_dim_intlist([1i64].as_slice(), true, x.kind())
}

/// Mixup: `lam * x + (1 - lam) * x[perm]`, and the same for the (one-hot or soft) targets.
pub fn mixup(x: &Tensor, targets: &Tensor, lam: f64, perm: &Tensor) -> (Tensor, Tensor) {
    let mix = |t: &Tensor| t * lam + t.index_select(0, perm) * (1.0 - lam);
    (mix(x), mix(targets))
}

/// CutMix: the box `(y0, x0, y1, x1)` of every image is replaced by the same box of `x[perm]`;
/// targets mix by the kept area fraction `lam = 1 - box area / image area`.
pub fn cutmix(x: &Tensor, targets: &Tensor, bx: [i64; 4], perm: &Tensor) -> (Tensor, Tensor) {
    let (_, _, h, w) = x.size4().expect("cutmix takes a (B, C, H, W) batch");
    let [y0, x0, y1, x1] = bx;
    let dev = x.device();
    let rows = Tensor::arange(h, (Kind::Int64, dev)).view([1, 1, h, 1]);
    let cols = Tensor::arange(w, (Kind::Int64, dev)).view([1, 1, 1, w]);
    let inside = rows.ge(y0) * rows.lt(y1) * cols.ge(x0) * cols.lt(x1);
    let mixed = x.index_select(0, perm).where_self(&inside, x);
    let lam = 1.0 - ((y1 - y0) * (x1 - x0)) as f64 / (h * w) as f64;
    (mixed, targets * lam + targets.index_select(0, perm) * (1.0 - lam))
}

/// How a batch is mixed.
#[derive(Debug, Clone, PartialEq)]
pub enum Mix {
    /// Mixup with this weight of the batch itself.
    Mixup(f64),
    /// CutMix with this box.
    CutMix([i64; 4]),
}

/// One batch's augmentation draws (besides crop and flip).
#[derive(Debug, Clone, Default)]
pub struct Draws {
    /// Policy operation chains per image (AutoAugment, RandAugment, TrivialAugment).
    pub chains: Option<Vec<Chain>>,
    /// Colour-jitter factors per image (brightness, contrast, saturation).
    pub jitter: Option<Vec<[f32; 3]>>,
    /// Cutout boxes, `cutout_count` per image.
    pub cutout: Option<Boxes>,
    /// Random Erasing boxes, one per image (possibly empty).
    pub erasing: Option<Boxes>,
    /// Mixing of the batch with a permutation of itself.
    pub mix: Option<(Mix, Vec<i64>)>,
}

impl Draws {
    /// The draws of images `start..start + len` of a batch of `b` (one rank's slice). A mixed
    /// slice pairs its own images, reversed, as [`draw`] pairs a whole batch.
    pub fn slice(self, b: usize, start: usize, len: usize) -> Draws {
        fn part<T: Clone>(v: &[T], start: usize, len: usize, per: usize) -> Vec<T> {
            v[start * per..(start + len) * per].to_vec()
        }
        let per_cutout = self.cutout.as_ref().map_or(1, |c| c.len() / b.max(1));
        Draws {
            chains: self.chains.map(|c| part(&c, start, len, 1)),
            jitter: self.jitter.map(|j| part(&j, start, len, 1)),
            cutout: self.cutout.map(|c| part(&c, start, len, per_cutout)),
            erasing: self.erasing.map(|e| part(&e, start, len, 1)),
            mix: self.mix.map(|(mix, _)| (mix, (0..len as i64).rev().collect())),
        }
    }
}

/// Draws the parameters of one batch of `b` images of `h x w` pixels.
pub fn draw(c: &AugmentConfig, b: usize, h: i64, w: i64, rng: &mut Pcg64) -> Draws {
    let mut d = Draws::default();
    let policy = match c.policy {
        AugmentPolicy::AutoAugment => Some(Policy::AutoAugment),
        AugmentPolicy::RandAugment => {
            Some(Policy::RandAugment { n: c.randaugment_n as usize, m: c.randaugment_m as usize })
        }
        AugmentPolicy::TrivialAugment => Some(Policy::TrivialAugment),
        AugmentPolicy::None => None,
    };
    if let Some(p) = policy {
        d.chains = Some(super::policies::draw(p, b, (h, w), rng));
    }
    let (bj, cj, sj) = (c.brightness, c.contrast, c.saturation);
    if bj > 0.0 || cj > 0.0 || sj > 0.0 {
        let mut factor = |j: f64| if j > 0.0 { rng.gen_range((1.0 - j).max(0.0)..=1.0 + j) as f32 } else { 1.0 };
        d.jitter = Some((0..b).map(|_| [factor(bj), factor(cj), factor(sj)]).collect());
    }
    if c.cutout > 0 {
        d.cutout = Some((0..b * c.cutout_count as usize).map(|_| cutout_box(c.cutout, h, w, rng)).collect());
    }
    if c.random_erasing > 0.0 {
        d.erasing = Some((0..b).map(|_| erasing_box(c.random_erasing, h, w, rng)).collect());
    }
    let (ma, ca) = (c.mixup_alpha, c.cutmix_alpha);
    if (ma > 0.0 || ca > 0.0) && rng.gen_bool(c.mix_prob) {
        // Both on: CutMix or Mixup with equal chance per batch (timm's switch_prob = 0.5).
        let use_cutmix = ca > 0.0 && (ma == 0.0 || rng.gen_bool(0.5));
        let alpha = if use_cutmix { ca } else { ma };
        let lam = Beta::new(alpha, alpha).map_or(0.5, |beta| beta.sample(rng));
        let mix = if use_cutmix { Mix::CutMix(cutmix_box(lam, h, w, rng)) } else { Mix::Mixup(lam) };
        // Partner = the batch reversed (as timm): a fixed pairing that costs no extra draw.
        let perm = (0..b as i64).rev().collect();
        d.mix = Some((mix, perm));
    }
    d
}

/// Cutout: a `size x size` square centred anywhere in the image, clipped at the borders.
fn cutout_box(size: i64, h: i64, w: i64, rng: &mut Pcg64) -> [i64; 4] {
    let (cy, cx) = (rng.gen_range(0..h), rng.gen_range(0..w));
    [(cy - size / 2).clamp(0, h), (cx - size / 2).clamp(0, w), (cy + size / 2).clamp(0, h), (cx + size / 2).clamp(0, w)]
}

/// torchvision `RandomErasing(p, scale=(0.02, 0.33), ratio=(0.3, 3.3))`: with probability `p`, a
/// rectangle of random area and aspect ratio (10 tries to fit, else none).
fn erasing_box(p: f64, h: i64, w: i64, rng: &mut Pcg64) -> [i64; 4] {
    if !rng.gen_bool(p) {
        return [0; 4];
    }
    let area = (h * w) as f64;
    let (lr0, lr1) = (0.3f64.ln(), 3.3f64.ln());
    for _ in 0..10 {
        let target = area * rng.gen_range(0.02..0.33);
        let aspect = rng.gen_range(lr0..lr1).exp();
        let (eh, ew) = ((target * aspect).sqrt().round() as i64, (target / aspect).sqrt().round() as i64);
        if eh < h && ew < w && eh > 0 && ew > 0 {
            let (y, x) = (rng.gen_range(0..=h - eh), rng.gen_range(0..=w - ew));
            return [y, x, y + eh, x + ew];
        }
    }
    [0; 4]
}

/// CutMix box: side fractions `sqrt(1 - lam)`, centred anywhere, clipped (Yun et al. 2019).
fn cutmix_box(lam: f64, h: i64, w: i64, rng: &mut Pcg64) -> [i64; 4] {
    let r = (1.0 - lam).sqrt();
    let (ch, cw) = ((h as f64 * r) as i64, (w as f64 * r) as i64);
    let (cy, cx) = (rng.gen_range(0..h), rng.gen_range(0..w));
    [(cy - ch / 2).clamp(0, h), (cx - cw / 2).clamp(0, w), (cy + ch / 2).clamp(0, h), (cx + cw / 2).clamp(0, w)]
}

/// Applies the float-domain draws (after normalisation): Cutout, Random Erasing, mixing. Returns
/// the images and, when the batch was mixed, soft targets `(B, classes)`.
pub fn apply_normalized(x: Tensor, labels: &Tensor, d: &Draws, classes: i64) -> (Tensor, Option<Tensor>) {
    let mut x = x;
    let b = x.size()[0] as usize;
    if let Some(boxes) = &d.cutout {
        x = erase(&x, boxes, boxes.len() / b.max(1));
    }
    if let Some(boxes) = &d.erasing {
        x = erase(&x, boxes, 1);
    }
    let Some((mix, perm)) = &d.mix else { return (x, None) };
    let dev: Device = x.device();
    let onehot = labels.one_hot(classes).to_kind(Kind::Float);
    let perm = Tensor::from_slice(perm).to_device(dev);
    let (x, t) = match mix {
        Mix::Mixup(lam) => mixup(&x, &onehot, *lam, &perm),
        Mix::CutMix(bx) => cutmix(&x, &onehot, *bx, &perm),
    };
    (x, Some(t))
}

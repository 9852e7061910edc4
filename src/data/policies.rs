//! Learned and random augmentation policies, as torchvision implements them:
//! AutoAugment with the CIFAR-10 policy (Cubuk et al. 2019, arXiv 1805.09501), RandAugment
//! (Cubuk et al. 2020, arXiv 1909.13719; N ops at magnitude M of 31 bins) and TrivialAugment
//! (Müller & Hutter 2021, arXiv 2103.10158; one op, random magnitude, the "wide" space).
//! The choices are drawn per image from the loader's seeded generator; the operations themselves
//! are [`super::image_ops`], equal to torchvision's.

use rand::Rng;
use rand_pcg::Pcg64;
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

use super::image_ops::{apply, Op};
use Op::*;

/// AutoAugment's CIFAR-10 policy: 25 sub-policies of two `(op, probability, magnitude bin)`.
#[rustfmt::skip]
pub const CIFAR10_POLICY: [[(Op, f64, usize); 2]; 25] = [
    [(Invert, 0.1, 0), (Contrast, 0.2, 6)], [(Rotate, 0.7, 2), (TranslateX, 0.3, 9)],
    [(Sharpness, 0.8, 1), (Sharpness, 0.9, 3)], [(ShearY, 0.5, 8), (TranslateY, 0.7, 9)],
    [(AutoContrast, 0.5, 0), (Equalize, 0.9, 0)], [(ShearY, 0.2, 7), (Posterize, 0.3, 7)],
    [(Color, 0.4, 3), (Brightness, 0.6, 7)], [(Sharpness, 0.3, 9), (Brightness, 0.7, 9)],
    [(Equalize, 0.6, 0), (Equalize, 0.5, 0)], [(Contrast, 0.6, 7), (Sharpness, 0.6, 5)],
    [(Color, 0.7, 7), (TranslateX, 0.5, 8)], [(Equalize, 0.3, 0), (AutoContrast, 0.4, 0)],
    [(TranslateY, 0.4, 3), (Sharpness, 0.2, 6)], [(Brightness, 0.9, 6), (Color, 0.2, 8)],
    [(Solarize, 0.5, 2), (Invert, 0.0, 0)], [(Equalize, 0.2, 0), (AutoContrast, 0.6, 0)],
    [(Equalize, 0.2, 0), (Equalize, 0.6, 0)], [(Color, 0.9, 9), (Equalize, 0.6, 0)],
    [(AutoContrast, 0.8, 0), (Solarize, 0.2, 8)], [(Brightness, 0.1, 3), (Color, 0.7, 0)],
    [(Solarize, 0.4, 5), (AutoContrast, 0.9, 0)], [(TranslateY, 0.9, 9), (TranslateY, 0.7, 9)],
    [(AutoContrast, 0.9, 0), (Solarize, 0.8, 3)], [(Equalize, 0.8, 0), (Invert, 0.1, 0)],
    [(TranslateY, 0.7, 9), (AutoContrast, 0.9, 0)],
];

/// The ops RandAugment and TrivialAugment choose from, in torchvision's order.
pub const RANDOM_OPS: [Op; 14] = [
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    Brightness,
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
];

/// Which augmentation space: AutoAugment/RandAugment's or TrivialAugment's wide one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Magnitude ranges of AutoAugment and RandAugment.
    Standard,
    /// TrivialAugmentWide's larger ranges.
    Wide,
}

/// Magnitude of `op` at `bin` of `bins` for an `h x w` image, and whether it takes a random sign
/// (torchvision's `_augmentation_space`; linspace in float32 as torch computes it).
pub fn magnitude(op: Op, bin: usize, bins: usize, space: Space, (h, w): (i64, i64)) -> (f64, bool) {
    let lin = |end: f64| linspace_f32(0.0, end, bins)[bin];
    let wide = space == Space::Wide;
    match op {
        ShearX | ShearY => (lin(if wide { 0.99 } else { 0.3 }), true),
        TranslateX => (lin(if wide { 32.0 } else { 150.0 / 331.0 * w as f64 }), true),
        TranslateY => (lin(if wide { 32.0 } else { 150.0 / 331.0 * h as f64 }), true),
        Rotate => (lin(if wide { 135.0 } else { 30.0 }), true),
        Brightness | Color | Contrast | Sharpness => (lin(if wide { 0.99 } else { 0.9 }), true),
        Posterize => {
            let div = (bins as f32 - 1.0) / if wide { 6.0 } else { 4.0 };
            (8.0 - (bin as f32 / div).round() as f64, false)
        }
        Solarize => (linspace_f32(255.0, 0.0, bins)[bin], false),
        Identity | AutoContrast | Equalize | Invert => (0.0, false),
    }
}

/// `torch.linspace(start, end, n)` in float32, read back as f64 (memoised: the draws ask often).
fn linspace_f32(start: f64, end: f64, n: usize) -> Vec<f64> {
    thread_local! {
        static CACHE: std::cell::RefCell<HashMap<(u64, u64, usize), Vec<f64>>> = Default::default();
    }
    CACHE.with(|c| {
        c.borrow_mut()
            .entry((start.to_bits(), end.to_bits(), n))
            .or_insert_with(|| {
                let t = Tensor::linspace(start, end, n as i64, (Kind::Float, Device::Cpu));
                Vec::<f32>::try_from(t).unwrap_or_default().into_iter().map(f64::from).collect()
            })
            .clone()
    })
}

/// A policy from the config: `"autoaugment"`, `"randaugment"` (with `n`, `m`) or `"trivialaugment"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// AutoAugment, CIFAR-10 policy.
    AutoAugment,
    /// RandAugment: `n` ops at magnitude bin `m` of 31.
    RandAugment {
        /// Ops per image.
        n: usize,
        /// Magnitude bin.
        m: usize,
    },
    /// TrivialAugmentWide.
    TrivialAugment,
}

/// The ops (with magnitudes) one image gets, in order.
pub type Chain = Vec<(Op, f64)>;

/// Draws the op chain of each of `b` images of size `hw`.
pub fn draw(policy: Policy, b: usize, hw: (i64, i64), rng: &mut Pcg64) -> Vec<Chain> {
    let signed = |(m, s): (f64, bool), rng: &mut Pcg64| if s && rng.gen_bool(0.5) { -m } else { m };
    (0..b)
        .map(|_| match policy {
            Policy::AutoAugment => {
                let sub = &CIFAR10_POLICY[rng.gen_range(0..CIFAR10_POLICY.len())];
                sub.iter()
                    .filter_map(|&(op, p, bin)| {
                        let apply = rng.gen_bool(p);
                        let m = signed(magnitude(op, bin, 10, Space::Standard, hw), rng);
                        apply.then_some((op, m))
                    })
                    .collect()
            }
            Policy::RandAugment { n, m } => (0..n)
                .map(|_| {
                    let op = RANDOM_OPS[rng.gen_range(0..RANDOM_OPS.len())];
                    (op, signed(magnitude(op, m, 31, Space::Standard, hw), rng))
                })
                .collect(),
            Policy::TrivialAugment => {
                let op = RANDOM_OPS[rng.gen_range(0..RANDOM_OPS.len())];
                let bin = rng.gen_range(0..31);
                vec![(op, signed(magnitude(op, bin, 31, Space::Wide, hw), rng))]
            }
        })
        .collect()
}

/// Applies each image's chain to the uint8 batch `x`: position by position, the images that
/// share an op at that position are transformed together.
pub fn apply_chains(x: &Tensor, chains: &[Chain]) -> Tensor {
    let mut x = x.shallow_clone();
    let longest = chains.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..longest {
        let mut groups: HashMap<Op, (Vec<i64>, Vec<f64>)> = HashMap::new();
        for (i, chain) in chains.iter().enumerate() {
            if let Some(&(op, m)) = chain.get(k) {
                let g = groups.entry(op).or_default();
                g.0.push(i as i64);
                g.1.push(m);
            }
        }
        let mut groups: Vec<_> = groups.into_iter().filter(|(op, _)| *op != Identity).collect();
        groups.sort_by_key(|(_, (idx, _))| idx[0]); // a fixed order (HashMap order is random)
        for (op, (idx, mags)) in groups {
            let idx = Tensor::from_slice(&idx).to_device(x.device());
            let out = apply(&x.index_select(0, &idx), op, &mags);
            x = x.index_copy(0, &idx, &out);
        }
    }
    x
}

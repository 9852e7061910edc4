//! The batch loader: a seeded permutation per epoch, one gather per batch, batched augmentation and
//! normalisation on the compute device, and a background thread that prepares the next batches
//! while the model computes.
//!
//! All randomness (shuffle order, crop offsets, flips) is drawn on the host from a PCG generator
//! seeded by `(seed, epoch)`, so an epoch's batches depend on nothing else: resuming at epoch `e`
//! reproduces them exactly without saving generator state.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;
use tch::{Device, Kind, Tensor};

use super::augment::{self, Draws};
use super::transforms::{crop_flip, hflip, normalize, random_crop_reflect, resize, AugmentParams};
use super::Dataset;
use crate::config::AugmentConfig;
use crate::seed::mix;

/// How batches are made.
#[derive(Debug, Clone)]
pub struct LoaderSpec {
    /// Images per batch.
    pub batch_size: i64,
    /// Shuffle every epoch.
    pub shuffle: bool,
    /// Random crop padding and horizontal flip; `None` = no augmentation.
    pub augment_pad: Option<i64>,
    /// Flip horizontally (half of the images) as part of the augmentation.
    pub hflip: bool,
    /// Reflect padding for the random crop instead of zeros.
    pub reflect: bool,
    /// Alternating flips: a fixed random half of the images (by index) flipped in odd epochs,
    /// the other half in even ones, instead of a fresh coin per image and epoch.
    pub alternate_flip: bool,
    /// Drop the last incomplete batch (training) or keep it (evaluation).
    pub drop_last: bool,
    /// Per-channel normalisation mean.
    pub mean: Vec<f64>,
    /// Per-channel normalisation std.
    pub std: Vec<f64>,
    /// Produce channels_last tensors.
    pub channels_last: bool,
    /// Batches prepared ahead on a background thread (0 = prepare inline).
    pub prefetch: usize,
    /// Base seed.
    pub seed: u64,
    /// Recipe augmentations (colour jitter, Cutout, Random Erasing, Mixup, CutMix); applied only
    /// when `augment_pad` is set (training).
    pub augment: AugmentConfig,
    /// Classes, for the soft targets of mixed batches.
    pub num_classes: i64,
    /// Progressive resizing: the image side of each epoch (1-based) in order; epochs past the
    /// list keep the stored size. Empty = off.
    pub train_sizes: Vec<i64>,
}

/// Every image side a training loader for `data` produces, ascending and distinct: `input_size`
/// and the progressive-resizing `train_sizes`.
pub fn train_sides(data: &crate::config::DataConfig) -> Vec<i64> {
    let mut sides = data.train_sizes.clone();
    sides.push(data.input_size);
    sides.sort_unstable();
    sides.dedup();
    sides
}

impl LoaderSpec {
    /// An evaluation loader's spec: every image in order (last batch kept), unaugmented,
    /// normalised by `mean`/`std`, prepared inline.
    pub fn evaluation(batch_size: i64, mean: Vec<f64>, std: Vec<f64>, channels_last: bool) -> Self {
        LoaderSpec {
            batch_size,
            shuffle: false,
            augment_pad: None,
            hflip: false,
            reflect: false,
            alternate_flip: false,
            drop_last: false,
            mean,
            std,
            channels_last,
            prefetch: 0,
            seed: 0,
            augment: AugmentConfig::default(),
            num_classes: 0,
            train_sizes: Vec::new(),
        }
    }
}

/// One training or evaluation batch, ready for the model.
#[derive(Debug)]
pub struct Batch {
    /// Normalised images, float `(B, C, H, W)`, channels_last when asked.
    pub images: Tensor,
    /// Labels, int64 `(B,)`.
    pub labels: Tensor,
    /// Soft targets `(B, classes)` when the batch was mixed (Mixup/CutMix); the loss then uses
    /// them instead of `labels`.
    pub targets: Option<Tensor>,
}

/// Iterates a dataset in batches.
#[derive(Debug)]
pub struct Loader {
    images: Tensor,
    labels: Tensor,
    spec: LoaderSpec,
    height: i64,
    width: i64,
    /// This process's part of every batch: `(rank, world)`; `(0, 1)` = the whole batch.
    shard: (usize, usize),
}

/// Host-side description of one batch: which images and their augmentation draws.
struct Plan {
    idx: Vec<i64>,
    aug: Option<(Vec<i64>, Vec<i64>, Vec<bool>)>,
    draws: Draws,
}

impl Loader {
    /// A loader over `data`, whose tensors should already be on the compute device.
    pub fn new(data: &Dataset, spec: LoaderSpec) -> Self {
        let (_, _, height, width) = data.images.size4().unwrap_or((0, 0, 0, 0));
        let (images, labels) = (data.images.shallow_clone(), data.labels.shallow_clone());
        Loader { images, labels, spec, height, width, shard: (0, 1) }
    }

    /// The same loader yielding only part `rank` of `world` of every batch (multi-process
    /// training): every process plans the same global batches (order and augmentation draws)
    /// and makes the images of its own consecutive slice, the slices of the ranks in rank order
    /// making up the whole batch (sizes by [`split_range`]). Mixed batches
    /// (Mixup, CutMix) pair images within a slice, as each rank of PyTorch DDP mixes its own.
    pub fn sharded(self, rank: usize, world: usize) -> Self {
        assert!(rank < world, "rank {rank} of {world}");
        Loader { shard: (rank, world), ..self }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether batches come channels-last.
    pub fn channels_last(&self) -> bool {
        self.spec.channels_last
    }

    /// Images per batch (the last one may have fewer).
    pub fn batch_size(&self) -> i64 {
        self.spec.batch_size
    }

    /// Number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.len(), self.spec.batch_size as usize);
        if self.spec.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The batches of epoch `epoch`, prepared ahead on a background thread when `prefetch > 0`.
    pub fn epoch(&self, epoch: u64) -> BatchIter {
        self.epoch_from(epoch, 0)
    }

    /// The batches of epoch `epoch` after the first `skip` (to resume mid-epoch): the same batches
    /// `epoch` yields from position `skip` on.
    pub fn epoch_from(&self, epoch: u64, skip: usize) -> BatchIter {
        let mut plans = self.plan(epoch);
        plans.drain(..skip.min(plans.len()));
        if self.shard.1 > 1 {
            plans = plans.into_iter().map(|p| p.shard(self.shard)).collect();
        }
        let maker = BatchMaker {
            images: self.images.shallow_clone(),
            labels: self.labels.shallow_clone(),
            spec: self.spec.clone(),
            size: self.image_size(epoch),
        };
        if self.spec.prefetch == 0 {
            return BatchIter { inner: Inner::Inline { maker: Box::new(maker), plans: plans.into_iter() } };
        }
        let (tx, rx) = sync_channel(self.spec.prefetch);
        let handle = std::thread::spawn(move || {
            for plan in plans {
                // The receiver hung up (e.g. the loop stopped early): stop preparing.
                if tx.send(maker.make(&plan)).is_err() {
                    break;
                }
            }
        });
        BatchIter { inner: Inner::Prefetch { rx, handle: Some(handle) } }
    }

    /// The image side of epoch `epoch`'s batches, when progressive resizing changes it.
    pub fn image_size(&self, epoch: u64) -> Option<i64> {
        let size = *self.spec.train_sizes.get((epoch as usize).checked_sub(1)?)?;
        (size != self.height || size != self.width).then_some(size)
    }

    fn plan(&self, epoch: u64) -> Vec<Plan> {
        let n = self.len();
        let mut rng = Pcg64::seed_from_u64(mix(self.spec.seed, epoch));
        let order: Vec<i64> = if self.spec.shuffle { permutation_with(n, &mut rng) } else { (0..n as i64).collect() };
        let b = self.spec.batch_size as usize;
        let chunks = order.chunks(b).take(self.num_batches());
        chunks
            .map(|idx| {
                let aug = self.spec.augment_pad.map(|pad| {
                    let dy = (0..idx.len()).map(|_| rng.gen_range(0..=2 * pad)).collect();
                    let dx = (0..idx.len()).map(|_| rng.gen_range(0..=2 * pad)).collect();
                    // Drawn even when flips are off or alternate, so the other draws do not shift.
                    let flip = idx
                        .iter()
                        .map(|&i| {
                            let coin = rng.gen_bool(0.5);
                            let flip =
                                if self.spec.alternate_flip { alternate_flip(self.spec.seed, i, epoch) } else { coin };
                            flip && self.spec.hflip
                        })
                        .collect();
                    (dy, dx, flip)
                });
                // Drawn after crop and flip from the same generator: with every recipe option off
                // nothing is drawn, so the crop/flip stream is what it always was.
                let draws = match self.spec.augment_pad {
                    Some(_) => augment::draw(&self.spec.augment, idx.len(), self.height, self.width, &mut rng),
                    None => Draws::default(),
                };
                Plan { idx: idx.to_vec(), aug, draws }
            })
            .collect()
    }
}

impl Plan {
    /// Part `rank` of `world` of the batch: its consecutive slice, with the slice's draws.
    fn shard(self, (rank, world): (usize, usize)) -> Plan {
        let b = self.idx.len();
        let (start, len) = split_range(b, world)[rank];
        let part = |v: &[i64]| v[start..start + len].to_vec();
        let aug = self.aug.map(|(dy, dx, flip)| (part(&dy), part(&dx), flip[start..start + len].to_vec()));
        Plan { idx: part(&self.idx), aug, draws: self.draws.slice(b, start, len) }
    }
}

/// `(start, length)` of `parts` consecutive slices of `n` items, the first `n % parts` one longer.
pub fn split_range(n: usize, parts: usize) -> Vec<(usize, usize)> {
    let mut start = 0;
    (0..parts)
        .map(|k| {
            let len = n / parts + usize::from(k < n % parts);
            start += len;
            (start - len, len)
        })
        .collect()
}

struct BatchMaker {
    images: Tensor,
    labels: Tensor,
    spec: LoaderSpec,
    /// Side to downscale to (progressive resizing), if any.
    size: Option<i64>,
}

impl BatchMaker {
    fn make(&self, plan: &Plan) -> Batch {
        let _guard = tch::no_grad_guard();
        let device: Device = self.images.device();
        let idx = Tensor::from_slice(&plan.idx).to_device(device);
        let mut x = self.images.index_select(0, &idx); // (B, C, H, W) uint8
        if let (Some(pad), Some((dy, dx, flip))) = (self.spec.augment_pad, &plan.aug) {
            let p = AugmentParams::new(dy, dx, flip, device);
            x = if self.spec.reflect {
                hflip(&random_crop_reflect(&x, pad, &p.dy, &p.dx), &p.flip)
            } else {
                crop_flip(&x, pad, &p)
            };
        }
        if let Some(chains) = &plan.draws.chains {
            x = super::policies::apply_chains(&x, chains);
        }
        let x = match &plan.draws.jitter {
            Some(f) => {
                let factors = Tensor::from_slice(&f.concat()).view([f.len() as i64, 3]).to_device(device);
                let unit = augment::color_jitter(&(x.to_kind(Kind::Float) / 255.0), &factors);
                normalize(&(unit * 255.0), &self.spec.mean, &self.spec.std)
            }
            None => normalize(&x, &self.spec.mean, &self.spec.std),
        };
        let labels = self.labels.index_select(0, &idx).to_kind(Kind::Int64);
        let (mut x, targets) = augment::apply_normalized(x, &labels, &plan.draws, self.spec.num_classes);
        if let Some(size) = self.size {
            x = resize(&x, size);
        }
        if self.spec.channels_last {
            x = super::transforms::channels_last(&x);
        }
        Batch { images: x, labels, targets }
    }
}

/// Whether image `index` is flipped in `epoch` (1-based) under alternating flips: a coin per
/// image fixed by the seed, inverted in every even epoch.
pub fn alternate_flip(seed: u64, index: i64, epoch: u64) -> bool {
    let coin = mix(seed ^ crate::seed::FLIP_SALT, index as u64) & 1 == 1;
    coin != epoch.is_multiple_of(2)
}

/// Iterator over one epoch's batches.
pub struct BatchIter {
    inner: Inner,
}

enum Inner {
    Inline { maker: Box<BatchMaker>, plans: std::vec::IntoIter<Plan> },
    Prefetch { rx: Receiver<Batch>, handle: Option<JoinHandle<()>> },
}

impl Iterator for BatchIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        match &mut self.inner {
            Inner::Inline { maker, plans } => plans.next().map(|p| maker.make(&p)),
            Inner::Prefetch { rx, handle } => match rx.recv() {
                Ok(batch) => Some(batch),
                Err(_) => {
                    // The producer finished (or panicked: re-raise its panic here).
                    if let Some(h) = handle.take() {
                        if let Err(panic) = h.join() {
                            std::panic::resume_unwind(panic);
                        }
                    }
                    None
                }
            },
        }
    }
}

/// A seeded permutation of `0..n`.
pub fn permutation(n: usize, seed: u64) -> Vec<i64> {
    permutation_with(n, &mut Pcg64::seed_from_u64(seed))
}

fn permutation_with(n: usize, rng: &mut Pcg64) -> Vec<i64> {
    let mut v: Vec<i64> = (0..n as i64).collect();
    v.shuffle(rng);
    v
}

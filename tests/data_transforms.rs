//! Batched transforms against a naive per-image reference, and seeded determinism of the loader.

mod common;

use microvision::data::loader::{alternate_flip, Loader, LoaderSpec};
use microvision::data::transforms::{
    channels_last, crop_flip, hflip, normalize, random_crop, random_crop_reflect, resize, AugmentParams,
};
use microvision::data::Dataset;
use tch::{Device, Kind, Tensor};

fn batch(b: i64) -> Tensor {
    Tensor::randint(256, [b, 3, 8, 8], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8)
}

/// The textbook per-image crop: pad with zeros, then slice one window.
fn naive_crop(img: &Tensor, pad: i64, dy: i64, dx: i64) -> Tensor {
    let (_, h, w) = img.size3().unwrap();
    let padded = Tensor::zeros([3, h + 2 * pad, w + 2 * pad], (img.kind(), Device::Cpu));
    padded.narrow(1, pad, h).narrow(2, pad, w).copy_(img);
    padded.narrow(1, dy, h).narrow(2, dx, w)
}

#[test]
fn crop_and_flip_equal_the_naive_reference() {
    tch::manual_seed(3);
    let x = batch(6);
    let dy = [0i64, 1, 4, 8, 2, 7];
    let dx = [8i64, 0, 4, 3, 6, 1];
    let flip = [true, false, true, false, false, true];
    let p = AugmentParams::new(&dy, &dx, &flip, Device::Cpu);
    let got = crop_flip(&x, 4, &p);
    assert_eq!(got.size(), x.size());
    for b in 0..6 {
        let mut want = naive_crop(&x.get(b), 4, dy[b as usize], dx[b as usize]);
        if flip[b as usize] {
            want = want.flip([2]);
        }
        assert!(got.get(b).equal(&want), "image {b}");
    }
}

#[test]
fn zero_offsets_at_pad_are_identity_and_flip_twice_is_identity() {
    let x = batch(3);
    let pad = Tensor::from_slice(&[4i64, 4, 4]);
    assert!(random_crop(&x, 4, &pad, &pad).equal(&x));
    let all = Tensor::from_slice(&[true, true, true]);
    assert!(hflip(&hflip(&x, &all), &all).equal(&x));
}

#[test]
fn normalize_matches_the_formula() {
    let x = Tensor::from_slice(&[0u8, 255, 128, 64]).view([1, 1, 2, 2]).repeat([1, 3, 1, 1]);
    let mean = [0.5, 0.25, 0.0];
    let std = [0.5, 0.25, 1.0];
    let y = normalize(&x, &mean, &std);
    for c in 0..3usize {
        for (i, v) in [0.0, 255.0, 128.0, 64.0].iter().enumerate() {
            let want = (v / 255.0 - mean[c]) / std[c];
            let got = y.double_value(&[0, c as i64, (i / 2) as i64, (i % 2) as i64]);
            assert!((got - want).abs() < 1e-5, "c{c} i{i}: {got} vs {want}");
        }
    }
}

#[test]
fn channels_last_keeps_values_and_changes_strides() {
    let x = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu));
    let y = channels_last(&x);
    assert!(y.equal(&x));
    assert_eq!(y.stride(), [60, 1, 15, 3]);
}

fn dataset(n: i64) -> Dataset {
    tch::manual_seed(0);
    Dataset {
        images: Tensor::randint(256, [n, 3, 32, 32], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8),
        labels: Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(10),
        classes: (0..10).map(|i| i.to_string()).collect(),
    }
}

fn spec(prefetch: usize, seed: u64) -> LoaderSpec {
    LoaderSpec {
        num_classes: 10,
        shuffle: true,
        augment_pad: Some(4),
        hflip: true,
        drop_last: true,
        prefetch,
        seed,
        ..LoaderSpec::evaluation(16, vec![0.5; 3], vec![0.25; 3], true)
    }
}

#[test]
fn loader_is_seeded_and_prefetch_does_not_change_batches() {
    let data = dataset(100);
    let a: Vec<_> = Loader::new(&data, spec(0, 1)).epoch(3).collect();
    let b: Vec<_> = Loader::new(&data, spec(2, 1)).epoch(3).collect();
    assert_eq!(a.len(), 6, "100 images / 16 with drop_last");
    for (x, y) in a.iter().zip(&b) {
        assert!(x.images.equal(&y.images) && x.labels.equal(&y.labels));
        assert_eq!(x.images.size(), [16, 3, 32, 32]);
    }
    let other_epoch: Vec<_> = Loader::new(&data, spec(0, 1)).epoch(4).collect();
    assert!(!a[0].labels.equal(&other_epoch[0].labels), "epochs shuffle differently");
    let other_seed: Vec<_> = Loader::new(&data, spec(0, 2)).epoch(3).collect();
    assert!(!a[0].images.equal(&other_seed[0].images), "seeds differ");
}

#[test]
fn eval_loader_keeps_order_and_last_partial_batch() {
    let data = dataset(50);
    let s = LoaderSpec { shuffle: false, augment_pad: None, drop_last: false, ..spec(1, 0) };
    let batches: Vec<_> = Loader::new(&data, s).epoch(0).collect();
    assert_eq!(batches.len(), 4);
    assert_eq!(batches[3].labels.size(), [2]);
    let labels = Tensor::cat(&batches.iter().map(|b| b.labels.shallow_clone()).collect::<Vec<_>>(), 0);
    assert!(labels.equal(&data.labels));
}

#[test]
fn epoch_loop_may_stop_early() {
    let data = dataset(100);
    let loader = Loader::new(&data, spec(2, 0));
    let first = loader.epoch(0).next();
    assert!(first.is_some()); // dropping the iterator stops the producer thread without hanging
}

#[test]
fn reflect_crop_equals_pytorch_reflect_padding_then_crop() {
    let x = batch(6);
    let (dy, dx) = ([0i64, 4, 2, 1, 3, 4], [4i64, 0, 2, 3, 1, 4]);
    let got = random_crop_reflect(&x, 2, &Tensor::from_slice(&dy), &Tensor::from_slice(&dx));
    // LibTorch's own reflect padding (F.pad(mode="reflect")) of the whole batch, then each window.
    let padded = x.to_kind(Kind::Float).reflection_pad2d([2, 2, 2, 2]).to_kind(Kind::Uint8);
    for b in 0..6 {
        let want = padded.get(b as i64).narrow(1, dy[b], 8).narrow(2, dx[b], 8);
        assert!(got.get(b as i64).equal(&want), "image {b} (dy {}, dx {})", dy[b], dx[b]);
    }
}

#[test]
fn alternating_flips_show_every_image_both_ways_every_two_epochs() {
    let flips = |epoch| (0..1000).map(|i| alternate_flip(3, i, epoch)).collect::<Vec<bool>>();
    let (odd, even) = (flips(1), flips(2));
    assert!(odd.iter().zip(&even).all(|(a, b)| a != b), "each image flips in exactly one of two epochs");
    assert_eq!(flips(3), odd, "the pattern repeats every two epochs");
    let n = odd.iter().filter(|&&f| f).count();
    assert!((430..570).contains(&n), "about half flipped in epoch 1: {n}");
    assert_ne!((0..1000).map(|i| alternate_flip(4, i, 1)).collect::<Vec<_>>(), odd, "the seed picks the half");
    // Through the loader: with flips on, epoch 2 shows the other orientation of each image.
    let x = Tensor::randint(256, [64, 3, 8, 8], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8);
    let labels = Tensor::arange(64, (Kind::Int64, Device::Cpu));
    let data = Dataset { images: x.shallow_clone(), labels, classes: (0..64).map(|i| i.to_string()).collect() };
    let s =
        LoaderSpec { augment_pad: Some(0), alternate_flip: true, shuffle: false, channels_last: false, ..spec(0, 3) };
    let loader = Loader::new(&data, s);
    let first: Vec<_> = loader.epoch(1).collect();
    let second: Vec<_> = loader.epoch(2).collect();
    for (a, b) in first.iter().zip(&second) {
        for i in 0..a.images.size()[0] {
            assert!(a.images.get(i).flip([2]).equal(&b.images.get(i)), "epoch 2 mirrors epoch 1");
        }
    }
}

#[test]
fn resize_is_antialiased_bilinear_by_hand() {
    // Halving 4 px with PyTorch's antialiased bilinear filter (a triangle twice as wide as the
    // pixel step, output centres at input 1 and 3): weights 3/7, 3/7, 1/7 on inputs 0-2 for the
    // first output, 1/7, 3/7, 3/7 on inputs 1-3 for the second.
    let x = Tensor::arange(4, (Kind::Float, Device::Cpu)).view([1, 1, 1, 4]).expand([2, 3, 4, 4], false).contiguous();
    let y = resize(&x, 2);
    assert_eq!(y.size(), [2, 3, 2, 2]);
    let want = Tensor::from_slice(&[5.0f32 / 7.0, 16.0 / 7.0]).view([1, 1, 1, 2]);
    assert!((&y - want).abs().max().double_value(&[]) < 1e-6, "{y}");
    assert!(resize(&x, 4).equal(&x), "the same size is left alone");
}

#[test]
fn progressive_sizes_downscale_the_same_batches_per_epoch() {
    let data = dataset(64);
    let full = Loader::new(&data, LoaderSpec { channels_last: false, ..spec(0, 1) });
    let small = Loader::new(&data, LoaderSpec { train_sizes: vec![16, 24], channels_last: false, ..spec(1, 1) });
    for (epoch, side) in [(1u64, 16i64), (2, 24), (3, 32)] {
        let (a, b): (Vec<_>, Vec<_>) = (full.epoch(epoch).collect(), small.epoch(epoch).collect());
        assert_eq!(b[0].images.size(), [16, 3, side, side], "epoch {epoch}");
        for (x, y) in a.iter().zip(&b) {
            assert!(resize(&x.images, side).equal(&y.images) && x.labels.equal(&y.labels), "epoch {epoch}");
        }
    }
    let resumed: Vec<_> = small.epoch_from(2, 1).collect();
    assert!(resumed[0].images.equal(&small.epoch(2).nth(1).unwrap().images));
}

#[test]
fn the_shards_of_three_ranks_make_up_every_global_batch() {
    let data = dataset(100);
    // A policy, jitter, Cutout and Random Erasing: per-image draws that must follow their image.
    let mut recipe = spec(0, 5);
    recipe.augment.policy = microvision::config::AugmentPolicy::TrivialAugment;
    (recipe.augment.brightness, recipe.augment.cutout, recipe.augment.cutout_count) = (0.3, 8, 2);
    recipe.augment.random_erasing = 0.5;
    let whole: Vec<_> = Loader::new(&data, recipe.clone()).epoch_from(2, 1).collect();
    let ranks: Vec<Vec<_>> =
        (0..3).map(|r| Loader::new(&data, recipe.clone()).sharded(r, 3).epoch_from(2, 1).collect()).collect();
    assert_eq!(whole.len(), 5, "six batches of 16, the first skipped");
    for (k, batch) in whole.iter().enumerate() {
        let parts: Vec<_> = ranks.iter().map(|r| &r[k]).collect();
        let sizes: Vec<i64> = parts.iter().map(|p| p.labels.size()[0]).collect();
        assert_eq!(sizes, [6, 5, 5], "consecutive slices, the first one longer");
        let images = Tensor::cat(&parts.iter().map(|p| p.images.contiguous()).collect::<Vec<_>>(), 0);
        assert!(images.equal(&batch.images.contiguous()), "batch {k}: the slices' images are the batch's");
        assert!(Tensor::cat(&parts.iter().map(|p| &p.labels).collect::<Vec<_>>(), 0).equal(&batch.labels));
    }
    // Mixed batches pair images within a slice (as each DDP rank mixes its own batch).
    let mut mixed = recipe;
    (mixed.augment.mixup_alpha, mixed.augment.mix_prob) = (1.0, 1.0);
    for part in Loader::new(&data, mixed).sharded(1, 3).epoch(1) {
        let targets = part.targets.expect("every batch is mixed");
        assert_eq!(targets.size(), [5, 10]);
        let labels_hit = targets.gather(1, &part.labels.unsqueeze(1), false).gt(0.0).all();
        assert!(bool::try_from(labels_hit).unwrap(), "each image keeps weight on its own label");
    }
}

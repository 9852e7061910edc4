//! Criterion benches of the data pipeline on one thread: the batched augmentation kernels and a
//! whole training batch as the loader makes it (gather, crop + flip, normalise, channels_last),
//! with and without the recipe augmentations. `cargo bench --bench pipeline`; throughput is
//! reported in images/s (target: 20,000 images/s per core for the standard CIFAR batch).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use tch::{Device, Kind, Tensor};

use microvision::config::AugmentConfig;
use microvision::data::augment::{color_jitter, cutmix, erase};
use microvision::data::loader::{Loader, LoaderSpec};
use microvision::data::policies::{self, Policy};
use microvision::data::transforms::{crop_flip, normalize, AugmentParams};
use microvision::data::Dataset;

const B: i64 = 512;

fn images(n: i64) -> Tensor {
    Tensor::randint(256, [n, 3, 32, 32], (Kind::Uint8, Device::Cpu))
}

fn params(rng: &mut Pcg64) -> AugmentParams {
    let dy: Vec<i64> = (0..B).map(|_| rng.gen_range(0..=8)).collect();
    let dx: Vec<i64> = (0..B).map(|_| rng.gen_range(0..=8)).collect();
    let flip: Vec<bool> = (0..B).map(|_| rng.gen_bool(0.5)).collect();
    AugmentParams::new(&dy, &dx, &flip, Device::Cpu)
}

fn kernels(c: &mut Criterion) {
    tch::set_num_threads(1);
    let x = images(B);
    let mut rng = Pcg64::seed_from_u64(0);
    let p = params(&mut rng);
    let mut g = c.benchmark_group("kernels");
    g.throughput(Throughput::Elements(B as u64));
    g.bench_function("crop_flip", |b| b.iter(|| crop_flip(&x, 4, &p)));
    g.bench_function("normalize", |b| b.iter(|| normalize(&x, &[0.49, 0.48, 0.45], &[0.25, 0.24, 0.26])));
    let xf = x.to_kind(Kind::Float) / 255.0;
    let f = Tensor::rand([B, 3], (Kind::Float, Device::Cpu)) * 0.8 + 0.6;
    g.bench_function("color_jitter", |b| b.iter(|| color_jitter(&xf, &f)));
    let boxes: Vec<[i64; 4]> = (0..B).map(|i| [i % 16, i % 16, i % 16 + 16, i % 16 + 16]).collect();
    g.bench_function("cutout", |b| b.iter(|| erase(&xf, &boxes, 1)));
    let t = Tensor::eye(10, (Kind::Float, Device::Cpu)).repeat([B / 10 + 1, 1]).narrow(0, 0, B);
    let perm = Tensor::arange(B, (Kind::Int64, Device::Cpu)).flip([0]);
    g.bench_function("cutmix", |b| b.iter(|| cutmix(&xf, &t, [4, 4, 20, 20], &perm)));
    let chains = policies::draw(Policy::AutoAugment, B as usize, (32, 32), &mut rng);
    g.bench_function("autoaugment", |b| b.iter(|| policies::apply_chains(&x, &chains)));
    g.finish();
}

fn batches(c: &mut Criterion) {
    tch::set_num_threads(1);
    let n = 8 * B;
    let data =
        Dataset { images: images(n), labels: Tensor::randint(10, [n], (Kind::Int64, Device::Cpu)), classes: vec![] };
    let spec = |augment: AugmentConfig| LoaderSpec {
        batch_size: B,
        shuffle: true,
        augment_pad: Some(4),
        hflip: true,
        reflect: false,
        alternate_flip: false,
        drop_last: true,
        mean: vec![0.49, 0.48, 0.45],
        std: vec![0.25, 0.24, 0.26],
        channels_last: true,
        prefetch: 0,
        seed: 0,
        augment,
        num_classes: 10,
        train_sizes: Vec::new(),
    };
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(n as u64));
    let plain = Loader::new(&data, spec(AugmentConfig::default()));
    g.bench_function("crop_flip_normalize", |b| b.iter(|| plain.epoch(1).count()));
    let cutout = Loader::new(&data, spec(AugmentConfig { cutout: 16, ..Default::default() }));
    g.bench_function("plus_cutout", |b| b.iter(|| cutout.epoch(1).count()));
    let aa = Loader::new(
        &data,
        spec(AugmentConfig { policy: microvision::config::AugmentPolicy::AutoAugment, ..Default::default() }),
    );
    g.bench_function("plus_autoaugment", |b| b.iter(|| aa.epoch(1).count()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(4));
    targets = kernels, batches
}
criterion_main!(benches);

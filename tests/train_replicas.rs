//! Data-parallel replicas (`train.replicas`): the chunks, the summed gradients and averaged
//! running statistics against a single-threaded oracle, and reproducible, resumable training.

mod common;

use microvision::data::loader::Batch;
use microvision::models::context::seed_dropout;
use microvision::models::{Model, ModelArgs};
use microvision::seed::mix;
use microvision::train::checkpoint;
use microvision::train::replicas::{split, Pass, Replicas};
use microvision::train::Trainer;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tch::{Device, Kind, Reduction, Tensor};

/// The tests here that run replicas take turns: each replica thread sets LibTorch's thread count,
/// part of which (MKL's, the native pool's) is process-wide, and a GEMM's rounding follows its
/// thread count; a test running beside them could then train other bits than the one it
/// compares with, and the bit-for-bit comparisons fail now and then under load.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn split_makes_near_equal_consecutive_chunks() {
    assert_eq!(split(2000, 2), [(0, 1000), (1000, 1000)]);
    assert_eq!(split(10, 3), [(0, 4), (4, 3), (7, 3)]);
    assert_eq!(split(5, 5), [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)]);
    assert_eq!(split(7, 1), [(0, 7)]);
}

/// A model with BatchNorm and dropout, and a batch of 10 images.
fn setup() -> (Model, ModelArgs, Batch) {
    let args = ModelArgs { dropout: 0.5, ..ModelArgs::default() };
    let model = Model::new_seeded("simple_cnn", &args, Device::Cpu, 3).unwrap();
    tch::manual_seed(11);
    let images = Tensor::randn([10, 3, 32, 32], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [10], (Kind::Int64, Device::Cpu));
    (model, args, Batch { images, labels, targets: None })
}

/// A model with `source`'s weights and buffers. (Seeding alone would not do: tests on other
/// threads draw from, and seed, LibTorch's global generator meanwhile.)
fn copy_of(source: &Model, args: &ModelArgs) -> Model {
    let mut model = Model::new("simple_cnn", args, Device::Cpu).unwrap();
    model.vs.copy(&source.vs).unwrap();
    model
}

/// The oracle: each chunk's mean loss, weighted by its share and times `scale`, backpropagated
/// one after the other into one copy of `start` on this thread, each with its replica's dropout
/// seed; BatchNorm running statistics from a fresh copy per chunk, averaged.
fn oracle(start: &Model, args: &ModelArgs, batch: &Batch, parts: &[(i64, i64)], scale: f64, seed: u64) -> Model {
    let model = copy_of(start, args);
    let mut stats: Vec<Vec<(String, Tensor)>> = Vec::new();
    for (k, &(start_at, len)) in parts.iter().enumerate() {
        let alone = copy_of(start, args);
        for m in [&model, &alone] {
            let x = batch.images.narrow(0, start_at, len);
            let y = batch.labels.narrow(0, start_at, len);
            seed_dropout(if k == 0 { seed } else { mix(seed, k as u64) });
            let loss = m.forward(&x, true).cross_entropy_loss::<Tensor>(&y, None, Reduction::Mean, -100, 0.1);
            (loss * (scale * len as f64 / 10.0)).backward();
        }
        let mut named: Vec<_> = alone.vs.variables().into_iter().filter(|(n, _)| n.contains("running")).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        stats.push(named);
    }
    tch::no_grad(|| {
        let vars = model.vs.variables();
        for (i, (name, _)) in stats[0].iter().enumerate() {
            let sum = stats.iter().map(|s| s[i].1.shallow_clone()).reduce(|a, b| a + b).unwrap();
            vars[name].shallow_clone().copy_(&(sum / parts.len() as f64));
        }
    });
    model
}

#[test]
fn replicas_sum_chunk_gradients_and_average_running_statistics() {
    let _turn = one_at_a_time();
    let (mut model, args, batch) = setup();
    let start = copy_of(&model, &args);
    let mut replicas = Replicas::new(&model, &args, 3, false).unwrap();
    assert_eq!(replicas.count(), 3);
    let pass = Pass { compute: None, smoothing: 0.1, scale: 0.5, checkpointing: false };
    let (loss, correct) = replicas.forward_backward(&mut model, &batch, pass, (99, 0));
    let expected = oracle(&start, &args, &batch, &split(10, 3), 0.5, 99);
    assert!(loss.is_finite() && (0.0..=10.0).contains(&correct));
    let want = expected.vs.variables();
    for (name, var) in model.vs.variables() {
        let other = &want[&name];
        if var.requires_grad() {
            let (g, h) = (var.grad(), other.grad());
            assert!(g.allclose(&h, 1e-5, 1e-6, false), "gradient of {name} differs from the oracle's");
            assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{name} got no gradient");
        } else if name.contains("running") {
            assert!(var.allclose(other, 1e-5, 1e-7, false), "{name} is not the replicas' average");
        }
    }
    // The next pass starts from the model's weights again: the copies follow it.
    let before: f64 = model.vs.trainable_variables()[0].grad().sum(Kind::Float).double_value(&[]);
    let (again, _) = replicas.forward_backward(&mut model, &batch, pass, (99, 0));
    let after: f64 = model.vs.trainable_variables()[0].grad().sum(Kind::Float).double_value(&[]);
    assert!((again - loss).abs() < 1e-4, "same weights and masks, same loss: {again} vs {loss}");
    assert!((after - 2.0 * before).abs() <= 1e-4 * before.abs().max(1.0), "gradients accumulate like backward()");
}

#[test]
fn one_replica_runs_the_batch_as_one() {
    let _turn = one_at_a_time();
    let (mut model, args, batch) = setup();
    let start = copy_of(&model, &args);
    let mut replicas = Replicas::new(&model, &args, 1, false).unwrap();
    let pass = Pass { compute: None, smoothing: 0.1, scale: 1.0, checkpointing: false };
    replicas.forward_backward(&mut model, &batch, pass, (5, 0));
    let expected = oracle(&start, &args, &batch, &[(0, 10)], 1.0, 5);
    let want = expected.vs.variables();
    for (name, var) in model.vs.variables() {
        if var.requires_grad() {
            assert!(var.grad().equal(&want[&name].grad()), "{name}: one replica is the plain step");
        }
    }
}

#[test]
fn training_with_replicas_is_reproducible_and_resumes_bit_for_bit() {
    let _turn = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 40); // 200 images / 32 = 6 steps per epoch
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.train.replicas = 2;
    cfg.train.threads = 2;
    let mut straight = Trainer::new(cfg.clone()).unwrap();
    let result = straight.fit().unwrap();
    assert!(result.acc.is_finite());

    let mut first = Trainer::new(cfg.clone()).unwrap();
    let flag = first.stop.clone();
    first.add_callback(Box::new(common::StopAt(8, flag)));
    assert_eq!(first.fit().unwrap_err().exit_code(), 130);
    let mut resumed = Trainer::resume(&first.run_dir).unwrap();
    resumed.fit().unwrap();
    let weights = |run: &std::path::Path| -> HashMap<String, Tensor> {
        checkpoint::load(&run.join("checkpoints"), "last").unwrap().weights.into_iter().collect()
    };
    let (a, b) = (weights(&straight.run_dir), weights(&resumed.run_dir));
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after a mid-epoch resume with replicas");
    }

    // Ghost batch norm: two replicas train other weights than one does.
    cfg.train.replicas = 1;
    let mut single = Trainer::new(cfg).unwrap();
    single.fit().unwrap();
    let c = weights(&single.run_dir);
    assert!(a.iter().any(|(name, t)| !t.equal(&c[name])), "replicas = 2 trained exactly as replicas = 1");
}

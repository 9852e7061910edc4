//! Gradient checkpointing computes the same gradients and BatchNorm statistics as the plain
//! backward pass, for every segmented model (with dropout and stochastic depth on, to check that
//! the recomputation replays the same masks).

use microvision::models::context::seed_dropout;
use microvision::models::{Model, ModelArgs, MODELS};
use microvision::train::step::{forward_backward_checkpointed, forward_loss};
use tch::{Device, Kind, Tensor};

fn state(model: &Model) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .map(|(n, t)| {
            let value = if t.requires_grad() { t.grad().copy() } else { t.copy() };
            (n, value)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn checkpointed_gradients_equal_plain_gradients() {
    let args = ModelArgs { dropout: 0.3, drop_path: 0.3, ..ModelArgs::default() };
    let x = Tensor::arange(4 * 3 * 32 * 32, (Kind::Float, Device::Cpu)).sin().view([4, 3, 32, 32]);
    let y = Tensor::from_slice(&[3i64, 1, 4, 1]);
    let mut checked = 0;
    // One model per segmented family (the others share their code); the rest must say "no".
    for entry in MODELS {
        let plain = Model::new_seeded(entry.name, &args, Device::Cpu, 5).unwrap();
        let family_representative = ["resnet18", "vgg11", "efficientnet_b0"].contains(&entry.name);
        if !family_representative {
            continue;
        }
        seed_dropout(9);
        let (loss_a, _) = forward_loss(&plain, &x, &y, None, 0.1);
        loss_a.backward();

        let ckpt = Model::new_seeded(entry.name, &args, Device::Cpu, 5).unwrap();
        seed_dropout(9);
        let (loss_b, _) = forward_backward_checkpointed(&ckpt, &x, &y, None, 0.1, 1.0).unwrap();
        assert_eq!(loss_a.double_value(&[]), loss_b.double_value(&[]), "{}: loss", entry.name);
        for ((name, a), (_, b)) in state(&plain).iter().zip(state(&ckpt)) {
            let scale = a.abs().max().double_value(&[]).max(1e-6);
            let diff = (a - &b).abs().max().double_value(&[]) / scale;
            assert!(diff < 1e-5, "{}: {name} differs by {diff} (relative) with checkpointing", entry.name);
        }
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn models_without_segments_are_reported() {
    let simple = Model::new("simple_cnn", &ModelArgs::default(), Device::Cpu).unwrap();
    let x = Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert!(forward_backward_checkpointed(&simple, &x, &Tensor::from_slice(&[0i64, 1]), None, 0.0, 1.0).is_none());
}

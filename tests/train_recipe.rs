//! Recipe switches of the trainer: multi-step and linear schedules, gradient clipping by value,
//! the weight average (EMA: math, evaluation, bit-exact resume, export) and early stopping.

mod common;

use std::path::Path;

use microvision::device::Precision;
use microvision::models::{Model, ModelArgs};
use microvision::train::checkpoint;
use microvision::train::ema::{decay_at, Ema};
use microvision::train::schedule::Schedule;
use microvision::train::Trainer;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

#[test]
fn multistep_and_linear_schedules_at_their_endpoints() {
    let s = Schedule::MultiStep { warmup: 0, milestones: vec![30, 60, 80], gamma: 0.1 };
    let lr = |s: &Schedule, step| s.lr(1.0, step, 100);
    assert_eq!(lr(&s, 0), 1.0);
    assert_eq!(lr(&s, 29), 1.0);
    assert!((lr(&s, 30) - 0.1).abs() < 1e-15);
    assert!((lr(&s, 60) - 0.01).abs() < 1e-15);
    assert!((lr(&s, 99) - 0.001).abs() < 1e-15);
    let l = Schedule::Linear { warmup: 10, min_ratio: 0.0 };
    assert_eq!(lr(&l, 0), 0.1); // warm-up: (step + 1) / 10
    assert_eq!(lr(&l, 10), 1.0);
    assert!((lr(&l, 55) - 0.5).abs() < 1e-12);
    assert_eq!(lr(&l, 100), 0.0);
    let cfg = microvision::Config::from_toml_str(
        "[schedule]\nname = \"multistep\"\nmilestones = [1.5, 3]\ngamma = 0.2\n",
        "t",
        &[],
    )
    .unwrap();
    assert_eq!(
        Schedule::from_config(&cfg.schedule, 10),
        Schedule::MultiStep { warmup: 0, milestones: vec![15, 30], gamma: 0.2 }
    );
    let e = microvision::Config::from_toml_str("[schedule]\nmilestones = [3, 1]\n", "t", &[]).unwrap_err();
    assert!(e.to_string().contains("schedule.milestones"), "{e}");
}

#[test]
fn grad_clip_value_clamps_each_element() {
    let vs = VarStore::new(Device::Cpu);
    let w = vs.root().var("w", &[3], tch::nn::Init::Const(0.0));
    let mut opt = microvision::train::optim::Optimizer::new(&vs, &Default::default(), Precision::Fp32);
    (&w * Tensor::from_slice(&[5.0f32, -0.2, -7.0])).sum(Kind::Float).backward();
    opt.clip_grad_value(1.0);
    assert_eq!(Vec::<f32>::try_from(w.grad()).unwrap(), vec![1.0, -0.2, -1.0]);
}

#[test]
fn ema_averages_with_warmup_and_swaps_back() {
    assert_eq!(decay_at(0.999, 0), 0.1);
    assert_eq!(decay_at(0.999, 1_000_000), 0.999);
    let vs = VarStore::new(Device::Cpu);
    let mut w = vs.root().var("w", &[2], tch::nn::Init::Const(1.0));
    let mut ema = Ema::new(&vs, 0.5);
    tch::no_grad(|| w.copy_(&Tensor::from_slice(&[3.0f32, 5.0])));
    ema.update(&vs, 100); // decay 0.5: avg = 0.5 * 1 + 0.5 * w
    let avg = Vec::<f32>::try_from(&ema.state_tensors()[0].1).unwrap();
    assert_eq!(avg, vec![2.0, 3.0]);
    let seen = ema.with_averaged(&vs, || Vec::<f32>::try_from(&w).unwrap());
    assert_eq!(seen, vec![2.0, 3.0], "evaluation sees the average");
    assert_eq!(Vec::<f32>::try_from(&w).unwrap(), vec![3.0, 5.0], "the trained weights come back");
}

#[test]
fn ema_run_resumes_bit_for_bit_and_exports_the_average() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 40);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.train.ema_decay = 0.9;
    cfg.train.grad_clip_value = 0.5;
    let mut straight = Trainer::new(cfg.clone()).unwrap();
    straight.fit().unwrap();
    let mut first = Trainer::new(cfg).unwrap();
    first.stop_after = Some(1);
    first.fit().unwrap();
    let mut resumed = Trainer::resume(&first.run_dir).unwrap();
    resumed.fit().unwrap();
    let a = checkpoint::load(&straight.run_dir.join("checkpoints"), "last").unwrap();
    let b = checkpoint::load(&resumed.run_dir.join("checkpoints"), "last").unwrap();
    let ema: Vec<_> = a.optim.iter().filter(|(n, _)| n.starts_with("ema.")).collect();
    assert_eq!(ema.len(), a.weights.len(), "every tensor is averaged");
    for ((na, ta), (nb, tb)) in a.optim.iter().zip(&b.optim) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after resume");
    }
    // The average differs from the weights, and is what eval.json measured and export ships.
    let avg = microvision::train::ema::weights_from_checkpoint(&a.optim).unwrap();
    let w: std::collections::HashMap<_, _> = a.weights.into_iter().collect();
    assert!(avg.iter().any(|(n, t)| t.kind() == Kind::Float && !t.equal(&w[n])));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["export", straight.run_dir.to_str().unwrap()])
        .env_remove("MICROVISION_DATA")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported = Tensor::read_safetensors(straight.run_dir.join("export/model.safetensors")).unwrap();
    let map: std::collections::HashMap<_, _> = avg.into_iter().collect();
    assert!(exported.iter().all(|(n, t)| t.equal(&map[n])), "export holds the average");
    // The TorchScript export runs the average too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["export", straight.run_dir.to_str().unwrap(), "--format", "torchscript"])
        .env_remove("MICROVISION_DATA")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let averaged = Model::new("simple_cnn", &ModelArgs::default(), Device::Cpu).unwrap();
    checkpoint::load_weights(&averaged.vs, &exported, Path::new("model.safetensors")).unwrap();
    let x = Tensor::randn([3, 3, 32, 32], (Kind::Float, Device::Cpu));
    let script = tch::CModule::load(straight.run_dir.join("export/model.pt")).unwrap();
    let d = tch::no_grad(|| (script.forward_ts(&[&x]).unwrap() - averaged.forward(&x, false)).abs().max());
    assert!(d.double_value(&[]) < 1e-5, "the TorchScript module is the averaged model");
    let trained = Model::new("simple_cnn", &ModelArgs::default(), Device::Cpu).unwrap();
    let w: Vec<_> = w.into_iter().collect();
    checkpoint::load_weights(&trained.vs, &w, Path::new("last.safetensors")).unwrap();
    let d = tch::no_grad(|| (script.forward_ts(&[&x]).unwrap() - trained.forward(&x, false)).abs().max());
    assert!(d.double_value(&[]) > 1e-4, "not the trained weights");
}

#[test]
fn early_stopping_stops_when_the_metric_stalls() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.train.epochs = 6;
    cfg.data.val_split = 0.2; // early stopping watches a validation split, never the test split
                              // No accuracy (a fraction) improves on another by more than 1: only epoch 1 sets a best.
                              // (Training itself cannot be frozen: BatchNorm's running statistics move the validation
                              // accuracy even at a zero learning rate.)
    cfg.train.early_stop_min_delta = 1.5;
    cfg.train.early_stop_patience = 2;
    let mut t = Trainer::new(cfg).unwrap();
    t.fit().unwrap();
    assert_eq!(t.state.epoch, 3, "epoch 1 sets the best, epochs 2 and 3 do not improve");
    assert!(t.run_dir.join("eval.json").exists(), "a stopped run still gets its final evaluation");
}

#[test]
fn without_a_validation_split_nothing_is_chosen_on_the_test_set() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    assert_eq!(cfg.data.val_split, 0.0);
    cfg.train.early_stop_patience = 2;
    let err = Trainer::new(cfg.clone()).err().expect("early stopping on the test split is refused").to_string();
    assert!(err.contains("train.early_stop_patience") && err.contains("data.val_split"), "{err}");
    cfg.train.early_stop_patience = 0;
    let mut t = Trainer::new(cfg).unwrap();
    t.fit().unwrap();
    let ckpt = t.run_dir.join("checkpoints");
    assert!(ckpt.join("last.state.json").exists());
    assert!(!ckpt.join("best.state.json").exists(), "no checkpoint may be chosen on the test split");
    assert_eq!(t.state.best_epoch, 0);
    let run = microvision::run::Run::open(&t.run_dir).unwrap();
    let err = microvision::lab::load_model(&run, microvision::lab::Checkpoint::Best, tch::Device::Cpu)
        .err()
        .expect("no best checkpoint")
        .to_string();
    assert!(err.contains("without a validation split") && err.contains("--checkpoint last"), "{err}");
}

#[test]
fn lr_suggestion_is_the_steepest_descent() {
    use microvision::train::trainer::suggest_lr;
    // A loss that falls fastest (per log lr) at lr = 1e-3: a logistic in log10(lr) centred there.
    let lrs: Vec<f64> = (0..81).map(|i| 10f64.powf(-7.0 + i as f64 * 0.1)).collect();
    let loss: Vec<f64> = lrs.iter().map(|lr| 2.0 - 1.0 / (1.0 + (-(lr.log10() + 3.0) * 2.0).exp())).collect();
    let s = suggest_lr(&lrs, &loss).unwrap();
    assert!((s.log10() + 3.0).abs() < 0.051, "{s}");
    assert_eq!(suggest_lr(&lrs[..4], &loss[..4]), None);
}

#[test]
fn lr_find_sweeps_geometrically_and_leaves_the_schedule_alone() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    let mut t = Trainer::new(cfg).unwrap();
    let rec = t.lr_find(1e-5, 1e-1, 9).unwrap(); // 9 steps over 2 epochs of 3 batches: cycles
    assert_eq!(rec.lrs.len(), 9);
    assert!((rec.lrs[0] - 1e-5).abs() < 1e-18 && (rec.lrs[8] - 1e-1).abs() < 1e-12);
    assert!((rec.lrs[4] - 1e-3).abs() < 1e-15, "geometric midpoint");
    assert!(rec.losses.iter().all(|l| l.is_finite()));
}

fn same_batch_twice(cfg: &microvision::Config) -> Vec<microvision::data::loader::Batch> {
    let data = microvision::data::load(&cfg.data, cfg.train.seed).unwrap();
    let spec = microvision::train::trainer::loader_spec(cfg, &data, true);
    let b = microvision::data::loader::Loader::new(&data.train, spec).epoch(1).next().unwrap();
    let copy = microvision::data::loader::Batch {
        images: b.images.copy(),
        labels: b.labels.copy(),
        targets: b.targets.as_ref().map(Tensor::copy),
    };
    vec![b, copy]
}

#[test]
fn accumulated_micro_batches_add_up_to_one_step() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.model.dropout = 0.0; // no masks: the two micro-batches see exactly the same network
    let group = same_batch_twice(&cfg);
    // One step over [b, b] with losses weighted 1/2 each equals one step over [b]: g/2 + g/2 = g.
    let mut one = Trainer::new(cfg.clone()).unwrap();
    one.train_step(&group[..1]).unwrap();
    cfg.train.accumulate_steps = 2;
    let mut two = Trainer::new(cfg.clone()).unwrap();
    assert_eq!(two.steps_per_epoch() * 2, one.steps_per_epoch());
    two.train_step(&group).unwrap();
    let (a, b) = (one.model.vs.trainable_variables(), two.model.vs.trainable_variables());
    assert!(a.iter().zip(&b).all(|(x, y)| x.equal(y)), "accumulated step differs from the plain one");
    // A whole run with accumulation counts optimizer steps and resumes bit for bit.
    cfg.train.epochs = 2;
    let mut straight = Trainer::new(cfg.clone()).unwrap();
    straight.fit().unwrap();
    assert_eq!(straight.state.step as usize, 2 * straight.steps_per_epoch());
    let mut first = Trainer::new(cfg).unwrap();
    first.stop_after = Some(1);
    first.fit().unwrap();
    let mut resumed = Trainer::resume(&first.run_dir).unwrap();
    resumed.fit().unwrap();
    let (wa, wb) = (straight.model.vs.variables(), resumed.model.vs.variables());
    assert!(wa.iter().all(|(n, t)| t.equal(&wb[n])), "resume with accumulation differs");
}

#[test]
fn muon_matches_the_reference_implementation() {
    muon_against_reference(5, false, Precision::Bf16, 8);
}

#[test]
fn muon_matches_the_reference_on_tall_matrices() {
    // 64 filters of 27 weights: a tall 64 x 27 matrix, orthogonalised transposed.
    muon_against_reference(5, false, Precision::Bf16, 64);
    muon_against_reference(3, true, Precision::Fp32, 64);
}

#[test]
fn muon_with_airbench_options_matches_airbench94_muon() {
    // 3 Newton-Schulz steps and the filters renormalised before each update (airbench94_muon).
    muon_against_reference(3, true, Precision::Bf16, 8);
}

#[test]
fn muon_orthogonalises_in_fp32_when_training_in_fp32() {
    // The reference in fp32 (bf16 matmuls are emulated, and slow, on CPUs without native bf16).
    muon_against_reference(3, true, Precision::Fp32, 8);
}

#[test]
fn muon_newton_schulz_precision_follows_the_training_precision() {
    // One step from the same gradient: bf16 and fp32 iterations give measurably different weights.
    let after_one_step = |precision| {
        let vs = VarStore::new(Device::Cpu);
        let w = (vs.root() / "conv")
            .var_copy("weight", &(Tensor::arange(8 * 27, (Kind::Float, Device::Cpu)).sin() * 0.1).view([8, 3, 3, 3]));
        let cfg = microvision::config::OptimConfig { name: microvision::config::OptimName::Muon, ..Default::default() };
        let mut opt = microvision::train::optim::Optimizer::new(&vs, &cfg, precision);
        (&w * Tensor::arange(8 * 27, (Kind::Float, Device::Cpu)).cos().view([8, 3, 3, 3])).sum(Kind::Float).backward();
        opt.step(0.1);
        w.detach().copy()
    };
    let (bf16, fp32) = (after_one_step(Precision::Bf16), after_one_step(Precision::Fp32));
    let diff = (&bf16 - &fp32).abs().max().double_value(&[]);
    assert!(diff > 1e-5, "bf16 and fp32 iterations agree to {diff}: the precision is not used");
    assert_eq!(after_one_step(Precision::Fp16), bf16, "fp16 training orthogonalises in bf16");
}

/// Two Muon steps on a conv filter and a bias, against Keller Jordan's reference written out in
/// PyTorch (with airbench94_muon's renormalisation when `weight_norm`), its Newton-Schulz
/// iteration in bf16 or, for fp32 training, in fp32.
/// Two Muon steps on a conv filter of `o` output channels (an `o` x 27 matrix: wide for o < 27,
/// tall above) against the reference Newton-Schulz Muon run in PyTorch.
fn muon_against_reference(ns_steps: i64, weight_norm: bool, precision: Precision, o: i64) {
    let Some(py) = common::venv_python() else { return };
    let vs = VarStore::new(Device::Cpu);
    let init = Tensor::arange(o * 27, (Kind::Float, Device::Cpu)).sin().view([o, 3, 3, 3]) * 0.1;
    let w = (vs.root() / "conv").var_copy("weight", &init);
    let b = (vs.root() / "conv").var("bias", &[o], tch::nn::Init::Const(0.0));
    let cfg = microvision::config::OptimConfig {
        name: microvision::config::OptimName::Muon,
        lr: 0.1,
        muon_lr: 0.2,
        momentum: 0.6,
        muon_momentum: 0.6,
        muon_ns_steps: ns_steps,
        muon_weight_norm: weight_norm,
        nesterov: true,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = microvision::train::optim::Optimizer::new(&vs, &cfg, precision);
    for step in 0..2 {
        opt.zero_grad();
        let gw = Tensor::arange(o * 27, (Kind::Float, Device::Cpu)).cos().view([o, 3, 3, 3]) * (step + 1) as f64;
        ((&w * gw).sum(Kind::Float) + (&b * 2.0).sum(Kind::Float)).backward();
        opt.step(0.1);
    }
    let script = r#"
import sys, torch
ns_steps, weight_norm, dtype, o = int(sys.argv[1]), sys.argv[2] == "1", getattr(torch, sys.argv[3]), int(sys.argv[4])
def ns5(G, steps):
    a, b, c = (3.4445, -4.7750, 2.0315)
    X = G.to(dtype)
    if G.size(-2) > G.size(-1): X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if G.size(-2) > G.size(-1): X = X.mT
    return X
p = (torch.arange(o * 27, dtype=torch.float32).sin().view(o, 3, 3, 3) * 0.1)
buf = torch.zeros_like(p)
for step in range(2):
    g = torch.arange(o * 27, dtype=torch.float32).cos().view(o, 3, 3, 3) * (step + 1)
    buf.lerp_(g, 1 - 0.6)
    u = g.lerp_(buf, 0.6)
    u = ns5(u.view(len(u), -1), ns_steps) * max(1, g.size(-2) / g.size(-1)) ** 0.5
    if weight_norm: p.mul_(len(p) ** 0.5 / p.norm())
    p.add_(u.reshape(p.shape).float(), alpha=-0.2)
print(" ".join(str(v) for v in p.flatten().tolist()))
"#;
    let flag = if weight_norm { "1" } else { "0" };
    let dtype = if precision == Precision::Fp32 { "float32" } else { "bfloat16" };
    let out = std::process::Command::new(py)
        .args(["-c", script, &ns_steps.to_string(), flag, dtype, &o.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want: Vec<f32> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(|v| v.parse().unwrap()).collect();
    let got = Vec::<f32>::try_from(w.flatten(0, -1)).unwrap();
    let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-6, "Muon differs from the reference by {worst}");
    if weight_norm {
        // The second step started from a filter of norm sqrt(o), then moved by 0.2 * U S' V^T.
        let norm = w.norm().double_value(&[]);
        assert!((norm - (o as f64).sqrt()).abs() < 0.5 * (o as f64 / 8.0).sqrt(), "norm {norm}");
    }
    // The bias took two Nesterov SGD steps with gradient 2: buf 2 then 3.2; d = 2 + 1.2, 2 + 1.92.
    let bias = Vec::<f32>::try_from(&b).unwrap();
    assert!((bias[0] - (-0.1 * (3.2 + 3.92)) as f32).abs() < 1e-6, "{bias:?}");
}

#[test]
fn muon_trains_channels_last_weights() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.optim.name = microvision::config::OptimName::Muon;
    cfg.optim.muon_lr = 0.02;
    assert!(cfg.train.channels_last, "the default lays conv weights out channels-last");
    let mut t = Trainer::new(cfg).unwrap();
    assert!(t.fit().unwrap().loss.is_finite());
}

#[test]
fn an_early_stopped_run_stays_stopped_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.train.epochs = 6;
    cfg.optim.lr = 1e-12;
    cfg.optim.weight_decay = 0.0;
    cfg.train.early_stop_patience = 2;
    cfg.data.val_split = 0.2;
    let mut t = Trainer::new(cfg).unwrap();
    t.fit().unwrap();
    let stopped_at = t.state.epoch;
    let mut again = Trainer::resume(&t.run_dir).unwrap();
    assert!(again.state.early_stopped, "the checkpoint records the decision");
    again.fit().unwrap();
    assert_eq!(again.state.epoch, stopped_at, "resume does not train on");
}

#[test]
fn recipe_options_that_would_do_nothing_or_break_are_refused() {
    let err = |text: &str| microvision::Config::from_toml_str(text, "t", &[]).unwrap_err().to_string();
    let e = err("[data]\naugment = false\n[augment]\nmixup_alpha = 0.2\n");
    assert!(e.contains("data.augment"), "{e}");
    let e = err("[data]\nhflip = false\n[train]\ntta = 1\n");
    assert!(e.contains("train.tta") && e.contains("hflip"), "{e}");
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.train.accumulate_steps = 5; // 100 images / batch 32 = 3 batches per epoch
    let e = Trainer::new(cfg).err().unwrap().to_string();
    assert!(e.contains("accumulate_steps") && e.contains("3 batches"), "{e}");
}

//! Schedules at their endpoints and one optimizer step against hand-computed values.

use microvision::config::{OptimConfig, ScheduleConfig};
use microvision::device::Precision;
use microvision::train::optim::Optimizer;
use microvision::train::schedule::Schedule;
use tch::nn::{Init, VarStore};
use tch::{Device, Kind, Tensor};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn onecycle_endpoints_match_pytorch() {
    // PyTorch OneCycleLR(max_lr=0.1, total_steps=100, pct_start=0.25, div_factor=25,
    // final_div_factor=1e4): step 0 = 0.004, step 24 = 0.1 (peak), step 99 = 4e-7.
    let s = Schedule::OneCycle { pct_start: 0.25, div: 25.0, final_div: 1e4 };
    assert!(close(s.lr(0.1, 0, 100), 0.004));
    assert!(close(s.lr(0.1, 24, 100), 0.1));
    assert!(close(s.lr(0.1, 99, 100), 4e-7));
    // Midway up: cosine between 0.004 and 0.1 at pct 0.5 -> their mean.
    assert!(close(s.lr(0.1, 12, 100), 0.052));
}

#[test]
fn cosine_with_warmup_endpoints() {
    let s = Schedule::Cosine { warmup: 10, min_ratio: 0.1 };
    assert!(close(s.lr(1.0, 0, 110), 0.1)); // (0 + 1) / 10
    assert!(close(s.lr(1.0, 9, 110), 1.0));
    assert!(close(s.lr(1.0, 10, 110), 1.0));
    assert!(close(s.lr(1.0, 60, 110), 0.55)); // halfway: 0.1 + 0.9 * 0.5
    assert!(close(s.lr(1.0, 110, 110), 0.1));
}

#[test]
fn step_and_constant() {
    let s = Schedule::Step { warmup: 0, every: 10, gamma: 0.5 };
    assert!(close(s.lr(0.8, 0, 100), 0.8));
    assert!(close(s.lr(0.8, 9, 100), 0.8));
    assert!(close(s.lr(0.8, 10, 100), 0.4));
    assert!(close(s.lr(0.8, 25, 100), 0.2));
    let c = Schedule::Constant { warmup: 4 };
    assert!(close(c.lr(0.2, 1, 10), 0.1));
    assert!(close(c.lr(0.2, 7, 10), 0.2));
}

#[test]
fn schedule_from_config_converts_epochs_to_steps() {
    let c = ScheduleConfig {
        name: microvision::config::ScheduleName::Step,
        step_epochs: 2.0,
        gamma: 0.1,
        ..ScheduleConfig::default()
    };
    assert_eq!(Schedule::from_config(&c, 50), Schedule::Step { warmup: 0, every: 100, gamma: 0.1 });
}

/// A var store with one 2-vector parameter `w = [1, -2]` whose gradient is set to `g`.
fn one_param(g: [f32; 2]) -> (VarStore, Tensor) {
    let vs = VarStore::new(Device::Cpu);
    let w = vs.root().var("w", &[2], Init::Const(0.0));
    tch::no_grad(|| w.shallow_clone().copy_(&Tensor::from_slice(&[1.0f32, -2.0])));
    let grad = Tensor::from_slice(&g);
    (w * &grad).sum(Kind::Float).backward(); // d/dw = g
    let w = vs.variables()["w"].shallow_clone();
    (vs, w)
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap()
}

#[test]
fn sgd_nesterov_with_l2_two_steps_by_hand() {
    let (vs, w) = one_param([0.5, 0.25]);
    let cfg = OptimConfig { lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01, ..OptimConfig::default() };
    let mut opt = Optimizer::new(&vs, &cfg, Precision::Fp32);
    opt.step(0.1);
    // d = g + wd*w = [0.51, 0.23]; buf = d; update = d + 0.9*buf = 1.9*d; w -= 0.1*update
    let want = [1.0 - 0.1 * 1.9 * 0.51, -2.0 - 0.1 * 1.9 * 0.23];
    let got = values(&w);
    assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} vs {want:?}");
    // Second step with the same gradient: d2 = g + wd*w1; buf2 = 0.9*buf + d2; w2 = w1 - 0.1*(d2 + 0.9*buf2)
    opt.step(0.1);
    let d2 = [0.5 + 0.01 * want[0], 0.25 + 0.01 * want[1]];
    let buf2 = [0.9 * 0.51 + d2[0], 0.9 * 0.23 + d2[1]];
    let want2 = [want[0] - 0.1 * (d2[0] + 0.9 * buf2[0]), want[1] - 0.1 * (d2[1] + 0.9 * buf2[1])];
    let got = values(&w);
    assert!(got.iter().zip(want2).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} vs {want2:?}");
}

#[test]
fn sgd_decoupled_weight_decay_by_hand() {
    let (vs, w) = one_param([0.5, 0.25]);
    let cfg =
        OptimConfig { momentum: 0.0, nesterov: false, weight_decay: 0.1, decoupled_wd: true, ..OptimConfig::default() };
    let mut opt = Optimizer::new(&vs, &cfg, Precision::Fp32);
    opt.step(0.5);
    // w = w * (1 - lr*wd) - lr*g
    let want = [1.0 * 0.95 - 0.25, -2.0 * 0.95 - 0.125];
    let got = values(&w);
    assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?}");
}

#[test]
fn adamw_first_step_by_hand() {
    let (vs, w) = one_param([0.5, -0.25]);
    let cfg = OptimConfig {
        name: microvision::config::OptimName::AdamW,
        weight_decay: 0.1,
        eps: 1e-8,
        betas: [0.9, 0.999],
        ..OptimConfig::default()
    };
    let mut opt = Optimizer::new(&vs, &cfg, Precision::Fp32);
    opt.step(0.01);
    // Step 1: m_hat = g, v_hat = g^2, so the update is lr * g/|g| = lr * sign(g) (eps negligible),
    // after decoupled decay w *= 1 - lr*wd.
    let want = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) + 0.01];
    let got = values(&w);
    assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} vs {want:?}");
}

#[test]
fn grad_norm_clipping_scales_to_max() {
    let (vs, w) = one_param([3.0, 4.0]);
    let mut opt = Optimizer::new(&vs, &OptimConfig::default(), Precision::Fp32);
    let norm = opt.clip_grad_norm(1.0);
    assert!((norm - 5.0).abs() < 1e-6);
    let g = values(&w.grad());
    assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5, "{g:?}");
}

#[test]
fn optimizer_state_round_trips() {
    let (vs, _) = one_param([0.5, 0.25]);
    let mut a = Optimizer::new(&vs, &OptimConfig::default(), Precision::Fp32);
    a.step(0.1);
    let saved = a.state_tensors();
    let mut b = Optimizer::new(&vs, &OptimConfig::default(), Precision::Fp32);
    b.load_state(&saved).unwrap();
    assert_eq!(b.steps, 1);
    assert!(b.state[0][0].equal(&a.state[0][0]));
    let adam = OptimConfig { name: microvision::config::OptimName::AdamW, ..OptimConfig::default() };
    let err = Optimizer::new(&vs, &adam, Precision::Fp32).load_state(&saved).unwrap_err();
    assert!(err.contains("exp_avg"), "{err}");
}

fn tiny_model_step(scaler: Option<&mut microvision::train::step::LossScaler>) -> (bool, Vec<f64>) {
    use microvision::models::{Model, ModelArgs};
    let model =
        Model::new_seeded("simple_cnn", &ModelArgs { dropout: 0.0, ..Default::default() }, Device::Cpu, 3).unwrap();
    let mut opt = Optimizer::new(&model.vs, &OptimConfig::default(), Precision::Fp32);
    // A fixed input (not LibTorch's global generator, which parallel tests share).
    let x = Tensor::arange(4 * 3 * 32 * 32, (Kind::Float, Device::Cpu)).sin().view([4, 3, 32, 32]);
    let y = Tensor::from_slice(&[1i64, 2, 3, 4]);
    let (loss, _) = microvision::train::step::forward_loss(&model, &x, &y, None, 0.0);
    let applied = microvision::train::step::backward_update(&mut opt, &loss, Default::default(), 0.1, scaler);
    (applied, values(&model.vs.variables()["classifier.3.weight"].flatten(0, -1)))
}

#[test]
fn loss_scaling_does_not_change_the_update() {
    let (_, plain) = tiny_model_step(None);
    let mut scaler = microvision::train::step::LossScaler::default();
    let (applied, scaled) = tiny_model_step(Some(&mut scaler));
    assert!(applied);
    let max_diff = plain.iter().zip(&scaled).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(max_diff < 1e-9, "scaled and plain updates differ by {max_diff}");
    assert_eq!(scaler.good_steps, 1);
}

#[test]
fn loss_scaler_skips_overflowing_steps_and_halves() {
    let (_, before) = {
        let mut s = microvision::train::step::LossScaler { scale: 1e300, good_steps: 5 };
        let r = tiny_model_step(Some(&mut s));
        assert_eq!((s.scale, s.good_steps), (5e299, 0));
        r
    };
    let (applied, _) = tiny_model_step(Some(&mut microvision::train::step::LossScaler { scale: 1e300, good_steps: 0 }));
    assert!(!applied, "an overflowing step is skipped");
    assert!(before.iter().all(|v| v.is_finite()), "weights stay finite");
}

#[test]
fn lr_scales_cover_names_and_dotted_prefixes_longest_first() {
    use microvision::train::optim::lr_scale_for;
    let scales = [("head".to_string(), 2.0), ("head.bias".to_string(), 3.0)].into_iter().collect();
    assert_eq!(lr_scale_for("head.weight", &scales), Some(2.0));
    assert_eq!(lr_scale_for("head.bias", &scales), Some(3.0), "the longest key wins");
    assert_eq!(lr_scale_for("header.weight", &scales), None, "a prefix ends at a dot");
    assert_eq!(lr_scale_for("block.head.weight", &scales), None, "keys start at the root");

    // In a step: lr times the multiplier, the decay coefficient divided by it (same decay per step).
    let vs = VarStore::new(Device::Cpu);
    let a = vs.root().var_copy("a", &Tensor::from_slice(&[1.0f32]));
    let b = vs.root().var_copy("b", &Tensor::from_slice(&[1.0f32]));
    (&a + &b).sum(Kind::Float).backward(); // both gradients 1
    let cfg = OptimConfig {
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.1,
        lr_scales: [("b".to_string(), 4.0)].into_iter().collect(),
        ..OptimConfig::default()
    };
    let mut opt = Optimizer::new(&vs, &cfg, Precision::Fp32);
    opt.check_lr_scales(&cfg.lr_scales).unwrap();
    opt.step(0.5);
    // a: 1 - 0.5 * (1 + 0.1);  b: 1 - 2.0 * (1 + 0.025)
    assert!((values(&a)[0] - 0.45).abs() < 1e-6, "{:?}", values(&a));
    assert!((values(&b)[0] + 1.05).abs() < 1e-6, "{:?}", values(&b));
    let unknown = OptimConfig { lr_scales: [("c".to_string(), 2.0)].into_iter().collect(), ..cfg };
    let err = Optimizer::new(&vs, &unknown, Precision::Fp32).check_lr_scales(&unknown.lr_scales).unwrap_err();
    assert!(err.contains("[\"c\"]") && err.contains("a, b"), "{err}");
}

//! The fast recipe's parts (issue #5): airbench's triangle schedule, patch whitening, lookahead,
//! the BatchNorm learning-rate scale, the whitening bias frozen after its epochs, a bit-exact
//! resume with all of them on, and `bench speedrun` end to end on synthetic data.

mod common;

use microvision::device::Precision;
use microvision::models::airbench::whitening_filters;
use microvision::train::checkpoint;
use microvision::train::lookahead::{decay_at, Lookahead};
use microvision::train::optim::Optimizer;
use microvision::train::schedule::Schedule;
use microvision::train::Trainer;
use tch::nn::{Init, VarStore};
use tch::{Device, Kind, Tensor};

#[test]
fn triangle_schedule_matches_airbench() {
    // airbench94's get_lr over 476 steps: rise to step int(0.23 * 476) = 109, then down.
    let s = Schedule::Triangle { pct: 0.23, start: 0.2, end: 0.07 };
    let lr = |step| s.lr(2.0, step, 476);
    assert!((lr(0) - 0.4).abs() < 1e-12);
    assert!((lr(109) - 2.0).abs() < 1e-12);
    assert!((lr(54) - 2.0 * (0.2 * (1.0 - 54.0 / 109.0) + 54.0 / 109.0)).abs() < 1e-12);
    assert!((lr(476) - 0.14).abs() < 1e-12);
    let f = (300.0 - 109.0) / (476.0 - 109.0);
    assert!((lr(300) - 2.0 * ((1.0 - f) + 0.07 * f)).abs() < 1e-12);
    let cfg = microvision::Config::from_toml_str(
        "[schedule]\nname = \"triangle\"\npct_start = 0.23\ndiv_factor = 5.0\nmin_lr_ratio = 0.07\n",
        "t",
        &[],
    )
    .unwrap();
    assert_eq!(Schedule::from_config(&cfg.schedule, 48), Schedule::Triangle { pct: 0.23, start: 0.2, end: 0.07 });
}

#[test]
fn whitening_filters_decorrelate_the_patches() {
    tch::manual_seed(0);
    // Correlated channels: the second and third are mostly the first.
    let base = Tensor::randn([64, 1, 12, 12], (Kind::Float, Device::Cpu));
    let noise = Tensor::randn([64, 2, 12, 12], (Kind::Float, Device::Cpu)) * 0.3;
    let x = Tensor::cat(&[&base, &(base.repeat([1, 2, 1, 1]) + noise)], 1);
    let w = whitening_filters(&x, 2, 0.0);
    assert_eq!(w.size(), [24, 3, 2, 2]);
    assert!(w.narrow(0, 12, 12).equal(&-w.narrow(0, 0, 12)), "the second half negates the first");
    // The first 12 filters map the patches to outputs with identity covariance.
    let y = x.conv2d(&w.narrow(0, 0, 12), None::<Tensor>, [1], [0], [1], 1); // (64, 12, 11, 11)
    let flat = y.permute([0, 2, 3, 1]).reshape([-1, 12]).to_kind(Kind::Double);
    let cov = flat.tr().matmul(&flat) / flat.size()[0] as f64;
    let err = (cov - Tensor::eye(12, (Kind::Double, Device::Cpu))).abs().max().double_value(&[]);
    assert!(err < 1e-3, "whitened covariance differs from identity by {err}");
}

#[test]
fn lookahead_pulls_weights_to_the_slow_copy_and_ends_on_it() {
    assert!((decay_at(5, 480, 5) - 0.95f64.powi(5) * (5.0f64 / 480.0).powi(3)).abs() < 1e-15);
    assert!((decay_at(480, 480, 5) - 0.95f64.powi(5)).abs() < 1e-15);
    let vs = VarStore::new(Device::Cpu);
    let mut w = vs.root().var("w", &[2], Init::Const(0.0));
    let mut la = Lookahead::new(&vs, 2);
    let set = |w: &mut Tensor, v: [f32; 2]| tch::no_grad(|| w.copy_(&Tensor::from_slice(&v)));
    set(&mut w, [4.0, 8.0]);
    la.after_step(&vs, 1, 4); // not a multiple of 2: nothing happens
    assert_eq!(Vec::<f32>::try_from(&w).unwrap(), vec![4.0, 8.0]);
    la.after_step(&vs, 2, 4); // decay 0.95^2 * (1/2)^3
    let d = 0.95f64.powi(2) / 8.0;
    let want = |v: f64| (v * (1.0 - d)) as f32; // slow was 0: lerp(0, v, 1 - d)
    let got = Vec::<f32>::try_from(&w).unwrap();
    assert!((got[0] - want(4.0)).abs() < 1e-6 && (got[1] - want(8.0)).abs() < 1e-6, "{got:?}");
    set(&mut w, [100.0, 100.0]);
    // The last step: its regular update (decay 0.95^2 * 1), then the weights become the slow copy.
    la.after_step(&vs, 4, 4);
    let d4 = 0.95f64.powi(2);
    let end = Vec::<f32>::try_from(&w).unwrap();
    let expect = want(4.0) as f64 * d4 + 100.0 * (1.0 - d4);
    assert!((end[0] as f64 - expect).abs() < 1e-4, "{end:?} vs {expect}");
    let saved = la.state_tensors();
    assert_eq!(saved[0].0, "lookahead.w");
}

#[test]
fn batchnorm_parameters_take_the_scaled_lr_and_divided_decay() {
    let vs = VarStore::new(Device::Cpu);
    let root = vs.root();
    let bn = microvision::models::layers::BatchNorm2d::new(&(&root / "bn"), 2);
    let conv = (&root / "conv").var("weight", &[2], Init::Const(1.0));
    let cfg = microvision::config::OptimConfig {
        momentum: 0.0,
        weight_decay: 0.1,
        norm_lr_scale: 64.0,
        ..Default::default()
    };
    let mut opt = Optimizer::new(&vs, &cfg, Precision::Fp32);
    let _ = tch::no_grad(|| bn.bias.shallow_clone().fill_(1.0));
    (bn.bias.sum(Kind::Float) + conv.sum(Kind::Float)).backward();
    opt.step(0.01);
    // Coupled decay: p -= lr * s * (g + wd / s * p). Conv: 1 - 0.01 * (1 + 0.1); BN bias:
    // 1 - 0.64 * (1 + 0.1 / 64).
    let conv_v = f64::try_from(conv.get(0)).unwrap();
    let bias_v = f64::try_from(bn.bias.get(0)).unwrap();
    assert!((conv_v - (1.0 - 0.01 * 1.1)).abs() < 1e-6, "{conv_v}");
    assert!((bias_v - (1.0 - 0.64 * (1.0 + 0.1 / 64.0))).abs() < 1e-6, "{bias_v}");
}

/// The speedrun recipe scaled down to the synthetic dataset.
fn speedrun_config(tmp: &std::path::Path, epochs: i64) -> microvision::Config {
    let text = std::fs::read_to_string(common::repo("configs/speedrun94.toml")).unwrap();
    let overrides: Vec<String> = [
        format!("data.root={}", tmp.display()),
        "data.batch_size=32".into(),
        "data.eval_batch_size=64".into(),
        "data.download=false".into(),
        "data.official_files=false".into(),
        format!("train.epochs={epochs}"),
        "train.threads=1".into(),
        "train.progress=false".into(),
        format!("output.runs_dir={}", tmp.join("runs").display()),
    ]
    .into();
    microvision::Config::from_toml_str(&text, "speedrun94", &overrides).unwrap()
}

#[test]
fn whitening_bias_freezes_after_its_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 40);
    let mut cfg = speedrun_config(tmp.path(), 4);
    cfg.train.lookahead_every = 0; // lookahead would still move the frozen bias towards its average
    let mut t = Trainer::new(cfg).unwrap();
    t.stop_after = Some(2);
    t.fit().unwrap();
    let dir = t.run_dir.join("checkpoints");
    let bias = |w: &[(String, Tensor)]| w.iter().find(|(n, _)| n == "whiten.bias").unwrap().1.shallow_clone();
    let conv = |w: &[(String, Tensor)]| w.iter().find(|(n, _)| n == "block1.conv1.weight").unwrap().1.shallow_clone();
    let epoch2 = checkpoint::load(&dir, "last").unwrap().weights;
    let mut resumed = Trainer::resume(&t.run_dir).unwrap();
    resumed.stop_after = Some(3);
    resumed.fit().unwrap();
    let epoch3 = checkpoint::load(&dir, "last").unwrap().weights;
    assert!(!bias(&epoch3).equal(&bias(&epoch2)), "whiten.bias still trains in epoch 3");
    let mut resumed = Trainer::resume(&t.run_dir).unwrap();
    resumed.fit().unwrap();
    let epoch4 = checkpoint::load(&dir, "last").unwrap();
    assert_eq!(epoch4.state.epoch, 4);
    assert!(bias(&epoch4.weights).equal(&bias(&epoch3)), "whiten.bias trained in epoch 4");
    assert!(!conv(&epoch4.weights).equal(&conv(&epoch3)), "the other weights still train in epoch 4");
    let init = Trainer::new(speedrun_config(tmp.path(), 4)).unwrap();
    let initial_bias = init.model.vs.variables()["whiten.bias"].shallow_clone();
    assert!(!bias(&epoch3).equal(&initial_bias), "whiten.bias trains in the first epochs");
}

#[test]
fn speedrun_recipe_resumes_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 40); // 200 images / 32 = 6 steps per epoch
    let mut cfg = speedrun_config(tmp.path(), 4); // 24 steps; the whitening bias freezes in epoch 4
    cfg.train.lookahead_every = 2;
    let mut straight = Trainer::new(cfg.clone()).unwrap();
    assert!(straight.setup_secs > 0.0, "whitening is timed as setup");
    straight.fit().unwrap();
    let mut first = Trainer::new(cfg).unwrap();
    let flag = first.stop.clone();
    first.add_callback(Box::new(common::StopAt(9, flag))); // mid-epoch 2, between two lookahead updates
    assert_eq!(first.fit().unwrap_err().exit_code(), 130);
    let mut resumed = Trainer::resume(&first.run_dir).unwrap();
    assert_eq!(resumed.state.step, 9);
    resumed.fit().unwrap();
    let a = checkpoint::load(&straight.run_dir.join("checkpoints"), "last").unwrap();
    let b = checkpoint::load(&resumed.run_dir.join("checkpoints"), "last").unwrap();
    assert!(a.optim.iter().any(|(n, _)| n.starts_with("lookahead.")), "the slow weights are checkpointed");
    for ((na, ta), (nb, tb)) in a.weights.iter().chain(&a.optim).zip(b.weights.iter().chain(&b.optim)) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after resume");
    }
}

#[test]
fn bench_speedrun_reports_every_run_and_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 40);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["bench", "speedrun", "-c", common::repo("configs/speedrun94.toml").to_str().unwrap()])
        .args(["--runs", "2", "--target", "5"])
        .args(["--set", &format!("data.root={}", tmp.path().display())])
        .args(["--set", "data.batch_size=32", "--set", "data.download=false", "--set", "train.epochs=1"])
        .args(["--set", "data.official_files=false"])
        .args(["--set", "train.progress=false", "--set", "train.threads=1"])
        .args(["--set", &format!("output.runs_dir={}", tmp.path().join("runs").display())])
        .env_remove("MICROVISION_DATA")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("run 1/2 seed 0") && stdout.contains("run 2/2 seed 1"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(json["summary"]["runs"], 2);
    let runs = json["runs"].as_array().unwrap();
    assert!(runs.iter().all(|r| r["train_secs"].as_f64().unwrap() > 0.0 && r["setup_secs"].as_f64().unwrap() > 0.0));
    let accs: Vec<f64> = runs.iter().map(|r| r["test_acc"].as_f64().unwrap() * 100.0).collect();
    let mean = accs.iter().sum::<f64>() / 2.0;
    assert!((json["summary"]["acc_mean"].as_f64().unwrap() - mean).abs() < 1e-9);
    let at = accs.iter().filter(|&&a| a >= 5.0).count() as f64 / 2.0;
    assert_eq!(json["summary"]["at_target"].as_f64().unwrap(), at);
}

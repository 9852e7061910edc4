//! Layer behaviour that the registry test does not pin down: dropout statistics and seeding,
//! autocast dtype, BatchNorm bookkeeping.

use microvision::models::context::{autocast, seed_dropout};
use microvision::models::layers::{Conv2d, ConvOpts, Dropout};
use microvision::models::{Model, ModelArgs};
use tch::nn::ModuleT;
use tch::{Device, Kind, Tensor};

#[test]
fn dropout_keeps_1_minus_p_and_rescales() {
    let x = Tensor::ones([200, 500], (Kind::Float, Device::Cpu));
    seed_dropout(1);
    let y = Dropout(0.3).forward_t(&x, true);
    let kept = y.ne(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
    assert!((kept - 0.7).abs() < 0.01, "kept fraction {kept}");
    let max = y.max().double_value(&[]);
    assert!((max - 1.0 / 0.7).abs() < 1e-6, "survivors are scaled by 1/(1-p): {max}");
    seed_dropout(1);
    assert!(Dropout(0.3).forward_t(&x, true).equal(&y), "same seed, same mask");
    assert!(Dropout(0.3).forward_t(&x, false).equal(&x), "identity in eval mode");
}

#[test]
fn autocast_runs_conv_and_linear_in_bf16_and_bn_keeps_fp32_stats() {
    let model = Model::new("simple_cnn", &ModelArgs::default(), Device::Cpu).unwrap();
    let x = Tensor::ones([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = autocast(Some(Kind::BFloat16), || model.forward(&x, true));
    assert_eq!(y.kind(), Kind::BFloat16);
    let vars = model.vs.variables();
    assert_eq!(vars["features.1.running_mean"].kind(), Kind::Float);
    assert_eq!(vars["features.0.weight"].kind(), Kind::Float, "master weights stay fp32");
    assert_eq!(vars["features.1.num_batches_tracked"].int64_value(&[]), 1);
    assert_eq!(model.forward(&x, false).kind(), Kind::Float, "no autocast outside the scope");
    // A LibTorch error inside the scope (a shape probe that does not fit) unwinds through it.
    let bad = Tensor::ones([2, 3, 2, 2], (Kind::Float, Device::Cpu));
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::AssertUnwindSafe(|| autocast(Some(Kind::BFloat16), || model.forward(&bad, false)));
    let failed = std::panic::catch_unwind(probe);
    std::panic::set_hook(hook);
    assert!(failed.is_err(), "simple_cnn cannot take 2x2 images");
    assert_eq!(model.forward(&x, false).kind(), Kind::Float, "autocast is off again after the panic");
}

#[test]
fn large_depthwise_convs_compute_in_fp32_under_bf16_autocast() {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let conv = |name: &str, k: i64, groups: i64, bias: bool| {
        Conv2d::new(&(vs.root() / name), 8, 8, k, ConvOpts { stride: 1, padding: k / 2, groups, bias })
    };
    let (dw5, dw3, dense5) = (conv("a", 5, 8, true), conv("b", 3, 8, false), conv("c", 5, 1, false));
    tch::manual_seed(0);
    let x = Tensor::randn([2, 8, 9, 9], (Kind::Float, Device::Cpu));
    let bf16 = |c: &Conv2d| autocast(Some(Kind::BFloat16), || c.forward_t(&x, true));
    // fp32 result rounded once to bf16 (what the next layer gets) = computed in fp32.
    let fp32_rounded = |c: &Conv2d| c.forward_t(&x, true).to_kind(Kind::BFloat16);
    let y5 = bf16(&dw5);
    assert_eq!(y5.kind(), Kind::BFloat16);
    assert!(y5.equal(&fp32_rounded(&dw5)), "the 5x5 depthwise conv (with bias) ran in fp32");
    for (name, c) in [("3x3 depthwise", &dw3), ("5x5 dense", &dense5)] {
        let y = bf16(c);
        assert_eq!(y.kind(), Kind::BFloat16);
        assert!(!y.equal(&fp32_rounded(c)), "the {name} conv computes in bf16");
    }
    // Sanity: gradients reach the fp32 weights through the casts.
    y5.to_kind(Kind::Float).sum(Kind::Float).backward();
    assert!(dw5.weight.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

//! Layer behaviour that the registry test does not pin down: dropout statistics and seeding,
//! autocast dtype, BatchNorm bookkeeping.

use microvision::models::layers::{autocast, seed_dropout, Dropout};
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
}

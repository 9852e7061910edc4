use microvision::device::{channels_last, Precision};
use microvision::models::{context::autocast, Model, ModelArgs};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn bench(name: &str, mut f: impl FnMut()) {
    for _ in 0..5 {
        f();
    }
    let mut v = vec![];
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..20 {
            f();
        }
        v.push(128.0 * 20.0 / t.elapsed().as_secs_f64());
    }
    v.sort_by(f64::total_cmp);
    println!("{name}: {:.0} img/s", v[3]);
}

fn main() {
    if std::env::var("PROBE_CUDA").is_ok() {
        println!("cuda available: {}", tch::Cuda::is_available());
    }
    let name = std::env::args().nth(1).unwrap_or("simple_cnn".into());
    let mut m = Model::new(&name, &ModelArgs::default(), Device::Cpu).unwrap();
    m.to_channels_last();
    let x = channels_last(&Tensor::randn([128, 3, 32, 32], (Kind::Float, Device::Cpu)));
    {
        let _g = tch::no_grad_guard();
        bench("eval fp32", || {
            let _ = m.forward(&x, false).double_value(&[0, 0]);
        });
        bench("eval bf16", || {
            let _ = autocast(Some(Kind::BFloat16), || m.forward(&x, false)).double_value(&[0, 0]);
        });
    }
    let y = Tensor::randint(10, [128], (Kind::Int64, Device::Cpu));
    let mut opt =
        microvision::train::optim::Optimizer::new(&m.vs, &microvision::config::OptimConfig::default(), Precision::Fp32);
    {
        let out = m.forward(&x, true).sum(Kind::Float);
        out.backward();
    }
    bench("optimizer step (x128 imgs)", || opt.step(0.01));
    bench("zero_grad (x128 imgs)", || opt.zero_grad());
    bench("full step", || {
        let (loss, _) = microvision::train::step::forward_loss(&m, &x, &y, Some(Kind::BFloat16), 0.0);
        microvision::train::step::backward_update(&mut opt, &loss, Default::default(), 0.01, None);
        let _ = loss.double_value(&[]);
    });
    bench("step without update", || {
        let (loss, _) = microvision::train::step::forward_loss(&m, &x, &y, Some(Kind::BFloat16), 0.0);
        opt.zero_grad();
        loss.backward();
        let _ = loss.double_value(&[]);
    });
    bench("train fwd+bwd bf16", || {
        let out = autocast(Some(Kind::BFloat16), || m.forward(&x, true)).to_kind(Kind::Float);
        let loss = out.cross_entropy_for_logits(&y);
        loss.backward();
        let _ = loss.double_value(&[]);
    });
}

#[allow(dead_code)]
fn unused() {}

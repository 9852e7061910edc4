//! The registry test: every registered model is built through the registry and checked for
//! forward shape, backward, finiteness, and — against the PyTorch transcription in
//! `bench/models.py` — parameter count, state_dict names (strict load), eval outputs (1e-5) and
//! gradients after one backward.

mod common;

use microvision::models::{lookup, Model, ModelArgs, MODELS};
use tch::{Device, Kind, Tensor};

fn args() -> ModelArgs {
    // Dropout off so train-mode outputs are deterministic and comparable with PyTorch.
    ModelArgs { dropout: 0.0, ..ModelArgs::default() }
}

/// Forward in eval and train mode, then backward of a fixed weighting of the outputs.
fn run(model: &Model, x: &Tensor) -> (Tensor, Tensor) {
    let eval = tch::no_grad(|| model.forward(x, false));
    let y = model.forward(x, true);
    let w = Tensor::linspace(-1.0, 1.0, y.numel() as i64, (Kind::Float, Device::Cpu)).view_as(&y);
    (&y * w).sum(Kind::Float).backward();
    (eval, y)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn every_registered_model_runs_forward_and_backward() {
    for entry in MODELS {
        tch::manual_seed(0);
        let model = Model::new(entry.name, &args(), Device::Cpu).unwrap();
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let (eval, train) = run(&model, &x);
        assert_eq!(eval.size(), [2, 10], "{}: eval output shape", entry.name);
        assert_eq!(train.size(), [2, 10], "{}: train output shape", entry.name);
        assert!(bool::try_from(eval.isfinite().all()).unwrap(), "{}: non-finite output", entry.name);
        for (name, p) in model.vs.variables() {
            if p.requires_grad() {
                let g = p.grad();
                assert!(g.defined(), "{}: {name} got no gradient", entry.name);
                assert!(bool::try_from(g.isfinite().all()).unwrap(), "{}: {name} gradient not finite", entry.name);
            }
        }
    }
}

#[test]
fn models_follow_num_classes() {
    for entry in MODELS {
        let a = ModelArgs { num_classes: 7, ..args() };
        let model = Model::new(entry.name, &a, Device::Cpu).unwrap();
        let y = tch::no_grad(|| model.forward(&Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu)), false));
        assert_eq!(y.size(), [1, 7], "{}", entry.name);
    }
}

#[test]
fn unknown_model_lists_valid_names() {
    let err = lookup("resnet19").err().expect("unknown name must fail").to_string();
    assert!(err.contains("resnet19") && err.contains("resnet18") && err.contains("simple_cnn"), "{err}");
}

#[test]
fn models_equal_pytorch() {
    let Some(py) = common::venv_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for entry in MODELS {
        tch::manual_seed(1);
        let model = Model::new(entry.name, &args(), Device::Cpu).unwrap();
        let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
        let weights = dir.path().join(format!("{}.safetensors", entry.name));
        let input = dir.path().join("x.safetensors");
        let out = dir.path().join("out.safetensors");
        model.vs.save(&weights).unwrap();
        Tensor::write_safetensors(&[("x", &x)], &input).unwrap();
        let status = std::process::Command::new(&py)
            .arg(common::repo("tests/oracle/check_model.py"))
            .args([entry.name, "10"])
            .args([&weights, &input, &out])
            .status()
            .unwrap();
        assert!(status.success(), "{}: PyTorch could not load our weights strictly", entry.name);
        let (eval, _) = run(&model, &x);
        let reference: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(&out).unwrap().into_iter().collect();
        assert_eq!(reference["n_params"].int64_value(&[]), model.num_params(), "{}: parameter count", entry.name);
        let d = max_abs_diff(&eval, &reference["eval_out"]);
        assert!(d < 1e-5, "{}: eval outputs differ by {d}", entry.name);
        for (name, p) in model.vs.variables() {
            if !p.requires_grad() {
                continue;
            }
            let r = &reference[&format!("grad.{name}")];
            let scale = r.abs().max().double_value(&[]).max(1e-3);
            let d = max_abs_diff(&p.grad(), r) / scale;
            assert!(d < 1e-4, "{}: gradient of {name} differs (relative {d})", entry.name);
        }
    }
}

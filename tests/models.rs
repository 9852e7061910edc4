//! The registry test: every registered model is built through the registry and checked for
//! forward shape, backward, finiteness, and — against the PyTorch transcription in
//! `pytorch/models.py` — parameter count, state_dict names (strict load), eval outputs (1e-5) and
//! gradients after one backward; and each one's TorchScript export.

mod common;

use microvision::models::{lookup, searchnet, torchscript, Model, ModelArgs, Network, MODELS};
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

/// Checks `model` (registered as `name`, built with `arch` when given) against the PyTorch
/// transcription: strict load, parameter count, eval outputs, gradients.
fn check_against_pytorch(py: &std::path::Path, dir: &std::path::Path, name: &str, a: &ModelArgs, arch: Option<&str>) {
    tch::manual_seed(1);
    let model = Model::new(name, a, Device::Cpu).unwrap();
    let x = Tensor::randn([4, a.in_channels, a.input_size, a.input_size], (Kind::Float, Device::Cpu));
    let weights = dir.join(format!("{name}.safetensors"));
    let input = dir.join("x.safetensors");
    let out = dir.join("out.safetensors");
    model.vs.save(&weights).unwrap();
    Tensor::write_safetensors(&[("x", &x)], &input).unwrap();
    let status = std::process::Command::new(py)
        .arg(common::repo("tests/oracle/check_model.py"))
        .args([name, &a.num_classes.to_string()])
        .args([&weights, &input, &out])
        .args(arch)
        .status()
        .unwrap();
    assert!(status.success(), "{name} {arch:?}: PyTorch could not load our weights strictly");
    let (eval, _) = run(&model, &x);
    let reference: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(&out).unwrap().into_iter().collect();
    assert_eq!(reference["n_params"].int64_value(&[]), model.num_params(), "{name} {arch:?}: parameter count");
    let d = max_abs_diff(&eval, &reference["eval_out"]);
    assert!(d < 1e-5, "{name} {arch:?}: eval outputs differ by {d}");
    let bn_buffers = model.vs.variables().keys().filter(|n| n.contains("running_")).count();
    let compared = model.vs.variables().keys().filter(|n| reference.contains_key(&format!("buf.{n}"))).count();
    assert!(compared >= bn_buffers, "{name}: {compared} buffers compared of {bn_buffers} BatchNorm statistics");
    for (pname, p) in model.vs.variables() {
        if !p.requires_grad() {
            // Buffers (BatchNorm's running mean and variance, the batch count) and fixed weights
            // after the same train-mode pass.
            if let Some(r) = reference.get(&format!("buf.{pname}")) {
                let d = max_abs_diff(&p.to_kind(Kind::Double), &r.to_kind(Kind::Double));
                assert!(d < 1e-5, "{name} {arch:?}: buffer {pname} differs by {d} after a train-mode pass");
            }
            continue;
        }
        let r = &reference[&format!("grad.{pname}")];
        let scale = r.abs().max().double_value(&[]).max(1e-3);
        let d = max_abs_diff(&p.grad(), r) / scale;
        assert!(d < 1e-4, "{name} {arch:?}: gradient of {pname} differs (relative {d})");
    }
}

#[test]
fn models_equal_pytorch() {
    let Some(py) = common::venv_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for entry in MODELS {
        check_against_pytorch(&py, dir.path(), entry.name, &args(), None);
    }
}

#[test]
fn dataset_variants_equal_pytorch() {
    // The shapes other datasets give the models: 100 classes (CIFAR-100) for every model, and
    // 1-channel 28x28 digits (MNIST, Fashion-MNIST, KMNIST) for every model that takes them
    // (VGG's five poolings need 32 pixels: the trainer refuses it on 28x28 with a message).
    // After a refusal the next model's gradients are compared: the failed probe must not leave
    // autograd off (it once did, through `tch::no_grad` unwinding).
    let Some(py) = common::venv_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut digits, mut refused) = (Vec::new(), Vec::new());
    for entry in MODELS {
        check_against_pytorch(&py, dir.path(), entry.name, &ModelArgs { num_classes: 100, ..args() }, None);
        let gray = ModelArgs { in_channels: 1, input_size: 28, ..args() };
        // The trainer's own check on an MNIST config: a model whose poolings need more pixels is
        // refused there, with a message, and leaves autograd as it was for the next model.
        let text = format!("[data]\ndataset = \"mnist\"\ninput_size = 28\n[model]\nname = \"{}\"", entry.name);
        let cfg = microvision::Config::from_toml_str(&text, "digits", &[]).unwrap();
        let takes = microvision::train::trainer::check_model(&cfg).map(|_| ()).map_err(|e| e.to_string());
        match takes {
            Ok(_) => {
                check_against_pytorch(&py, dir.path(), entry.name, &gray, None);
                digits.push(entry.name);
            }
            Err(e) => refused.push(format!("{}: {e}", entry.name)),
        }
    }
    for must in ["simple_cnn", "resnet18", "improved_cnn", "vit_lite7"] {
        assert!(digits.contains(&must), "{must} must take 1x28x28 digits; refused: {refused:?}");
    }
    eprintln!("1x28x28 checked: {digits:?}; refused: {refused:?}");
}

#[test]
fn every_searchnet_block_type_equals_pytorch() {
    let Some(py) = common::venv_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (block, kernel, widths, depths) in [
        ("basic", 5, [16, 24, 48], [2, 1, 2]),
        ("bottleneck", 3, [32, 64, 64], [1, 2, 1]),
        ("inverted", 7, [16, 16, 32], [2, 2, 1]),
    ] {
        let arch = searchnet::Arch { widths, depths, block: block.into(), kernel };
        let json = serde_json::to_string(&arch).unwrap();
        check_against_pytorch(&py, dir.path(), "searchnet", &ModelArgs { arch, ..args() }, Some(&json));
    }
}

#[test]
fn every_registered_model_exports_to_torchscript() {
    let dir = tempfile::tempdir().unwrap();
    for entry in MODELS {
        tch::manual_seed(2);
        // Dropout and stochastic depth on: the trace is of the evaluation pass, without them.
        let args = ModelArgs { dropout: 0.5, drop_path: 0.2, ..ModelArgs::default() };
        let model = Model::new(entry.name, &args, Device::Cpu).unwrap();
        let trainable = |m: &Model| m.vs.variables().values().filter(|t| t.requires_grad()).count();
        let before = trainable(&model);
        let path = dir.path().join(format!("{}.pt", entry.name));
        torchscript::save(&model, &args, &path).unwrap();
        assert_eq!(trainable(&model), before, "{}: the model trains as before", entry.name);
        // A batch size the export did not trace or check with.
        let x = Tensor::randn([5, 3, 32, 32], (Kind::Float, Device::Cpu));
        let want = tch::no_grad(|| model.forward(&x, false));
        let got = tch::no_grad(|| tch::CModule::load(&path).unwrap().forward_ts(&[&x]).unwrap());
        assert_eq!(got.size(), [5, 10], "{}", entry.name);
        let d = max_abs_diff(&got, &want);
        assert!(d < 1e-5, "{}: TorchScript outputs differ by {d}", entry.name);
    }
}

/// A network whose forward pass reads the batch size: tracing bakes it into the graph.
#[derive(Debug)]
struct BatchBaked;

impl tch::nn::ModuleT for BatchBaked {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        x.view([x.size()[0], -1]).mean_dim(1, true, Kind::Float)
    }
}

impl Network for BatchBaked {}

#[test]
fn a_trace_that_does_not_reproduce_the_model_is_refused_and_not_written() {
    let model = Model { vs: tch::nn::VarStore::new(Device::Cpu), net: Box::new(BatchBaked), name: "baked".into() };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pt");
    let err = torchscript::save(&model, &args(), &path).unwrap_err().to_string();
    assert!(err.contains("does not reproduce") && err.contains("baked") && err.contains("safetensors"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file, not even a temporary one");
}

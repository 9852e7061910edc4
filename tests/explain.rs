//! The explanations against independent implementations, on the same weights: Grad-CAM,
//! Grad-CAM++ and Score-CAM against pytorch-grad-cam, Grad-CAM and saliency against captum,
//! attention rollout against a transcription of the published method (tests/oracle/
//! check_explain.py); and every registered model explained at every input shape the datasets
//! produce.

mod common;

use microvision::analysis::explain::attribution as attr;
use microvision::analysis::explain::maps::{maps, MapMethod, MapSettings};
use microvision::models::{Model, ModelArgs, MODELS};
use tch::{Device, Kind, Tensor};

fn settings(layer: String) -> MapSettings {
    MapSettings { layer, score_cam_batch: 64, smooth_samples: 4, smooth_noise: 0.15, seed: 3 }
}

/// A model after a few Adam steps on a random batch: its logits depend on the input (at
/// initialisation some, e.g. EfficientNet's, barely do, and Grad-CAM++'s cubed gradients vanish),
/// and its BatchNorm statistics are not the initial ones.
fn model(name: &str, args: &ModelArgs, seed: i64) -> Model {
    trained(name, args, seed, 3)
}

/// A model after `steps` Adam steps on a random batch.
fn trained(name: &str, args: &ModelArgs, seed: i64, steps: usize) -> Model {
    use tch::nn::OptimizerConfig;
    tch::manual_seed(seed);
    let m = Model::new(name, args, Device::Cpu).unwrap();
    let x = Tensor::randn([16, args.in_channels, args.input_size, args.input_size], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(args.num_classes, [16], (Kind::Int64, Device::Cpu));
    let mut opt = tch::nn::Adam::default().build(&m.vs, 1e-3).unwrap();
    for _ in 0..steps {
        opt.backward_step(&m.forward(&x, true).cross_entropy_for_logits(&y));
    }
    m
}

/// Whether the model runs at this input shape at all (VGG's five poolings need 32 pixels).
fn runs_at(name: &str, args: &ModelArgs) -> bool {
    let m = Model::new(name, args, Device::Cpu).unwrap();
    let x = Tensor::zeros([1, args.in_channels, args.input_size, args.input_size], (Kind::Float, Device::Cpu));
    // A guard, not `tch::no_grad`: it restores gradient mode also when the forward pass unwinds.
    let _guard = tch::no_grad_guard();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.forward(&x, false))).is_ok()
}

fn default_layer(m: &Model, args: &ModelArgs) -> String {
    let points = attr::layers(m, args.in_channels, args.input_size);
    attr::default_cam_layer(m, &points).unwrap()
}

#[test]
fn maps_equal_pytorch_grad_cam_and_captum() {
    let Some(py) = common::venv_python() else {
        return;
    };
    let ok = std::process::Command::new(&py)
        .args(["-c", "import pytorch_grad_cam, captum"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        common::skip("pytorch-grad-cam or captum missing from the venv (run scripts/setup.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = ModelArgs { dropout: 0.0, ..ModelArgs::default() };
    for entry in MODELS {
        // Eight images and classes: a ReLU'd map can be all zero for one image, not for all.
        let x = Tensor::randn([8, 3, 32, 32], (Kind::Float, Device::Cpu));
        let classes = Tensor::from_slice(&[3i64, 0, 7, 1, 9, 4, 2, 5]);
        // Score-CAM runs one pass per channel: checked on the narrower models.
        let mut methods = vec![MapMethod::GradCam, MapMethod::GradCamPlusPlus, MapMethod::Saliency];
        if ["simple_cnn", "resnet18", "vit_lite7"].contains(&entry.name) {
            methods.push(MapMethod::ScoreCam);
        }
        if entry.name == "vit_lite7" {
            methods.push(MapMethod::Rollout);
        }
        // The first weights whose maps are not all zero (a comparison of zeros proves nothing):
        // trained a few steps, else as initialised.
        let (m, layer, ours) = [(12, 3), (13, 3), (14, 3), (12, 0), (13, 0)]
            .into_iter()
            .map(|(seed, steps)| {
                let m = trained(entry.name, &args, seed, steps);
                let layer = default_layer(&m, &args);
                let st = settings(layer.clone());
                let mut ours = Vec::new();
                for &method in &methods {
                    let (raw, image) = maps(&m, method, &x, &classes, &st).unwrap();
                    ours.push((format!("{}.raw", method.name()), raw.contiguous()));
                    ours.push((format!("{}.maps", method.name()), image.contiguous()));
                }
                (m, layer, ours)
            })
            .find(|(_, _, ours)| ours.iter().all(|(_, t)| t.abs().max().double_value(&[]) > 0.0))
            .expect("weights whose maps are not all zero");
        let weights = dir.path().join("w.safetensors");
        let (input, out) = (dir.path().join("x.safetensors"), dir.path().join("ours.safetensors"));
        m.vs.save(&weights).unwrap();
        Tensor::write_safetensors(&[("x", &x), ("classes", &classes)], &input).unwrap();
        let named: Vec<(&str, &Tensor)> = ours.iter().map(|(n, t)| (n.as_str(), t)).collect();
        Tensor::write_safetensors(&named, &out).unwrap();
        let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
        let o = std::process::Command::new(&py)
            .arg(common::repo("tests/oracle/check_explain.py"))
            .args([entry.name, &layer])
            .args([&weights, &input, &out])
            .arg(names.join(","))
            .env("TQDM_DISABLE", "1")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        eprintln!("{text}");
        assert!(o.status.success(), "{} at {layer}: the maps differ from the references:\n{text}", entry.name);
    }
}

#[test]
fn every_model_is_explained_at_every_dataset_shape() {
    // CIFAR-10, CIFAR-100 and the MNIST family (1 channel, 28x28).
    let shapes = [(3, 32, 10), (3, 32, 100), (1, 28, 10)];
    for entry in MODELS {
        for &(c, s, k) in &shapes {
            let args =
                ModelArgs { in_channels: c, input_size: s, num_classes: k, dropout: 0.0, ..ModelArgs::default() };
            if !runs_at(entry.name, &args) {
                eprintln!("{} does not run at {c}x{s}x{s}: not explained there", entry.name);
                continue;
            }
            let m = model(entry.name, &args, 5);
            let st = settings(default_layer(&m, &args));
            let x = Tensor::randn([2, c, s, s], (Kind::Float, Device::Cpu));
            let classes = Tensor::from_slice(&[k - 1, 0]);
            let mut methods = vec![MapMethod::GradCam, MapMethod::GradCamPlusPlus, MapMethod::Saliency];
            if entry.name == "vit_lite7" {
                methods.push(MapMethod::Rollout);
            }
            for method in methods {
                let (raw, image) = maps(&m, method, &x, &classes, &st).unwrap();
                let what = format!("{} {method:?} at {c}x{s}x{s}, {k} classes", entry.name);
                assert_eq!(image.size(), [2, s, s], "{what}");
                assert!(bool::try_from(raw.isfinite().all()).unwrap(), "{what}: non-finite raw map");
                let (lo, hi) = (image.min().double_value(&[]), image.max().double_value(&[]));
                assert!((0.0..=1.0).contains(&lo) && hi <= 1.0, "{what}: image map outside [0, 1]");
            }
        }
    }
}

#[test]
fn smooth_grad_is_seeded_and_without_noise_is_saliency() {
    let args = ModelArgs { dropout: 0.0, ..ModelArgs::default() };
    let m = model("simple_cnn", &args, 1);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let c = Tensor::from_slice(&[1i64, 2]);
    let a = attr::smooth_grad(&m, &x, &c, 3, 0.2, 9);
    let b = attr::smooth_grad(&m, &x, &c, 3, 0.2, 9);
    assert!(a.equal(&b), "the same seed gives the same SmoothGrad");
    assert!(!a.equal(&attr::smooth_grad(&m, &x, &c, 3, 0.2, 10)), "another seed, other noise");
    let clean = attr::smooth_grad(&m, &x, &c, 2, 0.0, 9);
    let d = (clean - attr::saliency(&m, &x, &c)).abs().max().double_value(&[]);
    assert!(d < 1e-6, "no noise: SmoothGrad is saliency (differs by {d})");
}

#[test]
fn an_unknown_layer_lists_the_valid_ones() {
    let args = ModelArgs::default();
    let m = model("resnet18", &args, 1);
    let points = attr::layers(&m, 3, 32);
    assert_eq!(attr::default_cam_layer(&m, &points).unwrap(), "layer4.1");
    let err = attr::check_layer(&m, &points, "layer9").unwrap_err().to_string();
    assert!(err.contains("layer9") && err.contains("layer4.1") && err.contains("layer1.0.conv1"), "{err}");
    let st = settings("layer3.1".into());
    let (raw, _) = maps(
        &m,
        MapMethod::GradCam,
        &Tensor::randn([1, 3, 32, 32], (Kind::Float, Device::Cpu)),
        &Tensor::from_slice(&[0i64]),
        &st,
    )
    .unwrap();
    assert_eq!(raw.size(), [1, 8, 8], "layer3 of a CIFAR ResNet is 8x8");
}

#[test]
fn rollout_of_a_cnn_is_refused_with_the_reason() {
    let args = ModelArgs::default();
    let m = model("simple_cnn", &args, 1);
    let err = maps(
        &m,
        MapMethod::Rollout,
        &Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu)),
        &Tensor::from_slice(&[0i64]),
        &settings("features.10".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no attention") && err.contains("vit_lite7"), "{err}");
}

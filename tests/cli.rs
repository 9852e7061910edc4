//! The `microvision` binary end to end on synthetic data: success paths, and user mistakes that
//! must end in a clear message and the documented exit code, never a panic.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_user_error, mv, stderr, write_config};

#[test]
fn train_eval_and_resume_a_finished_run() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let cfg = write_config(tmp.path());
    let out = mv(&["train", "-c", cfg.to_str().unwrap(), "--set", "optim.lr=0.01"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("test accuracy"));
    let run = std::fs::read_dir(tmp.path().join("runs")).unwrap().next().unwrap().unwrap().path();
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(saved.contains("lr = 0.01"), "the resolved config is saved: {saved}");

    let out = mv(&["eval", run.to_str().unwrap(), "--checkpoint", "last"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run.join("eval-last.json").exists());
    // Another test set (here a part of it) gets a file of its own: the run's evaluation stays.
    let before = std::fs::read(run.join("eval-last.json")).unwrap();
    let out = mv(&["eval", run.to_str().unwrap(), "--set", "data.limit_test=10"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(run.join("eval-last.json")).unwrap(), before);
    let other: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("eval-last-data") && n.ends_with(".json"))
        .collect();
    assert_eq!(other.len(), 1, "{other:?}");
    // predict: the first test image, as a PNG file, gets the class and confidence eval gave it.
    let bytes = std::fs::read(tmp.path().join("cifar-10-batches-bin/test_batch.bin")).unwrap();
    let planes = &bytes[1..3073];
    let rgb: Vec<u8> = (0..1024).flat_map(|i| (0..3).map(move |c| planes[c * 1024 + i])).collect();
    let png = tmp.path().join("first.png");
    image::RgbImage::from_raw(32, 32, rgb).unwrap().save(&png).unwrap();
    let out = mv(&["predict", run.to_str().unwrap(), png.to_str().unwrap(), "--top", "1"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let last: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval-last.json")).unwrap()).unwrap();
    let class = last["classes"][last["predictions"][0].as_u64().unwrap() as usize].as_str().unwrap();
    let conf = last["confidences"][0].as_f64().unwrap() * 100.0;
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains(&format!("first.png: {class} {conf:.1}%")), "{line} vs {class} {conf:.1}%");
    let out = mv(&["predict", run.to_str().unwrap(), "nothing.png"], tmp.path());
    assert_user_error(&out, 3, &["nothing.png", "cannot read the image"]);
    // Re-evaluation with other settings: TTA on the unsure images only; a misspelt key is named.
    let r = run.to_str().unwrap();
    let out = mv(&["eval", r, "--set", "train.tta=2", "--set", "train.tta_cutoff=1.0"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval-last-tta2-cutoff1.json")).unwrap()).unwrap();
    assert!(run.join("eval-last.json").exists(), "the evaluation without TTA is kept");
    // A barely trained model is sure of no image: (almost) all get the views.
    assert!(eval["tta_share"].as_f64().unwrap() > 0.9, "{eval}");
    assert_eq!((eval["tta"].as_i64(), eval["tta_cutoff"].as_f64()), (Some(2), Some(1.0)), "{eval}");
    assert!(eval["accuracy_top5"].as_f64().unwrap() >= eval["accuracy"].as_f64().unwrap(), "{eval}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("TTA level 2 on"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_user_error(&mv(&["eval", r, "--set", "train.tta_cutof=0.5"], tmp.path()), 2, &["tta_cutof", "tta_cutoff"]);
    // `auto` trained in bf16 or fp32 depending on the CPU: evaluate in the other one.
    let other = if microvision::device::cpu_has_native_bf16() { "fp32" } else { "bf16" };
    let out = mv(&["eval", r, "--set", &format!("train.precision={other}")], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run.join(format!("eval-last-{other}.json")).exists(), "another precision: another file");

    let before = std::fs::read(run.join("checkpoints/last.safetensors")).unwrap();
    let events = std::fs::read_dir(&run).unwrap().count();
    let out = mv(&["train", "--resume", run.to_str().unwrap()], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
    assert_eq!(before, std::fs::read(run.join("checkpoints/last.safetensors")).unwrap(), "finished run untouched");
    assert_eq!(events, std::fs::read_dir(&run).unwrap().count(), "no new files (e.g. TensorBoard events)");
    // Stopped while drawing the final plots (a second Ctrl-C): the resume draws the missing ones.
    for f in ["lr.png", "confusion.svg", "per_class_accuracy.png"] {
        std::fs::remove_file(run.join("plots").join(f)).unwrap();
    }
    let out = mv(&["train", "--resume", run.to_str().unwrap()], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("lacked 3 of its plot files"), "{}", stderr(&out));
    assert!(microvision::analysis::plots::missing_plots(&run).is_empty(), "every plot drawn again");
    assert_eq!(before, std::fs::read(run.join("checkpoints/last.safetensors")).unwrap(), "finished run untouched");

    assert_user_error(&mv(&["compare", r, r], tmp.path()), 2, &["given twice"]);
    // A run without any epoch in metrics.jsonl is left out, not averaged in as zeros.
    let empty = tmp.path().join("empty-run");
    std::fs::create_dir(&empty).unwrap();
    for f in ["config.toml", "env.json", "eval.json"] {
        std::fs::copy(run.join(f), empty.join(f)).unwrap();
    }
    std::fs::write(empty.join("metrics.jsonl"), "").unwrap();
    let o = mv(&["compare", r, empty.to_str().unwrap(), "--plot-dir", tmp.path().to_str().unwrap()], tmp.path());
    assert!(
        o.status.success() && stderr(&o).contains("skipping") && stderr(&o).contains("empty-run"),
        "{}",
        stderr(&o)
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("+-"), "nothing averaged with the empty run");
    // `report --out` never replaces a file that is not a report.
    let config = run.join("config.toml");
    let o = mv(&["report", r, "--out", config.to_str().unwrap()], tmp.path());
    assert_user_error(&o, 2, &["not a microvision report"]);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), saved, "the run's config is left as it was");
    // The data moved away: an existing run says where it reads its data from.
    let (data, moved) = (tmp.path().join("cifar-10-batches-bin"), tmp.path().join("moved"));
    std::fs::rename(&data, &moved).unwrap();
    let o = mv(&["eval", r, "--set", "data.download=false"], tmp.path()); // never fetch in a test
    assert_user_error(&o, 3, &["config.toml", "--set data.root=DIR"]);
    std::fs::rename(&moved, &data).unwrap();
    // A config that names another model than the checkpoint holds: export refuses, as eval does.
    let saved = saved.replace("name = \"simple_cnn\"", "name = \"improved_cnn\"");
    std::fs::write(run.join("config.toml"), saved).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    let o = mv(&["export", r, "--out", elsewhere.to_str().unwrap()], tmp.path());
    assert_user_error(&o, 4, &["does not fit this model"]);
    assert!(!elsewhere.exists(), "nothing written");
}

#[test]
fn config_prints_every_key_with_its_value() {
    let out = mv(&["config", "--set", "optim.lr=0.3"], Path::new("."));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed: microvision::Config = toml::from_str(&text).unwrap();
    assert_eq!(parsed.optim.lr, 0.3);
    for section in ["[data]", "[model]", "[optim]", "[schedule]", "[train]", "[augment]", "[track]", "[output]"] {
        assert!(text.contains(section), "{section}: {text}");
    }
}

#[test]
fn models_lists_the_registry() {
    let out = mv(&["models"], Path::new("."));
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["simple_cnn", "improved_cnn", "resnet18", "vgg11"] {
        assert!(text.contains(name), "{text}");
    }
    assert!(text.contains("1147914"), "SimpleCNN parameter count: {text}");
    let out = mv(&["models", "--summary", "resnet18"], Path::new("."));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("layer1.0.conv1") && text.contains("total: 11173962 parameters"), "{text}");
    assert_user_error(&mv(&["models", "--summary", "resnet19"], Path::new(".")), 2, &["resnet19", "resnet18"]);
}

#[test]
fn config_mistakes_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 10, 10);
    let cfg = write_config(tmp.path());
    let c = cfg.to_str().unwrap();
    assert_user_error(
        &mv(&["train", "-c", c, "--set", "optim.lrr=1"], tmp.path()),
        2,
        &["optim.lrr", "did you mean `optim.lr`"],
    );
    assert_user_error(
        &mv(&["train", "-c", c, "--set", "model.name=resnet19"], tmp.path()),
        2,
        &["resnet19", "resnet18"],
    );
    assert_user_error(&mv(&["train", "-c", "/no/such.toml"], tmp.path()), 2, &["/no/such.toml"]);
    // A data root that is a file is a data error (exit 3), as the README's table says.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let root = format!("data.root={}", file.display());
    assert_user_error(&mv(&["train", "-c", c, "--set", &root], tmp.path()), 3, &["is not a directory", "data.root"]);
    assert_user_error(&mv(&["train", "-c", c, "--set", "train.device=cuda"], tmp.path()), 2, &["cuda"]);
    assert_user_error(
        &mv(&["train", "-c", c, "--set", "data.batch_size=5000"], tmp.path()),
        2,
        &["data.batch_size", "50 images"],
    );
    let ckpt = ["train", "-c", c, "--set", "train.grad_checkpointing=true"];
    assert_user_error(&mv(&ckpt, tmp.path()), 2, &["grad_checkpointing", "simple_cnn", "resnet"]);
    assert_user_error(&mv(&["train", "-c", c, "--set", "optim.betas=[0.9]"], tmp.path()), 2, &["optim.betas"]);
    let o = mv(&["train", "-c", c, "--set", "schedule.warmup_epochs=1"], tmp.path());
    assert_user_error(&o, 2, &["schedule.warmup_epochs", "\"onecycle\" has its own rise"]);
    for shared in ["/tmp/ckpt", "../ckpt", ""] {
        let o = mv(&["train", "-c", c, "--set", &format!("output.checkpoint_dir=\"{shared}\"")], tmp.path());
        assert_user_error(&o, 2, &["output.checkpoint_dir", "inside the run directory"]);
    }
    for taken in ["config.toml", "./metrics.jsonl", "eval-best.json"] {
        let o = mv(&["train", "-c", c, "--set", &format!("output.checkpoint_dir=\"{taken}\"")], tmp.path());
        assert_user_error(&o, 2, &["output.checkpoint_dir", "one of the run's own files"]);
    }
    assert!(!tmp.path().join("runs").exists(), "no run directory for a rejected config");
}

#[test]
fn missing_data_exits_3_and_says_where() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path());
    let out = mv(&["train", "-c", cfg.to_str().unwrap(), "--set", "data.download=false"], &tmp.path().join("nothing"));
    assert_user_error(&out, 3, &["cifar10 not found", "MICROVISION_DATA"]);
}

#[test]
fn bad_run_directory_exits_4() {
    let tmp = tempfile::tempdir().unwrap();
    assert_user_error(&mv(&["eval", tmp.path().to_str().unwrap()], tmp.path()), 4, &["not a run directory"]);
    assert_user_error(&mv(&["train", "--resume", "/no/such/run"], tmp.path()), 4, &["does not exist"]);
    let file = tmp.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    assert_user_error(&mv(&["report", file.to_str().unwrap()], tmp.path()), 4, &["is a file"]);
}

#[test]
fn out_of_range_arguments_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &["bench", "throughput", "--precision", "fp8"],
        &["bench", "throughput", "--device", "tpu"],
        &["bench", "throughput", "--batch", "0"],
        &["bench", "throughput", "--steps", "0"],
        &["bench", "speedrun", "--runs", "0"],
        &["bench", "speedrun", "--target", "200"],
        &["data", "preview", "--per-class", "100000"],
    ];
    for args in cases {
        let o = mv(args, tmp.path());
        let flag = args[2];
        assert_user_error(&o, 2, &[flag]);
    }
    if !tch::Cuda::is_available() {
        // Valid names that this machine cannot honour: the message names the flag, not a config key.
        for (flag, value) in [("--precision", "fp16"), ("--device", "cuda")] {
            let o = mv(&["bench", "throughput", flag, value], tmp.path());
            assert_user_error(&o, 2, &[&format!("{flag} = \"{value}\"")]);
        }
    }
}

#[test]
fn sigint_saves_a_checkpoint_and_prints_the_resume_command() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 20);
    let cfg = write_config(tmp.path());
    let child = Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["train", "-c", cfg.to_str().unwrap(), "--set", "train.epochs=200", "--set", "train.log_every=1"])
        .env("MICROVISION_DATA", tmp.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training is under way (a step line is logged), then interrupt it.
    let runs = tmp.path().join("runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let metrics = loop {
        let found =
            std::fs::read_dir(&runs).ok().and_then(|mut d| d.next()).map(|e| e.unwrap().path().join("metrics.jsonl"));
        if let Some(m) = found.filter(|m| std::fs::read_to_string(m).is_ok_and(|t| t.contains("\"step\""))) {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let run = metrics.parent().unwrap();
    // While it trains, a second process may not train the same run.
    let lines = std::fs::read_to_string(&metrics).unwrap().lines().count();
    let o = mv(&["train", "--resume", run.to_str().unwrap()], tmp.path());
    assert_user_error(&o, 4, &["is being trained by another process", &format!("pid {}", child.id())]);
    assert!(std::fs::read_to_string(&metrics).unwrap().lines().count() >= lines, "metrics untouched");
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_user_error(&out, 130, &["Resume with: microvision train --resume"]);
    assert!(microvision::train::checkpoint::load(&run.join("checkpoints"), "last").is_ok());
    let out = mv(&["train", "--resume", run.to_str().unwrap(), "--set", "x=1"], tmp.path());
    assert_user_error(&out, 2, &["`x` cannot change when a run resumes"]);
}

#[test]
fn a_second_sigint_quits_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 20);
    let cfg = write_config(tmp.path());
    // ResNet-18 steps of 64 images take long enough for a second Ctrl-C to land inside one.
    let sets = ["train.epochs=50", "train.log_every=1", "model.name=\"resnet18\"", "data.batch_size=64"];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_microvision"));
    cmd.args(["train", "-c", cfg.to_str().unwrap()]);
    sets.iter().for_each(|s| {
        cmd.args(["--set", s]);
    });
    let child = cmd.env("MICROVISION_DATA", tmp.path()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let runs = tmp.path().join("runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !std::fs::read_dir(&runs).ok().and_then(|mut d| d.next()).is_some_and(|e| {
        std::fs::read_to_string(e.unwrap().path().join("metrics.jsonl")).is_ok_and(|t| t.contains("\"step\""))
    }) {
        assert!(std::time::Instant::now() < deadline, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id() as i32;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGINT) };
    // Long enough for the first handler to have run (two pending SIGINTs would merge into one),
    // far shorter than the step in progress and the checkpoint the first one asks for.
    std::thread::sleep(std::time::Duration::from_millis(20));
    unsafe { libc::kill(pid, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_user_error(&out, 130, &["second interrupt: quitting at once", "--resume"]);
}

#[test]
fn libtorch_panics_are_recognised_and_others_are_not() {
    // What tch panics with when LibTorch throws (see tch's `unwrap()` on a `TchError::Torch`).
    let torch: Box<dyn std::any::Any + Send> = Box::new(String::from(
        "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. Tried to allocate 2.00 GiB\\nException raised from malloc\")",
    ));
    assert_eq!(
        microvision::cli::torch_message(torch.as_ref()).as_deref(),
        Some("CUDA out of memory. Tried to allocate 2.00 GiB")
    );
    let bug: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
    assert_eq!(microvision::cli::torch_message(bug.as_ref()), None);
}

#[test]
fn lr_find_and_augment_preview_write_their_pictures() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 40, 20);
    let cfg = write_config(tmp.path());
    let o = mv(&["lr-find", "-c", cfg.to_str().unwrap(), "--steps", "12", "--end", "1"], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("swept 12 steps") && out.contains("suggested lr"), "{out}");
    let run = std::fs::read_dir(tmp.path().join("runs")).unwrap().next().unwrap().unwrap().path();
    assert!(run.file_name().unwrap().to_string_lossy().starts_with("cli-lrfind-"));
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("lr_find.json")).unwrap()).unwrap();
    assert_eq!(rec["lrs"].as_array().unwrap().len(), 12);
    assert!(run.join("lr_find.png").exists() && run.join("lr_find.svg").exists());
    let o = mv(&["lr-find", "-c", cfg.to_str().unwrap(), "--start", "1", "--end", "0.1"], tmp.path());
    assert_user_error(&o, 2, &["--start", "--end"]);
    let o = mv(&["lr-find", "-c", cfg.to_str().unwrap(), "--end", "1.7e308"], tmp.path());
    assert_user_error(&o, 2, &["--end <= 1e4", "1.7e308"]);
    for cmd in ["eval", "export", "plot", "report"] {
        assert_user_error(&mv(&[cmd, run.to_str().unwrap()], tmp.path()), 4, &["learning-rate sweep", "lr_find.json"]);
    }
    let o = mv(&["train", "--resume", run.to_str().unwrap()], tmp.path());
    assert_user_error(&o, 4, &["learning-rate sweep", "nothing to resume"]);
    assert!(!run.join("checkpoints").exists(), "no training inside the sweep's directory");
    assert_user_error(
        &mv(&["compare", run.to_str().unwrap()], tmp.path()),
        2,
        &["skipping", "only learning-rate sweeps"],
    );

    let out_dir = tmp.path().join("preview");
    let args = ["augment-preview", "-c", cfg.to_str().unwrap(), "--set", "augment.mixup_alpha=0.4", "--count", "20"];
    let o = mv(&[&args[..], &["--out", out_dir.to_str().unwrap()]].concat(), tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let png = std::fs::read(out_dir.join("augment_preview.png")).unwrap();
    assert!(png.len() > 10_000, "a grid of 20 images");
    let svg = std::fs::read_to_string(out_dir.join("augment_preview.svg")).unwrap();
    assert!(svg.contains('%'), "mixed batches are captioned with their target weights");
}

#[test]
fn data_preview_draws_a_row_per_class() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let out = tmp.path().join("preview");
    let o = mv(&["data", "preview", "cifar10", "--per-class", "3", "--out", out.to_str().unwrap()], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = std::fs::read_to_string(out.join("data_preview.svg")).unwrap();
    assert!(["airplane", "truck", "3 training images per class"].iter().all(|w| svg.contains(w)));
    let o = mv(&["data", "preview", "imagenet"], tmp.path());
    assert_user_error(&o, 2, &["imagenet", "fashion_mnist"]);
    // Not there: the advice uses this command's flags (it never downloads by itself).
    let o = mv(&["data", "info", "fashion_mnist"], tmp.path());
    assert_user_error(&o, 3, &["fashion_mnist not found", "microvision data download fashion_mnist", "--root DIR"]);
}

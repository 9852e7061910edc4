//! `examples/lab.rs`, the library used alone (train, eval, predict on an image file, export),
//! run end to end on a synthetic CIFAR-10, as a user would run it.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/lab`, which `cargo test` builds beside the test binaries.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap(); // target/<profile>/deps/example_lab-<hash>
    exe.parent().unwrap().parent().unwrap().join("examples").join("lab")
}

#[test]
fn the_lab_example_trains_evaluates_predicts_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 64, 64);
    let runs = tmp.path().join("runs");
    let out = Command::new(example_binary())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("MICROVISION_DATA", tmp.path())
        .args([
            "--set",
            "data.batch_size=32",
            "--set",
            "data.official_files=false",
            "--set",
            "train.threads=1",
            "--set",
        ])
        .arg(format!("output.runs_dir={}", runs.display()))
        .output()
        .expect("the example is built by `cargo test` (target/<profile>/examples/lab)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
    for file in ["eval.json", "eval-last.json", "test-image-0.png", "export/model.safetensors", "export/model.pt"] {
        assert!(run.join(file).is_file(), "{file} missing in {}:\n{stdout}", run.display());
    }
    // The prediction line names the image and three classes with probabilities.
    let line = stdout.lines().find(|l| l.contains("test-image-0.png: ")).expect(&stdout);
    assert_eq!(line.matches('%').count(), 3, "{line}");
    // eval-last.json is the same checkpoint evaluated again: the same accuracy as eval.json.
    let acc = |f: &str| {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join(f)).unwrap()).unwrap();
        v["accuracy"].as_f64().unwrap()
    };
    assert_eq!(acc("eval.json"), acc("eval-last.json"));
}

//! `microvision export` end to end: both formats run in PyTorch, and an export replaces only an
//! earlier export (its own `model.json` and files), whatever else lies in the directory.

mod common;

use std::process::Command;

use common::{assert_user_error, copy_dir, mv, stderr, write_config};

#[test]
fn export_writes_both_formats_and_replaces_only_an_earlier_export() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let cfg = write_config(tmp.path());
    let out = mv(&["train", "-c", cfg.to_str().unwrap()], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let run = std::fs::read_dir(tmp.path().join("runs")).unwrap().next().unwrap().unwrap().path();
    let r = run.to_str().unwrap();

    let out = mv(&["export", run.to_str().unwrap(), "--format", "safetensors"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("export/model.json")).unwrap()).unwrap();
    assert_eq!(meta["model"], "simple_cnn");
    assert_eq!(meta["args"]["num_classes"], 10);
    if let Some(py) = common::venv_python() {
        // The README's three lines: PyTorch loads the export strictly.
        let script = "import sys; sys.path.insert(0, sys.argv[1]); import models\n\
                      from safetensors.torch import load_file\n\
                      m = models.build('simple_cnn', num_classes=10)\n\
                      m.load_state_dict(load_file(sys.argv[2]), strict=True)";
        let status = Command::new(py)
            .args(["-c", script])
            .arg(common::repo("pytorch"))
            .arg(run.join("export/model.safetensors"))
            .status()
            .unwrap();
        assert!(status.success(), "PyTorch loads the exported weights");
    }
    let out = mv(&["export", r, "--format", "torchscript"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run.join("export/model.pt").exists() && run.join("export/model.safetensors").exists());
    if let Some(py) = common::venv_python() {
        // PyTorch runs the TorchScript file without model code, and it gives the logits of the
        // exported weights in the transcription.
        let script = "import sys, torch; sys.path.insert(0, sys.argv[1]); import models\n\
                      from safetensors.torch import load_file\n\
                      m = models.build('simple_cnn', num_classes=10).eval()\n\
                      m.load_state_dict(load_file(sys.argv[2]), strict=True)\n\
                      x = torch.randn(7, 3, 32, 32)\n\
                      with torch.no_grad(): d = (torch.jit.load(sys.argv[3])(x) - m(x)).abs().max().item()\n\
                      assert d < 1e-5, d";
        let status = Command::new(py)
            .args(["-c", script])
            .arg(common::repo("pytorch"))
            .arg(run.join("export/model.safetensors"))
            .arg(run.join("export/model.pt"))
            .status()
            .unwrap();
        assert!(status.success(), "PyTorch runs the TorchScript export as the model");
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("export/model.json")).unwrap()).unwrap();
    let files: Vec<&String> = meta["files"].as_object().unwrap().keys().collect();
    assert_eq!(files, ["model.pt", "model.safetensors"], "model.json lists both files (with their CRC32C)");
    // model.json describes both files: other weights (another checkpoint file) may not join them.
    let mut other = meta.clone();
    other["checkpoint_crc32c"] = "00000000".into();
    std::fs::write(run.join("export/model.json"), other.to_string()).unwrap();
    let pt = std::fs::read(run.join("export/model.pt")).unwrap();
    let o = mv(&["export", r], tmp.path());
    assert_user_error(&o, 2, &["holds model.pt", "--out DIR"]);
    assert_eq!(std::fs::read(run.join("export/model.pt")).unwrap(), pt, "the TorchScript file is left alone");
    std::fs::write(run.join("export/model.json"), meta.to_string()).unwrap();
    // A file it does not describe (changed since), or a model.json of someone else's, is not replaced.
    let elsewhere = tmp.path().join("theirs");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("model.json"), "{\"mine\": 1}").unwrap();
    let o = mv(&["export", r, "--out", elsewhere.to_str().unwrap()], tmp.path());
    assert_user_error(&o, 2, &["not a microvision export's", "--out DIR"]);
    assert_eq!(std::fs::read_to_string(elsewhere.join("model.json")).unwrap(), "{\"mine\": 1}");
    std::fs::write(run.join("export/model.safetensors"), b"changed").unwrap();
    let o = mv(&["export", r, "--format", "torchscript"], tmp.path());
    assert_user_error(&o, 2, &["model.safetensors, which its model.json does not describe"]);
    // The same format's file is this export's to replace, changed or not.
    let o = mv(&["export", r], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    // The run moved (or given as another path): the same weights join the other format's file.
    let moved = tmp.path().join("moved-run");
    copy_dir(&run, &moved);
    let o = mv(
        &["export", &format!("{}/", moved.display()), "--out", &format!("{r}/export"), "--format", "torchscript"],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // An export of an earlier version (model.json without the file list and weight identity).
    let legacy = tmp.path().join("legacy");
    std::fs::create_dir(&legacy).unwrap();
    std::fs::copy(run.join("export/model.safetensors"), legacy.join("model.safetensors")).unwrap();
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("export/model.json")).unwrap()).unwrap();
    for k in ["files", "run", "step", "checkpoint_crc32c"] {
        old.as_object_mut().unwrap().remove(k);
    }
    std::fs::write(legacy.join("model.json"), old.to_string()).unwrap();
    let o = mv(&["export", r, "--out", legacy.to_str().unwrap(), "--format", "torchscript"], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    // A saved config that an earlier version accepted but new runs may not use stays readable.
    let text = std::fs::read_to_string(moved.join("config.toml")).unwrap();
    let text =
        text.replacen("name = \"", "name = \"old-lrfind-", 1).replace("nan_lr_factor = 0.5", "nan_lr_factor = 0.0");
    assert!(text.contains("nan_lr_factor = 0.0"), "{text}");
    std::fs::write(moved.join("config.toml"), text).unwrap();
    let o = mv(&["export", moved.to_str().unwrap(), "--out", tmp.path().join("old-out").to_str().unwrap()], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    // ... and its directory, named like a sweep's, holds checkpoints: a training run.
    let named = tmp.path().join("old-lrfind-20260101-000000");
    std::fs::rename(&moved, &named).unwrap();
    let o = mv(&["export", named.to_str().unwrap(), "--out", tmp.path().join("old-out").to_str().unwrap()], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
}

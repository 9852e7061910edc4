//! `microvision explain` end to end on a tiny trained run: every method's files, the summary,
//! TensorBoard's projector reading the embeddings back, the report with the new pictures in
//! headless Chromium, and the user mistakes answered with clear errors.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use microvision::analysis::explain::ExplainSummary;
use microvision::train::Trainer;

/// A tiny finished SimpleCNN run on synthetic CIFAR-10 (200 test images), and its data root.
fn run() -> &'static (PathBuf, PathBuf) {
    static RUN: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explain_cli");
        let _ = std::fs::remove_dir_all(&root);
        common::synthetic_cifar10(&root, 40, 200);
        let mut t = Trainer::new(common::tiny_config(&root, &root.join("runs"))).unwrap();
        microvision::lab::fit(&mut t).unwrap();
        (t.run_dir.clone(), root)
    })
}

fn explain(args: &[&str]) -> std::process::Output {
    let (dir, root) = run();
    let mut all = vec!["explain", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    common::mv(&all, root)
}

#[test]
fn explain_all_writes_maps_embeddings_projector_and_report() {
    let o = explain(&["--method", "all", "--perplexity", "10", "--test-images", "20", "--smooth-samples", "3"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{out}", common::stderr(&o));
    let dir = &run().0;
    let summary = ExplainSummary::read(dir).expect("explain/summary.json");
    let names: Vec<&str> = summary.maps.iter().map(|m| m.method.name()).collect();
    // Every method but rollout, which a CNN does not have (skipped when "all" is asked).
    assert_eq!(names, ["gradcam", "gradcam++", "scorecam", "saliency", "smoothgrad"], "{out}");
    for m in &summary.maps {
        assert_eq!(m.images, 20, "{:?} timed over --test-images", m.method);
        assert!(dir.join(&m.file).exists(), "{}", m.file);
        let tensors = tch::Tensor::read_safetensors(dir.join(&m.file)).unwrap();
        let names: Vec<&str> = tensors.iter().map(|t| t.0.as_str()).collect();
        for want in ["raw", "maps", "index", "target", "raw_all"] {
            assert!(names.contains(&want), "{} lacks {want}: {names:?}", m.file);
        }
        for f in &m.figures {
            for ext in ["png", "svg"] {
                assert!(dir.join("plots").join(format!("{}.{ext}", f.stem)).exists(), "{}.{ext}", f.stem);
            }
        }
    }
    assert_eq!(summary.maps[0].layer.as_deref(), Some("features.10"), "SimpleCNN's last block");
    let e = summary.embedding.as_ref().expect("embeddings");
    assert_eq!((e.points, e.dim, e.layer.as_str()), (200, 512, "classifier.3"));
    assert!((0.0..=1.0).contains(&e.knn_acc_tsne) && e.knn_acc_features > 0.1, "{e:?}");
    assert!(dir.join("plots/explain_tsne.svg").exists() && dir.join("projector_config.pbtxt").exists());

    if let Some(py) = common::venv_python() {
        let o = std::process::Command::new(py)
            .arg(common::repo("tests/oracle/check_projector.py"))
            .arg(dir)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "TensorBoard's projector could not read the embeddings:\n{text}");
    }

    // A second call with one method keeps the others in the summary (and the report).
    let o = explain(&["--method", "gradcam", "--class", "cat", "--layer", "features.6"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let again = ExplainSummary::read(dir).unwrap();
    assert_eq!(again.maps.len(), 5, "other methods kept");
    assert_eq!(again.maps[0].layer.as_deref(), Some("features.6"));
    assert!(again.embedding.is_some());

    let (_, root) = run();
    let o = common::mv(&["report", dir.to_str().unwrap()], root);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for stem in ["explain_gradcam_classes", "explain_gradcampp_wrong", "explain_saliency_classes", "explain_tsne"] {
        assert!(html.contains(&format!("<figure id=\"{stem}\"><img")), "report lacks {stem}");
    }
    assert!(html.contains("<table id=\"explain\">"));
    if let Some(chromium) = common::chromium() {
        let tmp = tempfile::tempdir().unwrap();
        let (shot, console) = common::screenshot(&chromium, &dir.join("report.html"), &tmp.path().join("r.png"));
        assert!(console.is_empty(), "console messages: {console:?}");
        assert!(common::ink(&shot) > 0.05, "the report renders blank");
    }
}

#[test]
fn list_layers_marks_the_default() {
    let o = explain(&["--list-layers"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(out.lines().any(|l| l.starts_with("features.10") && l.ends_with("(default)")), "{out}");
}

#[test]
fn user_mistakes_get_clear_errors() {
    let cases: &[(&[&str], i32, &[&str])] = &[
        (&["--layer", "features.99"], 2, &["features.99", "valid layers", "features.10"]),
        (&["--method", "gradcam,lime"], 2, &["lime", "gradcam++", "embeddings"]),
        (&["--method", "rollout"], 2, &["no attention", "vit_lite7"]),
        (&["--method", "gradcam", "--class", "unicorn"], 2, &["unicorn", "airplane", "9"]),
        (&["--method", "embeddings", "--limit", "50"], 2, &["50 points", "perplexity 30", "--perplexity"]),
    ];
    for (args, code, needles) in cases {
        let o = explain(args);
        common::assert_user_error(&o, *code, needles);
    }
    let o = common::mv(&["explain", "/nonexistent/run"], &run().1);
    assert!(!o.status.success() && !common::stderr(&o).contains("panicked"), "{}", common::stderr(&o));
}

//! Plots, the model summary and the HTML report of a finished run; the report is opened in real
//! headless Chromium, which must render a non-blank page without console messages.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use microvision::analysis::{plots, report};
use microvision::models::{Model, ModelArgs, MODELS};
use microvision::run::History;
use microvision::train::Trainer;

const STEMS: &[&str] = &[
    "loss",
    "accuracy",
    "lr",
    "confusion",
    "confusion_normalized",
    "per_class_accuracy",
    "predictions",
    "confident_wrong",
    "model_summary",
];

/// One tiny finished run shared by the tests of this file.
fn run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("analysis_plots");
        let _ = std::fs::remove_dir_all(&root);
        common::synthetic_cifar10(&root, 20, 50);
        let mut t = Trainer::new(common::tiny_config(&root, &root.join("runs"))).unwrap();
        microvision::lab::fit(&mut t).unwrap();
        t.run_dir.clone()
    })
}

#[test]
fn training_draws_every_plot_as_png_and_svg() {
    let dir = run().join("plots");
    for stem in STEMS {
        let png = image::open(dir.join(format!("{stem}.png"))).unwrap().to_rgb8();
        assert!(png.width() >= 400 && png.height() >= 200, "{stem}: {}x{}", png.width(), png.height());
        assert!(common::ink(&png) > 0.01, "{stem}.png is blank");
        let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{stem}.svg");
    }
    // Class names on the confusion matrix axes, the layer table in the summary.
    let confusion = std::fs::read_to_string(dir.join("confusion.svg")).unwrap();
    assert!(["airplane", "truck", "predicted class"].iter().all(|w| confusion.contains(w)));
    let summary = std::fs::read_to_string(dir.join("model_summary.svg")).unwrap();
    assert!(summary.contains("Linear") && summary.contains("(1, 10)"), "model summary lacks the head");
    // The prediction grid embeds the images as PNG, not one rectangle per pixel.
    assert!(std::fs::metadata(dir.join("predictions.svg")).unwrap().len() < 2_000_000);
}

#[test]
fn plot_command_redraws_a_finished_run() {
    let copy = run().with_file_name("redrawn");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["config.toml", "metrics.jsonl", "eval.json", "env.json"] {
        std::fs::copy(run().join(f), copy.join(f)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_microvision"))
        .args(["plot", copy.to_str().unwrap()])
        .env_remove("MICROVISION_DATA")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for stem in STEMS {
        let (a, b) = (run().join(format!("plots/{stem}.png")), copy.join(format!("plots/{stem}.png")));
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap(), "{stem}.png differs when re-drawn");
    }
}

#[test]
fn history_reads_what_the_run_logged() {
    let h = History::read(run()).unwrap();
    assert_eq!(h.epochs.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![1, 2]);
    assert!(h.epochs.iter().all(|r| r.val_acc.is_finite() && r.train_loss.is_finite()));
    let eval = h.eval.unwrap();
    assert_eq!(eval.predictions.len(), 50);
    assert_eq!(eval.confidences.len(), 50);
    assert!(eval.confidences.iter().all(|c| (0.1..=1.0).contains(c)), "softmax max of 10 classes is >= 0.1");
    let correct = (0..10).map(|i| eval.confusion_matrix[i][i]).sum::<u64>() as f64;
    assert!((correct / 50.0 - eval.accuracy).abs() < 1e-12);
}

#[test]
fn history_keeps_the_last_line_of_a_repeated_epoch_and_skips_torn_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let line = |e: i64, split: &str, acc: f64| {
        format!(r#"{{"kind":"epoch","epoch":{e},"step":{},"split":"{split}","loss":1.0,"acc":{acc},"lr":0.1}}"#, e * 10)
    };
    let text = [line(1, "train", 0.1), line(1, "val", 0.2), line(1, "train", 0.3), line(1, "val", 0.4)].join("\n")
        + "\n{\"kind\":\"ep";
    std::fs::write(tmp.path().join("metrics.jsonl"), text).unwrap();
    let h = History::read(tmp.path()).unwrap();
    assert_eq!(h.epochs.len(), 1);
    assert_eq!((h.epochs[0].train_acc, h.epochs[0].val_acc), (0.3, 0.4));
}

#[test]
fn the_lr_plot_draws_muons_filter_rate_beside_the_schedule() {
    let cfg_text = std::fs::read_to_string(run().join("config.toml")).unwrap();
    let mut cfg = microvision::Config::from_toml_str(&cfg_text, "config.toml", &[]).unwrap();
    let h = History::read(run()).unwrap();
    let names = |c: &microvision::Config| plots::lr_chart(&h, c).series.into_iter().map(|s| s.0).collect::<Vec<_>>();
    assert!(!names(&cfg).iter().any(|n| n.contains("muon")), "{:?}", names(&cfg));
    cfg.optim.name = microvision::config::OptimName::Muon;
    cfg.optim.muon_lr = cfg.optim.lr / 4.0;
    let chart = plots::lr_chart(&h, &cfg);
    let (schedule, muon) = (&chart.series[0].1, &chart.series[1].1);
    assert_eq!(chart.series[1].0, "muon (conv filters)");
    assert_eq!(schedule.len(), muon.len());
    assert!(schedule.iter().zip(muon).all(|(s, m)| s.0 == m.0 && (m.1 - s.1 / 4.0).abs() < 1e-12));
}

#[test]
fn model_summary_accounts_for_every_parameter_of_every_model() {
    let args = ModelArgs::default();
    for entry in MODELS {
        let model = Model::new(entry.name, &args, tch::Device::Cpu).unwrap();
        let layers = model.summary(&args);
        let params: i64 = layers.iter().map(|l| l.params).sum();
        assert_eq!(params, model.num_params(), "{}: summary params", entry.name);
        assert_eq!(layers.last().unwrap().output_shape, vec![1, 10], "{}: last layer", entry.name);
        let macs: u64 = layers.iter().map(|l| l.macs).sum();
        assert_eq!(macs, model.macs_per_image(&args), "{}: summary MACs", entry.name);
    }
}

#[test]
fn report_is_self_contained_and_complete() {
    let html = report::render(run()).unwrap();
    for stem in STEMS {
        assert!(html.contains(&format!("<figure id=\"{stem}\"><img")), "report lacks {stem}");
    }
    assert!(html.contains("<table id=\"per-class\">") && html.contains("<td>airplane</td>"));
    assert!(html.contains("name = &quot;tiny&quot;"), "config missing");
    assert!(html.contains("git_commit"), "environment missing");
    // data.val_split = 0: the report says the epochs were scored on the test split, and picks nothing.
    assert!(
        html.contains("none (epochs scored on test)") && !html.contains("best val accuracy"),
        "val_split = 0 is said"
    );
    assert!(html.contains("<th>test loss</th><th>test acc %</th>"), "per-epoch columns name their split");
    assert!(!html.contains("src=\"http") && !html.contains("<script"), "report must not load anything");
}

#[test]
fn report_replaces_an_earlier_report_but_no_other_file() {
    let tmp = tempfile::tempdir().unwrap();
    let config = run().join("config.toml");
    let before = std::fs::read(&config).unwrap();
    let err = report::write(run(), Some(&config)).unwrap_err().to_string();
    assert!(err.contains("is not a microvision report"), "{err}");
    assert_eq!(std::fs::read(&config).unwrap(), before, "the run's config must be left as it was");
    let out = tmp.path().join("r.html");
    report::write(run(), Some(&out)).unwrap();
    std::fs::write(&out, format!("{}</html>", std::fs::read_to_string(&out).unwrap())).unwrap();
    report::write(run(), Some(&out)).expect("an earlier report is replaced");
    assert!(std::fs::read_to_string(&out).unwrap().ends_with("</html>\n"));
}

#[test]
fn chromium_renders_the_report_without_errors() {
    let Some(chromium) = common::chromium() else { return };
    let path = report::write(run(), None).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // The check itself must be able to fail: a page with a script error is caught.
    let bad = tmp.path().join("bad.html");
    std::fs::write(&bad, "<html><body><script>undefinedFunction()</script></body></html>").unwrap();
    let (blank, console) = common::screenshot(&chromium, &bad, &tmp.path().join("bad.png"));
    assert!(console.iter().any(|l| l.contains("undefinedFunction")), "console errors not captured");
    assert!(common::ink(&blank) < 0.001, "an empty page must count as blank");

    let (shot, console) = common::screenshot(&chromium, &path, &tmp.path().join("report.png"));
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(common::ink(&shot) > 0.05, "report renders blank ({:.4} ink)", common::ink(&shot));
    // The accuracy plot (palette blue of the train curve) is on screen: embedded images render.
    let plots::RGB(r, g, b) = plots::PALETTE[0];
    let blue = shot.pixels().filter(|p| p.0 == [r, g, b]).count();
    assert!(blue > 100, "plot colours not visible ({blue} px)");
}

#[test]
fn a_confusion_matrix_of_many_classes_stays_a_readable_size() {
    let tmp = tempfile::tempdir().unwrap();
    let heatmap = |n: usize| plots::Heatmap {
        title: format!("{n} classes"),
        labels: (0..n).map(|i| format!("class_{i}")).collect(),
        shade: (0..n).map(|r| (0..n).map(|c| if r == c { 0.8 } else { 0.02 }).collect()).collect(),
        text: (0..n).map(|_| vec!["1".to_string(); n]).collect(),
    };
    for (n, max_side) in [(10, 1000), (100, 1500)] {
        let files = plots::save(&heatmap(n), tmp.path(), &format!("c{n}")).unwrap();
        let (w, h) = image::image_dimensions(&files[0]).unwrap();
        assert!(w <= max_side && h <= max_side, "{n} classes: {w}x{h}");
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        assert!(svg.contains(&format!("class_{}", n - 1)), "every class is named");
    }
}

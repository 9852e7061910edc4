//! `report.html`: one self-contained page per run (config, environment, final metrics, every plot
//! embedded as a data URI, the per-class table). No scripts, no external files: it opens offline
//! and can be mailed as it is.

use base64::Engine;
use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

use crate::analysis::explain::ExplainSummary;
use crate::error::Result;
use crate::fsio;
use crate::run::{self, History};

/// The plots in report order, with captions.
const PLOTS: &[(&str, &str)] = &[
    ("accuracy", "Accuracy per epoch (train on augmented images, validation)"),
    ("loss", "Loss per epoch"),
    ("lr", "Learning-rate schedule"),
    ("confusion", "Confusion matrix, counts (rows: true class)"),
    ("confusion_normalized", "Confusion matrix, % of each true class"),
    ("per_class_accuracy", "Per-class test accuracy"),
    ("predictions", "Sample test predictions"),
    ("confident_wrong", "Most confidently wrong test images"),
    ("model_summary", "Model summary"),
];

/// HTML-escapes text.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Builds the report of the run in `run` from its files (plots must have been drawn).
pub fn render(run: &Path) -> Result<String> {
    let cfg = run::read_config(run)?;
    let h = History::read(run)?;
    let env: Value = run::Env::read_value(run).unwrap_or(Value::Null);
    let name = run.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let mut html = String::new();
    let _ = write!(html, "{HEAD}{}</title><style>{CSS}</style></head><body><h1>{}</h1>", escape(&name), escape(&name));
    html += &cards(&h, &env, &cfg);
    html += "<h2>Plots</h2><div class=\"plots\">";
    for (stem, caption) in PLOTS {
        // Without a validation split the per-epoch evaluation ran on the test split.
        let caption =
            if cfg.data.has_val_split() { caption.to_string() } else { caption.replace("validation", "test split") };
        html += &figure(run, stem, &caption);
    }
    html += "</div>";
    html += &explanations(run);
    html += &per_class_table(&h);
    html += &epoch_table(&h, &cfg);
    let _ = write!(html, "<h2>Config</h2><pre>{}</pre>", escape(&cfg.to_toml()));
    html += &env_table(&env);
    html += "<footer>Written by microvision ";
    html += env!("CARGO_PKG_VERSION");
    html += ".</footer></body></html>\n";
    Ok(html)
}

/// A plot of `run/plots/` embedded as a data URI with its caption; empty when it was not drawn.
fn figure(run: &Path, stem: &str, caption: &str) -> String {
    let Ok(png) = std::fs::read(run.join("plots").join(format!("{stem}.png"))) else {
        return String::new();
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    let caption = escape(caption);
    format!("<figure id=\"{stem}\"><img alt=\"{caption}\" src=\"data:image/png;base64,{b64}\"><figcaption>{caption}</figcaption></figure>")
}

/// The explanations `microvision explain` wrote (`explain/summary.json`): what each method took,
/// the embedding's neighbour accuracies, and the pictures. Empty for a run never explained.
fn explanations(run: &Path) -> String {
    let Some(sum) = ExplainSummary::read(run) else {
        return String::new();
    };
    let mut out = String::from(
        "<h2>Explanations</h2><table id=\"explain\"><tr><th>method</th><th>layer</th><th>images</th><th>seconds</th></tr>",
    );
    for m in &sum.maps {
        let layer = m.layer.as_deref().unwrap_or("input");
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
            m.method.name(),
            escape(layer),
            m.images,
            m.secs
        );
    }
    if let Some(e) = &sum.embedding {
        let _ = write!(
            out,
            "<tr><td>embeddings + t-SNE</td><td>{} input</td><td>{}</td><td>{:.2}</td></tr>",
            escape(&e.layer),
            e.points,
            e.features_secs + e.tsne_secs
        );
    }
    out += "</table><div class=\"plots\">";
    let figures = sum.maps.iter().flat_map(|m| &m.figures).chain(sum.embedding.iter().flat_map(|e| &e.figures));
    for f in figures {
        out += &figure(run, &f.stem, &f.caption);
    }
    out + "</div>"
}

/// How every report starts: what tells an earlier report, which may be replaced, from any other
/// file, which may not.
const HEAD: &str = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>microvision report: ";

/// Writes `out` (default `run/report.html`; a directory gets a `report.html` in it) atomically;
/// returns its path. An existing file is replaced only when it is an earlier report: a mistyped
/// `--out` must not destroy a run's files.
pub fn write(run: &Path, out: Option<&Path>) -> Result<std::path::PathBuf> {
    let path = match out {
        Some(dir) if dir.is_dir() => dir.join("report.html"),
        Some(file) => file.to_path_buf(),
        None => run.join("report.html"),
    };
    if path.exists() && !is_report(&path) {
        return Err(crate::config_err!(
            "{}: the file exists and is not a microvision report, so it is not replaced; expected a new file, an \
             earlier report or a directory",
            path.display()
        ));
    }
    let html = render(run)?;
    fsio::write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

/// Whether `path` is a file that starts as the reports this module writes.
fn is_report(path: &Path) -> bool {
    use std::io::Read;
    let mut start = vec![0; HEAD.len()];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut start));
    path.is_file() && read.is_ok() && start == HEAD.as_bytes()
}

const CSS: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}\
.cards{display:flex;flex-wrap:wrap;gap:1em}.card{background:#f3f6fa;border-radius:6px;padding:.6em 1em;min-width:9em}\
.card b{display:block;font-size:1.4em}.plots{display:flex;flex-wrap:wrap;gap:1em}\
figure{margin:0;border:1px solid #ddd;padding:.5em;flex:1 1 540px;max-width:100%}figure img{max-width:100%;display:block}\
figcaption{font-size:.9em;color:#555}table{border-collapse:collapse;font-size:.9em}\
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f3f6fa}td:first-child{text-align:left}\
pre{background:#f7f7f7;padding:1em;overflow:auto}footer{margin-top:2em;color:#888;font-size:.8em}";

fn cards(h: &History, env: &Value, cfg: &crate::config::Config) -> String {
    let best = h.best_val_acc().unwrap_or(f64::NAN);
    let secs = h.train_secs();
    let test = h.eval.as_ref().map_or("unfinished".to_string(), |e| format!("{:.2}%", e.accuracy * 100.0));
    let items = [
        ("model", cfg.model.name.clone()),
        ("test accuracy", test),
        if cfg.data.has_val_split() {
            ("best val accuracy", format!("{:.2}%", best * 100.0))
        } else {
            // No validation split: the epochs were scored on the test split and nothing was chosen on them.
            ("validation split", "none (epochs scored on test)".to_string())
        },
        ("epochs", h.epochs.len().to_string()),
        ("training time", format!("{secs:.0} s")),
        ("median img/s", format!("{:.0}", h.median_img_per_s().unwrap_or(f64::NAN))),
        ("parameters", env["num_params"].as_i64().map_or("?".into(), |p| p.to_string())),
        ("device", format!("{} {}", env["device"].as_str().unwrap_or("?"), env["precision"].as_str().unwrap_or(""))),
    ];
    let mut out = String::from("<div class=\"cards\">");
    for (k, v) in items {
        let _ = write!(out, "<div class=\"card\">{}<b>{}</b></div>", escape(k), escape(&v));
    }
    out + "</div>"
}

fn per_class_table(h: &History) -> String {
    let Some(e) = &h.eval else { return String::new() };
    let mut out = String::from(
        "<h2>Per-class test results</h2><table id=\"per-class\"><tr><th>class</th><th>accuracy %</th>\
         <th>correct</th><th>images</th><th>most often predicted instead</th></tr>",
    );
    for (i, class) in e.classes.iter().enumerate() {
        let row = e.confusion_matrix.get(i).cloned().unwrap_or_default();
        let total: u64 = row.iter().sum();
        let correct = row.get(i).copied().unwrap_or(0);
        let confused = (0..row.len()).filter(|&j| j != i).max_by_key(|&j| (row[j], std::cmp::Reverse(j)));
        let other = confused
            .filter(|&j| row[j] > 0)
            .map_or("-".into(), |j| format!("{} ({})", e.classes.get(j).cloned().unwrap_or_default(), row[j]));
        let acc = e.per_class_accuracy.get(i).copied().unwrap_or(0.0) * 100.0;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{acc:.2}</td><td>{correct}</td><td>{total}</td><td>{}</td></tr>",
            escape(class),
            escape(&other)
        );
    }
    out + "</table>"
}

fn epoch_table(h: &History, cfg: &crate::config::Config) -> String {
    // Without a validation split the per-epoch evaluation ran on the test split.
    let held = cfg.data.scored_on();
    let mut out = format!(
        "<h2>Metrics per epoch</h2><table id=\"epochs\"><tr><th>epoch</th><th>train loss</th><th>train acc %</th>\
         <th>{held} loss</th><th>{held} acc %</th><th>lr</th><th>img/s</th><th>epoch s</th></tr>",
    );
    for r in &h.epochs {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{:.4}</td><td>{:.2}</td><td>{:.4}</td><td>{:.2}</td><td>{:.3e}</td><td>{:.0}</td><td>{:.1}</td></tr>",
            r.epoch,
            r.train_loss,
            r.train_acc * 100.0,
            r.val_loss,
            r.val_acc * 100.0,
            r.lr,
            r.img_per_s,
            r.epoch_secs
        );
    }
    out + "</table>"
}

fn env_table(env: &Value) -> String {
    let Some(obj) = env.as_object() else { return String::new() };
    let mut out = String::from("<h2>Environment</h2><table id=\"env\">");
    for (k, v) in obj {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => {
                a.iter().map(|x| x.to_string().trim_matches('"').to_string()).collect::<Vec<_>>().join(", ")
            }
            other => other.to_string(),
        };
        let _ = write!(out, "<tr><td>{}</td><td style=\"text-align:left\">{}</td></tr>", escape(k), escape(&text));
    }
    out + "</table>"
}

//! TensorBoard event files: the record framing against known values, and a real run read back by
//! the `tensorboard` package, which must see exactly the values in metrics.jsonl.

mod common;

use md5::Digest;
use microvision::track::tensorboard::{frame, masked_crc32c};
use microvision::train::Trainer;

#[test]
fn masked_crc_matches_tensorflow() {
    // Values from tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c.
    assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
    assert_eq!(masked_crc32c(b""), 0xa282_ead8);
}

#[test]
fn records_are_framed_with_length_and_crcs() {
    let rec = frame(b"hello");
    assert_eq!(rec.len(), 8 + 4 + 5 + 4);
    assert_eq!(&rec[..8], &5u64.to_le_bytes());
    assert_eq!(&rec[8..12], &masked_crc32c(&5u64.to_le_bytes()).to_le_bytes());
    assert_eq!(&rec[12..17], b"hello");
    assert_eq!(&rec[17..], &masked_crc32c(b"hello").to_le_bytes());
}

#[test]
fn tensorboard_reads_back_the_metrics_of_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 20, 20);
    let mut t = Trainer::new(common::tiny_config(tmp.path(), &tmp.path().join("runs"))).unwrap();
    microvision::lab::fit(&mut t).unwrap();
    let events: Vec<_> = std::fs::read_dir(&t.run_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents."))
        .collect();
    assert_eq!(events.len(), 1, "one event file per run");
    let Some(py) = common::venv_python() else { return };
    let out = std::process::Command::new(py)
        .arg(common::repo("tests/oracle/read_events.py"))
        .arg(&t.run_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tb: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(t.run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &serde_json::Value| l["kind"] == "epoch")
        .collect();
    for (tag, split, key) in
        [("val/acc", "val", "acc"), ("val/loss", "val", "loss"), ("train/loss", "train", "loss"), ("lr", "train", "lr")]
    {
        let want: Vec<(i64, f64)> = lines
            .iter()
            .filter(|l| l["split"] == split)
            .map(|l| (l["step"].as_i64().unwrap(), l[key].as_f64().unwrap()))
            .collect();
        let got: Vec<(i64, f64)> = tb["scalars"][tag]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
            .collect();
        assert_eq!(want.len(), got.len(), "{tag}");
        for ((ws, wv), (gs, gv)) in want.iter().zip(&got) {
            assert_eq!(ws, gs, "{tag} step");
            assert_eq!(*wv as f32, *gv as f32, "{tag} at step {ws}: TensorBoard stores f32");
        }
    }
    assert!(tb["text"]["config"].as_str().unwrap().contains("name = \"tiny\""), "{}", tb["text"]);
    // The prediction grid (and the other plots) as images, the exact PNG bytes of plots/.
    let png = std::fs::read(t.run_dir.join("plots/predictions.png")).unwrap();
    let img = &tb["images"]["plots/predictions"];
    let decoded = image::load_from_memory(&png).unwrap();
    assert_eq!((img[0].as_u64().unwrap(), img[1].as_u64().unwrap()), (decoded.width() as u64, decoded.height() as u64));
    assert_eq!(img[2].as_str().unwrap(), format!("{:x}", md5::Md5::digest(&png)));
    assert!(tb["images"]["plots/confusion"].is_array(), "{}", tb["images"]);
}

#[test]
fn a_resumed_run_voids_what_the_interrupted_one_logged_after_its_checkpoint() {
    use microvision::track::tensorboard::TensorBoardLogger;
    use microvision::track::{Logger, MetricKind, Metrics};
    let log = |l: &mut TensorBoardLogger, kind, step: i64, name: &str, v: f64| {
        let values = [(name, v)];
        l.log_metrics(&Metrics { kind, epoch: step, step, values: &values }).unwrap();
    };
    let read = |dir: &std::path::Path| -> Option<serde_json::Value> {
        let out = std::process::Command::new(common::venv_python()?)
            .arg(common::repo("tests/oracle/read_events.py"))
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Some(serde_json::from_slice(&out.stdout).unwrap())
    };
    let session = |mark_restart: bool| {
        let tmp = tempfile::tempdir().unwrap();
        // The interrupted run logged epochs 1-5 and steps 4-5, but its last checkpoint is at 2.
        let cfg = microvision::Config::default();
        let mut first = TensorBoardLogger::new(tmp.path()).unwrap();
        first.resume_after(0).unwrap(); // a new run: nothing to void, no mark
        first.log_params(&cfg).unwrap();
        (1..=5).for_each(|s| log(&mut first, MetricKind::Epoch, s, "val/acc", s as f64));
        (4..=5).for_each(|s| log(&mut first, MetricKind::Step, s, "loss", 1.0));
        drop(first);
        // The resumed run (same second, same process: a second file, not an overwrite) stops
        // early after epoch 4 and logs no step values.
        let mut resumed = TensorBoardLogger::new(tmp.path()).unwrap();
        resumed.resume_after(if mark_restart { 2 } else { 5 }).unwrap();
        resumed.log_params(&cfg).unwrap(); // the config is written once per run, by its first session
        let with_config = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| {
                let bytes = std::fs::read(e.as_ref().unwrap().path()).unwrap();
                bytes.windows(9).any(|w| w == b"[optim]\n ")
            })
            .count();
        assert_eq!(with_config, 1, "one event file holds the config");
        (3..=4).for_each(|s| log(&mut resumed, MetricKind::Epoch, s, "val/acc", 10.0 * s as f64));
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
        read(tmp.path())
    };
    let Some(tb) = session(true) else { return };
    assert_eq!(tb["scalars"]["val/acc"], serde_json::json!([[1, 1.0], [2, 2.0], [3, 30.0], [4, 40.0]]), "{tb}");
    assert!(tb["scalars"]["batch/loss"].as_array().is_none_or(|v| v.is_empty()), "{tb}");
    // A mark after the old file's last step voids nothing: version-2 event files keep every
    // value otherwise (the orphaned step values, and both values of a step logged twice).
    let tb = session(false).unwrap();
    assert_eq!(tb["scalars"]["batch/loss"], serde_json::json!([[4, 1.0], [5, 1.0]]), "{tb}");
    assert_eq!(tb["scalars"]["val/acc"].as_array().unwrap().len(), 7, "{tb}");
}

//! The library verbs on runs that cannot give an answer: no checkpoint yet, non-finite weights,
//! a metrics file with bytes that are not UTF-8. Each is refused or read with a clear message
//! instead of a file-system error or a NaN result with a success status.

mod common;

use microvision::lab::{self, Checkpoint};
use microvision::train::{checkpoint, Trainer};

#[test]
fn a_run_without_a_checkpoint_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 10, 10);
    let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
    cfg.data.val_split = 0.2;
    let run = Trainer::new(cfg).unwrap().run_dir;
    let err = lab::eval(&run, Checkpoint::Last, &[]).unwrap_err();
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(err.to_string().contains("has no `last` checkpoint yet"), "{err}");
    let err = lab::predict(&run, &[tmp.path().join("x.png")], Checkpoint::Best, 1).expect_err("refused");
    assert!(err.to_string().contains("has no `best` checkpoint yet"), "{err}");
}

#[test]
fn non_finite_weights_are_refused_by_eval_predict_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 10, 10);
    let mut t = Trainer::new(common::tiny_config(tmp.path(), &tmp.path().join("runs"))).unwrap();
    t.stop_after = Some(1);
    t.fit().unwrap();
    // A checkpoint written with a NaN weight (its checksums right: a diverged run's, not a torn file's).
    let (name, w) = t.model.vs.variables().into_iter().find(|(n, _)| n.ends_with("weight")).unwrap();
    let _ = tch::no_grad(|| w.shallow_clone().fill_(f64::NAN));
    checkpoint::save(&t.run_dir.join("checkpoints"), "last", &t.model.vs, &[], &t.state).unwrap();
    let run = t.run_dir.clone();
    drop(t);
    let err = lab::eval(&run, Checkpoint::Last, &[]).unwrap_err();
    assert!(err.to_string().contains("non-finite weights") && err.to_string().contains(&name), "{err}");
    assert!(lab::export(&run, Checkpoint::Last, lab::Format::Safetensors, None).is_err());
    assert!(!run.join("eval-last.json").exists() && !run.join("export/model.json").exists());
}

#[test]
fn bytes_that_are_not_utf8_spoil_only_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 10, 10);
    let mut t = Trainer::new(common::tiny_config(tmp.path(), &tmp.path().join("runs"))).unwrap();
    lab::fit(&mut t).unwrap();
    let run = t.run_dir.clone();
    drop(t);
    let metrics = run.join("metrics.jsonl");
    let mut bytes = std::fs::read(&metrics).unwrap();
    bytes.extend_from_slice(b"{\"kind\": \"ep\xff\xfe");
    std::fs::write(&metrics, bytes).unwrap();
    let h = microvision::run::History::read(&run).unwrap();
    assert_eq!((h.epochs.len(), h.skipped_lines), (2, 1));
    let plotted = lab::plot(&run).unwrap();
    assert!(plotted.warnings.iter().any(|w| w.contains("skipped 1 line")), "{:?}", plotted.warnings);
}

/// A tiny finished run under `root`.
fn finished_run(root: &std::path::Path) -> std::path::PathBuf {
    common::synthetic_cifar10(root, 10, 10);
    let mut t = Trainer::new(common::tiny_config(root, &root.join("runs"))).unwrap();
    lab::fit(&mut t).unwrap();
    t.run_dir.clone()
}

#[test]
fn predict_reads_images_by_content_and_whole_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let run = finished_run(tmp.path());
    let dir = tmp.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    let img = image::RgbImage::from_fn(40, 32, |x, y| image::Rgb([x as u8 * 6, y as u8 * 7, 90]));
    img.save_with_format(dir.join("a-jpeg-named.png"), image::ImageFormat::Jpeg).unwrap();
    img.save(dir.join("b.png")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    let preds = lab::predict(&run, std::slice::from_ref(&dir), Checkpoint::Last, 3).unwrap();
    let names: Vec<_> = preds.iter().map(|p| p.image.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["a-jpeg-named.png", "b.png"]);
    assert!(preds.iter().all(|p| p.top.len() == 3));
}

#[test]
fn evaluation_files_record_the_checkpoint_epoch_and_step() {
    let tmp = tempfile::tempdir().unwrap();
    let run = finished_run(tmp.path());
    let e = lab::eval(&run, Checkpoint::Last, &[]).unwrap();
    let file = microvision::run::EvalFile::read(&e.file).unwrap();
    assert_eq!((file.epoch, file.step.is_some_and(|s| s > 0)), (Some(2), true));
    assert_eq!(microvision::run::EvalFile::read(&run.join("eval.json")).unwrap().epoch, Some(2));
}

#[test]
fn compare_leaves_out_files_beside_the_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let run = finished_run(tmp.path());
    let stray = run.parent().unwrap().join("compare_val_acc.png");
    std::fs::write(&stray, b"png").unwrap();
    let c = lab::compare(&[run.clone(), stray.clone()], Some(tmp.path())).unwrap();
    assert_eq!(c.groups.len(), 1);
    assert!(c.skipped.iter().any(|(p, why)| *p == stray && why.contains("not a run directory")));
}

#[test]
fn a_cutout_larger_than_the_images_is_refused() {
    let err = microvision::Config::defaults(&["augment.cutout=33".into()]).unwrap_err().to_string();
    assert!(err.contains("augment.cutout") && err.contains("at most 32"), "{err}");
    assert!(microvision::Config::defaults(&["augment.cutout=32".into()]).is_ok());
}

#[test]
fn a_failed_download_leaves_no_directories_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new/data/MNIST");
    // Nothing listens on port 9 here: every attempt is refused at once.
    let err = microvision::data::download::fetch_files("http://127.0.0.1:9", &[("x.gz", "")], &dir);
    assert!(err.is_err());
    assert!(!tmp.path().join("new").exists(), "the directories it created are removed again");
    // A directory that held something before is left as it is.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep"), b"x").unwrap();
    assert!(microvision::data::download::fetch_files("http://127.0.0.1:9", &[("x.gz", "")], &dir).is_err());
    assert!(dir.join("keep").exists());
}

//! `compare`: summaries read from run directories, seed grouping with mean +- std, both formats.

mod common;

use microvision::analysis::compare::{curves, differing_keys, group, group_labels, summarize, table};
use microvision::run::History;
use microvision::train::Trainer;

#[test]
fn runs_differing_only_in_seed_are_grouped() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 10, 10);
    let mut dirs = Vec::new();
    for (seed, lr) in [(1, 0.02), (2, 0.02), (1, 0.05)] {
        let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
        cfg.train.seed = seed;
        cfg.optim.lr = lr;
        cfg.data.val_split = 0.2; // a validation split: a best validation accuracy to compare
        let mut t = Trainer::new(cfg).unwrap();
        microvision::lab::fit(&mut t).unwrap();
        dirs.push(t.run_dir.clone());
    }
    let summaries: Vec<_> = dirs.iter().map(|d| summarize(d).unwrap()).collect();
    assert_eq!(summaries[0].epochs, 2);
    assert_eq!(summaries[0].params, 1_147_914);
    let groups = group(summaries);
    assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
    // What the groups' recipes differ in (not the seed, the name or where files lie) is shown.
    let lr = ("optim.lr".to_string(), vec!["0.02".to_string(), "0.05".to_string()]);
    assert_eq!(differing_keys(&groups), vec![lr]);
    let md = table(&groups, false);
    assert_eq!(md.lines().count(), 4, "{md}");
    assert!(md.lines().next().unwrap().ends_with("| optim.lr |") && md.lines().nth(3).unwrap().ends_with("| 0.05 |"));
    assert!(md.lines().nth(2).unwrap().contains("+-"), "{md}");
    let csv = table(&groups, true);
    assert!(csv.starts_with("run,model,dataset,params,seeds,runs,epochs,finished,best_val_acc_pct_mean,"), "{csv}");
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.lines().next().unwrap().ends_with(",img_per_s_std,optim.lr") && csv.ends_with(",0.05\n"), "{csv}");
    // One number per cell: the seed group's mean and sample std, as computed by hand.
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let (a, b) = (summarize(&dirs[0]).unwrap().best_acc * 100.0, summarize(&dirs[1]).unwrap().best_acc * 100.0);
    let (mean, std): (f64, f64) = (row[8].parse().unwrap(), row[9].parse().unwrap());
    assert!((mean - (a + b) / 2.0).abs() < 1e-9 && (std - (a - b).abs() / 2f64.sqrt()).abs() < 1e-9, "{row:?}");
    assert_eq!(&row[4..8], ["2", "2", "2", "true"], "{row:?}");
    assert!(
        row[0].ends_with('*')
            && dirs[0].file_name().unwrap().to_string_lossy().starts_with(&row[0][..row[0].len() - 1])
    );
    // The same seed twice is one seed; an unfinished run is marked and grouped apart; CSV quotes.
    let mut again = summarize(&dirs[0]).unwrap();
    let mut unfinished = summarize(&dirs[1]).unwrap();
    unfinished.finished = false;
    again.config.name = "a,b".into();
    again.dir = again.dir.with_file_name("a,b");
    let odd = group(vec![again, summarize(&dirs[0]).unwrap(), unfinished]);
    assert_eq!(odd.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
    let csv = table(&odd, true);
    assert!(csv.lines().nth(1).unwrap().starts_with("\"a,b"), "names are quoted: {csv}");
    assert!(csv.lines().nth(1).unwrap().contains(",simple_cnn,cifar10,1147914,1,2,2,true,"), "{csv}");
    assert!(csv.lines().nth(2).unwrap().contains(",false,"), "{csv}");
    let md = table(&odd, false);
    assert!(md.contains("1 (2 runs)") && md.contains("(unfinished)"), "{md}");
    // Two groups whose names share the same prefix are named by their first run instead.
    let named = |name: &str, seed: u64, lr: f64| {
        let mut r = summarize(&dirs[0]).unwrap();
        r.dir = r.dir.with_file_name(name);
        (r.config.train.seed, r.config.optim.lr) = (seed, lr);
        r
    };
    let pair = |a: &str, b: &str, lr: f64| vec![named(a, 1, lr), named(b, 2, lr)];
    assert_eq!(group_labels(&[pair("x-1", "x-2", 0.1)]), ["x-*"]);
    assert_eq!(group_labels(&[pair("x-1", "x-2", 0.1), pair("x-3", "x-4", 0.2)]), ["x-1 +1 more", "x-3 +1 more"]);
    // Overlaid curves: one line per group, the seed group's line is the mean of its runs.
    let (acc, loss) = curves(&groups).unwrap();
    assert_eq!((acc.series.len(), loss.series.len()), (2, 2));
    let (h1, h2) = (History::read(&dirs[0]).unwrap(), History::read(&dirs[1]).unwrap());
    let want: Vec<f64> = h1.epochs.iter().zip(&h2.epochs).map(|(a, b)| (a.val_acc + b.val_acc) / 2.0 * 100.0).collect();
    let got: Vec<f64> = acc.series[0].1.iter().map(|p| p.1).collect();
    assert!(want.iter().zip(&got).all(|(w, g)| (w - g).abs() < 1e-9), "{want:?} vs {got:?}");
    assert!(acc.series[0].0.contains("mean +- std of 2"), "{}", acc.series[0].0);
    // The seed group is shaded +- one sample std (|a - b| / sqrt 2 for two runs); a single run not.
    assert_eq!(acc.bands.iter().map(|b| b.0).collect::<Vec<_>>(), vec![0], "only the seed group has a band");
    for ((a, b), &(x, lo, hi)) in h1.epochs.iter().zip(&h2.epochs).zip(&acc.bands[0].1) {
        let (m, s) = ((a.val_acc + b.val_acc) / 2.0 * 100.0, (a.val_acc - b.val_acc).abs() * 100.0 / 2f64.sqrt());
        let (want_lo, want_hi) = ((m - s).max(0.0), (m + s).min(100.0)); // within 0-100 %
        assert!(x == a.epoch as f64 && (lo - want_lo).abs() < 1e-9 && (hi - want_hi).abs() < 1e-9, "{lo} {hi}");
    }
    assert_eq!(loss.bands.len(), 1);
    let out = tmp.path().join("cmp");
    let files = microvision::analysis::plots::save(&acc, &out, "compare_val_acc").unwrap();
    assert!(files.iter().all(|f| std::fs::metadata(f).unwrap().len() > 1000));
}

#[test]
fn fine_tunes_of_sources_that_differ_only_in_seed_are_grouped() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 10, 10);
    let train = |seed: u64, lr: f64, init_from: &str| {
        let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
        (cfg.train.seed, cfg.optim.lr, cfg.train.epochs) = (seed, lr, 1);
        cfg.model.init_from = init_from.to_string();
        let mut t = Trainer::new(cfg).unwrap();
        microvision::lab::fit(&mut t).unwrap();
        t.run_dir.display().to_string()
    };
    let sources = [train(1, 0.02, ""), train(2, 0.02, ""), train(3, 0.05, "")];
    // Each seed fine-tuned from its own source; the third from a source of another recipe.
    let tunes = [train(1, 0.01, &sources[0]), train(2, 0.01, &sources[1]), train(3, 0.01, &sources[2])];
    let groups = group(tunes.iter().map(|d| summarize(d.as_ref()).unwrap()).collect());
    assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
    let diff = differing_keys(&groups);
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert_eq!(diff[0].0, "model.init_from");
    // Two sources: their recipe, the epoch the weights were taken at and their number; one
    // source: its path.
    assert!(diff[0].1[0].starts_with("a cifar10 simple_cnn run at epoch 1 (recipe ") && diff[0].1[0].ends_with(") x2"));
    assert_eq!(diff[0].1[1], sources[2], "{diff:?}");
    // A fine-tune taken at another epoch of the same source recipe is another group.
    let mut longer = summarize(tunes[1].as_ref()).unwrap();
    longer.init_source = longer.init_source.replace("epoch 1", "epoch 2");
    let groups = group(vec![summarize(tunes[0].as_ref()).unwrap(), longer]);
    assert_eq!(groups.len(), 2);
}

#[test]
fn a_directory_that_is_not_a_run_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let e = summarize(tmp.path()).unwrap_err();
    assert_eq!(e.exit_code(), 4);
}

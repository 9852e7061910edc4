//! `compare`: summaries read from run directories, seed grouping with mean +- std, both formats.

mod common;

use microvision::analysis::compare::{group, mean_std, summarize, table};
use microvision::train::Trainer;

#[test]
fn mean_and_sample_std_by_hand() {
    let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
    assert!((m - 2.5).abs() < 1e-12 && (s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!(mean_std(&[7.0]), (7.0, 0.0));
}

#[test]
fn runs_differing_only_in_seed_are_grouped() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(tmp.path(), 10, 10);
    let mut dirs = Vec::new();
    for (seed, lr) in [(1, 0.02), (2, 0.02), (1, 0.05)] {
        let mut cfg = common::tiny_config(tmp.path(), &tmp.path().join("runs"));
        cfg.train.seed = seed;
        cfg.optim.lr = lr;
        let mut t = Trainer::new(cfg).unwrap();
        microvision::analysis::tracked::fit(&mut t).unwrap();
        dirs.push(t.run_dir.clone());
    }
    let summaries: Vec<_> = dirs.iter().map(|d| summarize(d).unwrap()).collect();
    assert_eq!(summaries[0].epochs, 2);
    assert_eq!(summaries[0].params, 1_147_914);
    let groups = group(summaries);
    assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
    let md = table(&groups, false);
    assert_eq!(md.lines().count(), 4, "{md}");
    assert!(md.lines().nth(2).unwrap().contains("+-"), "{md}");
    let csv = table(&groups, true);
    assert!(csv.starts_with("run,model,params,seeds,epochs"), "{csv}");
    assert_eq!(csv.lines().count(), 3);
}

#[test]
fn a_directory_that_is_not_a_run_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let e = summarize(tmp.path()).unwrap_err();
    assert_eq!(e.exit_code(), 4);
}

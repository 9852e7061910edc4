//! AutoAugment / RandAugment / TrivialAugment: every operation equals torchvision's
//! (`torchvision.transforms.autoaugment._apply_op`, the project's `.venv`) on fixed images at the
//! magnitudes of both augmentation spaces; the AutoAugment CIFAR-10 table and every magnitude
//! bin of the three spaces equal torchvision's tables; the policy draws are seeded, well-formed
//! and follow torchvision's distributions.

mod common;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use tch::{Kind, Tensor};

use microvision::data::image_ops::{apply, Op};
use microvision::data::policies::{self, magnitude, Policy, Space, RANDOM_OPS};

/// Images that exercise the ops: noise, a low-contrast image, a constant one, a gradient.
fn images(h: i64, w: i64) -> Tensor {
    let mut rng = Pcg64::seed_from_u64(5);
    let n = (3 * h * w) as usize;
    let mut px: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
    px.extend((0..n).map(|_| rng.gen_range(90..140u8)));
    px.extend(std::iter::repeat_n(77u8, n));
    px.extend((0..n).map(|i| ((i * 7) % 256) as u8));
    px.extend((0..n).map(|i| if (i / 5) % 3 == 0 { 250 } else { (i % 40) as u8 }));
    Tensor::from_slice(&px).view([5, 3, h, w])
}

fn name(op: Op) -> String {
    format!("{op:?}")
}

#[test]
fn every_operation_equals_torchvision() {
    let Some(py) = common::venv_python() else { return };
    let check = std::process::Command::new(&py).args(["-c", "import torchvision"]).output().unwrap();
    if !check.status.success() {
        return common::skip("torchvision is not in .venv (scripts/setup.sh installs it)");
    }
    let (h, w) = (32, 32);
    let x = images(h, w);
    let all = [&RANDOM_OPS[..], &[Op::Invert]].concat();
    let mut cases: Vec<(Op, f64)> = Vec::new();
    for &op in &all {
        for (bins, space) in [(10, Space::Standard), (31, Space::Wide)] {
            for bin in [1, bins / 2, bins - 1] {
                let (m, signed) = magnitude(op, bin, bins, space, (h, w));
                cases.push((op, m));
                if signed {
                    cases.push((op, -m));
                }
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("images.bin");
    std::fs::write(&raw, Vec::<u8>::try_from(x.flatten(0, -1)).unwrap()).unwrap();
    let json: Vec<(String, f64)> = cases.iter().map(|&(op, m)| (name(op), m)).collect();
    std::fs::write(tmp.path().join("cases.json"), serde_json::to_string(&json).unwrap()).unwrap();
    let out = std::process::Command::new(&py)
        .arg(common::repo("tests/oracle/augment_ops.py"))
        .args([raw.to_str().unwrap(), "32", "32", tmp.path().join("cases.json").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let per_case = x.numel();
    assert_eq!(out.stdout.len(), per_case * cases.len());
    for (i, &(op, m)) in cases.iter().enumerate() {
        let want = Tensor::from_slice(&out.stdout[i * per_case..(i + 1) * per_case]).view([5, 3, h, w]);
        let got = apply(&x, op, &[m; 5]);
        let diff = (got.to_kind(Kind::Int) - &want.to_kind(Kind::Int)).abs();
        let wrong = diff.gt(0).sum(Kind::Int64).int64_value(&[]);
        assert_eq!(
            wrong,
            0,
            "{op:?} at magnitude {m}: {wrong} pixels differ from torchvision (max {})",
            diff.max().int64_value(&[])
        );
    }
}

#[test]
fn per_image_magnitudes_match_one_image_at_a_time() {
    let x = images(32, 32);
    for op in [Op::Rotate, Op::Contrast, Op::Posterize, Op::Sharpness, Op::Equalize] {
        let mags = [1.0, 4.0, -2.0, 7.0, 3.0];
        let together = apply(&x, op, &mags);
        for (i, m) in mags.iter().enumerate() {
            let alone = apply(&x.narrow(0, i as i64, 1), op, &[*m]);
            assert!(together.narrow(0, i as i64, 1).equal(&alone), "{op:?} image {i}");
        }
    }
}

#[test]
fn policy_draws_are_seeded_and_well_formed() {
    let draw = |p, seed| policies::draw(p, 64, (32, 32), &mut Pcg64::seed_from_u64(seed));
    for p in [Policy::AutoAugment, Policy::RandAugment { n: 2, m: 9 }, Policy::TrivialAugment] {
        assert_eq!(draw(p, 1), draw(p, 1), "{p:?}: same seed, same chains");
        assert_ne!(draw(p, 1), draw(p, 2), "{p:?}: other seed, other chains");
    }
    assert!(draw(Policy::AutoAugment, 3).iter().all(|c| c.len() <= 2));
    assert!(draw(Policy::RandAugment { n: 3, m: 5 }, 3).iter().all(|c| c.len() == 3));
    let trivial = draw(Policy::TrivialAugment, 3);
    assert!(trivial.iter().all(|c| c.len() == 1));
    // RandAugment at M = 9: every rotation is +-(9 / 30 of 30 degrees).
    for chain in draw(Policy::RandAugment { n: 2, m: 9 }, 4) {
        for (op, m) in chain {
            if op == Op::Rotate {
                assert!((m.abs() - 9.0).abs() < 1e-5, "{m}");
            }
        }
    }
    let x = images(32, 32);
    let chains = draw(Policy::AutoAugment, 7);
    let y = policies::apply_chains(&x.repeat([13, 1, 1, 1]).narrow(0, 0, 64), &chains);
    assert_eq!(y.size(), [64, 3, 32, 32]);
    assert_eq!(y.kind(), Kind::Uint8);
}

/// An op from torchvision's name for it.
fn op_named(n: &str) -> Op {
    let all = [&RANDOM_OPS[..], &[Op::Invert]].concat();
    *all.iter().find(|&&op| name(op) == n).unwrap_or_else(|| panic!("torchvision op {n} unknown here"))
}

/// torchvision's tables (tests/oracle/policy_tables.py) for 32x32 images.
fn torchvision_tables() -> Option<serde_json::Value> {
    let py = common::venv_python()?;
    let out = std::process::Command::new(&py)
        .arg(common::repo("tests/oracle/policy_tables.py"))
        .args(["32", "32"])
        .output()
        .unwrap();
    if !out.status.success() {
        common::skip(&format!("torchvision tables unavailable: {}", String::from_utf8_lossy(&out.stderr)));
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn policy_tables_and_magnitudes_equal_torchvision() {
    let Some(tv) = torchvision_tables() else { return };
    // AutoAugment's CIFAR-10 policy, sub-policy by sub-policy (torchvision's bin is null for
    // the ops without a magnitude; ours is 0 there).
    let subs = tv["autoaugment_cifar10"].as_array().unwrap();
    assert_eq!(subs.len(), policies::CIFAR10_POLICY.len());
    for (i, (theirs, ours)) in subs.iter().zip(&policies::CIFAR10_POLICY).enumerate() {
        for (t, &(op, p, bin)) in theirs.as_array().unwrap().iter().zip(ours) {
            assert_eq!(op_named(t[0].as_str().unwrap()), op, "sub-policy {i}");
            assert_eq!(t[1].as_f64().unwrap(), p, "sub-policy {i}: {op:?} probability");
            assert_eq!(t[2].as_u64().unwrap_or(0) as usize, bin, "sub-policy {i}: {op:?} magnitude bin");
        }
    }
    // Every space: its ops in torchvision's order, every bin's magnitude and its sign flag.
    for (key, bins, space) in [
        ("autoaugment", 10, Space::Standard),
        ("randaugment", 31, Space::Standard),
        ("trivialaugment", 31, Space::Wide),
    ] {
        let ops = tv["spaces"][key].as_array().unwrap();
        if key != "autoaugment" {
            let order: Vec<Op> = ops.iter().map(|o| op_named(o[0].as_str().unwrap())).collect();
            assert_eq!(order, RANDOM_OPS, "{key}: the ops drawn from, in order");
        }
        for o in ops {
            let op = op_named(o[0].as_str().unwrap());
            let mags: Vec<f64> = o[1].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            for (bin, want) in mags.iter().enumerate() {
                let (got, signed) = magnitude(op, bin, bins, space, (32, 32));
                assert!((got - want).abs() < 1e-6, "{key}: {op:?} bin {bin}: {got} vs torchvision {want}");
                assert_eq!(signed, o[2].as_bool().unwrap(), "{key}: {op:?} sign");
            }
        }
    }
}

#[test]
fn policy_draws_follow_torchvision_distributions() {
    // torchvision draws a sub-policy (AutoAugment) or op (RandAugment, TrivialAugment) uniformly,
    // applies each AutoAugment step with its probability, TrivialAugment's bin uniformly of 31,
    // and flips a signed magnitude's sign with probability 1/2. Counts over 28,000 images must
    // sit within 5 standard deviations of those rates.
    let n = 28_000;
    let within = |what: &str, count: usize, p: f64| {
        let (mean, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
        assert!((count as f64 - mean).abs() < 5.0 * sd.max(1.0), "{what}: {count} of {n}, expected about {mean:.0}");
    };
    let mut rng = Pcg64::seed_from_u64(11);
    let auto = policies::draw(Policy::AutoAugment, n, (32, 32), &mut rng);
    let all = [&RANDOM_OPS[..], &[Op::Invert]].concat();
    for &op in &all {
        // Expected applications of `op` per image: the mean over sub-policies of its probabilities.
        let rate: f64 =
            policies::CIFAR10_POLICY.iter().flatten().filter(|s| s.0 == op).map(|s| s.1).sum::<f64>() / 25.0;
        let count = auto.iter().flatten().filter(|(o, _)| *o == op).count();
        within(&format!("AutoAugment {op:?}"), count, rate.min(1.0));
    }
    let trivial = policies::draw(Policy::TrivialAugment, n, (32, 32), &mut rng);
    for &op in &RANDOM_OPS {
        within(&format!("TrivialAugment {op:?}"), trivial.iter().filter(|c| c[0].0 == op).count(), 1.0 / 14.0);
    }
    let rotations: Vec<f64> = trivial.iter().filter(|c| c[0].0 == Op::Rotate).map(|c| c[0].1).collect();
    let table: Vec<f64> = (0..31).map(|b| magnitude(Op::Rotate, b, 31, Space::Wide, (32, 32)).0).collect();
    assert!(rotations.iter().all(|m| table.iter().any(|t| (t - m.abs()).abs() < 1e-9)), "magnitudes from the table");
    let negative = rotations.iter().filter(|m| **m < 0.0).count();
    let (r, half) = (rotations.len() as f64, rotations.len() as f64 / 2.0);
    assert!((negative as f64 - half).abs() < 5.0 * (r / 4.0).sqrt(), "signs: {negative} of {r} negative");
    let rand = policies::draw(Policy::RandAugment { n: 2, m: 9 }, n / 2, (32, 32), &mut rng);
    for &op in &RANDOM_OPS {
        within(&format!("RandAugment {op:?}"), rand.iter().flatten().filter(|(o, _)| *o == op).count(), 1.0 / 14.0);
    }
}

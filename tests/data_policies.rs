//! AutoAugment / RandAugment / TrivialAugment: every operation equals torchvision's
//! (`torchvision.transforms.autoaugment._apply_op`, the project's `.venv`) on fixed images at the
//! magnitudes of both augmentation spaces, and the policy draws are seeded and well-formed.

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

//! Every learning-rate schedule against PyTorch's own scheduler run in the venv
//! (`tests/oracle/schedules.py`: `OneCycleLR`, `CosineAnnealingLR`, `LinearLR`, `StepLR`,
//! `MultiStepLR`, warm-up as `LinearLR` chained by `SequentialLR`), step by step; airbench's
//! triangle against its `np.interp` formula.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use microvision::train::schedule::Schedule;
use serde_json::json;

#[test]
fn every_schedule_equals_pytorch_step_by_step() {
    let Some(py) = common::venv_python() else { return };
    let (base, total) = (0.1, 97);
    let cases: Vec<(Schedule, serde_json::Value)> = vec![
        (
            Schedule::OneCycle { pct_start: 0.25, div: 25.0, final_div: 1e4 },
            json!({"name": "onecycle", "pct": 0.25, "div": 25.0, "final_div": 1e4}),
        ),
        (
            Schedule::OneCycle { pct_start: 0.3, div: 10.0, final_div: 100.0 },
            json!({"name": "onecycle", "pct": 0.3, "div": 10.0, "final_div": 100.0}),
        ),
        (Schedule::Cosine { warmup: 0, min_ratio: 0.0 }, json!({"name": "cosine", "min_ratio": 0.0})),
        (Schedule::Cosine { warmup: 10, min_ratio: 0.05 }, json!({"name": "cosine", "warmup": 10, "min_ratio": 0.05})),
        (Schedule::Linear { warmup: 0, min_ratio: 0.1 }, json!({"name": "linear", "min_ratio": 0.1})),
        (Schedule::Linear { warmup: 5, min_ratio: 0.0 }, json!({"name": "linear", "warmup": 5, "min_ratio": 0.0})),
        (Schedule::Step { warmup: 0, every: 30, gamma: 0.1 }, json!({"name": "step", "every": 30, "gamma": 0.1})),
        (
            Schedule::Step { warmup: 7, every: 20, gamma: 0.5 },
            json!({"name": "step", "warmup": 7, "every": 20, "gamma": 0.5}),
        ),
        (
            Schedule::MultiStep { warmup: 0, milestones: vec![40, 80], gamma: 0.2 },
            json!({"name": "multistep", "milestones": [40, 80], "gamma": 0.2}),
        ),
        (
            Schedule::MultiStep { warmup: 8, milestones: vec![50, 90], gamma: 0.1 },
            json!({"name": "multistep", "warmup": 8, "milestones": [50, 90], "gamma": 0.1}),
        ),
        (Schedule::Constant { warmup: 12 }, json!({"name": "constant", "warmup": 12})),
        (
            Schedule::Triangle { pct: 0.23, start: 0.2, end: 0.0 },
            json!({"name": "triangle", "pct": 0.23, "start": 0.2, "end": 0.0}),
        ),
    ];
    let request: Vec<serde_json::Value> = cases
        .iter()
        .map(|(_, c)| {
            let mut c = c.clone();
            c["base"] = base.into();
            c["total"] = total.into();
            c
        })
        .collect();
    let mut child = Command::new(&py)
        .arg(common::repo("tests/oracle/schedules.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(serde_json::to_string(&request).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the oracle failed");
    let torch: Vec<Vec<f64>> = serde_json::from_slice(&out.stdout).unwrap();
    for ((schedule, case), want) in cases.iter().zip(&torch) {
        assert_eq!(want.len(), total as usize);
        for (step, &w) in want.iter().enumerate() {
            let got = schedule.lr(base, step as u64, total);
            assert!((got - w).abs() <= 1e-12 + 1e-9 * w.abs(), "{case} step {step}: ours {got}, PyTorch {w}");
        }
    }
}

//! Learning-rate schedules as pure functions of the step.

use crate::config::{ScheduleConfig, ScheduleName};

/// A learning-rate schedule over `total` optimizer steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Linear warm-up, then the base rate.
    Constant {
        /// Warm-up steps.
        warmup: u64,
    },
    /// Linear warm-up, then `gamma^k` after every `every` steps.
    Step {
        /// Warm-up steps.
        warmup: u64,
        /// Decay period in steps.
        every: u64,
        /// Decay factor.
        gamma: f64,
    },
    /// Linear warm-up, then `gamma^k` after the `k`-th milestone (PyTorch's `MultiStepLR`).
    MultiStep {
        /// Warm-up steps.
        warmup: u64,
        /// Steps at which the rate is multiplied by `gamma`, ascending.
        milestones: Vec<u64>,
        /// Decay factor.
        gamma: f64,
    },
    /// Linear warm-up, then a straight line from the base rate to `min_ratio * base` at the end.
    Linear {
        /// Warm-up steps.
        warmup: u64,
        /// Final rate as a fraction of the base.
        min_ratio: f64,
    },
    /// Linear warm-up, then half a cosine from the base rate to `min_ratio * base` at the end.
    Cosine {
        /// Warm-up steps.
        warmup: u64,
        /// Final rate as a fraction of the base.
        min_ratio: f64,
    },
    /// PyTorch's `OneCycleLR` (cosine annealing, two phases, `cycle_momentum=False`: only the
    /// learning rate cycles): from `base / div` up to `base` at step `pct_start * total - 1`,
    /// then down to `base / div / final_div` at step `total - 1`.
    OneCycle {
        /// Fraction of steps spent rising.
        pct_start: f64,
        /// Initial rate = base / div.
        div: f64,
        /// Final rate = initial / final_div.
        final_div: f64,
    },
    /// airbench's triangle: linear from `start * base` at step 0 to `base` at step
    /// `floor(pct * total)`, then linear to `end * base` at step `total`.
    Triangle {
        /// Fraction of steps spent rising.
        pct: f64,
        /// Initial rate as a fraction of the peak.
        start: f64,
        /// Final rate as a fraction of the peak.
        end: f64,
    },
}

impl Schedule {
    /// Builds the schedule from the config; epoch-valued settings become steps.
    pub fn from_config(c: &ScheduleConfig, steps_per_epoch: u64) -> Schedule {
        let steps = |epochs: f64| (epochs * steps_per_epoch as f64).round() as u64;
        match c.name {
            ScheduleName::Constant => Schedule::Constant { warmup: steps(c.warmup_epochs) },
            ScheduleName::Step => {
                Schedule::Step { warmup: steps(c.warmup_epochs), every: steps(c.step_epochs).max(1), gamma: c.gamma }
            }
            ScheduleName::MultiStep => Schedule::MultiStep {
                warmup: steps(c.warmup_epochs),
                milestones: c.milestones.iter().map(|&e| steps(e)).collect(),
                gamma: c.gamma,
            },
            ScheduleName::Linear => Schedule::Linear { warmup: steps(c.warmup_epochs), min_ratio: c.min_lr_ratio },
            ScheduleName::Cosine => Schedule::Cosine { warmup: steps(c.warmup_epochs), min_ratio: c.min_lr_ratio },
            ScheduleName::Triangle => {
                Schedule::Triangle { pct: c.pct_start, start: 1.0 / c.div_factor, end: c.min_lr_ratio }
            }
            ScheduleName::OneCycle => {
                Schedule::OneCycle { pct_start: c.pct_start, div: c.div_factor, final_div: c.final_div_factor }
            }
        }
    }

    /// The learning rate at `step` (0-based) of `total`, for base (peak) rate `base`.
    pub fn lr(&self, base: f64, step: u64, total: u64) -> f64 {
        let warm = |w: u64| {
            if step < w {
                Some(base * (step + 1) as f64 / w as f64)
            } else {
                None
            }
        };
        match self {
            Schedule::MultiStep { warmup, milestones, gamma } => warm(*warmup)
                .unwrap_or_else(|| base * gamma.powi(milestones.iter().filter(|&&m| step >= m).count() as i32)),
            Schedule::Linear { warmup, min_ratio } => warm(*warmup).unwrap_or_else(|| {
                let t = (step - warmup) as f64 / (total.saturating_sub(*warmup)).max(1) as f64;
                base * (1.0 - (1.0 - min_ratio) * t.min(1.0))
            }),
            &Schedule::Constant { warmup } => warm(warmup).unwrap_or(base),
            &Schedule::Step { warmup, every, gamma } => {
                warm(warmup).unwrap_or_else(|| base * gamma.powi(((step - warmup) / every) as i32))
            }
            &Schedule::Cosine { warmup, min_ratio } => warm(warmup).unwrap_or_else(|| {
                let t = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
                base * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos()))
            }),
            &Schedule::Triangle { pct, start, end } => {
                let rise = (pct * total as f64) as u64;
                if step < rise {
                    let f = step as f64 / rise as f64;
                    base * (start * (1.0 - f) + f)
                } else {
                    let f = ((step - rise) as f64 / total.saturating_sub(rise).max(1) as f64).min(1.0);
                    base * ((1.0 - f) + end * f)
                }
            }
            &Schedule::OneCycle { pct_start, div, final_div } => {
                let (initial, min) = (base / div, base / div / final_div);
                let peak = (pct_start * total as f64 - 1.0).max(0.0);
                let last = (total as f64 - 1.0).max(peak + 1.0);
                let s = step as f64;
                if s <= peak {
                    anneal(initial, base, if peak > 0.0 { s / peak } else { 1.0 })
                } else {
                    anneal(base, min, ((s - peak) / (last - peak)).min(1.0))
                }
            }
        }
    }
}

/// Cosine interpolation from `start` (pct = 0) to `end` (pct = 1), as in PyTorch.
fn anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * (1.0 + (std::f64::consts::PI * pct).cos())
}

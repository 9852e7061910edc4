//! The config's choices as enums, parsed once when a config is loaded: each variant is one valid
//! string of its key, so code downstream matches on variants instead of comparing strings.
//! [`check_choices`] runs on the TOML before it becomes a `Config`, so a bad value gets the
//! message every other check gives (the key, the value, the valid ones, a did-you-mean).

use toml::Value;

use crate::error::Result;

/// Declares a choice enum: its variants with their config strings, and its default.
macro_rules! choice {
    ($(#[$meta:meta])* $name:ident default $default:ident { $($(#[$vmeta:meta])* $var:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $var),+
        }

        impl $name {
            /// The valid strings, in the order the docs list them.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The string the config file uses for it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$var => $text),+
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$default
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice! {
    /// `optim.name`: the optimizer.
    OptimName default Sgd {
        /// SGD with momentum (optionally Nesterov) and decoupled weight decay.
        Sgd = "sgd",
        /// AdamW (Loshchilov & Hutter 2019).
        AdamW = "adamw",
        /// Muon for conv filters (Jordan 2024), SGD for the rest.
        Muon = "muon",
    }
}

choice! {
    /// `schedule.name`: the learning-rate schedule.
    ScheduleName default OneCycle {
        /// A constant rate (after the warm-up).
        Constant = "constant",
        /// Multiplied by `gamma` every `step_epochs`.
        Step = "step",
        /// Multiplied by `gamma` at each of `milestones`.
        MultiStep = "multistep",
        /// Cosine annealing to `min_lr`.
        Cosine = "cosine",
        /// Linear decay to `min_lr`.
        Linear = "linear",
        /// One cycle (Smith & Topin 2019): cosine rise for `pct_start`, then annealing.
        OneCycle = "onecycle",
        /// Linear rise for `pct_start`, then linear fall (airbench's schedule).
        Triangle = "triangle",
    }
}

choice! {
    /// `train.device`.
    DeviceChoice default Auto {
        /// CUDA when a GPU is visible, else the CPU.
        Auto = "auto",
        /// The CPU.
        Cpu = "cpu",
        /// The first CUDA GPU.
        Cuda = "cuda",
    }
}

choice! {
    /// `train.precision`: the matmul precision.
    PrecisionChoice default Auto {
        /// bf16 where the hardware has it natively, else fp32.
        Auto = "auto",
        /// fp32 throughout.
        Fp32 = "fp32",
        /// bf16 autocast.
        Bf16 = "bf16",
        /// fp16 autocast with loss scaling (CUDA only).
        Fp16 = "fp16",
    }
}

choice! {
    /// `train.on_nan`: what a non-finite loss does.
    OnNan default Stop {
        /// Stop the run with an error (the last checkpoint stays).
        Stop = "stop",
        /// Restore the last checkpoint with a lower learning rate (up to three times).
        Restore = "restore",
    }
}

choice! {
    /// `train.early_stop_metric`.
    EarlyStopMetric default ValAcc {
        /// Validation accuracy (higher is better).
        ValAcc = "val_acc",
        /// Validation loss (lower is better).
        ValLoss = "val_loss",
    }
}

choice! {
    /// `data.on_corrupt`: an image file that does not decode.
    OnCorrupt default Error {
        /// Fail, naming the file.
        Error = "error",
        /// Leave it out, listing it.
        Skip = "skip",
    }
}

choice! {
    /// `data.pad_mode`: the padding of random crops.
    PadMode default Zeros {
        /// Zero padding.
        Zeros = "zeros",
        /// Reflection padding.
        Reflect = "reflect",
    }
}

choice! {
    /// `data.flip_mode`: how horizontal flips are drawn.
    FlipMode default Random {
        /// Each image flipped with probability one half, every epoch anew.
        Random = "random",
        /// airbench's alternating flips: a random half in epoch 1, the other half the next.
        Alternate = "alternate",
    }
}

choice! {
    /// `augment.policy`: a learned or random augmentation policy.
    AugmentPolicy default None {
        /// No policy (`""`).
        None = "",
        /// AutoAugment's CIFAR-10 policy (Cubuk et al. 2019).
        AutoAugment = "autoaugment",
        /// RandAugment (Cubuk et al. 2020) with `randaugment_n` and `randaugment_m`.
        RandAugment = "randaugment",
        /// TrivialAugment (Müller & Hutter 2021).
        TrivialAugment = "trivialaugment",
    }
}

/// Every choice key with its valid strings.
const CHOICES: &[(&str, &[&str])] = &[
    ("optim.name", OptimName::NAMES),
    ("schedule.name", ScheduleName::NAMES),
    ("train.device", DeviceChoice::NAMES),
    ("train.precision", PrecisionChoice::NAMES),
    ("train.on_nan", OnNan::NAMES),
    ("data.on_corrupt", OnCorrupt::NAMES),
    ("data.pad_mode", PadMode::NAMES),
    ("data.flip_mode", FlipMode::NAMES),
    ("train.early_stop_metric", EarlyStopMetric::NAMES),
    ("augment.policy", AugmentPolicy::NAMES),
];

/// Checks every choice key that the TOML `value` sets: `` `key` = "value": expected one of ...
/// (did you mean ...?)``, and for a value that is not a string, `` `key` = 1: expected a string,
/// one of ...``.
pub(super) fn check_choices(value: &Value) -> Result<()> {
    for (key, valid) in CHOICES {
        let (section, name) = key.split_once('.').expect("choice keys are section.key");
        match value.get(section).and_then(|t| t.get(name)) {
            None => {}
            Some(Value::String(s)) => super::validate::one_of(key, s, valid)?,
            Some(other) => {
                let shown: Vec<String> =
                    valid.iter().map(|v| if v.is_empty() { "\"\" (none)".into() } else { v.to_string() }).collect();
                return Err(crate::config_err!("`{key}` = {other}: expected a string, one of {}", shown.join(", ")));
            }
        }
    }
    Ok(())
}

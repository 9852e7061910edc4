//! The search space: a TOML file beside the base config giving, per config key, a
//! distribution. Either form works (TOML's dotted keys and tables are the same thing):
//!
//! ```toml
//! optim.lr = { log_float = [1e-3, 0.3] }
//! data.batch_size = { categorical = [128, 256, 512] }
//! [optim]
//! momentum = { float = [0.8, 0.95], step = 0.05, when = { "optim.name" = "sgd" } }
//! ```
//!
//! Kinds: `float`, `log_float`, `int`, `log_int` (each `[low, high]`, `step` optional for the
//! linear ones) and `categorical` (a list of values of the key's type). `when` makes a parameter
//! conditional on the values of other searched keys (a value or a list of values each).
//! Every key and every bound or choice is checked against the base config before any trial
//! starts, so a bad space fails at once, naming the key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};

/// Keys the tuner sets itself for each trial.
const RESERVED: &[&str] = &["name", "output.runs_dir", "train.threads", "track.mlflow_parent_run"];

/// The kinds of distribution, as the space file names them.
const KINDS: &[&str] = &["float", "log_float", "int", "log_int", "categorical"];

/// One searched key and its distribution (serialised for the Optuna driver).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    /// The config key, e.g. `optim.lr`.
    pub key: String,
    /// One of `float`, `log_float`, `int`, `log_int`, `categorical`.
    pub kind: String,
    /// Lower bound (numeric kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    /// Upper bound, included (numeric kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// Grid step (linear kinds; None: continuous floats, 1 for ints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    /// The values of a categorical parameter.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<serde_json::Value>,
    /// Searched keys and the values under which this parameter applies.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub when: BTreeMap<String, Vec<serde_json::Value>>,
}

/// A validated search space, parameters in sampling order (conditions after what they name).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Space {
    /// The parameters.
    pub params: Vec<Param>,
}

impl Space {
    /// Reads and checks the space file at `path` against the base config `base`.
    pub fn load(path: &Path, base: &Config) -> Result<Space> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read the search space {}: {e}; expected a TOML file (docs/tune.md)",
                path.display()
            ))
        })?;
        Space::parse(&text, &path.display().to_string(), base)
    }

    /// Parses the space text (`origin` names it in errors) and checks it against `base`.
    pub fn parse(text: &str, origin: &str, base: &Config) -> Result<Space> {
        let table: toml::Table = text.parse().map_err(|e| Error::Config(format!("{origin}: invalid TOML: {e}")))?;
        let mut params = Vec::new();
        collect("", &toml::Value::Table(table), origin, &mut params)?;
        if params.is_empty() {
            return Err(Error::Config(format!(
                "{origin}: no parameter to search; expected lines like `optim.lr = {{ log_float = [1e-3, 0.3] }}`"
            )));
        }
        let space = Space { params: order(params, origin)? };
        space.check_against(base, origin)?;
        Ok(space)
    }

    /// The number of points when every parameter takes finitely many values without conditions
    /// (a grid); None otherwise, or beyond a million points.
    pub fn grid_size(&self) -> Option<usize> {
        self.params.iter().try_fold(1usize, |n, p| {
            if !p.when.is_empty() {
                return None;
            }
            let values = match p.kind.as_str() {
                "categorical" => p.choices.len(),
                "int" | "float" => {
                    let step = p.step.or((p.kind == "int").then_some(1.0))?;
                    ((p.high? - p.low?) / step).round() as usize + 1
                }
                _ => return None,
            };
            n.checked_mul(values).filter(|&n| n <= 1_000_000)
        })
    }

    /// `key=value` overrides (TOML literals) for the sampled `values` of a trial.
    pub fn overrides(values: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
        values.iter().map(|(k, v)| format!("{k}={}", toml_literal(v))).collect()
    }

    /// Checks each key exists in the config and each bound or choice is a value the config
    /// accepts there (type and range), given alone on top of `base`.
    fn check_against(&self, base: &Config, origin: &str) -> Result<()> {
        let base_text = base.to_toml();
        let leaves = base.leaves();
        for p in &self.params {
            if RESERVED.contains(&p.key.as_str()) {
                return Err(Error::Config(format!(
                    "{origin}: `{}` is set by the tuner for each trial and cannot be searched",
                    p.key
                )));
            }
            if !leaves.iter().any(|(k, _)| *k == p.key) {
                let names: Vec<&str> = leaves.iter().map(|(k, _)| k.as_str()).collect();
                let near = crate::config::suggest(&p.key, &names);
                return Err(Error::Config(format!(
                    "{origin}: `{}` is not a config key{}",
                    p.key,
                    near.map(|k| format!("; did you mean `{k}`?")).unwrap_or_default()
                )));
            }
            for v in p.representatives() {
                let set = format!("{}={}", p.key, toml_literal(&v));
                Config::from_toml_str(&base_text, "the base config", &[set]).map_err(|e| {
                    Error::Config(format!("{origin}: `{}` can take {v}, which the config refuses: {e}", p.key))
                })?;
            }
        }
        Ok(())
    }
}

impl Param {
    /// The values worth checking: the bounds (as ints for int kinds), or every choice.
    fn representatives(&self) -> Vec<serde_json::Value> {
        let num = |x: f64| -> serde_json::Value {
            if self.kind.ends_with("int") {
                (x as i64).into()
            } else {
                x.into()
            }
        };
        match (self.low, self.high) {
            (Some(lo), Some(hi)) => vec![num(lo), num(hi)],
            _ => self.choices.clone(),
        }
    }
}

/// Walks the TOML tree: a table holding one of [`KINDS`] is a parameter, any other table a
/// section.
fn collect(prefix: &str, v: &toml::Value, origin: &str, out: &mut Vec<Param>) -> Result<()> {
    let toml::Value::Table(t) = v else {
        return Err(Error::Config(format!(
            "{origin}: `{prefix}` = {v}: expected a distribution such as {{ float = [0.0, 0.5] }} or {{ categorical = [...] }}"
        )));
    };
    if prefix.is_empty() || !t.keys().any(|k| KINDS.contains(&k.as_str())) {
        for (k, x) in t {
            collect(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, x, origin, out)?;
        }
        return Ok(());
    }
    out.push(param(prefix, t, origin)?);
    Ok(())
}

/// One parameter from its table.
fn param(key: &str, t: &toml::Table, origin: &str) -> Result<Param> {
    let err = |what: String| Error::Config(format!("{origin}: `{key}`: {what}"));
    let kinds: Vec<&String> = t.keys().filter(|k| KINDS.contains(&k.as_str())).collect();
    if kinds.len() != 1 {
        return Err(err(format!("expected exactly one of {}, found {}", KINDS.join(", "), kinds.len())));
    }
    let kind = kinds[0].clone();
    if let Some(other) = t.keys().find(|k| !KINDS.contains(&k.as_str()) && *k != "step" && *k != "when") {
        return Err(err(format!("unknown field `{other}`; expected {kind}, step or when")));
    }
    let mut p = Param {
        key: key.into(),
        kind: kind.clone(),
        low: None,
        high: None,
        step: None,
        choices: Vec::new(),
        when: BTreeMap::new(),
    };
    let value = &t[&kind];
    if kind == "categorical" {
        p.choices = match value {
            toml::Value::Array(a) if !a.is_empty() => a.iter().map(to_json).collect(),
            _ => return Err(err(format!("categorical = {value}: expected a non-empty list of values"))),
        };
        if t.contains_key("step") {
            return Err(err("a categorical parameter has no step".into()));
        }
    } else {
        let (lo, hi) =
            bounds(value).ok_or_else(|| err(format!("{kind} = {value}: expected [low, high], two numbers")))?;
        if lo >= hi || lo.is_nan() || hi.is_nan() {
            return Err(err(format!("{kind} = [{lo}, {hi}] is an empty range; expected low < high")));
        }
        if kind.starts_with("log") && lo <= 0.0 {
            return Err(err(format!("{kind} = [{lo}, {hi}]: a log scale needs low > 0")));
        }
        if kind.ends_with("int") && (lo.fract() != 0.0 || hi.fract() != 0.0) {
            return Err(err(format!("{kind} = [{lo}, {hi}]: expected whole numbers")));
        }
        p.low = Some(lo);
        p.high = Some(hi);
        p.step = step(t, &kind, lo, hi).map_err(err)?;
    }
    if let Some(w) = t.get("when") {
        let toml::Value::Table(w) = w else {
            return Err(err(format!("when = {w}: expected a table such as {{ \"optim.name\" = \"sgd\" }}")));
        };
        for (k, v) in w {
            let values = match v {
                toml::Value::Array(a) => a.iter().map(to_json).collect(),
                other => vec![to_json(other)],
            };
            p.when.insert(k.clone(), values);
        }
    }
    Ok(p)
}

fn bounds(v: &toml::Value) -> Option<(f64, f64)> {
    let num = |x: &toml::Value| x.as_float().or_else(|| x.as_integer().map(|i| i as f64));
    match v.as_array()?.as_slice() {
        [a, b] => Some((num(a)?, num(b)?)),
        _ => None,
    }
}

fn step(t: &toml::Table, kind: &str, lo: f64, hi: f64) -> std::result::Result<Option<f64>, String> {
    let Some(s) = t.get("step") else { return Ok(None) };
    if kind.starts_with("log") {
        return Err(format!("step = {s}: a log scale has no step"));
    }
    let s = s.as_float().or_else(|| s.as_integer().map(|i| i as f64)).filter(|s| *s > 0.0 && *s <= hi - lo);
    let s = s.ok_or_else(|| format!("step: expected a positive number no larger than {}", hi - lo))?;
    if kind == "int" && s.fract() != 0.0 {
        return Err(format!("step = {s}: expected a whole number"));
    }
    // Optuna's grid of a stepped range ends at `high`: the step must divide the range.
    let n = (hi - lo) / s;
    if (n - n.round()).abs() > 1e-9 * n.max(1.0) {
        return Err(format!(
            "step = {s} does not divide [{lo}, {hi}] into whole steps; expected a divisor of {}",
            hi - lo
        ));
    }
    Ok(Some(s))
}

/// Orders parameters so that each comes after the keys its condition names; refuses
/// conditions on keys that are not searched, and cycles.
fn order(mut rest: Vec<Param>, origin: &str) -> Result<Vec<Param>> {
    let keys: Vec<String> = rest.iter().map(|p| p.key.clone()).collect();
    for p in &rest {
        if let Some(k) = p.when.keys().find(|k| !keys.contains(k)) {
            return Err(Error::Config(format!(
                "{origin}: `{}`: when names `{k}`, which is not searched; expected one of {}",
                p.key,
                keys.join(", ")
            )));
        }
    }
    let mut out: Vec<Param> = Vec::new();
    while !rest.is_empty() {
        let ready = rest.iter().position(|p| p.when.keys().all(|k| out.iter().any(|o| &o.key == k)));
        let Some(i) = ready else {
            return Err(Error::Config(format!(
                "{origin}: the conditions of {} name each other in a cycle",
                rest.iter().map(|p| format!("`{}`", p.key)).collect::<Vec<_>>().join(", ")
            )));
        };
        out.push(rest.remove(i));
    }
    Ok(out)
}

fn to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// A JSON value as the TOML literal a `--set` override takes.
pub fn toml_literal(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) if n.is_i64() => n.to_string(),
        serde_json::Value::Number(n) => toml::Value::Float(n.as_f64().unwrap_or(f64::NAN)).to_string(),
        serde_json::Value::String(s) => toml::Value::String(s.clone()).to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Array(a) => format!("[{}]", a.iter().map(toml_literal).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

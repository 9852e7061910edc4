//! TOML text -> checked `Config`: unknown keys (with did-you-mean), `--set` overrides, type errors
//! that name the key, then validation.

use std::path::{Path, PathBuf};
use toml::Value;

use super::Config;
use crate::config_err;
use crate::error::{Error, Result};

pub(super) fn load_file(path: &Path, overrides: &[String], env_root: Option<PathBuf>) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        config_err!(
            "cannot read config file {}: {e} (expected a TOML file, e.g. configs/simple_cnn.toml)",
            path.display()
        )
    })?;
    load_str(&text, &path.display().to_string(), overrides, env_root, true)
}

/// Parses and validates a config; `new_run` adds the checks only new runs must pass
/// ([`super::validate::validate_new`]).
pub(super) fn load_str(
    text: &str,
    origin: &str,
    overrides: &[String],
    env_root: Option<PathBuf>,
    new_run: bool,
) -> Result<Config> {
    let mut value: Value = toml::from_str(text)
        .map_err(|e| config_err!("config {origin}: invalid TOML: {}", clip_lines(&e.to_string())))?;
    check_keys(&value, &schema(), "", origin)?;
    if let Some(root) = env_root {
        // The environment points at the data unless the command line says otherwise.
        set_path(&mut value, "data.root", Value::String(root.display().to_string()));
    }
    let base = value.clone();
    for ov in overrides {
        apply_override(&mut value, ov)?;
    }
    super::choice::check_choices(&value).map_err(|e| blame(e, origin, overrides))?;
    let cfg: Config = value.try_into().map_err(|e: toml::de::Error| {
        let msg = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        // A type error names no key; find the override that causes it, if one does.
        let file_ok = base.clone().try_into::<Config>().is_ok();
        let culprit = overrides.iter().filter(|_| file_ok).find(|ov| {
            let mut v = base.clone();
            apply_override(&mut v, ov).is_ok() && v.try_into::<Config>().is_err()
        });
        match culprit {
            Some(ov) => config_err!("--set {ov}: {msg}"),
            None => config_err!("config {origin}: {msg}"),
        }
    })?;
    let checked = cfg.validate().and_then(|()| if new_run { super::validate::validate_new(&cfg) } else { Ok(()) });
    checked.map_err(|e| blame(e, origin, overrides))?;
    Ok(cfg)
}

/// A check's message with its source: the `--set` override that set the key, else the file.
fn blame(e: Error, origin: &str, overrides: &[String]) -> Error {
    match e {
        Error::Config(msg) => match override_of(&msg, overrides) {
            Some(ov) => config_err!("--set {ov}: {msg}"),
            // A check across keys may involve an override: name both sources.
            None if !overrides.is_empty() => config_err!("config {origin} with the --set overrides: {msg}"),
            None => config_err!("config {origin}: {msg}"),
        },
        other => other,
    }
}

/// The `--set` override that set the key a validation message starts with (`` `key` = ...``), so
/// the error blames the command line rather than the file when the value came from there.
fn override_of<'a>(msg: &str, overrides: &'a [String]) -> Option<&'a str> {
    let key = msg.strip_prefix('`')?.split('`').next()?;
    let sets = |k: &str| key == k || key.strip_prefix(k).is_some_and(|rest| rest.starts_with('.'));
    overrides.iter().rev().map(String::as_str).find(|ov| ov.split_once('=').is_some_and(|(k, _)| sets(k.trim())))
}

/// The set of valid keys, taken from the default config itself so it never drifts from the types.
fn schema() -> Value {
    Value::try_from(Config::default()).expect("default config serialises")
}

/// Applies one `section.key=value` override. The value is parsed as TOML (`0.1`, `true`, `[1, 2]`,
/// `"text"`), falling back to a bare string so `--set model.name=resnet18` works unquoted.
pub fn apply_override(value: &mut Value, ov: &str) -> Result<()> {
    let (key, raw) = ov
        .split_once('=')
        .ok_or_else(|| config_err!("--set {ov:?}: expected section.key=value, e.g. --set optim.lr=0.1"))?;
    let key = key.trim();
    let schema = schema();
    let is_text = key.split('.').try_fold(&schema, |v, part| v.get(part)).is_some_and(Value::is_str);
    let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        // A text key takes the text as given: `--set name=nan` is the name "nan", not a float.
        .filter(|v| !is_text || v.is_str())
        .unwrap_or_else(|| Value::String(raw.to_string()));
    let mut probe = Value::Table(Default::default());
    set_path(&mut probe, key, parsed.clone());
    check_keys(&probe, &schema, "", &format!("--set {ov}"))?;
    set_path(value, key, parsed);
    Ok(())
}

fn set_path(value: &mut Value, dotted: &str, new: Value) {
    let mut cur = value;
    let parts: Vec<&str> = dotted.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        let table = cur.as_table_mut().expect("parents are tables after check_keys");
        cur = table.entry(part.to_string()).or_insert_with(|| Value::Table(Default::default()));
        if !cur.is_table() {
            *cur = Value::Table(Default::default());
        }
    }
    if let Some(t) = cur.as_table_mut() {
        t.insert(parts[parts.len() - 1].to_string(), new);
    }
}

/// Tables whose keys are the user's (parameter names) and whose values are numbers.
const NUMBER_MAPS: &[&str] = &["optim.lr_scales"];

fn check_number_map(map: &Value, full: &str, origin: &str) -> Result<()> {
    for (key, v) in map.as_table().into_iter().flatten() {
        if !matches!(v, Value::Float(_) | Value::Integer(_)) {
            return Err(config_err!(
                "config {origin}: `{full}.{key}` = {v}: expected a number; quote dotted parameter names, e.g. \
                 {full} = {{ \"whiten.bias\" = 64.0 }}"
            ));
        }
    }
    Ok(())
}

fn check_keys(value: &Value, schema: &Value, prefix: &str, origin: &str) -> Result<()> {
    let (Some(table), Some(known)) = (value.as_table(), schema.as_table()) else {
        return Ok(());
    };
    for (key, sub) in table {
        let full = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match known.get(key) {
            Some(sub_schema) if sub_schema.is_table() && !sub.is_table() => {
                return Err(config_err!("config {origin}: `{full}` is a section; expected a table like [{full}]"));
            }
            Some(sub_schema) if !same_type(sub, sub_schema) => {
                return Err(config_err!(
                    "config {origin}: `{full}` = {}: expected {}, e.g. {full} = {sub_schema}",
                    shown(sub),
                    type_name(sub_schema)
                ));
            }
            Some(_) if NUMBER_MAPS.contains(&full.as_str()) => check_number_map(sub, &full, origin)?,
            Some(sub_schema) => check_keys(sub, sub_schema, &full, origin)?,
            None => {
                let names: Vec<&str> = known.keys().map(String::as_str).collect();
                let hint = match suggest(key, &names) {
                    Some(s) => format!("did you mean `{}`?", join(prefix, s)),
                    None => format!("valid keys here: {}", names.join(", ")),
                };
                return Err(config_err!("config {origin}: unknown key `{full}`; {hint}"));
            }
        }
    }
    Ok(())
}

/// Whether a user value fits the schema's (default value's) type; integers fit floats.
fn same_type(v: &Value, schema: &Value) -> bool {
    match (v, schema) {
        (Value::Integer(_), Value::Float(_)) => true,
        (Value::Array(items), Value::Array(s)) => match s.first() {
            Some(first) => items.iter().all(|i| same_type(i, first)),
            None => true,
        },
        _ => std::mem::discriminant(v) == std::mem::discriminant(schema),
    }
}

fn type_name(v: &Value) -> String {
    let plural = |v: &Value| match v {
        Value::String(_) => "strings",
        Value::Integer(_) => "integers",
        Value::Float(_) => "numbers",
        Value::Boolean(_) => "booleans",
        Value::Datetime(_) => "dates",
        Value::Array(_) => "arrays",
        Value::Table(_) => "tables",
    };
    match v {
        Value::String(_) => "a string".into(),
        Value::Integer(_) => "an integer".into(),
        Value::Float(_) => "a number".into(),
        Value::Boolean(_) => "true or false".into(),
        Value::Datetime(_) => "a date".into(),
        Value::Array(items) => items.first().map_or("an array".into(), |i| format!("an array of {}", plural(i))),
        Value::Table(_) => "a table".into(),
    }
}

/// A value as the user wrote it (`Value`'s Display writes a date as serde's wrapper table).
fn shown(v: &Value) -> String {
    match v {
        Value::Datetime(date) => date.to_string(),
        other => other.to_string(),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The closest valid name by edit distance, if it is close enough to be a plausible typo.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The parser's message with each line cut to 200 characters: it quotes the offending line,
/// which is a whole file's worth when the "config" is not a text file (an HTML report, say).
fn clip_lines(message: &str) -> String {
    const MAX: usize = 200;
    let clip = |line: &str| match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{} [... {} more bytes]", &line[..cut], line.len() - cut),
        None => line.to_string(),
    };
    message.lines().map(clip).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_matches_hand_counts() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("lr", "lr"), 0);
        assert_eq!(levenshtein("", "abc"), 3);
    }

    #[test]
    fn suggest_picks_close_names_only() {
        assert_eq!(suggest("lrr", &["lr", "momentum"]), Some("lr"));
        assert_eq!(suggest("zzzzzzzz", &["lr", "momentum"]), None);
    }
}

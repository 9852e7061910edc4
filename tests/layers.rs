//! The module graph has no cycle: each top-level module of `src/` imports only modules of lower
//! layers (docs/library.md). A `crate::<module>` path in code (not in comments) to a module of
//! its own layer or above fails the test, naming the file and the line.

use std::path::Path;

/// The layers, bottom first; a module may import only modules of a lower layer.
const LAYERS: &[&[&str]] = &[
    &["error", "failpoint", "metrics", "notice", "seed"],
    &["fsio", "pyproc"],
    &["config"],
    &["device", "dist"],
    &["run"],
    &["data"],
    &["models"],
    &["train"],
    &["track"],
    &["search"],
    &["analysis", "bench"],
    &["lab"],
    &["cli"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules a line of code names as `crate::<module>` (macros such as `crate::config_err!`
/// live in `error`).
fn imports(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let ident =
        |s: &str| -> String { s.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{config, data::Dataset};` (on one line)
            let inner = group.split('}').next().unwrap_or("");
            out.extend(inner.split(',').map(ident).filter(|n| !n.is_empty()));
            continue;
        }
        let name = ident(rest);
        out.push(if rest[name.len()..].starts_with('!') { "error".to_string() } else { name });
    }
    out
}

#[test]
fn every_module_imports_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy();
        let module = top.trim_end_matches(".rs");
        if ["lib", "main"].contains(&module) {
            continue;
        }
        let own = layer(module).unwrap_or_else(|| panic!("src/{module} is in no layer of LAYERS: add it"));
        for (n, line) in std::fs::read_to_string(file).unwrap().lines().enumerate() {
            for import in imports(line) {
                // Re-exports at the crate root (`crate::Config`, `crate::Result`) are `config` and `error`.
                let target = match import.as_str() {
                    "Config" => "config",
                    "Error" | "Result" => "error",
                    other => other,
                };
                let Some(theirs) = layer(target) else { continue };
                if target != module && theirs >= own {
                    wrong.push(format!("src/{}:{}: {module} imports {target}", rel.display(), n + 1));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers (docs/library.md):\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import() {
    assert_eq!(imports("use crate::train::Trainer; // crate::cli"), vec!["train"]);
    assert_eq!(imports("return Err(crate::config_err!(\"x\"));"), vec!["error"]);
    assert_eq!(imports("use crate::{data::Dataset, models};"), vec!["data", "models"]);
    assert!(layer("config") < layer("data") && layer("lab") < layer("cli"));
}

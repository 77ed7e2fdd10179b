//! The scan behind both crates' layer tests (this file is also compiled into compress's test
//! binary): which top-level modules a source names, and which of those sit on its own layer or
//! above.

use std::path::{Path, PathBuf};

/// A crate's top-level modules (folders, or files without `.rs`) from the bottom layer up; the
/// modules on one line share a layer and do not name each other. Modules not listed (the
/// command: `main.rs`, `cli/`, `lib.rs`) may name any.
pub type Layers = &'static [&'static [&'static str]];

/// The layer of `module`, counted from the bottom; `None` when the table does not list it.
pub fn layer(layers: Layers, module: &str) -> Option<usize> {
    layers.iter().position(|l| l.contains(&module))
}

/// Every `crate::MODULE` a source names, outside its tests and comments.
pub fn named_modules(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .flat_map(|l| l.split("crate::").skip(1))
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .collect()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Fails naming each source under `manifest_dir/src` that names a module on its own layer or
/// above; `at_least` sources must sit in listed modules, so a moved tree cannot pass by being
/// missed.
pub fn assert_no_arrow_up(manifest_dir: &str, layers: Layers, at_least: usize) {
    let src = Path::new(manifest_dir).join("src");
    let (checked, wrong) = arrows_up(&src, layers);
    assert!(
        checked >= at_least,
        "only {checked} modules found under {}",
        src.display()
    );
    assert!(
        wrong.is_empty(),
        "arrows up the layers:\n{}",
        wrong.join("\n")
    );
}

/// Scans every source under `src`: how many sit in a listed module, and each name of a module
/// on the same layer or above (`FILE names crate::MODULE`).
fn arrows_up(src: &Path, layers: Layers) -> (usize, Vec<String>) {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut checked = 0;
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(src).unwrap();
        let module = relative
            .iter()
            .next()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let Some(own) = layer(layers, &module) else {
            continue;
        };
        checked += 1;
        for named in named_modules(&std::fs::read_to_string(file).unwrap()) {
            match layer(layers, &named) {
                Some(theirs) if named != module && theirs >= own => {
                    wrong.push(format!("{} names crate::{named}", relative.display()))
                }
                _ => {}
            }
        }
    }
    (checked, wrong)
}

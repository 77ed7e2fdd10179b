//! The layer order of ARCHITECTURE.md: a module of `compress/src` names only modules of lower
//! layers (and its own folder); the command (`main.rs`, `cli/`) may name any.

use std::path::Path;

/// The folders of `compress/src` from the bottom layer up; folders on one line share a layer and
/// do not name each other.
const LAYERS: &[&[&str]] = &[
    &["onnx", "data"],
    &["bert"],
    &["package"],
    &["eval", "train"],
    &["passes"],
    &["recipe"],
];

fn layer(folder: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&folder))
}

/// Every `crate::FOLDER` a source names, outside its tests and doc comments.
fn named_folders(source: &str) -> Vec<String> {
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

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_names_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut checked = 0;
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let folder = relative
            .iter()
            .next()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let Some(own) = layer(&folder) else {
            continue;
        };
        checked += 1;
        for named in named_folders(&std::fs::read_to_string(file).unwrap()) {
            match layer(&named) {
                Some(theirs) if named != folder && theirs >= own => {
                    wrong.push(format!("{} names crate::{named}", relative.display()))
                }
                _ => {}
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} modules found under {}",
        src.display()
    );
    assert!(
        wrong.is_empty(),
        "arrows up the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_an_arrow_up() {
    let source =
        "use crate::onnx::graph::Graph;\nuse crate::recipe::step;\n// crate::cli in a comment\n";
    assert_eq!(named_folders(source), ["onnx", "recipe"]);
    assert!(layer("recipe") > layer("passes") && layer("onnx") < layer("bert"));
}

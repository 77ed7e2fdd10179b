//! The layer order of ARCHITECTURE.md: a module of the agent's `src/` names only modules of
//! lower layers (and its own); the command (`main.rs`, `cli/`) and `lib.rs` may name any.

use std::path::Path;

use super::layer_check::{Layers, assert_no_arrow_up, layer, named_modules};

/// The agent's top-level modules from the bottom layer up.
const LAYERS: Layers = &[
    &["queue", "latency"],
    &["model"],
    &["vision", "text"],
    &["config"],
    &["source", "track"],
    &["publish"],
    &["fallback"],
    &["observe"],
    &["pipeline"],
];

#[test]
fn no_module_names_a_layer_above_its_own() {
    assert_no_arrow_up(env!("CARGO_MANIFEST_DIR"), LAYERS, 80);
}

#[test]
fn every_module_of_the_library_has_a_layer() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .collect();
    assert!(modules.len() >= 12, "{modules:?}");
    for module in modules {
        assert!(layer(LAYERS, module).is_some(), "`{module}` is in no layer");
    }
}

#[test]
fn the_check_sees_an_arrow_up() {
    let source = "use crate::config::Band;\nuse crate::pipeline::run;\n// crate::cli\n";
    assert_eq!(named_modules(source), ["config", "pipeline"]);
    assert!(layer(LAYERS, "pipeline") > layer(LAYERS, "track"));
    assert!(layer(LAYERS, "config") < layer(LAYERS, "fallback"));
}

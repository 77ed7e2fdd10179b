//! The layer order of ARCHITECTURE.md: a module of `compress/src` names only modules of lower
//! layers (and its own folder); the command (`main.rs`, `cli/`) may name any.

use super::layer_check::{Layers, assert_no_arrow_up, layer, named_modules};

/// The folders of `compress/src` from the bottom layer up.
const LAYERS: Layers = &[
    &["onnx", "data"],
    &["bert"],
    &["package"],
    &["eval", "train"],
    &["passes"],
    &["recipe"],
];

#[test]
fn no_module_names_a_layer_above_its_own() {
    assert_no_arrow_up(env!("CARGO_MANIFEST_DIR"), LAYERS, 40);
}

#[test]
fn the_check_sees_an_arrow_up() {
    let source =
        "use crate::onnx::graph::Graph;\nuse crate::recipe::step;\n// crate::cli in a comment\n";
    assert_eq!(named_modules(source), ["onnx", "recipe"]);
    assert!(layer(LAYERS, "recipe") > layer(LAYERS, "passes"));
    assert!(layer(LAYERS, "onnx") < layer(LAYERS, "bert"));
}

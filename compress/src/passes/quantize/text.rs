//! Quantizing a text-classify package: its graph through the weight quantizer, the tokenizer and
//! labels carried over, the pass recorded in its provenance.

use std::path::{Path, PathBuf};

use crate::onnx::graph::Graph;
use crate::package::PackageError;
use crate::package::text::TextPackage;
use crate::passes::quantize::{Options, QuantizePassError, quantize};

/// Writes a copy of the `text-classify` package at `manifest` into `out` with its graph
/// quantized; returns the new manifest.
pub fn quantize_package(
    manifest: &Path,
    options: &Options,
    out: &Path,
    name: &str,
) -> Result<PathBuf, QuantizePassError> {
    let package = TextPackage::open(manifest)?;
    let graph = Graph::load(&package.model).map_err(PackageError::from)?;
    let quantized =
        quantize(&graph.proto, options).map_err(|source| QuantizePassError::Refused {
            path: package.model.clone(),
            source,
        })?;
    let provenance = package.derived_provenance(format!(
        "quantize: {} int8, {} weights",
        options.mode.name(),
        quantized.weights.len()
    ));
    Ok(package.write_derived(
        out,
        name,
        format!("int8 ({}) of {}", options.mode.name(), manifest.display()),
        &quantized.model,
        provenance,
    )?)
}

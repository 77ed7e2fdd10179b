//! Runs a fully convolutional dense predictor (DBNet) at 1/`factor` of its input resolution
//! inside: a `factor`×`factor` average pooling, written as a depthwise convolution (which tract
//! runs several times faster than its AveragePool), goes in front of the graph. The student still
//! takes the full-size input; every layer after the pooling does `factor`² fewer MACs, and the
//! output map comes out at 1/`factor` of the input size, which the DBNet decoder scales back.

use std::path::{Path, PathBuf};

use tract_onnx::pb::{self, ModelProto};

use crate::onnx::build::Attr;
use crate::onnx::graph::{constants_to_initializers, data_inputs, dims, f32_tensor};
use crate::package::PackageError;
use crate::package::detect::DetectPackage;

/// Errors of the pass.
#[derive(Debug, thiserror::Error)]
pub enum DownscaleError {
    /// The package could not be read or written.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The factor is not at least 2.
    #[error("downscale: the factor must be at least 2, not {0}")]
    Factor(usize),
    /// The graph does not have the shape the pass rewrites.
    #[error("downscale: {0}")]
    Graph(String),
}

/// The graph behind a `factor`×`factor` average pooling of its one NCHW input.
pub fn downscale(model: &ModelProto, factor: usize) -> Result<ModelProto, DownscaleError> {
    if factor < 2 {
        return Err(DownscaleError::Factor(factor));
    }
    let bad = |s: String| DownscaleError::Graph(s);
    let mut model = model.clone();
    constants_to_initializers(&mut model);
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| bad("the model holds no graph".into()))?;
    let inputs = data_inputs(graph);
    let [input] = inputs.as_slice() else {
        return Err(bad(format!(
            "the graph has {} inputs, not one",
            inputs.len()
        )));
    };
    let declared = dims(input);
    let channels = match declared.as_slice() {
        [_, c, _, _] => c.parse::<usize>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        bad(format!(
            "input `{}` is [{}], not NCHW with a fixed channel count",
            input.name,
            declared.join(", ")
        ))
    })?;
    if let Some((i, n)) = graph.node.iter().enumerate().find(|(_, n)| {
        n.input.contains(&input.name) && (n.op_type != "Conv" || n.input[0] != input.name)
    }) {
        return Err(bad(format!(
            "input `{}` must feed convolutions only, but `{}` ({}) reads it",
            input.name,
            crate::onnx::graph::node_label(n, i),
            n.op_type
        )));
    }
    let name = input.name.clone();
    let pooled = format!("{name}_pooled");
    let weight = format!("{name}_pool_weight");
    for node in &mut graph.node {
        for i in node.input.iter_mut().filter(|i| **i == name) {
            i.clone_from(&pooled);
        }
    }
    let taps = vec![1.0 / (factor * factor) as f32; channels * factor * factor];
    graph
        .initializer
        .push(f32_tensor(&weight, &[channels, 1, factor, factor], &taps));
    let f = factor as i64;
    let attrs = [
        ("group", Attr::Int(channels as i64)),
        ("kernel_shape", Attr::Ints(vec![f, f])),
        ("strides", Attr::Ints(vec![f, f])),
    ];
    graph.node.insert(
        0,
        pb::NodeProto {
            name: format!("{name}_pool"),
            op_type: "Conv".into(),
            input: vec![name, weight],
            output: vec![pooled],
            attribute: attrs
                .iter()
                .map(|(n, v)| crate::onnx::build::attribute(n, v))
                .collect(),
            ..Default::default()
        },
    );
    for output in &mut graph.output {
        if let Some(pb::type_proto::Value::TensorType(t)) =
            output.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            t.shape = None;
        }
    }
    graph.value_info.clear();
    Ok(model)
}

/// Writes the package at `manifest` downscaled by `factor` as a package named `name` in `out`;
/// returns the new manifest.
pub fn downscale_package(
    manifest: &Path,
    factor: usize,
    out: &Path,
    name: &str,
) -> Result<PathBuf, DownscaleError> {
    let package = DetectPackage::open(manifest)?;
    let model = downscale(&package.graph()?.proto, factor)?;
    let provenance = package.derived_provenance(format!(
        "downscale: 1/{factor} resolution inside (a {factor}x{factor} average pooling in front)"
    ));
    Ok(package.write_derived(
        out,
        name,
        format!("{} at 1/{factor} resolution inside", package.manifest.name),
        &model,
        None,
        &provenance,
    )?)
}

//! `inspect`: what a model is made of — parameters, bytes, operator histogram, inputs, outputs,
//! and the multiply-accumulates (MACs) tract counts at fixed input shapes.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use serde_json::{Value, json};
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{Conv, Deconv};
use tract_onnx::tract_core::ops::einsum::EinSum;

use crate::onnx::graph::{Graph, dims};

/// Errors while fixing input shapes and counting MACs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InspectError {
    /// An `--input` value is not `NAME=D1,D2,…`.
    #[error("`{spec}` is not NAME=D1,D2,… with positive dims (e.g. images=1,3,320,320)")]
    InputSpec {
        /// The value as given.
        spec: String,
    },
    /// An `--input` names no input of the model.
    #[error("the model has no input `{name}` (its inputs: {inputs})")]
    UnknownInput {
        /// The name given.
        name: String,
        /// The model's input names, comma-separated.
        inputs: String,
    },
    /// The same input is given twice.
    #[error("input `{name}` is given twice")]
    Duplicate {
        /// The input name.
        name: String,
    },
    /// An `--input` has a different number of dims than the model declares.
    #[error("input `{name}` is declared with {declared} dims [{dims}], but {given} are given")]
    Rank {
        /// The input name.
        name: String,
        /// Dims the model declares.
        declared: usize,
        /// The declared dims, comma-separated.
        dims: String,
        /// Dims given.
        given: usize,
    },
    /// An `--input` contradicts a dim the model fixes.
    #[error("input `{name}` dim {index} is fixed at {declared} by the model, but {given} is given")]
    FixedDim {
        /// The input name.
        name: String,
        /// Position of the dim.
        index: usize,
        /// The model's value.
        declared: usize,
        /// The value given.
        given: usize,
    },
    /// A symbolic dim that is not a batch dim has no value.
    #[error(
        "input `{name}` dim {index} (`{dim}`) is not fixed: give it with --input {name}={hint}"
    )]
    Unresolved {
        /// The input name.
        name: String,
        /// Position of the dim.
        index: usize,
        /// The dim's symbol, or `?`.
        dim: String,
        /// The `--input` value to fill in, e.g. `1,3,HEIGHT,WIDTH`.
        hint: String,
    },
    /// tract could not load, type or cost the graph.
    #[error("tract cannot {stage}: {reason}")]
    Tract {
        /// What tract was doing.
        stage: String,
        /// tract's error.
        reason: String,
    },
}

/// A fixed shape for one model input, written `NAME=D1,D2,…` (e.g. `images=1,3,320,320`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputShape {
    /// The input name.
    pub name: String,
    /// Its dims.
    pub dims: Vec<usize>,
}

impl FromStr for InputShape {
    type Err = InspectError;

    fn from_str(spec: &str) -> Result<InputShape, InspectError> {
        let bad = || InspectError::InputSpec {
            spec: spec.to_owned(),
        };
        let (name, dims) = spec.rsplit_once('=').ok_or_else(bad)?;
        let dims = dims
            .split(',')
            .map(|d| d.trim().parse::<usize>().ok().filter(|&d| d > 0))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        Ok(InputShape {
            name: name.to_owned(),
            dims,
        })
    }
}

/// A model's structure in numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// File size in bytes.
    pub bytes: u64,
    /// Number of weight values in initializers.
    pub parameters: u64,
    /// Nodes per operator type.
    pub ops: BTreeMap<String, usize>,
    /// Graph inputs (initializers excluded) with their declared dimensions.
    pub inputs: Vec<(String, Vec<String>)>,
    /// Graph outputs with their declared dimensions.
    pub outputs: Vec<(String, Vec<String>)>,
    /// ONNX opset of the default domain.
    pub opset: i64,
}

/// Summarises a loaded graph.
pub fn summarize(model: &Graph) -> Summary {
    let graph = model.graph();
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let parameters = graph
        .initializer
        .iter()
        .map(|t| t.dims.iter().product::<i64>().max(0) as u64)
        .sum();
    let mut ops = BTreeMap::new();
    for node in &graph.node {
        *ops.entry(node.op_type.clone()).or_insert(0) += 1;
    }
    let opset = model
        .proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version);
    Summary {
        bytes: model.bytes,
        parameters,
        ops,
        inputs: graph
            .input
            .iter()
            .filter(|i| !initializers.contains(&i.name.as_str()))
            .map(|i| (i.name.clone(), dims(i)))
            .collect(),
        outputs: graph
            .output
            .iter()
            .map(|o| (o.name.clone(), dims(o)))
            .collect(),
        opset,
    }
}

impl Summary {
    /// The summary as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "bytes": self.bytes,
            "parameters": self.parameters,
            "opset": self.opset,
            "ops": self.ops,
            "inputs": self.inputs.iter().map(|(n, d)| json!({"name": n, "dims": d})).collect::<Vec<_>>(),
            "outputs": self.outputs.iter().map(|(n, d)| json!({"name": n, "dims": d})).collect::<Vec<_>>(),
        })
    }

    /// The summary as a human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "bytes       {}\nparameters  {}\nopset       {}\nnodes       {}\n",
            self.bytes,
            self.parameters,
            self.opset,
            self.ops.values().sum::<usize>()
        );
        for (kind, list) in [("input ", &self.inputs), ("output", &self.outputs)] {
            for (name, dims) in list {
                out.push_str(&format!("{kind}      {name} [{}]\n", dims.join(", ")));
            }
        }
        let mut ops: Vec<_> = self.ops.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        out.push_str("operators\n");
        for (op, n) in ops {
            out.push_str(&format!("  {op:<24} {n}\n"));
        }
        out
    }
}

/// The MACs of one ONNX node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeMacs {
    /// The node's name (its first output's name when the file leaves it unnamed, as in tract).
    pub name: String,
    /// Its ONNX operator type.
    pub op: String,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Shape of its first output, when tract could infer it.
    pub shape: Option<Vec<usize>>,
}

/// Multiply-accumulates of a model at fixed input shapes.
///
/// Counted from tract's cost model on the typed graph: the FMA counts of convolutions and matrix
/// products (ONNX Conv, ConvTranspose, MatMul, Gemm, Einsum). Element-wise work is left out, as in
/// the usual GMAC/GFLOP figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Macs {
    /// The input shapes counted at, in graph order.
    pub inputs: Vec<(String, Vec<usize>)>,
    /// Sum over all nodes.
    pub total: u64,
    /// Sum per ONNX operator type (types with no MACs left out).
    pub by_op: BTreeMap<String, u64>,
    /// Every ONNX node, in graph order.
    pub nodes: Vec<NodeMacs>,
    /// Shapes of the tensors tract could infer, by ONNX tensor name.
    pub shapes: HashMap<String, Vec<usize>>,
}

impl Macs {
    /// Floating-point operations: two per multiply-accumulate.
    pub fn flops(&self) -> u64 {
        2 * self.total
    }

    /// The `n` nodes with the most MACs, most first (graph order among equals).
    pub fn top(&self, n: usize) -> Vec<&NodeMacs> {
        let mut nodes: Vec<&NodeMacs> = self.nodes.iter().filter(|n| n.macs > 0).collect();
        nodes.sort_by_key(|n| std::cmp::Reverse(n.macs));
        nodes.truncate(n);
        nodes
    }
}

/// What `inspect` reports: the structure, and the MACs or why they could not be counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Parameters, operators, inputs and outputs.
    pub summary: Summary,
    /// MACs at the fixed input shapes, or why they are unknown.
    pub macs: Result<Macs, InspectError>,
}

/// Inspects a graph, counting MACs at the `given` input shapes (symbolic batch dims default to 1).
///
/// An input shape that names no input, or contradicts the model's declared dims, is an error; a
/// dim left open or a graph tract cannot type only leaves [`Report::macs`] unknown.
pub fn inspect(graph: &Graph, given: &[InputShape]) -> Result<Report, InspectError> {
    let summary = summarize(graph);
    check_given(&summary.inputs, given)?;
    let macs = fixed_inputs(&summary.inputs, given, None).and_then(|inputs| count(graph, inputs));
    Ok(Report { summary, macs })
}

/// Every input's fixed shape: as `given`, else its declared dims with symbolic batch dims at 1.
pub(crate) fn fixed_shapes(
    graph: &Graph,
    given: &[InputShape],
) -> Result<Vec<(String, Vec<usize>)>, InspectError> {
    let declared = summarize(graph).inputs;
    check_given(&declared, given)?;
    fixed_inputs(&declared, given, None)
}

/// MACs of a text model at batch 1 × `sequence` tokens: every symbolic dim that is not a batch
/// dim is taken as the sequence length. `None` when tract cannot count.
pub fn text_macs(graph: &Graph, sequence: usize) -> Option<u64> {
    let inputs = fixed_inputs(&summarize(graph).inputs, &[], Some(sequence)).ok()?;
    count(graph, inputs).ok().map(|m| m.total)
}

/// Checks the given shapes against the model's declared inputs.
fn check_given(
    declared: &[(String, Vec<String>)],
    given: &[InputShape],
) -> Result<(), InspectError> {
    for (i, shape) in given.iter().enumerate() {
        let Some((_, dims)) = declared.iter().find(|(name, _)| *name == shape.name) else {
            return Err(InspectError::UnknownInput {
                name: shape.name.clone(),
                inputs: declared
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if given[..i].iter().any(|g| g.name == shape.name) {
            return Err(InspectError::Duplicate {
                name: shape.name.clone(),
            });
        }
        if !dims.is_empty() && dims.len() != shape.dims.len() {
            return Err(InspectError::Rank {
                name: shape.name.clone(),
                declared: dims.len(),
                dims: dims.join(", "),
                given: shape.dims.len(),
            });
        }
        for (index, (declared, &given)) in dims.iter().zip(&shape.dims).enumerate() {
            if let Ok(declared) = declared.parse::<usize>()
                && declared != given
            {
                return Err(InspectError::FixedDim {
                    name: shape.name.clone(),
                    index,
                    declared,
                    given,
                });
            }
        }
    }
    Ok(())
}

/// Every input's fixed shape: as given, else its declared dims with batch dims at 1 and other
/// symbolic dims at `other` (an error when `other` is `None`).
fn fixed_inputs(
    declared: &[(String, Vec<String>)],
    given: &[InputShape],
    other: Option<usize>,
) -> Result<Vec<(String, Vec<usize>)>, InspectError> {
    declared
        .iter()
        .map(|(name, dims)| {
            if let Some(shape) = given.iter().find(|g| g.name == *name) {
                return Ok((name.clone(), shape.dims.clone()));
            }
            let unresolved = |index: usize, dim: &str| InspectError::Unresolved {
                name: name.clone(),
                index,
                dim: dim.to_owned(),
                hint: hint(dims),
            };
            if dims.is_empty() {
                return Err(unresolved(0, "?"));
            }
            let fixed = dims
                .iter()
                .enumerate()
                .map(|(index, dim)| match fixed_dim(dim) {
                    Some(d) => Ok(d),
                    None => other.ok_or_else(|| unresolved(index, dim)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((name.clone(), fixed))
        })
        .collect()
}

/// A declared dim's value without `--input`: its number, or 1 for a batch dim.
fn fixed_dim(dim: &str) -> Option<usize> {
    match dim.parse::<usize>() {
        Ok(d) if d > 0 => Some(d),
        _ if dim.to_ascii_lowercase().contains("batch") => Some(1),
        _ => None,
    }
}

/// An `--input` value to fill in for declared `dims`: fixed and batch dims as numbers, a short
/// symbol in capitals (`HEIGHT`), else `D` and the position.
fn hint(dims: &[String]) -> String {
    if dims.is_empty() {
        return "D0,D1,…".into();
    }
    dims.iter()
        .enumerate()
        .map(|(i, dim)| match fixed_dim(dim) {
            Some(d) => d.to_string(),
            None if dim.len() <= 12 && dim.chars().all(|c| c.is_ascii_alphabetic() || c == '_') => {
                dim.to_ascii_uppercase()
            }
            None => format!("D{i}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The name tract gives an ONNX node: its own, else its first output's.
pub(crate) fn tract_name(node: &pb::NodeProto) -> Option<&str> {
    if !node.name.is_empty() {
        return Some(&node.name);
    }
    node.output
        .iter()
        .find(|o| !o.is_empty())
        .map(String::as_str)
}

/// The name `inspect` shows for the ONNX node at `index`.
pub fn node_name(node: &pb::NodeProto, index: usize) -> String {
    tract_name(node).map_or_else(|| format!("{}#{index}", node.op_type), str::to_owned)
}

/// Each ONNX node's index by the name tract gives it.
pub(crate) fn onnx_index(graph: &Graph) -> HashMap<&str, usize> {
    graph
        .graph()
        .node
        .iter()
        .enumerate()
        .filter_map(|(i, n)| Some((tract_name(n)?, i)))
        .collect()
}

/// Counts MACs with tract at the given input shapes.
fn count(graph: &Graph, inputs: Vec<(String, Vec<usize>)>) -> Result<Macs, InspectError> {
    let tract = |stage: &str| {
        let stage = stage.to_owned();
        move |e: TractError| InspectError::Tract {
            stage,
            reason: format!("{e:#}"),
        }
    };
    let parsed = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
        .parse(&fix_quirks(&graph.proto), None)
        .map_err(tract("load the graph"))?;
    if let Some(name) = parsed.unresolved_inputs.first() {
        return Err(InspectError::Tract {
            stage: "load the graph".into(),
            reason: format!("no tensor `{name}` feeds the nodes that read it"),
        });
    }
    let mut model = parsed.model;
    let sources = model
        .input_outlets()
        .map_err(tract("list inputs"))?
        .to_vec();
    for (ix, outlet) in sources.iter().enumerate() {
        let name = &model.node(outlet.node).name;
        let Some((_, dims)) = inputs.iter().find(|(n, _)| n == name) else {
            return Err(InspectError::Tract {
                stage: "fix input shapes".into(),
                reason: format!("tract sees an input `{name}` the file does not declare"),
            });
        };
        let fact = model
            .input_fact(ix)
            .map_err(tract("fix input shapes"))?
            .clone()
            .with_shape(dims.clone());
        model
            .set_input_fact(ix, fact)
            .map_err(tract("fix input shapes"))?;
    }
    model.analyse(false).map_err(tract("infer shapes"))?;
    let shapes: HashMap<String, Vec<usize>> = parsed
        .outlets_by_name
        .iter()
        .filter_map(|(name, outlet)| {
            let fact = model.outlet_fact(*outlet).ok()?;
            let shape = fact.shape.as_concrete_finite().ok()??;
            Some((name.clone(), shape.to_vec()))
        })
        .collect();
    let typed = model.into_typed().map_err(tract("type the graph"))?;

    let onnx_nodes = &graph.graph().node;
    let index = onnx_index(graph);
    let mut nodes: Vec<NodeMacs> = onnx_nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeMacs {
            name: node_name(n, i),
            op: n.op_type.clone(),
            macs: 0,
            shape: n.output.first().and_then(|o| shapes.get(o)).cloned(),
        })
        .collect();
    for node in typed.nodes() {
        let macs = node_macs(&typed, node)?;
        if macs == 0 {
            continue;
        }
        match onnx_node(&index, &node.name) {
            Some(i) => nodes[i].macs += macs,
            None => nodes.push(NodeMacs {
                name: node.name.clone(),
                op: node.op.name().into_owned(),
                macs,
                shape: None,
            }),
        }
    }
    let mut by_op = BTreeMap::new();
    for node in nodes.iter().filter(|n| n.macs > 0) {
        *by_op.entry(node.op.clone()).or_insert(0) += node.macs;
    }
    Ok(Macs {
        inputs,
        total: nodes.iter().map(|n| n.macs).sum(),
        by_op,
        nodes,
        shapes,
    })
}

/// The model with `ConstantOfShape` nodes that lack a `value` given an explicit f32 zero: tract
/// types them f64 while ONNX says f32, and the BlazeFace files fail to type (the runtime's
/// `model::quirks` makes the same fix).
pub(crate) fn fix_quirks(proto: &pb::ModelProto) -> Cow<'_, pb::ModelProto> {
    let needs_value = |n: &pb::NodeProto| {
        n.op_type == "ConstantOfShape" && !n.attribute.iter().any(|a| a.name == "value")
    };
    if !proto.graph.iter().flat_map(|g| &g.node).any(needs_value) {
        return Cow::Borrowed(proto);
    }
    let mut fixed = proto.clone();
    for node in fixed.graph.iter_mut().flat_map(|g| &mut g.node) {
        if needs_value(node) {
            node.attribute.push(pb::AttributeProto {
                name: "value".into(),
                r#type: pb::attribute_proto::AttributeType::Tensor as i32,
                t: Some(pb::TensorProto {
                    dims: vec![1],
                    data_type: pb::tensor_proto::DataType::Float as i32,
                    float_data: vec![0.0],
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    Cow::Owned(fixed)
}

/// The ONNX node a typed node comes from: tract names the nodes it wires for `name` `name` or
/// `name.suffix`, so the longest ONNX name that is the typed name or a `.`-prefix of it.
pub(crate) fn onnx_node(index: &HashMap<&str, usize>, typed: &str) -> Option<usize> {
    let mut name = typed;
    loop {
        if let Some(&i) = index.get(name) {
            return Some(i);
        }
        name = &name[..name.rfind('.')?];
    }
}

/// MACs of one typed node: the FMA count of a convolution or matrix product.
fn node_macs(model: &TypedModel, node: &TypedNode) -> Result<u64, InspectError> {
    let facts = model
        .node_input_facts(node.id)
        .map_err(|e| cost_error(node, e))?;
    let fma: TDim = if let Some(deconv) = node.op_as::<Deconv>() {
        // tract's Deconv reports no cost: every input value meets (output channels / group) ×
        // kernel taps.
        let taps = deconv.pool_spec.output_channels / deconv.group
            * deconv.pool_spec.kernel_shape.iter().product::<usize>();
        facts[0].shape.iter().product::<TDim>() * taps
    } else if node.op_is::<Conv>() || node.op_is::<EinSum>() {
        node.op
            .cost(&facts)
            .map_err(|e| cost_error(node, e))?
            .into_iter()
            .filter(|(c, _)| matches!(c, tract_onnx::tract_core::ops::Cost::FMA(_)))
            .map(|(_, n)| n)
            .sum()
    } else {
        return Ok(0);
    };
    fma.to_i64()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| InspectError::Tract {
            stage: format!("count the MACs of `{}`", node.name),
            reason: format!("the count {fma} is not a number"),
        })
}

/// A tract failure while costing `node`.
fn cost_error(node: &TypedNode, e: TractError) -> InspectError {
    InspectError::Tract {
        stage: format!("count the MACs of `{}`", node.name),
        reason: format!("{e:#}"),
    }
}

/// MACs as a short number: `4.43 M`, `1.01 G`.
pub fn short(n: u64) -> String {
    let n = n as f64;
    match n {
        _ if n >= 1e9 => format!("{:.2} G", n / 1e9),
        _ if n >= 1e6 => format!("{:.2} M", n / 1e6),
        _ if n >= 1e3 => format!("{:.1} k", n / 1e3),
        _ => format!("{n} "),
    }
}

/// A shape as `1×3×320×320`.
pub fn shape_text(dims: &[usize]) -> String {
    if dims.is_empty() {
        return "scalar".into();
    }
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

impl Report {
    /// The report as JSON, listing the `top` nodes by MACs.
    pub fn to_json(&self, top: usize) -> Value {
        let mut out = self.summary.to_json();
        let fields = match &self.macs {
            Ok(m) => json!({
                "macs": m.total,
                "flops": m.flops(),
                "macs_by_op": m.by_op,
                "macs_inputs": m.inputs.iter().map(|(n, d)| json!({"name": n, "dims": d})).collect::<Vec<_>>(),
                "nodes": m.top(top).iter().map(|n| json!({
                    "name": n.name,
                    "op": n.op,
                    "macs": n.macs,
                    "shape": n.shape,
                })).collect::<Vec<_>>(),
                "macs_error": null,
            }),
            Err(e) => json!({
                "macs": null,
                "flops": null,
                "macs_by_op": null,
                "macs_inputs": null,
                "nodes": null,
                "macs_error": e.to_string(),
            }),
        };
        if let (Value::Object(out), Value::Object(fields)) = (&mut out, fields) {
            out.extend(fields);
        }
        out
    }

    /// The report as text, listing the `top` nodes by MACs.
    pub fn to_text(&self, top: usize) -> String {
        let mut out = self.summary.to_text();
        let m = match &self.macs {
            Ok(m) => m,
            Err(e) => {
                out.push_str(&format!("macs        unknown: {e}\n"));
                return out;
            }
        };
        let at = m
            .inputs
            .iter()
            .map(|(n, d)| format!("{n} {}", shape_text(d)))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "macs        {}MAC = {}FLOP ({} MACs at {at})\n",
            short(m.total),
            short(m.flops()),
            m.total
        ));
        let mut by_op: Vec<_> = m.by_op.iter().collect();
        by_op.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        out.push_str("macs by operator\n");
        for (op, macs) in by_op {
            out.push_str(&format!(
                "  {op:<24} {:>10}MAC {:>5.1} %\n",
                short(*macs),
                100.0 * *macs as f64 / m.total.max(1) as f64
            ));
        }
        let nodes = m.top(top);
        out.push_str(&format!("top {} nodes by macs\n", nodes.len()));
        for n in nodes {
            let shape = n.shape.as_deref().map_or("?".into(), shape_text);
            out.push_str(&format!(
                "  {:>10}MAC  {:<14} {:<20} {}\n",
                short(n.macs),
                n.op,
                shape,
                n.name
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> Vec<(String, Vec<String>)> {
        vec![(
            "images".into(),
            ["batch", "3", "height", "width"].map(String::from).to_vec(),
        )]
    }

    fn shape(spec: &str) -> InputShape {
        spec.parse().unwrap()
    }

    #[test]
    fn input_shapes_parse_name_and_positive_dims() {
        assert_eq!(
            shape("input:0=1,256, 256,3"),
            InputShape {
                name: "input:0".into(),
                dims: vec![1, 256, 256, 3]
            }
        );
        for bad in ["images", "=1,3", "images=", "images=1,x", "images=1,0,3"] {
            assert!(
                matches!(
                    bad.parse::<InputShape>(),
                    Err(InspectError::InputSpec { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn given_shapes_must_match_a_declared_input() {
        let check = |spec: &str| check_given(&declared(), &[shape(spec)]);
        assert_eq!(check("images=1,3,320,320"), Ok(()));
        assert!(matches!(
            check("image=1,3,320,320"),
            Err(InspectError::UnknownInput { inputs, .. }) if inputs == "images"
        ));
        assert!(matches!(
            check("images=3,320,320"),
            Err(InspectError::Rank {
                declared: 4,
                given: 3,
                ..
            })
        ));
        assert!(matches!(
            check("images=1,4,320,320"),
            Err(InspectError::FixedDim {
                index: 1,
                declared: 3,
                given: 4,
                ..
            })
        ));
        let twice = [shape("images=1,3,32,32"), shape("images=1,3,64,64")];
        assert!(matches!(
            check_given(&declared(), &twice),
            Err(InspectError::Duplicate { .. })
        ));
    }

    #[test]
    fn batch_dims_default_to_one_and_other_symbols_need_a_value() {
        let err = fixed_inputs(&declared(), &[], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input `images` dim 2 (`height`) is not fixed: give it with --input images=1,3,HEIGHT,WIDTH"
        );
        assert_eq!(
            fixed_inputs(&declared(), &[], Some(64)).unwrap(),
            [("images".to_string(), vec![1, 3, 64, 64])]
        );
        assert_eq!(
            fixed_inputs(&declared(), &[shape("images=2,3,32,48")], None).unwrap(),
            [("images".to_string(), vec![2, 3, 32, 48])]
        );
        assert_eq!(
            hint(&["-1", "3", "p2o.DynamicDimension.1"].map(String::from)),
            "D0,3,D2"
        );
    }

    #[test]
    fn typed_nodes_belong_to_the_longest_onnx_name_they_extend() {
        let index: HashMap<&str, usize> = [("p2o.Conv.5", 0), ("p2o.Conv.58", 1), ("/a/Gemm", 2)]
            .into_iter()
            .collect();
        assert_eq!(onnx_node(&index, "p2o.Conv.58"), Some(1));
        assert_eq!(onnx_node(&index, "p2o.Conv.58.bias"), Some(1));
        assert_eq!(onnx_node(&index, "p2o.Conv.5.0"), Some(0));
        assert_eq!(onnx_node(&index, "/a/Gemm.einsum.1"), Some(2));
        assert_eq!(onnx_node(&index, "p2o.Conv"), None);
        assert_eq!(onnx_node(&index, "images"), None);
    }

    #[test]
    fn short_counts_keep_three_digits() {
        assert_eq!(short(1_012_627_200), "1.01 G");
        assert_eq!(short(58_982_400), "58.98 M");
        assert_eq!(short(1_100), "1.1 k");
        assert_eq!(short(12), "12 ");
        assert_eq!(shape_text(&[1, 3, 320, 320]), "1×3×320×320");
        assert_eq!(shape_text(&[]), "scalar");
    }
}

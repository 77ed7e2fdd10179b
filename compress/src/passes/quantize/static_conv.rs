//! Static int8 quantization of convolutions with calibrated activation ranges, in two forms of
//! the same arithmetic: per-channel symmetric int8 weights, uint8 activations with a zero point,
//! int32 biases at scale `x_scale · w_scale`.
//!
//! - [`Form::Qdq`], the portable form: QuantizeLinear/DequantizeLinear pairs around every
//!   convolution's input, weight, bias and output, which runtimes such as onnxruntime fuse into
//!   integer kernels (opset 13, for per-channel DequantizeLinear).
//! - [`Form::QLinear`]: each convolution becomes QuantizeLinear → QLinearConv →
//!   DequantizeLinear, the explicit operator tract runs with its integer matrix kernels.

use std::collections::HashMap;

use tract_onnx::pb::{ModelProto, NodeProto, TensorProto, tensor_proto::DataType};

use super::{Names, int_attr_proto, node, quantize_per_channel, tensor};
use crate::onnx::graph::f32_data;

/// Which form to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// QuantizeLinear/DequantizeLinear around float Convs.
    Qdq,
    /// QLinearConv between QuantizeLinear and DequantizeLinear.
    QLinear,
}

impl Form {
    /// The form's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Form::Qdq => "static-qdq",
            Form::QLinear => "static-qlinear",
        }
    }
}

/// Operators whose inputs moved to or from attributes at opset 13; a model using them is not
/// lifted to opset 13.
const CHANGED_AT_13: &[&str] = &["Split", "Squeeze", "Unsqueeze", "ReduceSum"];

/// A uint8 quantization of a range: `real = (q − zero_point) · scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Step between levels.
    pub scale: f32,
    /// The level of 0.
    pub zero_point: u8,
}

impl Affine {
    /// The uint8 quantization covering `[lo, hi]` (which holds 0).
    pub fn of((lo, hi): (f32, f32)) -> Affine {
        let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        Affine {
            scale,
            zero_point: (-lo / scale).round().clamp(0.0, 255.0) as u8,
        }
    }
}

/// A convolution that can be quantized: its index in the graph, the tensor it reads and the one
/// it writes.
pub type Candidate = (usize, String, String);

/// The convolutions that can be quantized statically: dense or grouped 2-D Convs with an f32
/// weight initializer.
pub fn candidates(model: &ModelProto) -> Vec<Candidate> {
    let Some(graph) = model.graph.as_ref() else {
        return Vec::new();
    };
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "Conv" && n.input.len() >= 2)
        .filter(|(_, n)| {
            graph
                .initializer
                .iter()
                .any(|t| t.name == n.input[1] && t.dims.len() == 4 && f32_data(t).is_some())
        })
        .map(|(i, n)| (i, n.input[0].clone(), n.output[0].clone()))
        .collect()
}

/// Errors of the static pass.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    /// The model cannot be lifted to the opset the form needs.
    #[error(
        "static quantization needs opset 13 for per-channel scales; the model imports opset \
         {opset} and uses {op}, whose inputs changed at 13"
    )]
    Opset {
        /// The model's opset.
        opset: i64,
        /// The operator in the way.
        op: String,
    },
    /// A calibrated range is missing.
    #[error("no calibrated range for tensor `{0}`")]
    Range(String),
}

/// Writes `form` for the Convs at `convs` (from [`candidates`]), with activation ranges by
/// tensor name.
pub fn quantize_convs(
    model: &ModelProto,
    convs: &[Candidate],
    ranges: &HashMap<String, (f32, f32)>,
    form: Form,
) -> Result<ModelProto, StaticError> {
    let mut model = model.clone();
    let opset = super::default_opset(&model);
    if form == Form::Qdq && opset < 13 {
        if let Some(op) = model
            .graph
            .iter()
            .flat_map(|g| &g.node)
            .find(|n| CHANGED_AT_13.contains(&n.op_type.as_str()))
        {
            return Err(StaticError::Opset {
                opset,
                op: op.op_type.clone(),
            });
        }
        for o in &mut model.opset_import {
            if o.domain.is_empty() || o.domain == "ai.onnx" {
                o.version = 13;
            }
        }
    }
    let graph = model.graph.as_mut().expect("candidates come from a graph");
    let mut names = Names::of(graph);
    let range = |t: &str| {
        ranges
            .get(t)
            .copied()
            .ok_or_else(|| StaticError::Range(t.into()))
    };
    let mut activation_q: HashMap<String, (String, String, String)> = HashMap::new();
    let mut added_initializers: Vec<TensorProto> = Vec::new();
    let mut before: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let mut replaced: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    for (index, x, y) in convs {
        let conv = graph.node[*index].clone();
        let (xa, ya) = (Affine::of(range(x)?), Affine::of(range(y)?));
        let weight = graph
            .initializer
            .iter()
            .find(|t| t.name == conv.input[1])
            .expect("candidates have weight initializers");
        let dims: Vec<usize> = weight.dims.iter().map(|&d| d as usize).collect();
        let values = f32_data(weight).expect("candidates have f32 weights");
        let q = quantize_per_channel(&values, &dims, 0);
        let m = dims[0];
        let base = names.fresh(&format!(
            "{}_q",
            if conv.name.is_empty() { y } else { &conv.name }
        ));
        let w_q = constant(
            &mut names,
            &mut added_initializers,
            &base,
            "w",
            &weight.dims,
            DataType::Int8,
            q.values.iter().map(|&v| v as u8).collect(),
        );
        let w_scale = constant(
            &mut names,
            &mut added_initializers,
            &base,
            "w_scale",
            &[m as i64],
            DataType::Float,
            q.scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
        );
        let w_zero = constant(
            &mut names,
            &mut added_initializers,
            &base,
            "w_zero",
            &[m as i64],
            DataType::Int8,
            vec![0; m],
        );
        let bias = match conv.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => {
                let t = graph
                    .initializer
                    .iter()
                    .find(|t| t.name == *b)
                    .and_then(f32_data);
                t.map(|v| {
                    v.iter()
                        .zip(&q.scales)
                        .map(|(b, s)| (b / (xa.scale * s)).round() as i32)
                        .collect::<Vec<i32>>()
                })
            }
            None => Some(vec![0; m]),
        };
        let Some(bias) = bias else {
            continue;
        };
        let b_q = constant(
            &mut names,
            &mut added_initializers,
            &base,
            "b",
            &[m as i64],
            DataType::Int32,
            bias.iter().flat_map(|v| v.to_le_bytes()).collect(),
        );
        let (ys, yz) = scalar(&mut names, &mut added_initializers, &base, "y", ya);
        let (xq, xs, xz) = match activation_q.get(x) {
            Some(q) => q.clone(),
            None => {
                let (xs, xz) = scalar(&mut names, &mut added_initializers, &base, "x", xa);
                let xq = names.fresh(&format!("{x}_quantized"));
                before.entry(*index).or_default().push(node(
                    names.fresh(&format!("{base}_QuantizeLinear_x")),
                    "QuantizeLinear",
                    &[x, &xs, &xz],
                    &xq,
                    vec![],
                ));
                activation_q.insert(x.clone(), (xq.clone(), xs.clone(), xz.clone()));
                (xq, xs, xz)
            }
        };
        let mut nodes = Vec::new();
        match form {
            Form::QLinear => {
                let yq = names.fresh(&format!("{y}_quantized"));
                let mut qconv = node(
                    names.fresh(&format!("{base}_QLinearConv")),
                    "QLinearConv",
                    &[&xq, &xs, &xz, &w_q, &w_scale, &w_zero, &ys, &yz, &b_q],
                    &yq,
                    vec![],
                );
                qconv.attribute = conv.attribute.clone();
                nodes.push(qconv);
                nodes.push(node(
                    names.fresh(&format!("{base}_DequantizeLinear_y")),
                    "DequantizeLinear",
                    &[&yq, &ys, &yz],
                    y,
                    vec![],
                ));
            }
            Form::Qdq => {
                let fresh = |names: &mut Names, stem: &str| names.fresh(&format!("{base}_{stem}"));
                let (xd, wd, bd, yf, yq) = (
                    fresh(&mut names, "x_dq"),
                    fresh(&mut names, "w_dq"),
                    fresh(&mut names, "b_dq"),
                    fresh(&mut names, "y_float"),
                    fresh(&mut names, "y_q"),
                );
                let b_scale = constant(
                    &mut names,
                    &mut added_initializers,
                    &base,
                    "b_scale",
                    &[m as i64],
                    DataType::Float,
                    q.scales
                        .iter()
                        .flat_map(|s| (s * xa.scale).to_le_bytes())
                        .collect(),
                );
                let b_zero = constant(
                    &mut names,
                    &mut added_initializers,
                    &base,
                    "b_zero",
                    &[m as i64],
                    DataType::Int32,
                    vec![0; 4 * m],
                );
                let dq = |names: &mut Names, ins: &[&str], out: &str, axis: bool| {
                    node(
                        names.fresh(&format!("{out}_DequantizeLinear")),
                        "DequantizeLinear",
                        ins,
                        out,
                        if axis {
                            vec![int_attr_proto("axis", 0)]
                        } else {
                            vec![]
                        },
                    )
                };
                nodes.push(dq(&mut names, &[&xq, &xs, &xz], &xd, false));
                nodes.push(dq(&mut names, &[&w_q, &w_scale, &w_zero], &wd, true));
                nodes.push(dq(&mut names, &[&b_q, &b_scale, &b_zero], &bd, true));
                let mut fconv = conv.clone();
                fconv.input = vec![xd, wd, bd];
                fconv.output = vec![yf.clone()];
                nodes.push(fconv);
                nodes.push(node(
                    names.fresh(&format!("{base}_QuantizeLinear_y")),
                    "QuantizeLinear",
                    &[&yf, &ys, &yz],
                    &yq,
                    vec![],
                ));
                nodes.push(dq(&mut names, &[&yq, &ys, &yz], y, false));
            }
        }
        replaced.insert(*index, nodes);
    }
    let old = std::mem::take(&mut graph.node);
    for (i, n) in old.into_iter().enumerate() {
        graph.node.extend(before.remove(&i).unwrap_or_default());
        match replaced.remove(&i) {
            Some(nodes) => graph.node.extend(nodes),
            None => graph.node.push(n),
        }
    }
    graph.initializer.extend(added_initializers);
    let used: std::collections::HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    let unused: Vec<String> = graph
        .initializer
        .iter()
        .filter(|t| !used.contains(t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    graph.initializer.retain(|t| !unused.contains(&t.name));
    graph.value_info.clear();
    Ok(model)
}

/// Adds an initializer named after `base` and `stem`; returns its name.
fn constant(
    names: &mut Names,
    initializers: &mut Vec<TensorProto>,
    base: &str,
    stem: &str,
    dims: &[i64],
    dtype: DataType,
    bytes: Vec<u8>,
) -> String {
    let name = names.fresh(&format!("{base}_{stem}"));
    initializers.push(tensor(&name, dims, dtype, bytes));
    name
}

/// Adds the scalar scale and uint8 zero point of `a`; returns their names.
fn scalar(
    names: &mut Names,
    initializers: &mut Vec<TensorProto>,
    base: &str,
    stem: &str,
    a: Affine,
) -> (String, String) {
    let s = constant(
        names,
        initializers,
        base,
        &format!("{stem}_scale"),
        &[],
        DataType::Float,
        a.scale.to_le_bytes().to_vec(),
    );
    let z = constant(
        names,
        initializers,
        base,
        &format!("{stem}_zero"),
        &[],
        DataType::Uint8,
        vec![a.zero_point],
    );
    (s, z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_ranges_map_their_ends_to_0_and_255() {
        let a = Affine::of((-1.0, 3.0));
        assert!((a.scale - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(a.zero_point, 64);
        assert_eq!(Affine::of((0.0, 0.0)).scale, 1.0);
        assert_eq!(Affine::of((0.0, 6.0)).zero_point, 0);
    }
}

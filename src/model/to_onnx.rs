//! A typed tract graph written back as ONNX, so that onnxruntime can run a network tract read
//! from another format (the frozen TensorFlow graphs of [`super::tensorflow`]).
//!
//! The operators are those such a convolutional network becomes in tract before decluttering:
//! convolutions (NHWC ones wrapped in transposes, which onnxruntime's optimiser folds away),
//! element-wise arithmetic with broadcasting, concatenation, and axis changes, which become
//! `Reshape`s to the shape tract inferred. Anything else is refused by name.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{self, tensor_proto::DataType};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::TypedConcat;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::identity::Identity;
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::ops::source::TypedSource;

use super::onnx_build::{Attr, Dim, GraphBuilder};

/// The ONNX opset the graph is written for.
const OPSET: i64 = 13;

/// `model` as an ONNX model: the same inputs and outputs, in the same order, under the names of
/// the tract nodes that make them.
pub fn to_onnx(model: &TypedModel, doc: &str) -> Result<pb::ModelProto, String> {
    let mut writer = Writer {
        model,
        graph: GraphBuilder::new("edgemass"),
        values: HashMap::new(),
        written: HashSet::new(),
    };
    for node in model.eval_order().map_err(|e| e.to_string())? {
        writer.node(&model.nodes[node])?;
    }
    for outlet in model.output_outlets().map_err(|e| e.to_string())? {
        let name = model.node(outlet.node).name.clone();
        let value = writer.value(*outlet)?;
        writer.graph.named_node("Identity", &[&value], &[], &name);
        let dims = writer.dims(*outlet)?;
        writer.graph.output(&name, DataType::Float, &dims);
    }
    Ok(writer.graph.finish(OPSET, doc))
}

/// The graph being written and the ONNX value of each tract outlet written so far.
struct Writer<'a> {
    model: &'a TypedModel,
    graph: GraphBuilder,
    values: HashMap<OutletId, String>,
    /// Constants already written as initializers (only those some operator reads as a tensor).
    written: HashSet<OutletId>,
}

impl Writer<'_> {
    fn node(&mut self, node: &TypedNode) -> Result<(), String> {
        let outlet = OutletId::new(node.id, 0);
        let input = |i: usize| node.inputs[i];
        let constant = self
            .model
            .outlet_fact(outlet)
            .is_ok_and(|f| f.konst.is_some());
        let value = if constant {
            // Written where it is read: a kernel is rewritten for ONNX, a tensor kept as it is.
            return Ok(());
        } else if let Some(source) = node.op_as::<TypedSource>() {
            if source.fact.datum_type != f32::datum_type() {
                return Err(format!("input `{}` is not f32", node.name));
            }
            let dims = self.dims(outlet)?;
            self.graph.input(&node.name, DataType::Float, &dims)
        } else if node.op_is::<Identity>() {
            self.value(input(0))?
        } else if node.op_is::<AxisOp>() {
            let data = self.value(input(0))?;
            let shape = self.shape(outlet)?;
            let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            let shape = self.graph.ints(&shape);
            self.graph.node("Reshape", &[&data, &shape], &[])
        } else if let Some(concat) = node.op_as::<TypedConcat>() {
            let parts = node
                .inputs
                .iter()
                .map(|i| self.value(*i))
                .collect::<Result<Vec<_>, _>>()?;
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            self.graph
                .node("Concat", &parts, &[("axis", Attr::Int(concat.axis as i64))])
        } else if let Some(binary) = node.op_as::<TypedBinOp>() {
            let op = match binary.0.name() {
                name @ ("Add" | "Sub" | "Mul" | "Div" | "Max" | "Min") => name,
                other => return Err(format!("node `{}`: no ONNX form for {other}", node.name)),
            };
            let a = self.value(input(0))?;
            let b = self.value(input(1))?;
            self.graph.node(op, &[&a, &b], &[])
        } else if let Some(conv) = node.op_as::<Conv>() {
            self.conv(node, conv)?
        } else {
            return Err(format!(
                "node `{}`: no ONNX form for tract's {}",
                node.name,
                node.op.name()
            ));
        };
        if node.outputs.len() != 1 {
            return Err(format!("node `{}` has several outputs", node.name));
        }
        self.values.insert(outlet, value);
        Ok(())
    }

    /// A convolution: ONNX's is NCHW with an OIHW kernel, so an NHWC one gets a transpose on
    /// each side and its kernel is rewritten.
    fn conv(&mut self, node: &TypedNode, conv: &Conv) -> Result<String, String> {
        let name = &node.name;
        if conv.q_params.is_some() {
            return Err(format!("convolution `{name}` is quantized"));
        }
        let channels_last = match conv.pool_spec.data_format {
            DataFormat::NCHW => false,
            DataFormat::NHWC => true,
            other => return Err(format!("convolution `{name}` is {other:?}, not batched")),
        };
        let constant = |i: usize, what: &str| {
            self.model
                .outlet_fact(node.inputs[i])
                .ok()
                .and_then(|f| f.konst.clone())
                .ok_or_else(|| format!("convolution `{name}` has a computed {what}"))
        };
        let kernel = constant(1, "kernel")?;
        let bias = constant(2, "bias")?;
        let group = conv.group;
        let output_channels = conv.pool_spec.output_channels;
        let kernel = conv
            .kernel_fmt
            .kernel_as_group_o_i_hw(&kernel, group)
            .map_err(|e| format!("convolution `{name}`: {e}"))?;
        let per_group = kernel.shape()[2];
        let kernel = floats(&kernel, name)?;
        let hw = &conv.pool_spec.kernel_shape;
        let mut dims = vec![output_channels, per_group];
        dims.extend(hw.iter().copied());
        let kernel = self.graph.weight(&format!("{name}.kernel"), &dims, &kernel);
        let bias = floats(&bias, name)?;
        let bias = match bias.len() {
            1 => vec![bias[0]; output_channels],
            n if n == output_channels => bias,
            n => return Err(format!("convolution `{name}` has {n} biases")),
        };
        let bias = self
            .graph
            .weight(&format!("{name}.bias"), &[output_channels], &bias);

        let input_shape = self.shape(node.inputs[0])?.to_vec();
        let shape = conv
            .pool_spec
            .data_format
            .shape(&input_shape[..])
            .map_err(|e| format!("convolution `{name}`: {e}"))?;
        let padding = conv.pool_spec.computed_padding(shape.hw_dims());
        let pads: Vec<i64> = padding
            .iter()
            .map(|p| p.pad_before as i64)
            .chain(padding.iter().map(|p| p.pad_after as i64))
            .collect();
        let to_ints = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<_>>();
        let attrs = [
            ("group", Attr::Int(group as i64)),
            ("kernel_shape", Attr::Ints(to_ints(hw))),
            ("pads", Attr::Ints(pads)),
            ("strides", Attr::Ints(to_ints(&conv.pool_spec.strides()))),
            (
                "dilations",
                Attr::Ints(to_ints(&conv.pool_spec.dilations())),
            ),
        ];
        let data = self.value(node.inputs[0])?;
        if channels_last {
            let rank = input_shape.len() as i64;
            let to_first: Vec<i64> = [0, rank - 1].into_iter().chain(1..rank - 1).collect();
            let to_last: Vec<i64> = [0].into_iter().chain(2..rank).chain([1]).collect();
            let first = self
                .graph
                .node("Transpose", &[&data], &[("perm", Attr::Ints(to_first))]);
            let convolved = self.graph.node("Conv", &[&first, &kernel, &bias], &attrs);
            Ok(self
                .graph
                .node("Transpose", &[&convolved], &[("perm", Attr::Ints(to_last))]))
        } else {
            Ok(self.graph.node("Conv", &[&data, &kernel, &bias], &attrs))
        }
    }

    /// The ONNX value holding `outlet`; a constant is written as an initializer the first time.
    fn value(&mut self, outlet: OutletId) -> Result<String, String> {
        if let Some(value) = self.values.get(&outlet) {
            return Ok(value.clone());
        }
        let node = self.model.node(outlet.node);
        let konst = self
            .model
            .outlet_fact(outlet)
            .ok()
            .and_then(|f| f.konst.clone())
            .ok_or_else(|| format!("node `{}` is read before it is written", node.name))?;
        let name = format!("{}.{}", node.name, outlet.slot);
        if self.written.insert(outlet) {
            let data = floats(&konst, &node.name)?;
            self.graph.weight(&name, konst.shape(), &data);
        }
        Ok(name)
    }

    fn shape(&self, outlet: OutletId) -> Result<&[usize], String> {
        let fact = self.model.outlet_fact(outlet).map_err(|e| e.to_string())?;
        fact.shape.as_concrete().ok_or_else(|| {
            format!(
                "node `{}` has a shape tract could not fix: {:?}",
                self.model.node(outlet.node).name,
                fact.shape
            )
        })
    }

    fn dims(&self, outlet: OutletId) -> Result<Vec<Dim>, String> {
        Ok(self
            .shape(outlet)?
            .iter()
            .map(|&d| Dim::Fixed(d as i64))
            .collect())
    }
}

/// The values of an f32 tensor.
fn floats(tensor: &Tensor, name: &str) -> Result<Vec<f32>, String> {
    tensor
        .to_plain_array_view::<f32>()
        .map(|view| view.iter().copied().collect())
        .map_err(|_| format!("node `{name}` holds {:?}, not f32", tensor.datum_type()))
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::cnn::{KernelFormat, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::math;

    use super::*;

    /// An NHWC convolution with TensorFlow's layouts, a ReLU-6 clamp, a reshape and a concat:
    /// what the SSD's graph is made of.
    fn network() -> TractResult<TypedModel> {
        let mut model = TypedModel::default();
        let x = model.add_source("image", f32::fact([1, 5, 6, 2]))?;
        let kernel: Vec<f32> = (0..3 * 3 * 2 * 4)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let kernel = tensor1(&kernel).into_shape(&[3, 3, 2, 4])?;
        let kernel = model.add_const("kernel", kernel)?;
        let bias = model.add_const("bias", tensor1(&[0.1f32, -0.2, 0.3, 2.0]))?;
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NHWC,
                kernel_shape: tvec!(3, 3),
                padding: PaddingSpec::SameUpper,
                dilations: None,
                strides: Some(tvec!(2, 2)),
                input_channels: 2,
                output_channels: 4,
            },
            kernel_fmt: KernelFormat::HWIO,
            group: 1,
            q_params: None,
        };
        let y = model.wire_node("conv", conv, &[x, kernel, bias])?;
        let zero = model.add_const("zero", tensor4(&[[[[0f32]]]]))?;
        let six = model.add_const("six", tensor4(&[[[[6f32]]]]))?;
        let y = model.wire_node("relu6.low", math::max(), &[y[0], zero])?;
        let y = model.wire_node("relu6.high", math::min(), &[y[0], six])?;
        let flat = AxisOp::Reshape(1, tvec!(3.into(), 3.into(), 4.into()), tvec!(36.into()));
        let y = model.wire_node("flat", flat, &y)?;
        let y = model.wire_node("twice", TypedConcat { axis: 1 }, &[y[0], y[0]])?;
        model.select_output_outlets(&y)?;
        Ok(model)
    }

    #[test]
    fn a_tensorflow_shaped_network_computes_the_same_in_its_onnx_form() -> TractResult<()> {
        let model = network()?;
        let proto = to_onnx(&model, "test").map_err(|e| anyhow::anyhow!(e))?;
        let graph = proto.graph.as_ref().unwrap();
        assert_eq!(graph.input[0].name, "image");
        assert_eq!(graph.output[0].name, "twice");
        let onnx = tract_onnx::onnx()
            .model_for_proto_model(&proto)?
            .into_optimized()?
            .into_runnable()?;
        let input: Tensor = tract_ndarray::Array4::from_shape_fn((1, 5, 6, 2), |(_, y, x, c)| {
            (y * 7 + x * 3 + c) as f32 * 0.5 - 10.0
        })
        .into();
        let ours = model.into_runnable()?.run(tvec!(input.clone().into()))?;
        let theirs = onnx.run(tvec!(input.into()))?;
        assert_eq!(ours[0].shape(), [1, 72]);
        ours[0].close_enough(
            &theirs[0],
            tract_onnx::tract_core::internal::Approximation::Close,
        )?;
        let clamped = ours[0].to_plain_array_view::<f32>()?;
        assert!(clamped.iter().any(|&v| v == 6.0) && clamped.iter().any(|&v| v == 0.0));
        Ok(())
    }

    #[test]
    fn an_operator_without_an_onnx_form_is_named() -> TractResult<()> {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 3]))?;
        let y = model.wire_node("squash", tract_onnx::tract_core::ops::nn::sigmoid(), &[x])?;
        model.select_output_outlets(&y)?;
        let err = to_onnx(&model, "test").unwrap_err();
        assert_eq!(err, "node `squash`: no ONNX form for tract's Sigmoid");
        Ok(())
    }
}

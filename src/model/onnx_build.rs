//! Writing ONNX graphs from code: initializers, nodes with attributes, typed inputs/outputs.

use tract_onnx::pb::{self, attribute_proto::AttributeType, tensor_proto::DataType};

/// One dimension of a declared input or output.
#[derive(Debug, Clone)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A named symbolic size (`batch`, `sequence`).
    Named(&'static str),
}

/// A node attribute value.
#[derive(Debug, Clone)]
pub enum Attr {
    /// An integer.
    Int(i64),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A float.
    Float(f32),
}

/// Accumulates nodes and initializers; names are made unique by a counter.
#[derive(Default)]
pub struct GraphBuilder {
    graph: pb::GraphProto,
    counter: usize,
}

impl GraphBuilder {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> GraphBuilder {
        GraphBuilder {
            graph: pb::GraphProto {
                name: name.into(),
                ..Default::default()
            },
            counter: 0,
        }
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, dtype: DataType, dims: &[Dim]) -> String {
        self.graph.input.push(value_info(name, dtype, dims));
        name.into()
    }

    /// Declares `value` as a graph output under its own name.
    pub fn output(&mut self, name: &str, dtype: DataType, dims: &[Dim]) {
        self.graph.output.push(value_info(name, dtype, dims));
    }

    /// Adds an f32 initializer and returns its name.
    pub fn weight(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len(), "{name}");
        let raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.graph.initializer.push(pb::TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            raw_data,
            ..Default::default()
        });
        name.into()
    }

    /// Adds a 1-D i64 initializer (shapes, axes, indices) and returns its name.
    pub fn ints(&mut self, values: &[i64]) -> String {
        let name = self.fresh("const");
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![values.len() as i64],
            data_type: DataType::Int64 as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// Adds an f32 scalar initializer and returns its name.
    pub fn scalar(&mut self, value: f32) -> String {
        let name = self.fresh("scalar");
        self.weight(&name, &[], &[value])
    }

    /// Adds a node with one output and returns the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        let output = self.fresh(&op.to_ascii_lowercase());
        self.named_node(op, inputs, attrs, &output);
        output
    }

    /// Adds a node whose single output gets the given name (graph outputs).
    pub fn named_node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)], output: &str) {
        let attribute = attrs.iter().map(|(name, value)| attribute(name, value));
        self.graph.node.push(pb::NodeProto {
            name: format!("{op}_{}", self.graph.node.len()),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute: attribute.collect(),
            ..Default::default()
        });
    }

    /// `x · w + b` with `w` stored as `[in, out]`.
    pub fn linear(&mut self, x: &str, w: &str, b: &str) -> String {
        let product = self.node("MatMul", &[x, w], &[]);
        self.node("Add", &[&product, b], &[])
    }

    /// Wraps the graph into a model with the opset the nodes were written for.
    pub fn finish(self, opset: i64, doc: &str) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            producer_name: "edgemass".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(self.graph),
            ..Default::default()
        }
    }

    fn fresh(&mut self, stem: &str) -> String {
        self.counter += 1;
        format!("{stem}_{}", self.counter)
    }
}

/// A typed graph input or output declaration.
pub fn value_info(name: &str, dtype: DataType, dims: &[Dim]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => Value::DimValue(*n),
                Dim::Named(s) => Value::DimParam(s.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: dtype as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An attribute named `name` holding `value`.
pub fn attribute(name: &str, value: &Attr) -> pb::AttributeProto {
    let mut attr = pb::AttributeProto {
        name: name.into(),
        ..Default::default()
    };
    match value {
        Attr::Int(i) => {
            attr.r#type = AttributeType::Int as i32;
            attr.i = *i;
        }
        Attr::Ints(v) => {
            attr.r#type = AttributeType::Ints as i32;
            attr.ints = v.clone();
        }
        Attr::Float(f) => {
            attr.r#type = AttributeType::Float as i32;
            attr.f = *f;
        }
    }
    attr
}

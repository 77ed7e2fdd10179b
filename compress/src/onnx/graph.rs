//! ONNX model files as protobuf graphs: load with a clear error, and the facts passes need.

use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb::{self, ModelProto, NodeProto};

/// Errors while loading a graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The model path.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX protobuf.
    #[error("{path} is not a readable ONNX model (truncated or corrupt)")]
    Decode {
        /// The model path.
        path: PathBuf,
        /// The protobuf failure.
        source: prost::DecodeError,
    },
    /// The model holds no graph.
    #[error("{path} holds no graph")]
    NoGraph {
        /// The model path.
        path: PathBuf,
    },
}

/// A loaded ONNX model and the size of its file.
pub struct Graph {
    /// The parsed model.
    pub proto: ModelProto,
    /// File size in bytes.
    pub bytes: u64,
}

impl Graph {
    /// Reads and parses an ONNX file.
    pub fn load(path: &Path) -> Result<Graph, GraphError> {
        let data = std::fs::read(path).map_err(|source| GraphError::Read {
            path: path.to_owned(),
            source,
        })?;
        let proto = ModelProto::decode(data.as_slice()).map_err(|source| GraphError::Decode {
            path: path.to_owned(),
            source,
        })?;
        if proto.graph.is_none() {
            return Err(GraphError::NoGraph {
                path: path.to_owned(),
            });
        }
        Ok(Graph {
            proto,
            bytes: data.len() as u64,
        })
    }

    /// The main graph.
    pub fn graph(&self) -> &pb::GraphProto {
        self.proto.graph.as_ref().expect("checked in Graph::load")
    }
}

/// The graph's inputs that are not initializers: what a caller must feed.
pub fn data_inputs(graph: &pb::GraphProto) -> Vec<&pb::ValueInfoProto> {
    graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .collect()
}

/// Declared dimensions of a value: numbers where fixed, names where symbolic, `?` where unknown.
pub fn dims(value: &pb::ValueInfoProto) -> Vec<String> {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(tensor)) =
        value.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return vec![];
    };
    let Some(shape) = tensor.shape.as_ref() else {
        return vec![];
    };
    shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Value::DimValue(v)) => v.to_string(),
            Some(Value::DimParam(p)) if !p.is_empty() => p.clone(),
            _ => "?".into(),
        })
        .collect()
}

/// Moves the tensor of every `Constant` node that carries one (its `value` attribute) into the
/// graph's initializers under the node's output name, and drops those nodes; returns how many
/// moved. Exporters such as paddle2onnx keep all weights in Constant nodes, and passes that read
/// or rewrite weights look only at initializers.
pub fn constants_to_initializers(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    let mut moved = 0;
    let mut kept = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        let value = (node.op_type == "Constant" && node.output.len() == 1)
            .then(|| node.attribute.iter().find(|a| a.name == "value"))
            .flatten()
            .and_then(|a| a.t.clone());
        match value {
            Some(mut tensor) => {
                tensor.name = node.output[0].clone();
                graph.initializer.push(tensor);
                moved += 1;
            }
            None => kept.push(node),
        }
    }
    graph.node = kept;
    moved
}

/// The values of an f32 tensor stored in the file (raw or `float_data`); `None` for other types,
/// external data, or a value count that does not match the dims.
pub fn f32_data(tensor: &pb::TensorProto) -> Option<Vec<f32>> {
    if tensor.data_type != pb::tensor_proto::DataType::Float as i32
        || tensor.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
    {
        return None;
    }
    let values: Vec<f32> = if tensor.raw_data.is_empty() {
        tensor.float_data.clone()
    } else if tensor.raw_data.len().is_multiple_of(4) {
        tensor
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        return None;
    };
    let elements: i64 = tensor.dims.iter().product();
    (values.len() as i64 == elements).then_some(values)
}

/// The values of an int64 tensor stored in the file (raw or `int64_data`), as for [`f32_data`].
pub fn i64_data(tensor: &pb::TensorProto) -> Option<Vec<i64>> {
    if tensor.data_type != pb::tensor_proto::DataType::Int64 as i32
        || tensor.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
    {
        return None;
    }
    let values: Vec<i64> = if tensor.raw_data.is_empty() {
        tensor.int64_data.clone()
    } else if tensor.raw_data.len().is_multiple_of(8) {
        tensor
            .raw_data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("chunks of 8")))
            .collect()
    } else {
        return None;
    };
    let elements: i64 = tensor.dims.iter().product();
    (values.len() as i64 == elements).then_some(values)
}

/// An f32 tensor named `name` of shape `dims` holding `values`, stored raw.
pub fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int64 tensor named `name` of shape `dims` holding `values`, stored raw.
pub fn i64_tensor(name: &str, dims: &[usize], values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An integer attribute of a node.
pub fn int_attr(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// A node's name for messages: its own, else its first output's.
pub fn node_label(node: &NodeProto, index: usize) -> String {
    if !node.name.is_empty() {
        node.name.clone()
    } else if let Some(out) = node.output.first().filter(|o| !o.is_empty()) {
        out.clone()
    } else {
        format!("{}#{index}", node.op_type)
    }
}

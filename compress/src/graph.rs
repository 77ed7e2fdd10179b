//! ONNX model files as protobuf graphs: load with a clear error, and the facts passes need.

use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb::{self, ModelProto};

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

//! The Open Inference Protocol (KServe v2) over REST: inference requests and responses as JSON,
//! with the binary tensor data extension (`Inference-Header-Content-Length` and
//! `binary_data_size`), and model metadata. Encoding and decoding only; no I/O.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The HTTP header that gives the length of the JSON part of a body followed by binary data.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// Errors in a request or response body.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The JSON part does not parse or lacks a required field.
    #[error("malformed inference JSON")]
    Json {
        /// What serde reported.
        source: serde_json::Error,
    },
    /// The header length is larger than the body.
    #[error("inference header length {length} exceeds the body of {body} bytes")]
    HeaderLength {
        /// The announced JSON length.
        length: usize,
        /// The body length.
        body: usize,
    },
    /// A tensor's datatype is not one this implementation carries.
    #[error(
        "tensor `{tensor}`: datatype `{datatype}` is not supported (BOOL, UINT8, INT8, INT32, INT64, FP32, FP64)"
    )]
    Datatype {
        /// Tensor name.
        tensor: String,
        /// The datatype given.
        datatype: String,
    },
    /// A tensor's shape or data do not fit each other.
    #[error("tensor `{tensor}`: {reason}")]
    Tensor {
        /// Tensor name.
        tensor: String,
        /// What does not fit.
        reason: String,
    },
    /// Binary data is left after the last tensor that claims some.
    #[error("{bytes} byte(s) of binary data belong to no tensor")]
    Trailing {
        /// Bytes left over.
        bytes: usize,
    },
}

/// Element types of tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `BOOL`, one byte per element.
    Bool,
    /// `UINT8`.
    Uint8,
    /// `INT8`.
    Int8,
    /// `INT32`.
    Int32,
    /// `INT64`.
    Int64,
    /// `FP32`.
    Fp32,
    /// `FP64`.
    Fp64,
}

const DATATYPES: [(DataType, &str); 7] = [
    (DataType::Bool, "BOOL"),
    (DataType::Uint8, "UINT8"),
    (DataType::Int8, "INT8"),
    (DataType::Int32, "INT32"),
    (DataType::Int64, "INT64"),
    (DataType::Fp32, "FP32"),
    (DataType::Fp64, "FP64"),
];

impl DataType {
    /// The protocol's name, e.g. `FP32`.
    pub fn name(self) -> &'static str {
        DATATYPES
            .iter()
            .find(|(d, _)| *d == self)
            .map_or("", |(_, n)| n)
    }

    /// Parses a protocol name.
    pub fn parse(name: &str) -> Option<DataType> {
        DATATYPES.iter().find(|(_, n)| *n == name).map(|(d, _)| *d)
    }

    /// Bytes per element in binary data.
    pub fn size(self) -> usize {
        match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
            DataType::Int32 | DataType::Fp32 => 4,
            DataType::Int64 | DataType::Fp64 => 8,
        }
    }
}

/// The elements of a tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// `BOOL`.
    Bool(Vec<bool>),
    /// `UINT8`.
    Uint8(Vec<u8>),
    /// `INT8`.
    Int8(Vec<i8>),
    /// `INT32`.
    Int32(Vec<i32>),
    /// `INT64`.
    Int64(Vec<i64>),
    /// `FP32`.
    Fp32(Vec<f32>),
    /// `FP64`.
    Fp64(Vec<f64>),
}

/// Applies `$body` to the vector inside any [`Values`] variant.
macro_rules! each {
    ($values:expr, $v:ident => $body:expr) => {
        match $values {
            Values::Bool($v) => $body,
            Values::Uint8($v) => $body,
            Values::Int8($v) => $body,
            Values::Int32($v) => $body,
            Values::Int64($v) => $body,
            Values::Fp32($v) => $body,
            Values::Fp64($v) => $body,
        }
    };
}

/// Builds the same [`Values`] variant from the vector inside another.
macro_rules! same {
    ($values:expr, $v:ident => $body:expr) => {
        match $values {
            Values::Bool($v) => Values::Bool($body),
            Values::Uint8($v) => Values::Uint8($body),
            Values::Int8($v) => Values::Int8($body),
            Values::Int32($v) => Values::Int32($body),
            Values::Int64($v) => Values::Int64($body),
            Values::Fp32($v) => Values::Fp32($body),
            Values::Fp64($v) => Values::Fp64($body),
        }
    };
}

impl Values {
    /// Appends the elements of `other`; false (and nothing appended) when the types differ.
    pub fn append(&mut self, other: &Values) -> bool {
        match (self, other) {
            (Values::Bool(a), Values::Bool(b)) => a.extend_from_slice(b),
            (Values::Uint8(a), Values::Uint8(b)) => a.extend_from_slice(b),
            (Values::Int8(a), Values::Int8(b)) => a.extend_from_slice(b),
            (Values::Int32(a), Values::Int32(b)) => a.extend_from_slice(b),
            (Values::Int64(a), Values::Int64(b)) => a.extend_from_slice(b),
            (Values::Fp32(a), Values::Fp32(b)) => a.extend_from_slice(b),
            (Values::Fp64(a), Values::Fp64(b)) => a.extend_from_slice(b),
            _ => return false,
        }
        true
    }

    /// Elements `start..end` (clamped to the length).
    pub fn range(&self, start: usize, end: usize) -> Values {
        let end = end.min(self.len());
        let start = start.min(end);
        same!(self, v => v[start..end].to_vec())
    }

    /// The element type.
    pub fn datatype(&self) -> DataType {
        match self {
            Values::Bool(_) => DataType::Bool,
            Values::Uint8(_) => DataType::Uint8,
            Values::Int8(_) => DataType::Int8,
            Values::Int32(_) => DataType::Int32,
            Values::Int64(_) => DataType::Int64,
            Values::Fp32(_) => DataType::Fp32,
            Values::Fp64(_) => DataType::Fp64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        each!(self, v => v.len())
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as f32 (booleans as 0 and 1), for decoders that read scores and boxes.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Values::Bool(v) => v.iter().map(|b| f32::from(u8::from(*b))).collect(),
            Values::Uint8(v) => v.iter().map(|x| f32::from(*x)).collect(),
            Values::Int8(v) => v.iter().map(|x| f32::from(*x)).collect(),
            Values::Int32(v) => v.iter().map(|x| *x as f32).collect(),
            Values::Int64(v) => v.iter().map(|x| *x as f32).collect(),
            Values::Fp32(v) => v.clone(),
            Values::Fp64(v) => v.iter().map(|x| *x as f32).collect(),
        }
    }

    fn write_le(&self, out: &mut Vec<u8>) {
        match self {
            Values::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
            Values::Uint8(v) => out.extend_from_slice(v),
            Values::Int8(v) => out.extend(v.iter().map(|x| x.to_le_bytes()[0])),
            Values::Int32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            Values::Int64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            Values::Fp32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            Values::Fp64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        }
    }

    /// Reads little-endian elements; `bytes.len()` must be a multiple of the element size.
    fn read_le(datatype: DataType, bytes: &[u8]) -> Values {
        fn chunks<const N: usize, T>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
            bytes
                .chunks_exact(N)
                .map(|c| f(c.try_into().unwrap_or([0; N])))
                .collect()
        }
        match datatype {
            DataType::Bool => Values::Bool(bytes.iter().map(|b| *b != 0).collect()),
            DataType::Uint8 => Values::Uint8(bytes.to_vec()),
            DataType::Int8 => Values::Int8(chunks(bytes, i8::from_le_bytes)),
            DataType::Int32 => Values::Int32(chunks(bytes, i32::from_le_bytes)),
            DataType::Int64 => Values::Int64(chunks(bytes, i64::from_le_bytes)),
            DataType::Fp32 => Values::Fp32(chunks(bytes, f32::from_le_bytes)),
            DataType::Fp64 => Values::Fp64(chunks(bytes, f64::from_le_bytes)),
        }
    }

    fn to_json(&self) -> Value {
        each!(self, v => json!(v))
    }

    /// Reads JSON `data`: a flat or nested array of numbers (booleans for `BOOL`).
    fn from_json(datatype: DataType, data: &Value) -> Result<Values, String> {
        let mut flat = Vec::new();
        flatten(data, &mut flat);
        let bad = |i: usize| format!("element {i} is not a {} value", datatype.name());
        let ints = |lo: i64, hi: i64| -> Result<Vec<i64>, String> {
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64()
                        .filter(|x| (lo..=hi).contains(x))
                        .ok_or_else(|| bad(i))
                })
                .collect()
        };
        Ok(match datatype {
            DataType::Bool => Values::Bool(
                flat.iter()
                    .enumerate()
                    .map(|(i, v)| v.as_bool().ok_or_else(|| bad(i)))
                    .collect::<Result<_, _>>()?,
            ),
            DataType::Uint8 => Values::Uint8(ints(0, 255)?.into_iter().map(|x| x as u8).collect()),
            DataType::Int8 => Values::Int8(ints(-128, 127)?.into_iter().map(|x| x as i8).collect()),
            DataType::Int32 => Values::Int32(
                ints(i32::MIN.into(), i32::MAX.into())?
                    .into_iter()
                    .map(|x| x as i32)
                    .collect(),
            ),
            DataType::Int64 => Values::Int64(ints(i64::MIN, i64::MAX)?),
            DataType::Fp32 | DataType::Fp64 => {
                let floats = flat
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_f64().ok_or_else(|| bad(i)))
                    .collect::<Result<Vec<f64>, _>>()?;
                if datatype == DataType::Fp32 {
                    Values::Fp32(floats.into_iter().map(|x| x as f32).collect())
                } else {
                    Values::Fp64(floats)
                }
            }
        })
    }
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        other => out.push(other),
    }
}

/// A named tensor: shape and row-major elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Input or output name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements; as many as the product of `shape`.
    pub values: Values,
}

/// An inference request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InferRequest {
    /// Correlation id, echoed in the response.
    pub id: Option<String>,
    /// Input tensors.
    pub inputs: Vec<Tensor>,
    /// Outputs wanted; empty means all.
    pub outputs: Vec<String>,
    /// Ask for every output as binary data rather than JSON.
    pub binary_outputs: bool,
}

/// An inference response.
#[derive(Debug, Clone, PartialEq)]
pub struct InferResponse {
    /// The model that answered.
    pub model_name: String,
    /// Its version.
    pub model_version: Option<String>,
    /// The request's id.
    pub id: Option<String>,
    /// Output tensors.
    pub outputs: Vec<Tensor>,
}

/// An encoded body: JSON, followed by binary tensor data when `header_length` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// The bytes to send.
    pub bytes: Vec<u8>,
    /// Length of the JSON part, for the `Inference-Header-Content-Length` header.
    pub header_length: Option<usize>,
}

/// A tensor's description in model metadata; `-1` marks a dimension of any size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorMetadata {
    /// Name.
    pub name: String,
    /// Protocol datatype name, e.g. `FP32`.
    pub datatype: String,
    /// Dimensions, `-1` where variable.
    pub shape: Vec<i64>,
}

/// The answer of `GET /v2/models/NAME[/versions/V]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Model name.
    pub name: String,
    /// Versions available.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Framework, e.g. `onnxruntime_onnx`.
    #[serde(default)]
    pub platform: String,
    /// Inputs.
    pub inputs: Vec<TensorMetadata>,
    /// Outputs.
    pub outputs: Vec<TensorMetadata>,
}

#[derive(Serialize, Deserialize)]
struct WireTensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct WireWanted {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<Map<String, Value>>,
}

#[derive(Serialize, Deserialize)]
struct WireRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<WireTensor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    outputs: Vec<WireWanted>,
}

#[derive(Serialize, Deserialize)]
struct WireResponse {
    model_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    outputs: Vec<WireTensor>,
}

/// Encodes a request; with `binary`, input data follows the JSON as binary data.
pub fn encode_request(request: &InferRequest, binary: bool) -> Body {
    let (inputs, tail) = wire_tensors(&request.inputs, binary);
    let wanted = |name: &String| WireWanted {
        name: name.clone(),
        parameters: request
            .binary_outputs
            .then(|| Map::from_iter([("binary_data".to_owned(), Value::Bool(true))])),
    };
    let wire = WireRequest {
        id: request.id.clone(),
        parameters: request
            .binary_outputs
            .then(|| Map::from_iter([("binary_data_output".to_owned(), Value::Bool(true))])),
        inputs,
        outputs: request.outputs.iter().map(wanted).collect(),
    };
    finish(&wire, binary, tail)
}

/// Decodes a request body; `header_length` comes from the `Inference-Header-Content-Length`
/// header.
pub fn decode_request(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<InferRequest, ProtocolError> {
    let (wire, tail): (WireRequest, _) = header(body, header_length)?;
    let binary_all = flag(wire.parameters.as_ref(), "binary_data_output");
    let binary_outputs = binary_all
        || wire
            .outputs
            .iter()
            .any(|o| flag(o.parameters.as_ref(), "binary_data"));
    Ok(InferRequest {
        id: wire.id,
        inputs: read_tensors(wire.inputs, tail)?,
        outputs: wire.outputs.into_iter().map(|o| o.name).collect(),
        binary_outputs,
    })
}

/// Encodes a response; with `binary`, output data follows the JSON as binary data.
pub fn encode_response(response: &InferResponse, binary: bool) -> Body {
    let (outputs, tail) = wire_tensors(&response.outputs, binary);
    let wire = WireResponse {
        model_name: response.model_name.clone(),
        model_version: response.model_version.clone(),
        id: response.id.clone(),
        outputs,
    };
    finish(&wire, binary, tail)
}

/// Decodes a response body; `header_length` comes from the `Inference-Header-Content-Length`
/// header.
pub fn decode_response(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<InferResponse, ProtocolError> {
    let (wire, tail): (WireResponse, _) = header(body, header_length)?;
    Ok(InferResponse {
        model_name: wire.model_name,
        model_version: wire.model_version,
        id: wire.id,
        outputs: read_tensors(wire.outputs, tail)?,
    })
}

fn flag(parameters: Option<&Map<String, Value>>, key: &str) -> bool {
    parameters
        .and_then(|p| p.get(key))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The wire form of `tensor`: its data inline, or appended to `tail` with its size noted.
fn wire_tensor(tensor: &Tensor, tail: Option<&mut Vec<u8>>) -> WireTensor {
    let (parameters, data) = match tail {
        Some(tail) => {
            let start = tail.len();
            tensor.values.write_le(tail);
            let size = tail.len() - start;
            (
                Some(Map::from_iter([(
                    "binary_data_size".to_owned(),
                    Value::from(size),
                )])),
                None,
            )
        }
        None => (None, Some(tensor.values.to_json())),
    };
    WireTensor {
        name: tensor.name.clone(),
        shape: tensor.shape.iter().map(|d| *d as i64).collect(),
        datatype: tensor.values.datatype().name().to_owned(),
        parameters,
        data,
    }
}

fn finish(wire: &impl Serialize, binary: bool, tail: Vec<u8>) -> Body {
    let mut bytes = serde_json::to_vec(wire).unwrap_or_default();
    let header_length = binary.then_some(bytes.len());
    bytes.extend(tail);
    Body {
        bytes,
        header_length,
    }
}

/// The wire form of `tensors`, and their binary data when `binary`.
fn wire_tensors(tensors: &[Tensor], binary: bool) -> (Vec<WireTensor>, Vec<u8>) {
    let mut tail = Vec::new();
    let wire = tensors
        .iter()
        .map(|t| wire_tensor(t, binary.then_some(&mut tail)))
        .collect();
    (wire, tail)
}

/// The JSON part of a body, parsed, and the binary data after it.
fn header<T: serde::de::DeserializeOwned>(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<(T, &[u8]), ProtocolError> {
    let (json, tail) = match header_length {
        None => (body, &[][..]),
        Some(length) if length <= body.len() => body.split_at(length),
        Some(length) => {
            return Err(ProtocolError::HeaderLength {
                length,
                body: body.len(),
            });
        }
    };
    let wire = serde_json::from_slice(json).map_err(|source| ProtocolError::Json { source })?;
    Ok((wire, tail))
}

fn read_tensors(wire: Vec<WireTensor>, tail: &[u8]) -> Result<Vec<Tensor>, ProtocolError> {
    let mut cursor: usize = 0;
    let mut tensors = Vec::with_capacity(wire.len());
    for w in wire {
        let bad = |reason: String| ProtocolError::Tensor {
            tensor: w.name.clone(),
            reason,
        };
        let datatype = DataType::parse(&w.datatype).ok_or_else(|| ProtocolError::Datatype {
            tensor: w.name.clone(),
            datatype: w.datatype.clone(),
        })?;
        let shape = w
            .shape
            .iter()
            .map(|d| usize::try_from(*d))
            .collect::<Result<Vec<usize>, _>>()
            .map_err(|_| bad(format!("shape {:?} has a negative dimension", w.shape)))?;
        let elements = shape
            .iter()
            .try_fold(1usize, |n, d| n.checked_mul(*d))
            .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
        let binary_size = w
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"));
        let values = match (binary_size, &w.data) {
            (Some(size), _) => {
                let size = size
                    .as_u64()
                    .and_then(|s| usize::try_from(s).ok())
                    .ok_or_else(|| bad("binary_data_size is not a byte count".into()))?;
                let expected = elements.checked_mul(datatype.size()).ok_or_else(|| {
                    bad(format!(
                        "shape {shape:?} of {} is too large",
                        datatype.name()
                    ))
                })?;
                if size != expected {
                    return Err(bad(format!(
                        "binary_data_size is {size} but shape {shape:?} of {} needs {expected} bytes",
                        datatype.name()
                    )));
                }
                let Some(end) = cursor.checked_add(size).filter(|&end| end <= tail.len()) else {
                    return Err(bad(format!(
                        "binary data ends after {} of {size} bytes",
                        tail.len() - cursor
                    )));
                };
                let values = Values::read_le(datatype, &tail[cursor..end]);
                cursor = end;
                values
            }
            (None, Some(data)) => Values::from_json(datatype, data).map_err(bad)?,
            (None, None) => return Err(bad("has neither `data` nor `binary_data_size`".into())),
        };
        if values.len() != elements {
            return Err(bad(format!(
                "shape {shape:?} needs {elements} elements, the data holds {}",
                values.len()
            )));
        }
        tensors.push(Tensor {
            name: w.name,
            shape,
            values,
        });
    }
    if cursor != tail.len() {
        return Err(ProtocolError::Trailing {
            bytes: tail.len() - cursor,
        });
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> InferRequest {
        InferRequest {
            id: Some("r1".into()),
            inputs: vec![
                Tensor {
                    name: "input:0".into(),
                    shape: vec![1, 2, 2],
                    values: Values::Fp32(vec![0.5, -1.0, 2.25, 3.0]),
                },
                Tensor {
                    name: "ids".into(),
                    shape: vec![1, 3],
                    values: Values::Int64(vec![101, -7, 102]),
                },
            ],
            outputs: vec!["scores".into()],
            binary_outputs: true,
        }
    }

    #[test]
    fn requests_round_trip_as_json_and_as_binary() {
        for binary in [false, true] {
            let body = encode_request(&request(), binary);
            assert_eq!(body.header_length.is_some(), binary);
            let back = decode_request(&body.bytes, body.header_length).unwrap();
            assert_eq!(back, request(), "binary {binary}");
        }
    }

    #[test]
    fn binary_data_is_little_endian_after_the_header() {
        let body = encode_request(&request(), true);
        let length = body.header_length.unwrap();
        let header: Value = serde_json::from_slice(&body.bytes[..length]).unwrap();
        assert_eq!(header["inputs"][0]["parameters"]["binary_data_size"], 16);
        assert_eq!(header["inputs"][1]["parameters"]["binary_data_size"], 24);
        assert!(header["inputs"][0].get("data").is_none());
        assert_eq!(header["parameters"]["binary_data_output"], true);
        assert_eq!(header["outputs"][0]["parameters"]["binary_data"], true);
        let tail = &body.bytes[length..];
        assert_eq!(tail.len(), 40);
        assert_eq!(&tail[..4], &0.5f32.to_le_bytes());
        assert_eq!(&tail[16..24], &101i64.to_le_bytes());
    }

    #[test]
    fn responses_round_trip_as_json_and_as_binary() {
        let response = InferResponse {
            model_name: "m".into(),
            model_version: Some("1".into()),
            id: None,
            outputs: vec![Tensor {
                name: "scores".into(),
                shape: vec![1, 2],
                values: Values::Fp32(vec![0.25, 0.75]),
            }],
        };
        for binary in [false, true] {
            let body = encode_response(&response, binary);
            let back = decode_response(&body.bytes, body.header_length).unwrap();
            assert_eq!(back, response);
        }
    }

    #[test]
    fn a_triton_style_json_request_decodes() {
        let body =
            br#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT32","data":[[1,2],[3,4]]},
            {"name":"b","shape":[1],"datatype":"BOOL","data":[true]}],"outputs":[{"name":"y"}]}"#;
        let r = decode_request(body, None).unwrap();
        assert_eq!(r.inputs[0].values, Values::Int32(vec![1, 2, 3, 4]));
        assert_eq!(r.inputs[1].values, Values::Bool(vec![true]));
        assert_eq!(r.outputs, ["y"]);
        assert!(!r.binary_outputs);
    }

    #[test]
    fn bad_bodies_are_named() {
        let cases: [(&[u8], Option<usize>, &str); 8] = [
            (b"{not json", None, "malformed"),
            (b"{}", Some(10), "exceeds the body"),
            (
                br#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#,
                None,
                "needs 3 elements",
            ),
            (
                br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP16","data":[1]}]}"#,
                None,
                "`FP16` is not supported",
            ),
            (
                br#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}"#,
                None,
                "negative",
            ),
            (
                br#"{"inputs":[{"name":"x","shape":[1],"datatype":"UINT8","data":[300]}]}"#,
                None,
                "element 0 is not a UINT8",
            ),
            (
                br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#,
                None,
                "neither",
            ),
            (
                br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#,
                None,
                "needs 8 bytes",
            ),
        ];
        for (body, length, expected) in cases {
            let err = decode_request(body, length).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} (wanted {expected})");
        }
    }

    #[test]
    fn binary_data_must_be_exactly_claimed() {
        let mut body = encode_request(&request(), true);
        body.bytes.push(0);
        let err = decode_request(&body.bytes, body.header_length).unwrap_err();
        assert!(matches!(err, ProtocolError::Trailing { bytes: 1 }), "{err}");
        let mut short = encode_request(&request(), true);
        short.bytes.truncate(short.bytes.len() - 4);
        let err = decode_request(&short.bytes, short.header_length).unwrap_err();
        assert!(err.to_string().contains("binary data ends"), "{err}");
    }

    #[test]
    fn overflowing_binary_sizes_are_refused_not_a_panic() {
        let big = i64::MAX;
        let header = format!(
            r#"{{"inputs":[{{"name":"a","shape":[1],"datatype":"UINT8","parameters":{{"binary_data_size":1}}}},{{"name":"b","shape":[{big},{big}],"datatype":"FP32","parameters":{{"binary_data_size":{}}}}}]}}"#,
            u64::MAX
        );
        let mut body = header.clone().into_bytes();
        body.extend([7u8, 1, 2, 3]);
        let err = decode_request(&body, Some(header.len())).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
        // 4294967295 × 4294967297 = u64::MAX bytes: the cursor, one byte in, would wrap.
        let huge = format!(
            r#"{{"inputs":[{{"name":"a","shape":[1],"datatype":"UINT8","parameters":{{"binary_data_size":1}}}},{{"name":"b","shape":[4294967295,4294967297],"datatype":"UINT8","parameters":{{"binary_data_size":{}}}}}]}}"#,
            u64::MAX
        );
        let mut body = huge.clone().into_bytes();
        body.extend([7u8, 1]);
        let err = decode_request(&body, Some(huge.len())).unwrap_err();
        assert!(err.to_string().contains("binary data ends"), "{err}");
    }

    #[test]
    fn shapes_whose_bytes_overflow_are_negative_or_disagree_are_named() {
        let binary = |shape: &str, datatype: &str, size: u64, data: usize| {
            let header = format!(
                r#"{{"inputs":[{{"name":"x","shape":{shape},"datatype":"{datatype}","parameters":{{"binary_data_size":{size}}}}}]}}"#
            );
            let body = [header.as_bytes(), &vec![0; data]].concat();
            decode_request(&body, Some(header.len()))
                .unwrap_err()
                .to_string()
        };
        // 2^61 elements fit a usize, their 8-byte values do not.
        assert_eq!(
            binary("[2305843009213693952]", "FP64", 8, 8),
            "tensor `x`: shape [2305843009213693952] of FP64 is too large"
        );
        assert_eq!(
            binary("[1,-3]", "FP32", 12, 12),
            "tensor `x`: shape [1, -3] has a negative dimension"
        );
        assert_eq!(
            binary("[1,3]", "FP32", 8, 8),
            "tensor `x`: binary_data_size is 8 but shape [1, 3] of FP32 needs 12 bytes"
        );
        let json = decode_request(
            br#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT32","data":[1,2,3]}]}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(
            json.to_string(),
            "tensor `x`: shape [2, 2] needs 4 elements, the data holds 3"
        );
    }

    #[test]
    fn values_append_and_split_by_type() {
        let mut a = Values::Int64(vec![1, 2]);
        assert!(a.append(&Values::Int64(vec![3])));
        assert!(!a.append(&Values::Fp32(vec![4.0])));
        assert_eq!(a, Values::Int64(vec![1, 2, 3]));
        assert_eq!(a.range(1, 3), Values::Int64(vec![2, 3]));
        assert_eq!(a.range(2, 9), Values::Int64(vec![3]));
    }

    #[test]
    fn datatype_names_round_trip() {
        for (datatype, name) in DATATYPES {
            assert_eq!(datatype.name(), name);
            assert_eq!(DataType::parse(name), Some(datatype));
        }
        assert_eq!(DataType::parse("BYTES"), None);
    }
}

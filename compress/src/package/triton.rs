//! `export-triton`: a model package as a Triton model repository, so a GPU site runs the teacher
//! on NVIDIA Triton (onnxruntime backend) unchanged and `edgemass serve` reads the same files:
//! `OUT/NAME/1/model.onnx` (the package's ONNX file, hash checked) and `OUT/NAME/config.pbtxt`
//! (platform `onnxruntime_onnx`, `max_batch_size`, inputs and outputs from the ONNX graph, an
//! image input sized from the manifest, dynamic batching when the model has a batch dimension).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tract_onnx::pb::{self, tensor_proto::DataType};

use crate::onnx::graph::{Graph, GraphError, dims};

/// Errors while exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The manifest is unreadable or lacks what the export needs.
    #[error("{path}: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The ONNX file is unreadable.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The ONNX file is not the one the manifest describes.
    #[error("{path} has sha256 {actual} but its manifest expects {expected}")]
    Hash {
        /// The ONNX file.
        path: PathBuf,
        /// From the manifest.
        expected: String,
        /// Of the file.
        actual: String,
    },
    /// A graph input or output has a type Triton's config cannot name here.
    #[error("{path}: `{tensor}` has ONNX element type {elem_type}, which the export does not map")]
    Type {
        /// The ONNX file.
        path: PathBuf,
        /// The input or output.
        tensor: String,
        /// Its ONNX element type.
        elem_type: i32,
    },
    /// The repository could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
}

/// The manifest fields the export reads (vision and text packages alike).
#[derive(Deserialize)]
struct Package {
    name: String,
    file: String,
    sha256: String,
    #[serde(default)]
    input: Option<ImageInput>,
}

#[derive(Deserialize)]
struct ImageInput {
    name: String,
    layout: String,
    width: i64,
    height: i64,
}

/// How the exported model batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// `max_batch_size` of a model with a batch dimension.
    pub max_batch: usize,
    /// `dynamic_batching.max_queue_delay_microseconds`.
    pub max_queue_delay_us: u64,
}

/// Exports the package of `manifest` into the repository `out`; returns the model's directory.
pub fn export(manifest: &Path, out: &Path, batching: Batching) -> Result<PathBuf, ExportError> {
    let bad = |reason: String| ExportError::Manifest {
        path: manifest.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(manifest).map_err(|e| bad(e.to_string()))?;
    let package: Package = toml::from_str(&text).map_err(|e| bad(e.message().to_owned()))?;
    if package.name.is_empty()
        || !package
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(bad(
            "`name` must be characters of A-Z, a-z, 0-9, `_`, `.` and `-` (it names the directory)"
                .into(),
        ));
    }
    let onnx = resolve(&package.file, manifest);
    let bytes = std::fs::read(&onnx).map_err(|source| GraphError::Read {
        path: onnx.clone(),
        source,
    })?;
    let actual: String = crate::package::sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(&package.sha256) {
        return Err(ExportError::Hash {
            path: onnx,
            expected: package.sha256,
            actual,
        });
    }
    let graph = Graph::load(&onnx)?;
    let config = config(&package, graph.graph(), batching, &onnx)?;
    let dir = out.join(&package.name);
    let version = dir.join("1");
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ExportError::Write { path, source }
    };
    std::fs::create_dir_all(&version).map_err(write_err(&version))?;
    let model = version.join("model.onnx");
    crate::write_atomic(&model, &bytes).map_err(write_err(&model))?;
    let pbtxt = dir.join("config.pbtxt");
    crate::write_atomic(&pbtxt, config.as_bytes()).map_err(write_err(&pbtxt))?;
    Ok(dir)
}

/// `{cache}/REST` under `$EDGEMASS_MODEL_CACHE` (default: `cache` beside the manifest), anything
/// else relative to the manifest's directory, as the agent resolves it.
fn resolve(file: &str, manifest: &Path) -> PathBuf {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    match file.strip_prefix("{cache}/") {
        Some(rest) => std::env::var_os("EDGEMASS_MODEL_CACHE")
            .map_or_else(|| dir.join("cache"), PathBuf::from)
            .join(rest),
        None => dir.join(file),
    }
}

/// One input or output of the config.
struct Spec {
    name: String,
    data_type: &'static str,
    dims: Vec<i64>,
}

/// The `config.pbtxt` text.
fn config(
    package: &Package,
    graph: &pb::GraphProto,
    batching: Batching,
    onnx: &Path,
) -> Result<String, ExportError> {
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(&i.name.as_str()))
        .collect();
    let batched = batching.max_batch > 0
        && inputs
            .first()
            .and_then(|i| dims(i).first().cloned())
            .is_none_or(|d| d.parse::<i64>().is_err());
    let spec = |value: &pb::ValueInfoProto| -> Result<Spec, ExportError> {
        let mut shape: Vec<i64> = match &package.input {
            Some(image) if image.name == value.name => {
                let (w, h) = (image.width, image.height);
                if image.layout == "nhwc" {
                    vec![1, h, w, 3]
                } else {
                    vec![1, 3, h, w]
                }
            }
            _ => dims(value)
                .iter()
                .map(|d| d.parse().unwrap_or(-1))
                .collect(),
        };
        if batched && !shape.is_empty() {
            shape.remove(0);
        }
        Ok(Spec {
            name: value.name.clone(),
            data_type: triton_type(value).ok_or_else(|| ExportError::Type {
                path: onnx.to_owned(),
                tensor: value.name.clone(),
                elem_type: elem_type(value),
            })?,
            dims: shape,
        })
    };
    let inputs = inputs
        .into_iter()
        .map(spec)
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = graph
        .output
        .iter()
        .map(spec)
        .collect::<Result<Vec<_>, _>>()?;
    let mut text = format!(
        "# Written by edgemass-compress export-triton; Triton (onnxruntime backend) and\n\
         # `edgemass serve` read it as is.\nname: {}\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: {}\n",
        quote(&package.name),
        if batched { batching.max_batch } else { 0 }
    );
    for (kind, specs) in [("input", &inputs), ("output", &outputs)] {
        let _ = writeln!(text, "{kind} [");
        for (i, s) in specs.iter().enumerate() {
            let dims: Vec<String> = s.dims.iter().map(i64::to_string).collect();
            let _ = writeln!(
                text,
                "  {{\n    name: {}\n    data_type: {}\n    dims: [ {} ]\n  }}{}",
                quote(&s.name),
                s.data_type,
                dims.join(", "),
                if i + 1 < specs.len() { "," } else { "" }
            );
        }
        let _ = writeln!(text, "]");
    }
    if batched {
        let _ = writeln!(
            text,
            "dynamic_batching {{\n  max_queue_delay_microseconds: {}\n}}",
            batching.max_queue_delay_us
        );
    }
    Ok(text)
}

fn elem_type(value: &pb::ValueInfoProto) -> i32 {
    match value.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(tensor)) => tensor.elem_type,
        None => 0,
    }
}

/// Triton's `TYPE_*` name of a value's ONNX element type.
fn triton_type(value: &pb::ValueInfoProto) -> Option<&'static str> {
    Some(match DataType::try_from(elem_type(value)).ok()? {
        DataType::Float => "TYPE_FP32",
        DataType::Double => "TYPE_FP64",
        DataType::Float16 => "TYPE_FP16",
        DataType::Int64 => "TYPE_INT64",
        DataType::Int32 => "TYPE_INT32",
        DataType::Int8 => "TYPE_INT8",
        DataType::Uint8 => "TYPE_UINT8",
        DataType::Bool => "TYPE_BOOL",
        _ => return None,
    })
}

/// A protobuf text string.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::build::{Dim, value_info};

    fn value(name: &str, elem_type: DataType, dims: &[Option<i64>]) -> pb::ValueInfoProto {
        let dims: Vec<Dim> = dims
            .iter()
            .map(|d| d.map_or(Dim::Named("batch"), Dim::Fixed))
            .collect();
        value_info(name, elem_type, &dims)
    }

    const BATCHING: Batching = Batching {
        max_batch: 8,
        max_queue_delay_us: 2000,
    };

    #[test]
    fn a_batched_text_model_gets_dynamic_batching() {
        let graph = pb::GraphProto {
            input: vec![value("input_ids", DataType::Int64, &[None, None])],
            output: vec![value("scores", DataType::Float, &[None, Some(2)])],
            ..Default::default()
        };
        let package = Package {
            name: "m\"x".into(),
            file: String::new(),
            sha256: String::new(),
            input: None,
        };
        let text = config(&package, &graph, BATCHING, Path::new("m.onnx")).unwrap();
        assert!(text.contains("name: \"m\\\"x\"\n"), "{text}");
        assert!(text.contains("max_batch_size: 8\n"), "{text}");
        assert!(
            text.contains("name: \"input_ids\"\n    data_type: TYPE_INT64\n    dims: [ -1 ]"),
            "{text}"
        );
        assert!(
            text.contains("data_type: TYPE_FP32\n    dims: [ 2 ]"),
            "{text}"
        );
        assert!(
            text.contains("max_queue_delay_microseconds: 2000"),
            "{text}"
        );
    }

    #[test]
    fn a_fixed_batch_image_model_is_sized_from_the_manifest() {
        let graph = pb::GraphProto {
            input: vec![value("x", DataType::Float, &[Some(1), Some(3), None, None])],
            output: vec![value("y", DataType::Float, &[Some(1), Some(2)])],
            ..Default::default()
        };
        let package = Package {
            name: "det".into(),
            file: String::new(),
            sha256: String::new(),
            input: Some(ImageInput {
                name: "x".into(),
                layout: "nchw".into(),
                width: 640,
                height: 480,
            }),
        };
        let text = config(&package, &graph, BATCHING, Path::new("m.onnx")).unwrap();
        assert!(text.contains("max_batch_size: 0\n"), "{text}");
        assert!(text.contains("dims: [ 1, 3, 480, 640 ]"), "{text}");
        assert!(!text.contains("dynamic_batching"), "{text}");
        let unbatched = Batching {
            max_batch: 0,
            ..BATCHING
        };
        let graph = pb::GraphProto {
            input: vec![value("x", DataType::Int32, &[None])],
            output: vec![value("y", DataType::String, &[None])],
            ..Default::default()
        };
        let err = config(&package, &graph, unbatched, Path::new("m.onnx")).unwrap_err();
        assert!(err.to_string().contains("`y`"), "{err}");
    }
}

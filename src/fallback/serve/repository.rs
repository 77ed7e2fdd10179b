//! A Triton-style model repository: `REPO/NAME/VERSION/model.onnx`, described by a Triton
//! `config.pbtxt` or by an edgemass manifest `*.model.toml` beside the versions. The highest
//! version of each model is served. With a manifest, the file's sha256 must match it, and the
//! inputs and outputs come from the ONNX graph (the image input's size from the manifest); a
//! model whose first input dimension is symbolic gets a batch dimension.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tract_onnx::pb::{self, ModelProto, tensor_proto::DataType as OnnxType};

use super::ServeError;
use super::config::{Batching, ModelConfig, TensorSpec};
use super::pbtxt;
use crate::fallback::protocol::DataType;
use crate::model::declared;
use crate::model::manifest::{Layout, Manifest};
use crate::text::TextManifest;

/// Batching for models described by a manifest (a `config.pbtxt` brings its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// `max_batch_size` of models with a batch dimension; 1 turns batching off.
    pub max_batch: usize,
    /// Longest a request waits for others to join its batch.
    pub max_queue_delay: Duration,
}

/// One model found in the repository.
pub struct Entry {
    /// Its configuration.
    pub config: ModelConfig,
    /// The version served.
    pub version: String,
    /// The ONNX file.
    pub path: PathBuf,
    /// The decoded file.
    pub proto: ModelProto,
    /// The config was derived from a manifest (rather than written in a `config.pbtxt`).
    pub derived: bool,
}

/// Reads every model directory of `dir`, in name order.
pub fn scan(dir: &Path, defaults: Defaults) -> Result<Vec<Entry>, ServeError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ServeError::Read { path, source }
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let entry = entry.map_err(read_err(dir))?;
        if entry.path().is_dir()
            && let Some(name) = entry.file_name().to_str()
            && !name.starts_with('.')
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        entries.push(model(&dir.join(&name), &name, defaults)?);
    }
    if entries.is_empty() {
        return Err(ServeError::Empty {
            path: dir.to_owned(),
        });
    }
    Ok(entries)
}

fn model(dir: &Path, name: &str, defaults: Defaults) -> Result<Entry, ServeError> {
    let invalid = |path: &Path, reason: String| ServeError::Config {
        path: path.to_owned(),
        reason,
    };
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(invalid(
            dir,
            "a model directory's name must be characters of A-Z, a-z, 0-9, `_`, `.` and `-`".into(),
        ));
    }
    let mut versions: Vec<u64> = std::fs::read_dir(dir)
        .map_err(|source| ServeError::Read {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .filter(|v| dir.join(v.to_string()).join("model.onnx").is_file())
        .collect();
    versions.sort_unstable();
    let Some(version) = versions.last().map(u64::to_string) else {
        return Err(invalid(dir, "holds no VERSION/model.onnx".into()));
    };
    let path = dir.join(&version).join("model.onnx");
    let pbtxt_path = dir.join("config.pbtxt");
    let manifests: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| ServeError::Read {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".model.toml")))
        .collect();
    let model_err = |source| ServeError::Model {
        model: name.to_owned(),
        path: path.clone(),
        source,
    };
    let derived = !pbtxt_path.is_file();
    let (config, proto) = if !derived {
        let text = std::fs::read_to_string(&pbtxt_path).map_err(|source| ServeError::Read {
            path: pbtxt_path.clone(),
            source,
        })?;
        let config = pbtxt::parse(&text, name).map_err(|reason| invalid(&pbtxt_path, reason))?;
        (config, crate::model::read_onnx(&path).map_err(model_err)?)
    } else {
        let [manifest] = manifests.as_slice() else {
            return Err(invalid(
                dir,
                format!(
                    "needs a config.pbtxt or one *.model.toml beside the versions ({} found)",
                    manifests.len()
                ),
            ));
        };
        let described = Described::read(manifest)?;
        let proto = crate::model::read_verified(&path, described.sha256()).map_err(model_err)?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| invalid(&path, "holds no graph".into()))?;
        let config = described
            .config(name, graph, defaults)
            .map_err(|reason| invalid(manifest, reason))?;
        (config, proto)
    };
    Ok(Entry {
        config,
        version,
        path,
        proto,
        derived,
    })
}

/// The manifest of a model in the repository.
enum Described {
    Vision(Box<Manifest>),
    Text(Box<TextManifest>),
}

impl Described {
    fn read(path: &Path) -> Result<Described, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServeError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let task = toml::from_str::<toml::Table>(&text)
            .ok()
            .and_then(|t| t.get("task").and_then(|v| v.as_str()).map(str::to_owned));
        let manifest_err = |e: crate::model::ManifestError| ServeError::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        Ok(if task.as_deref() == Some("text-classify") {
            Described::Text(Box::new(
                TextManifest::parse(&text, path, dir, None).map_err(manifest_err)?,
            ))
        } else {
            Described::Vision(Box::new(
                Manifest::parse(&text, path, dir, None).map_err(manifest_err)?,
            ))
        })
    }

    fn sha256(&self) -> &str {
        match self {
            Described::Vision(m) => &m.sha256,
            Described::Text(m) => &m.sha256,
        }
    }

    /// The config: the graph's inputs and outputs, with the image input's size from a vision
    /// manifest.
    fn config(
        &self,
        name: &str,
        graph: &pb::GraphProto,
        defaults: Defaults,
    ) -> Result<ModelConfig, String> {
        let inputs = declared::inputs(graph);
        let first = inputs.first().ok_or("the graph has no input")?;
        let batched = !matches!(onnx_dims(first).first(), Some(Some(_)));
        let image = match self {
            Described::Vision(m) => {
                let (w, h) = (i64::from(m.input.width), i64::from(m.input.height));
                let dims = match m.input.layout {
                    Layout::Nchw => vec![1, 3, h, w],
                    Layout::Nhwc => vec![1, h, w, 3],
                };
                Some((m.input.name.as_str(), dims))
            }
            Described::Text(_) => None,
        };
        let spec = |value: &pb::ValueInfoProto| -> Result<TensorSpec, String> {
            let datatype = onnx_datatype(value)?;
            let dims = match &image {
                Some((input, dims)) if *input == value.name => dims.clone(),
                _ => onnx_dims(value)
                    .into_iter()
                    .map(|d| d.unwrap_or(-1))
                    .collect(),
            };
            let dims = if batched {
                dims.get(1..).unwrap_or_default().to_vec()
            } else {
                dims
            };
            Ok(TensorSpec {
                name: value.name.clone(),
                datatype,
                dims,
            })
        };
        let max_batch_size = if batched { defaults.max_batch } else { 0 };
        Ok(ModelConfig {
            name: name.to_owned(),
            platform: "onnxruntime_onnx".to_owned(),
            max_batch_size,
            inputs: inputs.iter().map(|v| spec(v)).collect::<Result<_, _>>()?,
            outputs: graph.output.iter().map(spec).collect::<Result<_, _>>()?,
            batching: (max_batch_size > 1).then_some(Batching {
                max_queue_delay: defaults.max_queue_delay,
            }),
        })
    }
}

/// Declared dimensions: `Some(n)` where fixed.
fn onnx_dims(value: &pb::ValueInfoProto) -> Vec<Option<i64>> {
    declared::dims(value)
        .unwrap_or_default()
        .iter()
        .map(|d| d.fixed().map(|n| n as i64))
        .collect()
}

/// The protocol datatype of an ONNX value.
fn onnx_datatype(value: &pb::ValueInfoProto) -> Result<DataType, String> {
    let elem_type =
        declared::elem_type(value).ok_or_else(|| format!("`{}` is not a tensor", value.name))?;
    let datatype = match OnnxType::try_from(elem_type) {
        Ok(OnnxType::Float) => DataType::Fp32,
        Ok(OnnxType::Double) => DataType::Fp64,
        Ok(OnnxType::Int64) => DataType::Int64,
        Ok(OnnxType::Int32) => DataType::Int32,
        Ok(OnnxType::Int8) => DataType::Int8,
        Ok(OnnxType::Uint8) => DataType::Uint8,
        Ok(OnnxType::Bool) => DataType::Bool,
        _ => {
            return Err(format!(
                "`{}` has ONNX element type {elem_type}, which edgemass serve does not carry",
                value.name
            ));
        }
    };
    Ok(datatype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgemass_compress::onnx::build::{Dim, value_info};

    fn value(name: &str, dims: &[Option<i64>]) -> pb::ValueInfoProto {
        let dims: Vec<Dim> = dims
            .iter()
            .map(|d| d.map_or(Dim::Named("n"), Dim::Fixed))
            .collect();
        value_info(name, OnnxType::Float, &dims)
    }

    const YOLO: &str = r#"
        name = "yolo"
        task = "detect"
        file = "model.onnx"
        sha256 = "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f"
        labels = ["a"]
        [input]
        name = "images"
        layout = "nchw"
        width = 320
        height = 256
        [decoder]
        kind = "yolov8"
        output = "output0"
    "#;

    fn described(batch: Option<i64>) -> ModelConfig {
        let manifest = Manifest::parse(YOLO, Path::new("m.toml"), Path::new("/"), None).unwrap();
        let graph = pb::GraphProto {
            input: vec![value("images", &[batch, Some(3), None, None])],
            output: vec![value("output0", &[batch, Some(5), None])],
            ..Default::default()
        };
        let defaults = Defaults {
            max_batch: 8,
            max_queue_delay: Duration::from_micros(500),
        };
        Described::Vision(Box::new(manifest))
            .config("yolo", &graph, defaults)
            .unwrap()
    }

    #[test]
    fn a_symbolic_batch_gets_dynamic_batching_and_the_manifests_size() {
        let c = described(None);
        assert_eq!(c.max_batch_size, 8);
        assert_eq!(c.inputs[0].dims, [3, 256, 320]);
        assert_eq!(c.outputs[0].dims, [5, -1]);
        assert_eq!(
            c.batching.map(|b| b.max_queue_delay),
            Some(Duration::from_micros(500))
        );
    }

    #[test]
    fn a_fixed_batch_of_one_runs_each_request_alone() {
        let c = described(Some(1));
        assert_eq!(c.max_batch_size, 0);
        assert_eq!(c.inputs[0].dims, [1, 3, 256, 320]);
        assert_eq!(c.outputs[0].dims, [1, 5, -1]);
        assert_eq!(c.batching, None);
    }
}

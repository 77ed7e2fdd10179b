//! Model packages: the manifest, and the network it names run by tract or onnxruntime, chosen at
//! load time ([`choose`]).

pub mod choose;
pub mod declared;
#[cfg(feature = "onnxruntime")]
pub mod library;
pub mod manifest;
pub mod npy;
pub mod onnx_build;
#[cfg(feature = "onnxruntime")]
pub mod onnxruntime;
pub mod precision;
pub(crate) mod quirks;
pub mod runtime;
pub mod short_softmax;
pub mod tensorflow;
pub mod threads;
pub mod to_onnx;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use sha2::{Digest, Sha256};
use tract_onnx::pb::{self, ModelProto};
use tract_onnx::prelude::*;

pub use choose::{Choice, Options, RuntimeSetting};
pub use manifest::{Manifest, ManifestError};
pub use precision::Precision;
pub use runtime::Runtime;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The manifest is unreadable or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The ONNX file could not be read.
    #[error("cannot read model {path}")]
    Read {
        /// The model path.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is not the one the manifest describes.
    #[error("{path} has sha256 {actual} but its manifest expects {expected}")]
    HashMismatch {
        /// The model path.
        path: PathBuf,
        /// Hash from the manifest.
        expected: String,
        /// Hash of the file.
        actual: String,
    },
    /// The bytes are not an ONNX protobuf.
    #[error("{path} is not a readable ONNX model (truncated or corrupt)")]
    Decode {
        /// The model path.
        path: PathBuf,
        /// The protobuf failure.
        source: prost::DecodeError,
    },
    /// The model's inputs or outputs are not what the manifest says.
    #[error("{path} does not match its manifest: {reason}")]
    Mismatch {
        /// The model path.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// tract could not import or optimise the graph.
    #[error("tract cannot {stage} {path}")]
    Tract {
        /// The model path.
        path: PathBuf,
        /// What tract was doing.
        stage: &'static str,
        /// tract's error.
        source: BoxError,
    },
    /// onnxruntime could not be loaded or could not load the model.
    #[error("{reason}")]
    Onnxruntime {
        /// What went wrong, naming the library or the file.
        reason: String,
    },
    /// Running the plan failed.
    #[error("inference with model `{model}` failed")]
    Run {
        /// Model id.
        model: String,
        /// tract's error.
        source: BoxError,
    },
}

impl ModelError {
    /// Maps a tract error met while `stage`-ing the model at `path`.
    pub fn tract(path: &Path, stage: &'static str) -> impl FnOnce(TractError) -> ModelError {
        let path = path.to_owned();
        move |e| ModelError::Tract {
            path,
            stage,
            source: e.into(),
        }
    }
}

/// A model ready to run: its manifest and the runtime holding its network.
pub struct Model {
    manifest: Manifest,
    runtime: Box<dyn Runtime>,
    output_names: Vec<String>,
    load_time: Duration,
    choice: Choice,
}

/// The outputs of one run, by name, converted to f32.
#[derive(Debug, Clone)]
pub struct Outputs {
    names: Vec<String>,
    values: Vec<tract_ndarray::ArrayD<f32>>,
}

impl Outputs {
    /// Builds outputs from name/value pairs (decoder tests use this with hand-made tensors).
    pub fn new(pairs: Vec<(String, tract_ndarray::ArrayD<f32>)>) -> Outputs {
        let (names, values) = pairs.into_iter().unzip();
        Outputs { names, values }
    }

    /// The output called `name`.
    pub fn get(&self, name: &str) -> Option<&tract_ndarray::ArrayD<f32>> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.values[i])
    }

    /// Names and values in the model's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &tract_ndarray::ArrayD<f32>)> {
        self.names.iter().map(String::as_str).zip(&self.values)
    }
}

impl Model {
    /// Reads the manifest at `path` and loads its model.
    pub fn from_manifest_path(path: &Path) -> Result<Model, ModelError> {
        Model::load(Manifest::from_path(path)?)
    }

    /// Checks the file's hash, fixes known import quirks in memory, fixes the input shape from
    /// the manifest and builds the plan.
    pub fn load(manifest: Manifest) -> Result<Model, ModelError> {
        let started = Instant::now();
        let path = manifest.file.clone();
        let shape = input_shape(&manifest);
        let bytes = read_checked(&path, &manifest.sha256)?;
        let (model, output_names) = match &manifest.tensorflow {
            Some(cut) => tensorflow::load(&bytes, &path, &manifest, &cut.replace, shape)?,
            None => onnx_model(&bytes, &path, &manifest, shape)?,
        };
        let plan = optimise(model, &path)?;
        Ok(Model {
            choice: Choice::only(
                "tract",
                manifest.precision,
                manifest.tolerance_of(manifest.precision),
            ),
            manifest,
            runtime: Box::new(runtime::Tract::new(plan)),
            output_names,
            load_time: started.elapsed(),
        })
    }

    /// Checks the file's hash and its inputs and outputs against the manifest like
    /// [`Model::load`], then runs it with the onnxruntime of `library` on `threads` threads. A
    /// TensorFlow graph is cut as for tract and handed over as ONNX ([`to_onnx`]).
    #[cfg(feature = "onnxruntime")]
    pub fn load_onnxruntime(
        manifest: Manifest,
        library: &Path,
        threads: usize,
    ) -> Result<Model, ModelError> {
        let started = Instant::now();
        let path = manifest.file.clone();
        let bytes = read_checked(&path, &manifest.sha256)?;
        let shape = input_shape(&manifest);
        let failed = |reason| ModelError::Onnxruntime { reason };
        let (runtime, output_names) = match &manifest.tensorflow {
            Some(cut) => {
                let (onnx, output_names) = tensorflow_as_onnx(&bytes, &manifest, &cut.replace)?;
                let onnx = onnx.encode_to_vec();
                let runtime = onnxruntime::OnnxRuntime::from_memory(library, &onnx, &path, threads)
                    .map_err(failed)?;
                (runtime, output_names)
            }
            None => {
                let (_, output_names) = onnx_checked(&bytes, &path, &manifest, shape)?;
                let runtime =
                    onnxruntime::OnnxRuntime::load(library, &path, threads).map_err(failed)?;
                (runtime, output_names)
            }
        };
        Ok(Model {
            choice: Choice::only(
                "onnxruntime",
                manifest.precision,
                manifest.tolerance_of(manifest.precision),
            ),
            manifest,
            runtime: Box::new(runtime),
            output_names,
            load_time: started.elapsed(),
        })
    }

    /// The manifest this model was loaded from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Time taken by [`Model::load`].
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// This model with `choice` as the record of why its runtime and form were chosen.
    pub fn with_choice(mut self, choice: Choice) -> Model {
        self.choice = choice;
        self
    }

    /// Which runtime and form run the network, and what was measured to choose them.
    pub fn choice(&self) -> &Choice {
        &self.choice
    }

    /// The runtime that runs the network.
    pub fn runtime(&self) -> &dyn Runtime {
        self.runtime.as_ref()
    }

    /// Runs the network on one input tensor.
    pub fn run(&self, input: Tensor) -> Result<Outputs, ModelError> {
        let values = self.runtime.run(input).map_err(|source| ModelError::Run {
            model: self.manifest.name.clone(),
            source,
        })?;
        Ok(Outputs {
            names: self.output_names.clone(),
            values,
        })
    }
}

/// An ONNX file decoded and checked against its manifest, with its output names in order.
fn onnx_checked(
    bytes: &[u8],
    path: &Path,
    manifest: &Manifest,
    shape: [usize; 4],
) -> Result<(ModelProto, Vec<String>), ModelError> {
    let proto = decode(path, bytes)?;
    let graph = graph(&proto, path)?;
    check_signature(graph, manifest, &shape).map_err(|reason| ModelError::Mismatch {
        path: path.to_owned(),
        reason,
    })?;
    let output_names = graph.output.iter().map(|o| o.name.clone()).collect();
    Ok((proto, output_names))
}

/// An ONNX model's graph imported into tract, checked against its manifest, with its output
/// names in order.
fn onnx_model(
    bytes: &[u8],
    path: &Path,
    manifest: &Manifest,
    shape: [usize; 4],
) -> Result<(InferenceModel, Vec<String>), ModelError> {
    let (mut proto, output_names) = onnx_checked(bytes, path, manifest, shape)?;
    for fix in quirks::apply(&mut proto) {
        tracing::debug!(model = %manifest.name, "{fix}");
    }
    let tract_err = |stage| ModelError::tract(path, stage);
    let dir = path.parent().and_then(Path::to_str);
    let parsed = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
        .parse(&proto, dir)
        .map_err(tract_err("import"))?;
    let model = parsed
        .model
        .with_input_fact(0, f32::fact(shape).into())
        .map_err(tract_err("set the input shape of"))?;
    Ok((model, output_names))
}

/// The main graph of a decoded file.
pub fn graph<'a>(proto: &'a ModelProto, path: &Path) -> Result<&'a pb::GraphProto, ModelError> {
    proto.graph.as_ref().ok_or_else(|| ModelError::Mismatch {
        path: path.to_owned(),
        reason: "the file holds no graph".into(),
    })
}

/// Optimises an imported model (short softmaxes split first: [`short_softmax`]) and builds its
/// plan.
pub fn optimise(model: InferenceModel, path: &Path) -> Result<Arc<TypedRunnableModel>, ModelError> {
    short_softmax::into_optimized(model)
        .map_err(ModelError::tract(path, "optimise"))?
        .into_runnable()
        .map_err(ModelError::tract(path, "plan"))
}

/// The network of a package whose file is a frozen TensorFlow graph, cut and typed as for tract
/// and written as ONNX ([`to_onnx`]), with its output names in order: what onnxruntime runs, and
/// what edgemass-compress starts from.
pub fn onnx_form(manifest: &Manifest) -> Result<(ModelProto, Vec<String>), ModelError> {
    let cut = manifest
        .tensorflow
        .as_ref()
        .ok_or_else(|| ModelError::Mismatch {
            path: manifest.file.clone(),
            reason: "the manifest has no [tensorflow] table: the file is ONNX already".into(),
        })?;
    let bytes = read_checked(&manifest.file, &manifest.sha256)?;
    tensorflow_as_onnx(&bytes, manifest, &cut.replace)
}

fn tensorflow_as_onnx(
    bytes: &[u8],
    manifest: &Manifest,
    replace: &str,
) -> Result<(ModelProto, Vec<String>), ModelError> {
    let path = &manifest.file;
    let shape = input_shape(manifest);
    let (model, output_names) = tensorflow::load(bytes, path, manifest, replace, shape)?;
    let typed = model
        .into_typed()
        .map_err(ModelError::tract(path, "type"))?;
    let doc = format!("{} (cut at {replace})", path.display());
    // What only onnxruntime needs: a graph without an ONNX form still runs on tract.
    let onnx = to_onnx::to_onnx(&typed, &doc).map_err(|reason| ModelError::Onnxruntime {
        reason: format!("{} has no ONNX form: {reason}", path.display()),
    })?;
    Ok((onnx, output_names))
}

/// Reads and decodes an ONNX file.
pub fn read_onnx(path: &Path) -> Result<ModelProto, ModelError> {
    decode(path, &read(path)?)
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| ModelError::Read {
        path: path.to_owned(),
        source,
    })
}

fn decode(path: &Path, bytes: &[u8]) -> Result<ModelProto, ModelError> {
    ModelProto::decode(bytes).map_err(|source| ModelError::Decode {
        path: path.to_owned(),
        source,
    })
}

/// Reads an ONNX file, checks its sha256 against `expected` and decodes it.
pub fn read_verified(path: &Path, expected: &str) -> Result<ModelProto, ModelError> {
    decode(path, &read_checked(path, expected)?)
}

/// The bytes of the file at `path`, when their sha256 is `expected`.
fn read_checked(path: &Path, expected: &str) -> Result<Vec<u8>, ModelError> {
    let bytes = read(path)?;
    let actual: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if actual != expected {
        return Err(ModelError::HashMismatch {
            path: path.to_owned(),
            expected: expected.to_owned(),
            actual,
        });
    }
    Ok(bytes)
}

/// The input tensor shape the manifest asks for.
pub fn input_shape(manifest: &Manifest) -> [usize; 4] {
    let (w, h) = (
        manifest.input.width as usize,
        manifest.input.height as usize,
    );
    match manifest.input.layout {
        manifest::Layout::Nchw => [1, 3, h, w],
        manifest::Layout::Nhwc => [1, h, w, 3],
    }
}

/// Compares the graph's declared inputs and outputs with the manifest before tract sees it, so a
/// mismatch is reported in the manifest's terms.
fn check_signature(
    graph: &pb::GraphProto,
    manifest: &Manifest,
    shape: &[usize; 4],
) -> Result<(), String> {
    let inputs = declared::inputs(graph);
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let [input] = inputs.as_slice() else {
        return Err(format!(
            "edgemass feeds one image input, the model has {names:?}"
        ));
    };
    if input.name != manifest.input.name {
        return Err(format!(
            "input.name is `{}` but the model's input is `{}`",
            manifest.input.name, input.name
        ));
    }
    if let Some(dims) = declared::dims(input) {
        let dims: Vec<Option<usize>> = dims.iter().map(declared::Dim::fixed).collect();
        let fits = dims.len() == 4
            && dims
                .iter()
                .zip(shape)
                .all(|(d, s)| d.is_none_or(|d| d == *s));
        if !fits {
            let shown: Vec<String> = dims
                .iter()
                .map(|d| d.map_or("?".into(), |d| d.to_string()))
                .collect();
            return Err(format!(
                "input `{}` is [{}] but the manifest's layout and size give {shape:?}",
                input.name,
                shown.join(", ")
            ));
        }
    }
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    for wanted in manifest.decoder.output_names() {
        if !outputs.contains(&wanted) {
            return Err(format!(
                "decoder reads output `{wanted}`, the model's outputs are {outputs:?}"
            ));
        }
    }
    Ok(())
}

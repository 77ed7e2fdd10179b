//! onnxruntime as a second [`Runtime`], from the shared library the caller names, opened at run
//! time: nothing is downloaded or linked at build time.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::session::builder::SessionBuilder;
use ort::value::TensorRef;
use tract_onnx::prelude::{Tensor, tract_ndarray};

use super::BoxError;
use super::runtime::Runtime;

/// The one onnxruntime environment of the process and the library it came from. Only a success
/// is kept: a wrong path tried first does not stop a right one tried later.
static ENVIRONMENT: OnceLock<(PathBuf, ort::environment::Environment)> = OnceLock::new();

/// Held while the library is being opened.
static OPENING: Mutex<()> = Mutex::new(());

/// Opens `library` once per process; later calls must name the same file.
fn environment(library: &Path) -> Result<&'static ort::environment::Environment, String> {
    let loaded = |(from, environment): &'static (PathBuf, _)| {
        if from == library {
            Ok(environment)
        } else {
            Err(format!(
                "onnxruntime is already loaded from {}, not {}",
                from.display(),
                library.display()
            ))
        }
    };
    if !library.is_file() {
        return Err(format!(
            "onnxruntime library {} does not exist",
            library.display()
        ));
    }
    if let Some(made) = ENVIRONMENT.get() {
        return loaded(made);
    }
    let _opening = OPENING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(made) = ENVIRONMENT.get() {
        return loaded(made);
    }
    let builder = ort::init_from(library)
        .map_err(|e| format!("cannot load onnxruntime library {}: {e}", library.display()))?;
    let environment = builder.with_name("edgemass").build().map_err(|e| {
        format!(
            "onnxruntime library {} does not start: {e}",
            library.display()
        )
    })?;
    loaded(ENVIRONMENT.get_or_init(|| (library.to_owned(), environment)))
}

/// An ONNX file in an onnxruntime session.
pub struct OnnxRuntime {
    session: Mutex<Session>,
}

impl OnnxRuntime {
    /// Opens `model` with the onnxruntime of `library`, on `threads` intra-op threads.
    pub fn load(library: &Path, model: &Path, threads: usize) -> Result<OnnxRuntime, String> {
        let failed = format!("onnxruntime cannot load {}", model.display());
        OnnxRuntime::open(library, threads, failed, |b| b.commit_from_file(model))
    }

    /// Opens the ONNX model held in `bytes` (made from `label`) like [`OnnxRuntime::load`].
    pub fn from_memory(
        library: &Path,
        bytes: &[u8],
        label: &Path,
        threads: usize,
    ) -> Result<OnnxRuntime, String> {
        let failed = format!(
            "onnxruntime cannot run the ONNX form of {}",
            label.display()
        );
        OnnxRuntime::open(library, threads, failed, |b| b.commit_from_memory(bytes))
    }

    /// A session on `threads` threads made by `commit`; `failed` begins the error when it fails.
    fn open(
        library: &Path,
        threads: usize,
        failed: String,
        commit: impl FnOnce(&mut SessionBuilder) -> ort::Result<Session>,
    ) -> Result<OnnxRuntime, String> {
        let environment = environment(library)?;
        let session = Session::builder(environment)
            .and_then(|b| b.with_intra_threads(threads.max(1)).map_err(Into::into))
            .and_then(|mut b| commit(&mut b))
            .map_err(|e| format!("{failed}: {e}"))?;
        Ok(OnnxRuntime {
            session: Mutex::new(session),
        })
    }
}

impl Runtime for OnnxRuntime {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn run(&self, input: Tensor) -> Result<Vec<tract_ndarray::ArrayD<f32>>, BoxError> {
        let shape: Vec<i64> = input.shape().iter().map(|d| *d as i64).collect();
        let view = input.to_plain_array_view::<f32>()?;
        let data = view
            .as_slice()
            .ok_or("the input tensor is not contiguous")?;
        let value = TensorRef::from_array_view((shape, data))?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| "the onnxruntime session is poisoned")?;
        let outputs = session.run(ort::inputs![value])?;
        let mut values = Vec::with_capacity(outputs.len());
        for (_, output) in outputs.iter() {
            let (shape, data) = output.try_extract_tensor::<f32>()?;
            let dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
            values.push(tract_ndarray::ArrayD::from_shape_vec(dims, data.to_vec())?);
        }
        Ok(values)
    }
}

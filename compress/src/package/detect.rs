//! A `detect` package (an ONNX detector and the manifest the agent loads it by), and the packages
//! passes derive from it: the same input, decoder, labels and thresholds, a new graph and hash,
//! and the provenance of every pass.

use std::path::{Path, PathBuf};

use edgemass::model::Manifest;
use tract_onnx::pb::ModelProto;

use crate::FileError;
use crate::onnx::graph::Graph;
use crate::onnx::inspect::InputShape;
use crate::package::{PackageError, Provenance};

/// The file name of a package's int8 (QDQ) form, beside `model.onnx`.
pub const INT8_FILE: &str = "model.qdq.onnx";

/// An opened detection package.
pub struct DetectPackage {
    /// The manifest file.
    pub path: PathBuf,
    /// The manifest as the agent reads it (the model path resolved).
    pub manifest: Manifest,
    /// sha256 of the ONNX file, hex.
    pub sha256: String,
    /// Origin, passes and metrics recorded in the manifest.
    pub provenance: Provenance,
    table: toml::Table,
}

impl DetectPackage {
    /// Reads and validates `path` (`NAME.model.toml`, task `detect`) and hashes its model.
    pub fn open(path: &Path) -> Result<DetectPackage, PackageError> {
        let manifest = Manifest::from_path(path)?;
        let file = |reason: String| FileError::new(path, reason);
        let text = std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| file(e.to_string()))?;
        let provenance = match table.get("provenance") {
            Some(p) => p
                .clone()
                .try_into()
                .map_err(|e| file(format!("[provenance]: {e}")))?,
            None => Provenance::default(),
        };
        let bytes = std::fs::read(&manifest.file).map_err(|e| FileError::new(&manifest.file, e))?;
        Ok(DetectPackage {
            path: path.to_owned(),
            sha256: crate::package::sha256_hex(&bytes),
            manifest,
            provenance,
            table,
        })
    }

    /// The ONNX graph; a frozen TensorFlow graph is cut and written as ONNX as the agent does for
    /// onnxruntime ([`edgemass::model::onnx_form`]).
    pub fn graph(&self) -> Result<Graph, PackageError> {
        if self.manifest.tensorflow.is_none() {
            return Ok(Graph::load(&self.manifest.file)?);
        }
        let (proto, _) = edgemass::model::onnx_form(&self.manifest).map_err(|e| {
            FileError::new(&self.manifest.file, format!("{:#}", anyhow::Error::from(e)))
        })?;
        Ok(Graph {
            bytes: prost::Message::encoded_len(&proto) as u64,
            proto,
        })
    }

    /// The provenance of a package derived from this one by `pass`: same origin, this package's
    /// hash as the teacher unless it already names one, the pass appended, no metrics.
    pub fn derived_provenance(&self, pass: String) -> Provenance {
        self.provenance.derived(&self.sha256, pass)
    }

    /// Writes `model` as `out/model.onnx` and a manifest `out/NAME.model.toml` that is this one
    /// with the new name, description, file, hash and provenance; returns the manifest's path.
    /// An `int8` form is written as `out/model.qdq.onnx` and named in the manifest's `[int8]`
    /// table with the tolerance measured for it; without one, the manifest has none (a derived
    /// graph makes any earlier one stale).
    pub fn write_derived(
        &self,
        out: &Path,
        name: &str,
        description: String,
        model: &ModelProto,
        int8: Option<(&ModelProto, f64)>,
        provenance: &Provenance,
    ) -> Result<PathBuf, PackageError> {
        let write = |path: &Path| {
            let path = path.to_owned();
            move |e: std::io::Error| FileError::new(&path, e)
        };
        std::fs::create_dir_all(out).map_err(write(out))?;
        let onnx = out.join("model.onnx");
        let bytes = prost::Message::encode_to_vec(model);
        crate::write_atomic(&onnx, &bytes).map_err(write(&onnx))?;
        let mut table = self.table.clone();
        table.insert("name".into(), name.into());
        table.insert("description".into(), description.into());
        table.insert("file".into(), "model.onnx".into());
        table.insert("sha256".into(), crate::package::sha256_hex(&bytes).into());
        table.remove("int8");
        // Whatever the source was, what is written is ONNX.
        table.remove("tensorflow");
        if let Some((int8, tolerance)) = int8 {
            let path = out.join(INT8_FILE);
            let bytes = prost::Message::encode_to_vec(int8);
            crate::write_atomic(&path, &bytes).map_err(write(&path))?;
            let mut entry = toml::Table::new();
            entry.insert("file".into(), INT8_FILE.into());
            entry.insert("sha256".into(), crate::package::sha256_hex(&bytes).into());
            entry.insert("tolerance".into(), tolerance.into());
            table.insert("int8".into(), entry.into());
        }
        table.insert(
            "provenance".into(),
            toml::Value::try_from(provenance).expect("provenance is plain values"),
        );
        let path = out.join(format!("{name}.model.toml"));
        let text = toml::to_string(&table).expect("a manifest table serialises");
        crate::write_atomic(&path, text.as_bytes()).map_err(write(&path))?;
        Ok(path)
    }
}

/// The input shape a detection manifest feeds its model (batch 1).
pub fn package_input(manifest: &edgemass::model::Manifest) -> InputShape {
    InputShape {
        name: manifest.input.name.clone(),
        dims: edgemass::model::input_shape(manifest).to_vec(),
    }
}

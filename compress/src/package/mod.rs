//! Model packages edgemass loads: the ONNX file, what it needs beside it, and `NAME.model.toml`.

pub mod detect;
pub mod text;
pub mod triton;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use tract_onnx::pb::ModelProto;

use crate::bert::{self, BertError};

/// Errors while opening, running or writing a package of either family.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The manifest, tokenizer or model file is unreadable or malformed.
    #[error("{path}: {reason}")]
    Package {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A detection manifest is unreadable or invalid.
    #[error(transparent)]
    Manifest(#[from] edgemass::model::ManifestError),
    /// The data set could not be read.
    #[error(transparent)]
    Data(#[from] crate::data::corpus::DataError),
    /// The ONNX file is unreadable.
    #[error(transparent)]
    Graph(#[from] crate::onnx::graph::GraphError),
    /// The ONNX file is not an encoder this crate can rebuild, or could not be written.
    #[error(transparent)]
    Encoder(#[from] BertError),
    /// tract could not load or run the model.
    #[error("tract cannot run {path}: {reason}")]
    Tract {
        /// The model file.
        path: PathBuf,
        /// tract's error.
        reason: String,
    },
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] crate::FileError),
}

/// The sha256 of `bytes` in lower-case hex, as manifests record it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where a packaged model came from and what was measured on it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Provenance {
    /// What the weights were made from.
    pub source: String,
    /// Licence of the weights.
    pub license: String,
    /// sha256 of the teacher, when the model was compressed from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher_sha256: Option<String>,
    /// Steps applied, in order.
    pub passes: Vec<String>,
    /// Measured metrics by name.
    pub metrics: BTreeMap<String, f64>,
}

impl Provenance {
    /// The provenance of a model derived by `pass` from a package with this provenance whose
    /// model hashes to `sha256`: same origin, that hash as the teacher unless one is named
    /// already, the pass appended, no metrics (they belonged to the source).
    pub fn derived(&self, sha256: &str, pass: String) -> Provenance {
        let mut provenance = self.clone();
        provenance
            .teacher_sha256
            .get_or_insert_with(|| sha256.to_owned());
        provenance.passes.push(pass);
        provenance.metrics.clear();
        provenance
    }
}

/// A `text-classify` package to write.
pub struct TextClassifier<'a> {
    /// Model id and file stem.
    pub name: &'a str,
    /// One line for humans.
    pub description: String,
    /// The graph: inputs `input_ids`, `attention_mask`, `token_type_ids`; outputs `logits` and
    /// `scores` (see [`bert::onnx::to_onnx`]).
    pub model: &'a ModelProto,
    /// Class names, indexed by class id.
    pub labels: Vec<String>,
    /// `tokenizer.json` to copy into the package.
    pub tokenizer: &'a Path,
    /// Longest token sequence fed to the model.
    pub max_length: usize,
    /// Origin and metrics.
    pub provenance: Provenance,
}

#[derive(Serialize)]
struct Manifest<'a> {
    name: &'a str,
    task: &'static str,
    description: &'a str,
    file: &'static str,
    sha256: String,
    labels: &'a [String],
    text: TextSection,
    provenance: &'a Provenance,
}

#[derive(Serialize)]
struct TextSection {
    tokenizer: &'static str,
    max_length: usize,
    output: &'static str,
}

impl TextClassifier<'_> {
    /// Writes `model.onnx`, `tokenizer.json` and `NAME.model.toml` into `dir`; returns the
    /// manifest's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, BertError> {
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| BertError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(write_err(dir))?;
        let onnx = dir.join("model.onnx");
        bert::write_onnx(self.model, &onnx)?;
        let bytes = std::fs::read(&onnx).map_err(|source| BertError::Read {
            path: onnx.clone(),
            source,
        })?;
        let tokenizer = dir.join("tokenizer.json");
        if self.tokenizer != tokenizer {
            std::fs::copy(self.tokenizer, &tokenizer).map_err(write_err(&tokenizer))?;
        }
        let manifest = Manifest {
            name: self.name,
            task: "text-classify",
            description: &self.description,
            file: "model.onnx",
            sha256: sha256_hex(&bytes),
            labels: &self.labels,
            text: TextSection {
                tokenizer: "tokenizer.json",
                max_length: self.max_length,
                output: bert::onnx::SCORES,
            },
            provenance: &self.provenance,
        };
        let text = toml::to_string(&manifest).expect("manifest fields are plain values");
        let path = dir.join(format!("{}.model.toml", self.name));
        crate::write_atomic(&path, text.as_bytes()).map_err(write_err(&path))?;
        Ok(path)
    }
}

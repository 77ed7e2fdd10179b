//! BERT-family encoders: checkpoints read from safetensors, written out as ONNX graphs, and
//! trained with candle.

pub mod config;
pub mod from_onnx;
pub mod net;
pub mod onnx;
pub mod weights;

use std::path::{Path, PathBuf};

use prost::Message;

pub use config::{BertConfig, Family};
pub use onnx::{Export, Pooling};
pub use weights::Encoder;

/// Errors while importing or exporting an encoder.
#[derive(Debug, thiserror::Error)]
pub enum BertError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// `config.json` is malformed or describes something unsupported.
    #[error("{path}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint lacks a tensor or holds one of the wrong shape or type.
    #[error("{path}: {reason}")]
    Weights {
        /// The checkpoint.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The pooling a sentence-transformers `pooling_config.json` asks for.
pub fn pooling_from_config(path: &Path) -> Result<Pooling, BertError> {
    let text = std::fs::read_to_string(path).map_err(|source| BertError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| BertError::Config {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let flag = |key: &str| value.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    if flag("pooling_mode_mean_tokens") {
        Ok(Pooling::Mean)
    } else if flag("pooling_mode_cls_token") {
        Ok(Pooling::Cls)
    } else {
        Err(BertError::Config {
            path: path.to_owned(),
            reason: "only pooling_mode_mean_tokens or pooling_mode_cls_token is supported".into(),
        })
    }
}

/// Writes `model` as an ONNX file.
pub fn write_onnx(model: &tract_onnx::pb::ModelProto, path: &Path) -> Result<u64, BertError> {
    let bytes = model.encode_to_vec();
    crate::write_atomic(path, &bytes).map_err(|source| BertError::Write {
        path: path.to_owned(),
        source,
    })?;
    Ok(bytes.len() as u64)
}

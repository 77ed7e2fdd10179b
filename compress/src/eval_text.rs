//! Scoring a `text-classify` package with tract on the held-out Rotten Tomatoes split, the same
//! split `train-text` used: what the shipped file does, not what the trainer believed.

use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;

use crate::text_data::{self, DataError};

/// Errors while evaluating.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The manifest, tokenizer or model file is unreadable or malformed.
    #[error("{path}: {reason}")]
    Package {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data set could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// tract could not load or run the model.
    #[error("tract cannot run {path}: {reason}")]
    Tract {
        /// The model file.
        path: PathBuf,
        /// tract's error.
        reason: String,
    },
}

/// Held-out accuracy of a package.
#[derive(Debug, Clone, Copy)]
pub struct Evaluation {
    /// Examples scored.
    pub examples: usize,
    /// Fraction labelled right.
    pub accuracy: f64,
}

/// Runs the package at `manifest` on the held-out part of `data` (80/20 split with `seed`, first
/// `limit` examples).
pub fn evaluate(
    manifest: &Path,
    data: &Path,
    seed: u64,
    limit: Option<usize>,
) -> Result<Evaluation, EvalError> {
    let package = |path: &Path, reason: String| EvalError::Package {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(manifest).map_err(|e| package(manifest, e.to_string()))?;
    let spec: toml::Table = toml::from_str(&text).map_err(|e| package(manifest, e.to_string()))?;
    let field = |path: &[&str]| -> Option<&toml::Value> {
        path.iter()
            .try_fold(None::<&toml::Value>, |at, key| match at {
                None => spec.get(*key).map(Some),
                Some(v) => v.get(*key).map(Some),
            })
            .flatten()
    };
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let (Some(file), Some(tokenizer), Some(max_length), Some(labels)) = (
        field(&["file"]).and_then(|v| v.as_str()),
        field(&["text", "tokenizer"]).and_then(|v| v.as_str()),
        field(&["text", "max_length"]).and_then(|v| v.as_integer()),
        field(&["labels"]).and_then(|v| v.as_array()),
    ) else {
        return Err(package(
            manifest,
            "not a text-classify manifest (needs file, labels, text.tokenizer, text.max_length)"
                .into(),
        ));
    };
    let expected: Vec<&str> = text_data::SENTIMENT_LABELS.to_vec();
    let labels: Vec<&str> = labels.iter().filter_map(|l| l.as_str()).collect();
    if labels != expected {
        return Err(package(
            manifest,
            format!("labels {labels:?} are not the Rotten Tomatoes labels {expected:?}"),
        ));
    }
    let tokenizer_path = dir.join(tokenizer);
    let tokenizer = text_data::tokenizer(&tokenizer_path, max_length as usize, true)
        .map_err(|reason| package(&tokenizer_path, reason))?;
    let model = dir.join(file);
    let tract = |e: TractError| EvalError::Tract {
        path: model.clone(),
        reason: format!("{e:#}"),
    };
    let plan = tract_onnx::onnx()
        .model_for_path(&model)
        .map_err(tract)?
        .with_outputs_by_name(["scores"])
        .map_err(tract)?
        .into_optimized()
        .map_err(tract)?
        .into_runnable()
        .map_err(tract)?;

    let (_, mut test) = text_data::split(&text_data::rotten_tomatoes(data)?, 0.2, seed);
    test.truncate(limit.unwrap_or(usize::MAX));
    let mut right = 0;
    for chunk in test.chunks(32) {
        let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
        let encodings = tokenizer
            .encode_batch(texts, true)
            .map_err(|e| package(&tokenizer_path, e.to_string()))?;
        let (b, s) = (encodings.len(), encodings.first().map_or(0, |e| e.len()));
        let column = |f: fn(&tokenizers::Encoding) -> &[u32]| -> Result<TValue, EvalError> {
            let v: Vec<i64> = encodings
                .iter()
                .flat_map(|e| f(e).iter().map(|&x| i64::from(x)))
                .collect();
            Ok(Tensor::from_shape(&[b, s], &v).map_err(tract)?.into())
        };
        let inputs = tvec![
            column(|e| e.get_ids())?,
            column(|e| e.get_attention_mask())?,
            column(|e| e.get_type_ids())?,
        ];
        let out = plan.run(inputs).map_err(tract)?;
        let scores = out[0].to_plain_array_view::<f32>().map_err(tract)?;
        for (row, example) in scores.outer_iter().zip(chunk) {
            let predicted = usize::from(row[1] > row[0]);
            right += usize::from(predicted == example.label);
        }
    }
    Ok(Evaluation {
        examples: test.len(),
        accuracy: right as f64 / test.len().max(1) as f64,
    })
}

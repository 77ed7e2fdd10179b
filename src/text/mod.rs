//! Text models: the `text-classify` package manifest, its tokenizer, and the classifier that runs
//! a batch of texts through tract with a plan built once.

pub mod classifier;
pub mod manifest;
pub mod plans;
pub mod tokenize;

use std::path::PathBuf;

use crate::model::ModelError;

pub use classifier::{TextClassifier, TextResult};
pub use manifest::TextManifest;
pub use tokenize::{Batch, TextTokenizer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors while loading a text model or classifying texts.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The manifest is invalid, or the ONNX file cannot be loaded, checked or run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The tokenizer file is unreadable or unusable with the manifest's `text.max_length`.
    #[error("cannot load tokenizer {path}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What the tokenizers library reported.
        source: BoxError,
    },
    /// Tokenization of a batch failed.
    #[error("cannot tokenize the texts")]
    Tokenize {
        /// What the tokenizers library reported.
        source: BoxError,
    },
    /// A text is empty or only whitespace.
    #[error("text {} is empty", .index + 1)]
    Empty {
        /// Position of the text in the batch, from 0.
        index: usize,
    },
}

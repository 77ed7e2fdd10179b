//! Pruning: removing the least important heads, channels, layers and tokens.

pub mod bert;
pub mod conv;
pub mod vocab;

use std::path::PathBuf;

use serde::Deserialize;

/// Errors of the pruning passes.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// A plan the pass cannot take.
    #[error("prune: {0}")]
    Plan(String),
    /// The tokenizer is not a WordPiece `tokenizer.json` the vocabulary pass can rewrite.
    #[error("{path}: {reason}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// tract could not give the tensor shapes the analysis needs.
    #[error("prune: cannot infer the tensor shapes")]
    Shapes(#[from] crate::onnx::inspect::InspectError),
    /// A weight the pass must rewrite is not a plain f32 tensor in the file.
    #[error("prune: node `{node}`: weight `{weight}` is not an f32 tensor stored in the file")]
    Weight {
        /// The node reading it.
        node: String,
        /// The initializer.
        weight: String,
    },
    /// No group of channels can shrink.
    #[error("prune: no channels can be removed: {reasons}")]
    Nothing {
        /// Why the largest groups are fixed.
        reasons: String,
    },
    /// The pruned graph does not run, or its outputs changed shape.
    #[error("prune: the pruned graph fails its check")]
    Check(#[from] crate::onnx::tract::CheckError),
    /// The package could not be read or written.
    #[error(transparent)]
    Package(#[from] crate::package::PackageError),
    /// The pruned graph's outputs changed shape.
    #[error("prune: output `{output}` is {got:?} after pruning, {want:?} before")]
    OutputShape {
        /// The output.
        output: String,
        /// Shape after pruning.
        got: Vec<usize>,
        /// Shape before.
        want: Vec<usize>,
    },
}

/// How a structure's importance is measured, for every pruning pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Criterion {
    /// Sum of absolute weights.
    L1,
    /// Euclidean norm of the weights.
    #[default]
    L2,
}

impl Criterion {
    /// The importance of a structure whose weights are `values`.
    pub fn norm(self, values: impl Iterator<Item = f32>) -> f64 {
        match self {
            Criterion::L1 => values.map(|v| f64::from(v.abs())).sum(),
            Criterion::L2 => values
                .map(|v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt(),
        }
    }
}

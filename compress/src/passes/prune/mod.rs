//! Pruning: removing the least important heads, channels, layers and tokens.

pub mod bert;
pub mod conv;
pub mod vocab;

use serde::Deserialize;

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

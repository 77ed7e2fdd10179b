//! What runs a model's network: one interface, so that pre-processing, decoders and the pipeline
//! do not know which engine does the work. tract, pure Rust, is always there.

use std::sync::Arc;

use tract_onnx::prelude::*;

use super::BoxError;

/// An engine holding one network ready to run on image tensors.
pub trait Runtime: Send + Sync {
    /// Its name in logs, stats and metrics.
    fn name(&self) -> &'static str;

    /// Runs one input tensor; the outputs as f32, in the network's output order.
    fn run(&self, input: Tensor) -> Result<Vec<tract_ndarray::ArrayD<f32>>, BoxError>;
}

/// tract, on a plan built once.
pub struct Tract {
    plan: Arc<TypedRunnableModel>,
}

impl Tract {
    /// Runs `plan`.
    pub fn new(plan: Arc<TypedRunnableModel>) -> Tract {
        Tract { plan }
    }
}

impl Runtime for Tract {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn run(&self, input: Tensor) -> Result<Vec<tract_ndarray::ArrayD<f32>>, BoxError> {
        let results = self.plan.run(tvec!(input.into()))?;
        let mut values = Vec::with_capacity(results.len());
        for value in results {
            let value = value.cast_to::<f32>()?;
            values.push(value.to_plain_array_view::<f32>()?.to_owned());
        }
        Ok(values)
    }
}

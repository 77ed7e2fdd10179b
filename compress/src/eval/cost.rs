//! What a package costs to store and run, measured the same way for both families: file size,
//! parameters, multiply-accumulates, tract latency and, when it can run, onnxruntime latency.

use crate::onnx::graph::Graph;

/// Errors while measuring a package of either family.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The package could not be opened or run.
    #[error(transparent)]
    Package(#[from] crate::package::PackageError),
    /// The detector could not run.
    #[error(transparent)]
    Eval(#[from] crate::eval::detect::EvalError),
    /// tract could not time the model.
    #[error(transparent)]
    Check(#[from] crate::onnx::tract::CheckError),
    /// A scratch file could not be written or read.
    #[error(transparent)]
    File(#[from] crate::FileError),
}

/// A package's size and speed.
#[derive(Debug, Clone)]
pub struct Cost {
    /// Size of the ONNX file.
    pub bytes: u64,
    /// Values in initializers.
    pub parameters: u64,
    /// Multiply-accumulates at batch 1, when tract could count them.
    pub macs: Option<u64>,
    /// tract median latency, one thread, ms.
    pub tract_ms: f64,
    /// onnxruntime median latency, ms, when it ran.
    pub ort_ms: Option<f64>,
    /// Why onnxruntime did not run.
    pub ort_missing: Option<String>,
}

impl Cost {
    /// The cost of `graph` with its `macs` and tract latency; onnxruntime not run yet.
    pub fn of(graph: &Graph, macs: Option<u64>, tract_ms: f64) -> Cost {
        Cost {
            bytes: graph.bytes,
            parameters: crate::onnx::inspect::summarize(graph).parameters,
            macs,
            tract_ms,
            ort_ms: None,
            ort_missing: None,
        }
    }

    /// Runs onnxruntime's measurement when `enabled` and records its latency, or why it did not
    /// run; its result is returned for the family's quality figure.
    pub fn with_ort<T>(
        &mut self,
        enabled: bool,
        run: impl FnOnce() -> Result<(f64, T), String>,
    ) -> Option<T> {
        if !enabled {
            self.ort_missing = Some("turned off in [measure]".into());
            return None;
        }
        match run() {
            Ok((latency_ms, result)) => {
                self.ort_ms = Some(latency_ms);
                Some(result)
            }
            Err(reason) => {
                self.ort_missing = Some(reason);
                None
            }
        }
    }

    /// The figures a manifest records, by name.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![
            ("bytes", self.bytes as f64),
            ("parameters", self.parameters as f64),
            ("tract_ms", self.tract_ms),
        ];
        out.extend(self.macs.map(|m| ("macs", m as f64)));
        out.extend(self.ort_ms.map(|ms| ("ort_ms", ms)));
        out
    }
}

/// What a family's measurement of a package gives a recipe's report.
pub trait Measured {
    /// Size and speed.
    fn cost(&self) -> &Cost;
    /// The quality the plot shows (held-out accuracy, mAP), as a fraction.
    fn quality(&self) -> f64;
    /// What goes into the package's `[provenance.metrics]`, by name.
    fn metrics(&self) -> Vec<(&'static str, f64)>;
}

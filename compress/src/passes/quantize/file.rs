//! Quantizing a model file: quantize, check every output against the float model in tract, time
//! the forms on request, and write the result only when the check passed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::Tensor;

use super::{Mode, Options, QuantizePassError, QuantizedWeight, SkipReason, Skipped, quantize};
use crate::onnx::graph::Graph;
use crate::onnx::tract::{
    CheckError, OutputCheck, SampleSpec, compare, median_latency, sample_inputs,
};

/// Outputs whose cosine similarity to the float model falls below this stop the write, unless
/// [`Check::min_cosine`] says otherwise.
pub const DEFAULT_MIN_COSINE: f32 = 0.99;

/// How the quantized model is checked and measured before it is written (the check flags of
/// `edgemass-compress quantize`).
#[derive(Debug, Clone, clap::Args)]
pub struct Check {
    /// Shape of an input for the check, NAME=DIMS[:LO..HI] (e.g. input_ids=1x64:0..1000); needed
    /// for inputs with symbolic dims; repeatable.
    #[arg(long = "sample", value_name = "NAME=DIMS")]
    pub samples: Vec<SampleSpec>,
    /// Refuse to write when an output's cosine similarity to the float model is lower.
    #[arg(long, default_value_t = DEFAULT_MIN_COSINE)]
    pub min_cosine: f32,
    /// Also time the float model and every quantized form in tract (median of RUNS, 1 thread).
    #[arg(long = "bench", value_name = "RUNS")]
    pub bench_runs: Option<usize>,
}

impl Check {
    /// Inputs from declared shapes, cosine ≥ [`DEFAULT_MIN_COSINE`], no timing.
    pub fn new() -> Check {
        Check {
            samples: Vec::new(),
            min_cosine: DEFAULT_MIN_COSINE,
            bench_runs: None,
        }
    }
}

impl Default for Check {
    fn default() -> Check {
        Check::new()
    }
}

/// One form of the model timed in tract.
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// `float`, or the [`Mode`] name.
    pub form: &'static str,
    /// Encoded size.
    pub bytes: u64,
    /// Median single-thread run time.
    pub median: Duration,
    /// Lowest cosine similarity to the float model over all outputs.
    pub cosine: f32,
    /// Largest absolute error over all outputs.
    pub max_abs_error: f32,
}

/// What [`quantize_file`] did and measured.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file written.
    pub output: PathBuf,
    /// The form written.
    pub mode: Mode,
    /// Size of the float model.
    pub input_bytes: u64,
    /// Size of the quantized model.
    pub output_bytes: u64,
    /// Weights stored as int8.
    pub weights: Vec<QuantizedWeight>,
    /// Supported weights left float.
    pub skipped: Vec<Skipped>,
    /// Every output against the float model.
    pub outputs: Vec<OutputCheck>,
    /// Runs per form when timed.
    pub bench_runs: usize,
    /// Timings, float first; empty unless asked for.
    pub bench: Vec<BenchRow>,
}

/// Quantizes the model at `input`, checks it against the float model in tract on one sample,
/// optionally times every form, and writes it atomically to `output`.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    options: &Options,
    check: &Check,
) -> Result<FileReport, QuantizePassError> {
    let float = Graph::load(input)?;
    let sample = sample_inputs(&float.proto, &check.samples)?;
    let refused = |source| QuantizePassError::Refused {
        path: input.to_owned(),
        source,
    };
    let q = quantize(&float.proto, options).map_err(refused)?;
    let outputs = compare(&float.proto, &q.model, std::slice::from_ref(&sample))?;
    for o in &outputs {
        if o.cosine.is_nan() || o.cosine < check.min_cosine {
            return Err(QuantizePassError::Broken {
                output: o.name.clone(),
                cosine: o.cosine,
                min_cosine: check.min_cosine,
            });
        }
    }
    let bytes = q.model.encode_to_vec();
    let mut bench = Vec::new();
    if let Some(runs) = check.bench_runs {
        bench.push(BenchRow {
            form: "float",
            bytes: float.bytes,
            median: median_latency(&float.proto, &sample, runs, "float")?,
            cosine: 1.0,
            max_abs_error: 0.0,
        });
        for mode in Mode::ALL {
            let other;
            let form = if mode == options.mode {
                &q
            } else {
                match quantize(
                    &float.proto,
                    &Options {
                        mode,
                        ..options.clone()
                    },
                ) {
                    Ok(f) => {
                        other = f;
                        &other
                    }
                    Err(_) => continue,
                }
            };
            if mode.is_dynamic() && form.weights.iter().all(|w| w.integer_nodes == 0) {
                continue;
            }
            bench.push(time_form(&float.proto, &form.model, &sample, runs, mode)?);
        }
    }
    crate::write_atomic(output, &bytes).map_err(|e| crate::FileError::new(output, e))?;
    Ok(FileReport {
        output: output.to_owned(),
        mode: options.mode,
        input_bytes: float.bytes,
        output_bytes: bytes.len() as u64,
        weights: q.weights,
        skipped: q.skipped,
        outputs,
        bench_runs: check.bench_runs.unwrap_or(0),
        bench,
    })
}

fn time_form(
    float: &ModelProto,
    model: &ModelProto,
    sample: &[Tensor],
    runs: usize,
    mode: Mode,
) -> Result<BenchRow, CheckError> {
    let checks = compare(float, model, std::slice::from_ref(&sample.to_vec()))?;
    Ok(BenchRow {
        form: mode.name(),
        bytes: model.encoded_len() as u64,
        median: median_latency(model, sample, runs, mode.name())?,
        cosine: checks.iter().map(|c| c.cosine).fold(1.0, f32::min),
        max_abs_error: checks.iter().map(|c| c.max_abs_error).fold(0.0, f32::max),
    })
}

impl FileReport {
    /// A few lines for the terminal: what was quantized, sizes, errors, timings.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let values: usize = self.weights.iter().map(|w| w.elements).sum();
        let integer: usize = self.weights.iter().map(|w| w.integer_nodes).sum();
        let _ = write!(
            s,
            "{} mode: {} weights ({values} values) stored as int8",
            self.mode.name(),
            self.weights.len()
        );
        if integer > 0 {
            let _ = write!(s, ", {integer} MatMuls run as MatMulInteger");
        }
        s.push('\n');
        let count = |r| self.skipped.iter().filter(|k| k.reason == r).count();
        let kept = [
            (SkipReason::KeepFloat, "kept float on request"),
            (SkipReason::Small, "too small"),
            (SkipReason::MixedAxes, "with users on different axes"),
            (SkipReason::NotFloat, "not float"),
        ]
        .into_iter()
        .filter(|(r, _)| count(*r) > 0)
        .map(|(r, what)| format!("{} {what}", count(r)))
        .collect::<Vec<_>>();
        if !kept.is_empty() {
            let _ = writeln!(s, "left float: {}", kept.join(", "));
        }
        let _ = writeln!(
            s,
            "bytes: {} -> {} ({:.2}x smaller)",
            self.input_bytes,
            self.output_bytes,
            self.input_bytes as f64 / self.output_bytes.max(1) as f64
        );
        for o in &self.outputs {
            let _ = writeln!(
                s,
                "output {}: max |error| {:.3e} (max |value| {:.3e}), cosine {:.6}",
                o.name, o.max_abs_error, o.max_abs_reference, o.cosine
            );
        }
        if !self.bench.is_empty() {
            let _ = writeln!(
                s,
                "tract, 1 thread, median of {} runs:\n{:<11} {:>12} {:>8} {:>9} {:>11}",
                self.bench_runs, "form", "bytes", "ms", "cosine", "max |error|"
            );
            for r in &self.bench {
                let _ = writeln!(
                    s,
                    "{:<11} {:>12} {:>8.2} {:>9.6} {:>11.3e}",
                    r.form,
                    r.bytes,
                    r.median.as_secs_f64() * 1e3,
                    r.cosine,
                    r.max_abs_error
                );
            }
        }
        let _ = write!(s, "wrote {}", self.output.display());
        s
    }
}

//! Checking a rewritten model against its float original in tract: deterministic sample inputs,
//! per-output error and cosine similarity, and single-thread latency.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tract_onnx::pb::{ModelProto, tensor_proto::DataType};
use tract_onnx::prelude::*;

use crate::onnx::graph::dims;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs before the timed ones, so allocation and caches settle.
const WARM_UP_RUNS: usize = 2;

/// Errors while making inputs for, running or comparing models.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A sample spec does not parse.
    #[error("sample `{spec}`: expected NAME=DIMS or NAME=DIMS:LO..HI, e.g. input_ids=1x64:0..1000")]
    SampleSyntax {
        /// The spec as given.
        spec: String,
    },
    /// A sample names no model input.
    #[error("sample `{name}`: the model has no such input (inputs: {inputs})")]
    UnknownInput {
        /// The name given.
        name: String,
        /// The model's inputs, comma-separated.
        inputs: String,
    },
    /// An input without a sample has symbolic or unknown dims.
    #[error("input `{name}` has no fixed shape [{dims}]; give one as a sample, e.g. {name}=1x64")]
    NoShape {
        /// The input.
        name: String,
        /// Its declared dims.
        dims: String,
    },
    /// An input type samples cannot be made for.
    #[error("input `{name}` is {dtype}; samples are made for FLOAT, DOUBLE, INT64 and INT32 only")]
    InputType {
        /// The input.
        name: String,
        /// Its ONNX type.
        dtype: String,
    },
    /// The sample holds a different number of tensors than the model has inputs.
    #[error("{given} input tensors given, the {model} model takes {expected}")]
    InputCount {
        /// Which model.
        model: String,
        /// Tensors given.
        given: usize,
        /// Model inputs.
        expected: usize,
    },
    /// No sample inputs at all.
    #[error("no sample inputs to compare the models on")]
    NoSamples,
    /// The two models' outputs differ in count or shape.
    #[error("output `{name}`: shape {candidate:?} differs from the float model's {reference:?}")]
    OutputShape {
        /// The output.
        name: String,
        /// Its shape in the float model.
        reference: Vec<usize>,
        /// Its shape in the rewritten model.
        candidate: Vec<usize>,
    },
    /// tract failed on a model.
    #[error("tract cannot {stage} the {model} model")]
    Tract {
        /// Which model.
        model: String,
        /// What tract was doing.
        stage: &'static str,
        /// tract's error.
        source: BoxError,
    },
}

/// How to fill one model input: `NAME=DIMS[:LO..HI]`, dims joined by `x`.
///
/// Values are drawn deterministically in `[LO, HI)`, seeded by the input's position: floats by
/// default in `[-1, 1)`, integers (truncated) by default in `[0, 1000)`, e.g. token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSpec {
    /// The input's name.
    pub name: String,
    /// Its shape.
    pub dims: Vec<usize>,
    /// The value range, if not the default.
    pub range: Option<(f64, f64)>,
}

impl FromStr for SampleSpec {
    type Err = CheckError;

    fn from_str(spec: &str) -> Result<SampleSpec, CheckError> {
        let bad = || CheckError::SampleSyntax { spec: spec.into() };
        let (name, rest) = spec.rsplit_once('=').ok_or_else(bad)?;
        let (shape, range) = match rest.split_once(':') {
            Some((shape, range)) => (shape, Some(range)),
            None => (rest, None),
        };
        let dims = shape
            .split('x')
            .map(|d| d.trim().parse::<usize>().ok().filter(|&d| d > 0))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(bad)?;
        let range = match range {
            None => None,
            Some(r) => {
                let (lo, hi) = r.split_once("..").ok_or_else(bad)?;
                let (lo, hi) = (lo.trim().parse::<f64>(), hi.trim().parse::<f64>());
                match (lo, hi) {
                    (Ok(lo), Ok(hi)) if lo < hi => Some((lo, hi)),
                    _ => return Err(bad()),
                }
            }
        };
        if name.is_empty() {
            return Err(bad());
        }
        Ok(SampleSpec {
            name: name.into(),
            dims,
            range,
        })
    }
}

/// One set of inputs for `model`: from `specs` where given, else from the input's declared
/// shape when every dim is fixed.
pub fn sample_inputs(model: &ModelProto, specs: &[SampleSpec]) -> Result<Vec<Tensor>, CheckError> {
    let Some(graph) = model.graph.as_ref() else {
        return Ok(Vec::new());
    };
    let inputs = crate::onnx::graph::data_inputs(graph);
    for spec in specs {
        if !inputs.iter().any(|i| i.name == spec.name) {
            return Err(CheckError::UnknownInput {
                name: spec.name.clone(),
                inputs: inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let mut tensors = Vec::with_capacity(inputs.len());
    for (position, input) in inputs.iter().enumerate() {
        let spec = specs.iter().find(|s| s.name == input.name);
        let shape = match spec {
            Some(s) => s.dims.clone(),
            None => {
                let declared = dims(input);
                declared
                    .iter()
                    .map(|d| d.parse::<usize>().ok().filter(|&d| d > 0))
                    .collect::<Option<Vec<usize>>>()
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| CheckError::NoShape {
                        name: input.name.clone(),
                        dims: declared.join(", "),
                    })?
            }
        };
        let elem_type = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(tract_onnx::pb::type_proto::Value::TensorType(t)) => t.elem_type,
            _ => DataType::Undefined as i32,
        };
        let dtype = DataType::try_from(elem_type).unwrap_or(DataType::Undefined);
        let integer = matches!(dtype, DataType::Int64 | DataType::Int32);
        let (lo, hi) =
            spec.and_then(|s| s.range)
                .unwrap_or(if integer { (0.0, 1000.0) } else { (-1.0, 1.0) });
        let mut draw = SplitMix64(position as u64);
        let count: usize = shape.iter().product();
        let values = (0..count).map(|_| lo + draw.unit() * (hi - lo));
        let tensor = match dtype {
            DataType::Float => {
                Tensor::from_shape(&shape, &values.map(|v| v as f32).collect::<Vec<_>>())
            }
            DataType::Double => Tensor::from_shape(&shape, &values.collect::<Vec<_>>()),
            DataType::Int64 => Tensor::from_shape(
                &shape,
                &values.map(|v| v.floor() as i64).collect::<Vec<_>>(),
            ),
            DataType::Int32 => Tensor::from_shape(
                &shape,
                &values.map(|v| v.floor() as i32).collect::<Vec<_>>(),
            ),
            other => {
                return Err(CheckError::InputType {
                    name: input.name.clone(),
                    dtype: other.as_str_name().into(),
                });
            }
        };
        tensors.push(tensor.map_err(tract_error("sample", "build an input for"))?);
    }
    Ok(tensors)
}

/// Error of one output of a rewritten model against the float model, worst over the samples.
#[derive(Debug, Clone)]
pub struct OutputCheck {
    /// The output's name.
    pub name: String,
    /// Largest absolute difference of any value.
    pub max_abs_error: f32,
    /// Largest absolute value of the float model's output (for scale).
    pub max_abs_reference: f32,
    /// Lowest cosine similarity of the flattened outputs (NaN if the rewrite produced NaN).
    pub cosine: f32,
}

/// Runs `reference` and `candidate` in tract on every sample and compares every output.
pub fn compare(
    reference: &ModelProto,
    candidate: &ModelProto,
    samples: &[Vec<Tensor>],
) -> Result<Vec<OutputCheck>, CheckError> {
    let mut checks = output_checks(reference);
    let mut plans: Option<Plans> = None;
    for sample in samples {
        let shapes: Vec<Vec<usize>> = sample.iter().map(|t| t.shape().to_vec()).collect();
        let current = match plans.take() {
            Some(p) if p.shapes == shapes => plans.insert(p),
            _ => plans.insert(Plans {
                shapes,
                reference: plan(reference, sample, "float")?,
                candidate: plan(candidate, sample, "quantized")?,
            }),
        };
        let expected = execute(&current.reference, sample, "float")?;
        let got = execute(&current.candidate, sample, "quantized")?;
        accumulate(&mut checks, &expected, &got)?;
    }
    if plans.is_none() {
        return Err(CheckError::NoSamples);
    }
    Ok(checks)
}

/// A fresh check per output of `reference`.
fn output_checks(reference: &ModelProto) -> Vec<OutputCheck> {
    reference
        .graph
        .iter()
        .flat_map(|g| &g.output)
        .map(|o| OutputCheck {
            name: o.name.clone(),
            max_abs_error: 0.0,
            max_abs_reference: 0.0,
            cosine: 1.0,
        })
        .collect()
}

/// Folds one sample's outputs into the running per-output checks.
fn accumulate(
    checks: &mut [OutputCheck],
    expected: &[Tensor],
    got: &[Tensor],
) -> Result<(), CheckError> {
    for (check, (e, g)) in checks.iter_mut().zip(expected.iter().zip(got)) {
        if e.shape() != g.shape() {
            return Err(CheckError::OutputShape {
                name: check.name.clone(),
                reference: e.shape().to_vec(),
                candidate: g.shape().to_vec(),
            });
        }
        let (e, g) = (values(e, "float")?, values(g, "quantized")?);
        let (mut dot, mut ee, mut gg) = (0f64, 0f64, 0f64);
        for (&a, &b) in e.iter().zip(&g) {
            check.max_abs_error = check.max_abs_error.max((a - b).abs());
            if (a - b).is_nan() {
                check.max_abs_error = f32::NAN;
            }
            check.max_abs_reference = check.max_abs_reference.max(a.abs());
            dot += a as f64 * b as f64;
            ee += a as f64 * a as f64;
            gg += b as f64 * b as f64;
        }
        let cosine = if ee == 0.0 && gg == 0.0 {
            1.0
        } else {
            (dot / (ee.sqrt() * gg.sqrt())) as f32
        };
        check.cosine = if cosine.is_nan() || check.cosine.is_nan() {
            f32::NAN
        } else {
            check.cosine.min(cosine)
        };
    }
    Ok(())
}

/// Compares an already planned candidate (e.g. loaded from NNEF) with `reference` on samples
/// of one shape.
pub fn compare_planned(
    reference: &ModelProto,
    candidate: &Arc<TypedRunnableModel>,
    samples: &[Vec<Tensor>],
) -> Result<Vec<OutputCheck>, CheckError> {
    let first = samples.first().ok_or(CheckError::NoSamples)?;
    let reference_plan = plan(reference, first, "float")?;
    let mut checks = output_checks(reference);
    for sample in samples {
        let expected = execute(&reference_plan, sample, "float")?;
        let got = execute(candidate, sample, "quantized")?;
        accumulate(&mut checks, &expected, &got)?;
    }
    Ok(checks)
}

/// Median wall time of `runs` runs of an already planned model, after warm-up.
pub fn median_latency_planned(
    plan: &Arc<TypedRunnableModel>,
    inputs: &[Tensor],
    runs: usize,
    label: &str,
) -> Result<Duration, CheckError> {
    for _ in 0..WARM_UP_RUNS {
        execute(plan, inputs, label)?;
    }
    let mut times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            execute(plan, inputs, label).map(|_| start.elapsed())
        })
        .collect::<Result<_, _>>()?;
    times.sort();
    Ok(times[times.len() / 2])
}

/// Plans of both models for one set of input shapes.
struct Plans {
    shapes: Vec<Vec<usize>>,
    reference: Arc<TypedRunnableModel>,
    candidate: Arc<TypedRunnableModel>,
}

/// Runs `model` once in tract on `inputs` and returns its outputs.
pub fn run(model: &ModelProto, inputs: &[Tensor]) -> Result<Vec<Tensor>, CheckError> {
    execute(&plan(model, inputs, "given")?, inputs, "given")
}

/// Median wall time of `runs` single-thread tract runs of `model` on `inputs`, after warm-up.
pub fn median_latency(
    model: &ModelProto,
    inputs: &[Tensor],
    runs: usize,
    label: &str,
) -> Result<Duration, CheckError> {
    median_latency_planned(&plan(model, inputs, label)?, inputs, runs, label)
}

pub(crate) fn tract_error(
    model: &str,
    stage: &'static str,
) -> impl FnOnce(TractError) -> CheckError {
    let model = model.to_string();
    move |e| CheckError::Tract {
        model,
        stage,
        source: e.into(),
    }
}

/// tract's optimised plan of `model` for inputs shaped and typed like `inputs`. Declared output
/// shapes and value infos are ignored: symbolic batch dims would not unify with fixed inputs.
pub(crate) fn plan(
    model: &ModelProto,
    inputs: &[Tensor],
    label: &str,
) -> Result<Arc<TypedRunnableModel>, CheckError> {
    let mut parsed = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
        .model_for_proto_model(model)
        .map_err(tract_error(label, "import"))?;
    if parsed.inputs.len() != inputs.len() {
        return Err(CheckError::InputCount {
            model: label.into(),
            given: inputs.len(),
            expected: parsed.inputs.len(),
        });
    }
    for (i, t) in inputs.iter().enumerate() {
        parsed = parsed
            .with_input_fact(i, InferenceFact::dt_shape(t.datum_type(), t.shape()))
            .map_err(tract_error(label, "fix the input shapes of"))?;
    }
    edgemass::model::short_softmax::into_optimized(parsed)
        .map_err(tract_error(label, "optimise"))?
        .into_runnable()
        .map_err(tract_error(label, "plan"))
}

pub(crate) fn execute(
    plan: &Arc<TypedRunnableModel>,
    inputs: &[Tensor],
    label: &str,
) -> Result<Vec<Tensor>, CheckError> {
    let inputs: TVec<TValue> = inputs.iter().map(|t| t.clone().into()).collect();
    let outputs = plan.run(inputs).map_err(tract_error(label, "run"))?;
    Ok(outputs.into_iter().map(|v| v.into_tensor()).collect())
}

fn values(t: &Tensor, label: &str) -> Result<Vec<f32>, CheckError> {
    let t = t
        .cast_to::<f32>()
        .map_err(tract_error(label, "read an output of"))?;
    let view = t
        .to_plain_array_view::<f32>()
        .map_err(tract_error(label, "read an output of"))?;
    Ok(view.iter().copied().collect())
}

/// SplitMix64: a tiny, well-mixed generator, so samples are the same on every machine.
struct SplitMix64(u64);

impl SplitMix64 {
    /// A value in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_specs_parse_names_with_colons_and_ranges() {
        let s: SampleSpec = "input:0=1x256x256x3".parse().unwrap();
        assert_eq!(s.name, "input:0");
        assert_eq!(s.dims, vec![1, 256, 256, 3]);
        assert_eq!(s.range, None);
        let s: SampleSpec = "attention_mask=1x64:1..2".parse().unwrap();
        assert_eq!(s.range, Some((1.0, 2.0)));
        for bad in ["x", "=1x2", "a=1x0", "a=1xb", "a=2:3..1", "a=2:3"] {
            assert!(bad.parse::<SampleSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn draws_are_deterministic_and_in_range() {
        let mut a = SplitMix64(3);
        let mut b = SplitMix64(3);
        for _ in 0..1000 {
            let u = a.unit();
            assert_eq!(u, b.unit());
            assert!((0.0..1.0).contains(&u));
        }
    }
}

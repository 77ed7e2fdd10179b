//! What `edgemass serve` knows of one model, in Triton's terms: its inputs and outputs (name,
//! datatype, dims without the batch dimension when `max_batch_size` > 0), and whether requests
//! may be batched. Checks requests against it; pure.

use std::time::Duration;

use crate::fallback::protocol::{DataType, ModelMetadata, Tensor, TensorMetadata};

/// An input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Name.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Dimensions after the batch dimension (all of them when the model is not batched); `-1`
    /// where any size goes.
    pub dims: Vec<i64>,
}

/// Dynamic batching: requests that arrive together run as one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Longest a request waits for others to join its batch.
    pub max_queue_delay: Duration,
}

/// One model's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// Name in URLs.
    pub name: String,
    /// Reported in metadata.
    pub platform: String,
    /// Most rows of a batch; 0 means the model has no batch dimension.
    pub max_batch_size: usize,
    /// Inputs, all required.
    pub inputs: Vec<TensorSpec>,
    /// Outputs.
    pub outputs: Vec<TensorSpec>,
    /// Dynamic batching; `None` runs each request alone.
    pub batching: Option<Batching>,
}

impl ModelConfig {
    /// Full shape of a tensor as metadata shows it: `-1` first for the batch dimension.
    pub fn shape(&self, spec: &TensorSpec) -> Vec<i64> {
        let batch = (self.max_batch_size > 0).then_some(-1);
        batch.into_iter().chain(spec.dims.iter().copied()).collect()
    }

    /// The same model with its batch dimension fixed at 1: requests run one at a time.
    pub fn unbatched(&self) -> ModelConfig {
        let batch = usize::from(self.max_batch_size > 0);
        let fixed = |specs: &[TensorSpec]| {
            specs
                .iter()
                .map(|s| TensorSpec {
                    dims: std::iter::repeat_n(1, batch)
                        .chain(s.dims.iter().copied())
                        .collect(),
                    ..s.clone()
                })
                .collect()
        };
        ModelConfig {
            inputs: fixed(&self.inputs),
            outputs: fixed(&self.outputs),
            max_batch_size: 0,
            batching: None,
            ..self.clone()
        }
    }

    /// The answer of `GET /v2/models/NAME`.
    pub fn metadata(&self, version: &str) -> ModelMetadata {
        let describe = |specs: &[TensorSpec]| {
            specs
                .iter()
                .map(|s| TensorMetadata {
                    name: s.name.clone(),
                    datatype: s.datatype.name().to_owned(),
                    shape: self.shape(s),
                })
                .collect()
        };
        ModelMetadata {
            name: self.name.clone(),
            versions: vec![version.to_owned()],
            platform: self.platform.clone(),
            inputs: describe(&self.inputs),
            outputs: describe(&self.outputs),
        }
    }

    /// Checks a request's inputs and puts them in the config's order; returns them with the
    /// request's batch rows (1 for a model without a batch dimension).
    pub fn check(&self, mut inputs: Vec<Tensor>) -> Result<(Vec<Tensor>, usize), String> {
        if let Some(extra) = inputs
            .iter()
            .find(|t| !self.inputs.iter().any(|s| s.name == t.name))
        {
            return Err(format!(
                "model `{}` has no input `{}` (its inputs are {:?})",
                self.name,
                extra.name,
                self.inputs.iter().map(|s| &s.name).collect::<Vec<_>>()
            ));
        }
        let mut ordered = Vec::with_capacity(self.inputs.len());
        let mut rows = None;
        for spec in &self.inputs {
            let at = inputs
                .iter()
                .position(|t| t.name == spec.name)
                .ok_or_else(|| format!("input `{}` is missing", spec.name))?;
            let tensor = inputs.swap_remove(at);
            let datatype = tensor.values.datatype();
            if datatype != spec.datatype {
                return Err(format!(
                    "input `{}` must be {}, not {}",
                    spec.name,
                    spec.datatype.name(),
                    datatype.name()
                ));
            }
            let wanted = self.shape(spec);
            let fits = tensor.shape.len() == wanted.len()
                && tensor
                    .shape
                    .iter()
                    .zip(&wanted)
                    .all(|(d, w)| *w == -1 || usize::try_from(*w) == Ok(*d));
            if !fits {
                return Err(format!(
                    "input `{}` has shape {:?}, the model takes {wanted:?}",
                    spec.name, tensor.shape
                ));
            }
            if tensor.shape.contains(&0) {
                return Err(format!("input `{}` is empty", spec.name));
            }
            if self.max_batch_size > 0 {
                let batch = tensor.shape[0];
                if batch > self.max_batch_size {
                    return Err(format!(
                        "input `{}` has a batch of {batch}, more than max_batch_size {}",
                        spec.name, self.max_batch_size
                    ));
                }
                if *rows.get_or_insert(batch) != batch {
                    return Err(format!(
                        "input `{}` has a batch of {batch}, other inputs of {}",
                        spec.name,
                        rows.unwrap_or(0)
                    ));
                }
            }
            ordered.push(tensor);
        }
        Ok((ordered, rows.unwrap_or(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fallback::protocol::Values;

    fn config(max_batch_size: usize) -> ModelConfig {
        ModelConfig {
            name: "m".into(),
            platform: "onnxruntime_onnx".into(),
            max_batch_size,
            inputs: vec![
                TensorSpec {
                    name: "ids".into(),
                    datatype: DataType::Int64,
                    dims: vec![-1],
                },
                TensorSpec {
                    name: "mask".into(),
                    datatype: DataType::Int64,
                    dims: vec![-1],
                },
            ],
            outputs: vec![TensorSpec {
                name: "scores".into(),
                datatype: DataType::Fp32,
                dims: vec![2],
            }],
            batching: None,
        }
    }

    fn ids(name: &str, shape: &[usize]) -> Tensor {
        Tensor {
            name: name.into(),
            shape: shape.to_vec(),
            values: Values::Int64(vec![1; shape.iter().product()]),
        }
    }

    #[test]
    fn metadata_shows_the_batch_dimension() {
        let m = config(8).metadata("1");
        assert_eq!(m.inputs[0].shape, [-1, -1]);
        assert_eq!(m.outputs[0].shape, [-1, 2]);
        assert_eq!(m.inputs[0].datatype, "INT64");
        assert_eq!(config(0).metadata("1").outputs[0].shape, [2]);
    }

    #[test]
    fn an_unbatched_copy_fixes_the_batch_at_one() {
        let c = config(8).unbatched();
        assert_eq!((c.max_batch_size, c.batching), (0, None));
        assert_eq!(c.inputs[0].dims, [1, -1]);
        assert_eq!(c.outputs[0].dims, [1, 2]);
        assert_eq!(c.unbatched(), c);
    }

    #[test]
    fn inputs_are_ordered_and_their_rows_counted() {
        let (inputs, rows) = config(8)
            .check(vec![ids("mask", &[3, 5]), ids("ids", &[3, 5])])
            .unwrap();
        assert_eq!(rows, 3);
        assert_eq!(inputs[0].name, "ids");
    }

    #[test]
    fn wrong_requests_are_named() {
        let float = Tensor {
            name: "ids".into(),
            shape: vec![1, 2],
            values: Values::Fp32(vec![0.0; 2]),
        };
        let cases = [
            (vec![ids("ids", &[1, 2])], "input `mask` is missing"),
            (
                vec![ids("ids", &[1, 2]), ids("mask", &[1, 2]), ids("x", &[1])],
                "no input `x`",
            ),
            (vec![float, ids("mask", &[1, 2])], "must be INT64, not FP32"),
            (
                vec![ids("ids", &[1, 2, 3]), ids("mask", &[1, 2])],
                "the model takes [-1, -1]",
            ),
            (
                vec![ids("ids", &[9, 2]), ids("mask", &[9, 2])],
                "more than max_batch_size 8",
            ),
            (
                vec![ids("ids", &[1, 2]), ids("mask", &[2, 2])],
                "other inputs of 1",
            ),
            (vec![ids("ids", &[1, 0]), ids("mask", &[1, 2])], "is empty"),
        ];
        for (inputs, expected) in cases {
            let err = config(8).check(inputs).unwrap_err();
            assert!(err.contains(expected), "{err} (wanted {expected})");
        }
    }
}

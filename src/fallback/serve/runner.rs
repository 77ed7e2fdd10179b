//! One model of the repository run by tract. The plan is built once, with a symbolic batch
//! dimension (and symbolic sizes where the config says `-1`), so one run takes a whole batch.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use super::config::ModelConfig;
use crate::fallback::protocol::{self, DataType, Values};
use crate::model::declared::{self, Dim};
use crate::model::{ModelError, quirks};

/// A loaded model.
pub struct Runner {
    config: ModelConfig,
    plan: Arc<TypedRunnableModel>,
    /// For each graph input in order, its index in the config's inputs.
    feeds: Vec<usize>,
}

fn datum(datatype: DataType) -> DatumType {
    match datatype {
        DataType::Bool => bool::datum_type(),
        DataType::Uint8 => u8::datum_type(),
        DataType::Int8 => i8::datum_type(),
        DataType::Int32 => i32::datum_type(),
        DataType::Int64 => i64::datum_type(),
        DataType::Fp32 => f32::datum_type(),
        DataType::Fp64 => f64::datum_type(),
    }
}

impl Runner {
    /// Checks the graph's inputs and outputs against `config`, fixes known import quirks and
    /// builds the plan.
    pub fn load(
        config: ModelConfig,
        mut proto: ModelProto,
        path: &Path,
    ) -> Result<Runner, ModelError> {
        let mismatch = |reason: String| ModelError::Mismatch {
            path: path.to_owned(),
            reason,
        };
        let graph = crate::model::graph(&proto, path)?;
        let inputs = declared::inputs(graph);
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        let mut feeds = Vec::with_capacity(inputs.len());
        let mut facts = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let index = config
                .inputs
                .iter()
                .position(|s| s.name == input.name)
                .ok_or_else(|| {
                    mismatch(format!(
                        "the model's input `{}` is not in the config",
                        input.name
                    ))
                })?;
            feeds.push(index);
            facts.push((
                config.shape(&config.inputs[index]),
                declared::dims(input).unwrap_or_default(),
            ));
        }
        if let Some(spec) = config
            .inputs
            .iter()
            .find(|s| !names.contains(&s.name.as_str()))
        {
            return Err(mismatch(format!(
                "the config's input `{}` is not one of the model's {names:?}",
                spec.name
            )));
        }
        let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        if let Some(spec) = config
            .outputs
            .iter()
            .find(|s| !outputs.contains(&s.name.as_str()))
        {
            return Err(mismatch(format!(
                "the config's output `{}` is not one of the model's {outputs:?}",
                spec.name
            )));
        }
        for fix in quirks::apply(&mut proto) {
            tracing::debug!(model = %config.name, "{fix}");
        }
        let tract_err = |stage| ModelError::tract(path, stage);
        let mut model = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .with_ignore_value_info(true)
            .parse(&proto, path.parent().and_then(Path::to_str))
            .map_err(tract_err("import"))?
            .model;
        for (i, ((shape, declared), &index)) in facts.iter().zip(&feeds).enumerate() {
            let spec = &config.inputs[index];
            let mut dims: TVec<TDim> = TVec::new();
            for (k, d) in shape.iter().enumerate() {
                let dim = match (usize::try_from(*d), declared.get(k)) {
                    (Ok(n), _) => TDim::Val(n as i64),
                    (Err(_), Some(Dim::Fixed(v))) => {
                        return Err(mismatch(format!(
                            "input `{}` has dimension {k} fixed at {v} in the model, `-1` in the config{}",
                            spec.name,
                            if k == 0 && config.max_batch_size > 0 {
                                " (a model without a batch dimension needs max_batch_size 0)"
                            } else {
                                ""
                            }
                        )));
                    }
                    (Err(_), Some(Dim::Named(p))) => TDim::Sym(model.symbols.sym(p)),
                    (Err(_), _) => TDim::Sym(model.symbols.sym(&format!("{}_{k}", spec.name))),
                };
                dims.push(dim);
            }
            model = model
                .with_input_fact(i, InferenceFact::dt_shape(datum(spec.datatype), dims))
                .map_err(tract_err("set the input shapes of"))?;
        }
        let model = model
            .with_outputs_by_name(config.outputs.iter().map(|s| s.name.as_str()))
            .map_err(tract_err("select the outputs of"))?;
        let plan = crate::model::optimise(model, path)?;
        Ok(Runner {
            config,
            plan,
            feeds,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Runs requests as one batch. Each request is its inputs in the config's order and its
    /// batch rows; the answer is each request's outputs in the config's order.
    pub fn run(
        &self,
        requests: &[(Vec<protocol::Tensor>, usize)],
    ) -> Result<Vec<Vec<protocol::Tensor>>, String> {
        let batched = self.config.max_batch_size > 0;
        let total: usize = requests.iter().map(|(_, rows)| rows).sum();
        let Some((first, _)) = requests.first() else {
            return Ok(Vec::new());
        };
        if !batched && requests.len() > 1 {
            return Err("a model without a batch dimension runs one request at a time".into());
        }
        let mut joined = Vec::with_capacity(first.len());
        for (j, tensor) in first.iter().enumerate() {
            let mut values = tensor.values.clone();
            for (other, _) in &requests[1..] {
                let part = &other[j];
                if part.shape[1..] != tensor.shape[1..] || !values.append(&part.values) {
                    return Err(format!(
                        "input `{}` differs in shape within a batch",
                        tensor.name
                    ));
                }
            }
            let mut shape = tensor.shape.clone();
            if batched {
                shape[0] = total;
            }
            joined.push(to_tract(&shape, &values).map_err(|e| format!("{e:#}"))?);
        }
        let feed: TVec<TValue> = self
            .feeds
            .iter()
            .map(|&index| joined[index].clone().into())
            .collect();
        let outputs = self.plan.run(feed).map_err(|e| format!("{e:#}"))?;
        let mut answers: Vec<Vec<protocol::Tensor>> = vec![Vec::new(); requests.len()];
        for (spec, value) in self.config.outputs.iter().zip(outputs) {
            let (shape, values) = from_tract(&value).map_err(|e| format!("{e:#}"))?;
            if !batched {
                answers[0].push(protocol::Tensor {
                    name: spec.name.clone(),
                    shape,
                    values,
                });
                continue;
            }
            if shape.first() != Some(&total) {
                return Err(format!(
                    "output `{}` has shape {shape:?} for a batch of {total}",
                    spec.name
                ));
            }
            let per_row: usize = shape[1..].iter().product();
            let mut start = 0;
            for (answer, (_, rows)) in answers.iter_mut().zip(requests) {
                let mut part_shape = shape.clone();
                part_shape[0] = *rows;
                let end = start + rows * per_row;
                answer.push(protocol::Tensor {
                    name: spec.name.clone(),
                    shape: part_shape,
                    values: values.range(start, end),
                });
                start = end;
            }
        }
        Ok(answers)
    }
}

fn to_tract(shape: &[usize], values: &Values) -> TractResult<Tensor> {
    match values {
        Values::Bool(v) => Tensor::from_shape(shape, v),
        Values::Uint8(v) => Tensor::from_shape(shape, v),
        Values::Int8(v) => Tensor::from_shape(shape, v),
        Values::Int32(v) => Tensor::from_shape(shape, v),
        Values::Int64(v) => Tensor::from_shape(shape, v),
        Values::Fp32(v) => Tensor::from_shape(shape, v),
        Values::Fp64(v) => Tensor::from_shape(shape, v),
    }
}

fn from_tract(tensor: &Tensor) -> TractResult<(Vec<usize>, Values)> {
    fn plain<T: Datum + Copy>(tensor: &Tensor) -> TractResult<Vec<T>> {
        Ok(tensor.to_plain_array_view::<T>()?.iter().copied().collect())
    }
    let dt = tensor.datum_type();
    let values = if dt == bool::datum_type() {
        Values::Bool(plain(tensor)?)
    } else if dt == u8::datum_type() {
        Values::Uint8(plain(tensor)?)
    } else if dt == i8::datum_type() {
        Values::Int8(plain(tensor)?)
    } else if dt == i32::datum_type() {
        Values::Int32(plain(tensor)?)
    } else if dt == i64::datum_type() {
        Values::Int64(plain(tensor)?)
    } else if dt == f64::datum_type() {
        Values::Fp64(plain(tensor)?)
    } else {
        Values::Fp32(plain(&*tensor.cast_to::<f32>()?)?)
    };
    Ok((tensor.shape().to_vec(), values))
}

//! A convolutional ONNX graph evaluated by candle, its convolution and normalisation weights held
//! as trainable variables, so the student's own graph can be trained and its weights written back
//! into the file. BatchNormalization runs with its stored statistics (inference mode): only its
//! scale and shift train.
//!
//! Supported operators: Conv (dense, depthwise, grouped), ConvTranspose, BatchNormalization,
//! Relu, Sigmoid, HardSigmoid, HardSwish, Clip, Add, Sub, Mul, Div, GlobalAveragePool, Resize and
//! Upsample (nearest, whole scales), Concat, Identity. Depthwise convolutions are sums of shifted
//! products (candle would run one convolution per channel).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use tract_onnx::pb::{self, ModelProto, NodeProto};

use crate::onnx::graph::{constants_to_initializers, data_inputs, f32_data, f32_tensor};
use crate::onnx::graph::{int_attr, node_label};

/// Errors while building or running the graph.
#[derive(Debug, thiserror::Error)]
pub enum CandleGraphError {
    /// An operator or attribute the evaluator does not implement.
    #[error("node `{node}` ({op}): {reason}")]
    Unsupported {
        /// The node.
        node: String,
        /// Its operator.
        op: String,
        /// What is not supported.
        reason: String,
    },
    /// The graph is not a single-input graph of stored weights.
    #[error("{0}")]
    Graph(String),
    /// candle failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The graph, ready to run forward in candle.
pub struct CandleGraph {
    nodes: Vec<NodeProto>,
    constants: HashMap<String, Tensor>,
    trainable: Vec<(String, Var)>,
    input: String,
}

/// Inputs of these operators at these positions are trained.
fn is_trainable(op: &str, slot: usize) -> bool {
    match op {
        "Conv" | "ConvTranspose" => slot == 1 || slot == 2,
        "BatchNormalization" => slot == 1 || slot == 2,
        _ => false,
    }
}

impl CandleGraph {
    /// Loads the graph's weights onto `device`, checking every operator first.
    pub fn new(model: &ModelProto, device: &Device) -> Result<CandleGraph, CandleGraphError> {
        let mut model = model.clone();
        constants_to_initializers(&mut model);
        let graph = model
            .graph
            .ok_or_else(|| CandleGraphError::Graph("the model holds no graph".into()))?;
        let inputs: Vec<String> = data_inputs(&graph).iter().map(|i| i.name.clone()).collect();
        let [input] = inputs.as_slice() else {
            return Err(CandleGraphError::Graph(format!(
                "the graph has {} inputs; the evaluator takes one image tensor",
                inputs.len()
            )));
        };
        let mut train: Vec<&str> = Vec::new();
        for (i, node) in graph.node.iter().enumerate() {
            check(node, i)?;
            for (slot, name) in node.input.iter().enumerate() {
                if is_trainable(&node.op_type, slot) && !train.contains(&name.as_str()) {
                    train.push(name);
                }
            }
        }
        let (mut constants, mut trainable) = (HashMap::new(), Vec::new());
        for t in &graph.initializer {
            let Some(values) = f32_data(t) else {
                continue;
            };
            let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
            let tensor = Tensor::from_vec(values, dims.as_slice(), device)?;
            if train.contains(&t.name.as_str()) {
                trainable.push((t.name.clone(), Var::from_tensor(&tensor)?));
            } else {
                constants.insert(t.name.clone(), tensor);
            }
        }
        Ok(CandleGraph {
            nodes: graph.node,
            constants,
            trainable,
            input: input.clone(),
        })
    }

    /// The trainable variables.
    pub fn vars(&self) -> Vec<Var> {
        self.trainable.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Runs the graph on `x` and returns the tensors named `wanted`, in order.
    pub fn forward(&self, x: &Tensor, wanted: &[&str]) -> Result<Vec<Tensor>, CandleGraphError> {
        let mut values: HashMap<&str, Tensor> = HashMap::new();
        values.insert(self.input.as_str(), x.clone());
        for (name, var) in &self.trainable {
            values.insert(name.as_str(), var.as_tensor().clone());
        }
        for (name, t) in &self.constants {
            values.insert(name.as_str(), t.clone());
        }
        for (index, node) in self.nodes.iter().enumerate() {
            let out = self.eval(node, index, &values)?;
            values.insert(node.output[0].as_str(), out);
        }
        wanted
            .iter()
            .map(|w| {
                values.get(w).cloned().ok_or_else(|| {
                    CandleGraphError::Graph(format!("the graph has no tensor `{w}`"))
                })
            })
            .collect()
    }

    /// Copies the trained values into the matching initializers of `model` (Constant nodes
    /// become initializers).
    pub fn write_back(&self, model: &mut ModelProto) -> Result<(), CandleGraphError> {
        constants_to_initializers(model);
        let graph = model
            .graph
            .as_mut()
            .ok_or_else(|| CandleGraphError::Graph("the model holds no graph".into()))?;
        for (name, var) in &self.trainable {
            let Some(t) = graph.initializer.iter_mut().find(|t| t.name == *name) else {
                return Err(CandleGraphError::Graph(format!(
                    "the model has no weight `{name}` to write back"
                )));
            };
            let values = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            *t = f32_tensor(name, var.as_tensor().dims(), &values);
        }
        Ok(())
    }

    /// Saves the trainable values as safetensors.
    pub fn save(&self, path: &Path) -> Result<(), CandleGraphError> {
        let tensors: HashMap<String, Tensor> = self
            .trainable
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&tensors, path)?;
        Ok(())
    }

    /// Loads trainable values saved by [`CandleGraph::save`].
    pub fn load(&self, path: &Path) -> Result<(), CandleGraphError> {
        let device = self
            .trainable
            .first()
            .map_or(Device::Cpu, |(_, v)| v.device().clone());
        let saved = candle_core::safetensors::load(path, &device)?;
        for (name, var) in &self.trainable {
            let t = saved.get(name).ok_or_else(|| {
                CandleGraphError::Graph(format!("{} has no `{name}`", path.display()))
            })?;
            var.set(t)?;
        }
        Ok(())
    }

    fn eval(
        &self,
        node: &NodeProto,
        index: usize,
        values: &HashMap<&str, Tensor>,
    ) -> Result<Tensor, CandleGraphError> {
        let unsupported = |reason: &str| CandleGraphError::Unsupported {
            node: node_label(node, index),
            op: node.op_type.clone(),
            reason: reason.into(),
        };
        let arg = |i: usize| -> Result<&Tensor, CandleGraphError> {
            node.input
                .get(i)
                .filter(|n| !n.is_empty())
                .and_then(|n| values.get(n.as_str()))
                .ok_or_else(|| unsupported(&format!("input {i} is missing or not a float tensor")))
        };
        let x = arg(0)?;
        Ok(match node.op_type.as_str() {
            "Conv" => {
                let w = arg(1)?;
                let group = int_attr(node, "group").unwrap_or(1) as usize;
                let (stride, pads) = (stride_of(node), pads_of(node));
                let y = if group > 1 && group == w.dims()[0] && w.dims()[1] == 1 {
                    depthwise(x, w, stride, pads)?
                } else {
                    let (x, padding) = symmetric(x, pads)?;
                    x.conv2d(w, padding, stride, 1, group)?
                };
                match node.input.get(2).filter(|b| !b.is_empty()) {
                    Some(_) => y.broadcast_add(&arg(2)?.reshape((1, (), 1, 1))?)?,
                    None => y,
                }
            }
            "ConvTranspose" => {
                let w = arg(1)?;
                let pads = pads_of(node);
                let y = x.conv_transpose2d(w, pads[0], 0, stride_of(node), 1)?;
                match node.input.get(2).filter(|b| !b.is_empty()) {
                    Some(_) => y.broadcast_add(&arg(2)?.reshape((1, (), 1, 1))?)?,
                    None => y,
                }
            }
            "BatchNormalization" => {
                let eps = float_attr(node, "epsilon").unwrap_or(1e-5) as f64;
                let per = |i: usize| -> Result<Tensor, CandleGraphError> {
                    Ok(arg(i)?.reshape((1, (), 1, 1))?)
                };
                let (scale, shift, mean, var) = (per(1)?, per(2)?, per(3)?, per(4)?);
                let inv = (var + eps)?.sqrt()?.recip()?;
                x.broadcast_sub(&mean)?
                    .broadcast_mul(&inv.broadcast_mul(&scale)?)?
                    .broadcast_add(&shift)?
            }
            "Relu" => x.relu()?,
            "Sigmoid" => candle_nn::ops::sigmoid(x)?,
            "HardSigmoid" => {
                let alpha = float_attr(node, "alpha").unwrap_or(0.2) as f64;
                let beta = float_attr(node, "beta").unwrap_or(0.5) as f64;
                x.affine(alpha, beta)?.clamp(0f32, 1f32)?
            }
            "HardSwish" => (x * x.affine(1.0 / 6.0, 0.5)?.clamp(0f32, 1f32)?)?,
            "Clip" => {
                let bound = |i: usize, attr: &str, default: f32| -> Result<f32, CandleGraphError> {
                    match node.input.get(i).filter(|n| !n.is_empty()) {
                        Some(_) => Ok(arg(i)?.flatten_all()?.to_vec1::<f32>()?[0]),
                        None => Ok(float_attr(node, attr).unwrap_or(default)),
                    }
                };
                x.clamp(bound(1, "min", f32::MIN)?, bound(2, "max", f32::MAX)?)?
            }
            "Add" => x.broadcast_add(arg(1)?)?,
            "Sub" => x.broadcast_sub(arg(1)?)?,
            "Mul" => x.broadcast_mul(arg(1)?)?,
            "Div" => x.broadcast_div(arg(1)?)?,
            "GlobalAveragePool" => x.mean_keepdim(2)?.mean_keepdim(3)?,
            "Resize" | "Upsample" => {
                let (_, _, h, w) = x.dims4()?;
                let (sh, sw) = Self::scales(node, values).ok_or_else(|| {
                    unsupported("only nearest resizing by whole constant scales is supported")
                })?;
                x.upsample_nearest2d(h * sh, w * sw)?
            }
            "Concat" => {
                let axis = int_attr(node, "axis").unwrap_or(0);
                let parts: Vec<&Tensor> =
                    (0..node.input.len()).map(arg).collect::<Result<_, _>>()?;
                let rank = x.rank() as i64;
                let axis = if axis < 0 { axis + rank } else { axis } as usize;
                Tensor::cat(&parts, axis)?
            }
            "Identity" | "Dropout" => x.clone(),
            _ => return Err(unsupported("the operator is not supported")),
        })
    }

    /// Whole nearest-neighbour scale factors of a Resize or Upsample on H and W.
    fn scales(node: &NodeProto, values: &HashMap<&str, Tensor>) -> Option<(usize, usize)> {
        let mode = node
            .attribute
            .iter()
            .find(|a| a.name == "mode")
            .map_or(&b"nearest"[..], |a| a.s.as_slice());
        if mode != b"nearest" {
            return None;
        }
        let slot = if node.op_type == "Upsample" { 1 } else { 2 };
        let name = node.input.get(slot).filter(|n| !n.is_empty())?;
        let scales = values
            .get(name.as_str())?
            .flatten_all()
            .ok()?
            .to_vec1::<f32>()
            .ok()?;
        let whole = |s: f32| (s >= 1.0 && s.fract() == 0.0).then_some(s as usize);
        match scales.as_slice() {
            [1.0, 1.0, h, w] => Some((whole(*h)?, whole(*w)?)),
            _ => None,
        }
    }
}

/// Rejects what [`CandleGraph::eval`] would not run, before any weight is loaded.
fn check(node: &NodeProto, index: usize) -> Result<(), CandleGraphError> {
    const OPS: &[&str] = &[
        "Conv",
        "ConvTranspose",
        "BatchNormalization",
        "Relu",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Clip",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "GlobalAveragePool",
        "Resize",
        "Upsample",
        "Concat",
        "Identity",
        "Dropout",
    ];
    let unsupported = |reason: &str| {
        Err(CandleGraphError::Unsupported {
            node: node_label(node, index),
            op: node.op_type.clone(),
            reason: reason.into(),
        })
    };
    if !OPS.contains(&node.op_type.as_str()) {
        return unsupported("the operator is not supported by the candle evaluator");
    }
    if node.output.len() != 1 && node.op_type != "Dropout" {
        return unsupported("only single-output nodes are supported");
    }
    let ints = |name: &str| {
        node.attribute
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.ints.clone())
            .unwrap_or_default()
    };
    if matches!(node.op_type.as_str(), "Conv" | "ConvTranspose") {
        if ints("dilations").iter().any(|&d| d != 1) {
            return unsupported("dilated convolutions are not supported");
        }
        let strides = ints("strides");
        if strides.len() == 2 && strides[0] != strides[1] {
            return unsupported("unequal strides are not supported");
        }
        if node
            .attribute
            .iter()
            .any(|a| a.name == "auto_pad" && !a.s.is_empty() && a.s != b"NOTSET")
        {
            return unsupported("auto_pad is not supported");
        }
    }
    if node.op_type == "ConvTranspose" {
        let pads = ints("pads");
        if pads.iter().any(|&p| p != *pads.first().unwrap_or(&0))
            || int_attr(node, "group").unwrap_or(1) != 1
            || !ints("output_shape").is_empty()
            || ints("output_padding").iter().any(|&p| p != 0)
        {
            return unsupported(
                "only ungrouped transposed convolutions with equal pads and no output shape \
                 are supported",
            );
        }
    }
    Ok(())
}

fn stride_of(node: &NodeProto) -> usize {
    node.attribute
        .iter()
        .find(|a| a.name == "strides")
        .and_then(|a| a.ints.first().copied())
        .unwrap_or(1) as usize
}

/// `[top, left, bottom, right]`.
fn pads_of(node: &NodeProto) -> [usize; 4] {
    let pads = node
        .attribute
        .iter()
        .find(|a| a.name == "pads")
        .map(|a| a.ints.clone())
        .unwrap_or_default();
    match pads.as_slice() {
        [t, l, b, r] => [*t as usize, *l as usize, *b as usize, *r as usize],
        _ => [0; 4],
    }
}

fn float_attr(node: &NodeProto, name: &str) -> Option<f32> {
    node.attribute
        .iter()
        .find(|a| a.name == name && a.r#type == pb::attribute_proto::AttributeType::Float as i32)
        .map(|a| a.f)
}

/// `x` padded so the remaining padding is the same on every side, and that padding.
fn symmetric(x: &Tensor, [t, l, b, r]: [usize; 4]) -> candle_core::Result<(Tensor, usize)> {
    if t == l && l == b && b == r {
        return Ok((x.clone(), t));
    }
    Ok((x.pad_with_zeros(2, t, b)?.pad_with_zeros(3, l, r)?, 0))
}

/// A depthwise convolution (weight `[C, 1, kh, kw]`) as a sum of shifted, scaled copies of the
/// input; strides read through a reshape that puts each phase on its own axis.
fn depthwise(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    [t, l, b, r]: [usize; 4],
) -> candle_core::Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (_, _, kh, kw) = w.dims4()?;
    let s = stride.max(1);
    let ho = (h + t + b - kh) / s + 1;
    let wo = (wd + l + r - kw) / s + 1;
    let hp = s * (h + t + b).div_ceil(s).max((kh - 1) / s + ho);
    let wp = s * (wd + l + r).div_ceil(s).max((kw - 1) / s + wo);
    let padded = x
        .pad_with_zeros(2, t, hp - h - t)?
        .pad_with_zeros(3, l, wp - wd - l)?;
    let phased = padded.reshape((n, c, hp / s, s, wp / s, s))?;
    let mut sum: Option<Tensor> = None;
    for dy in 0..kh {
        for dx in 0..kw {
            let tap = phased
                .narrow(3, dy % s, 1)?
                .narrow(5, dx % s, 1)?
                .narrow(2, dy / s, ho)?
                .narrow(4, dx / s, wo)?
                .reshape((n, c, ho, wo))?;
            let k = w
                .narrow(2, dy, 1)?
                .narrow(3, dx, 1)?
                .reshape((1, c, 1, 1))?;
            let term = tap.broadcast_mul(&k)?;
            sum = Some(match sum {
                None => term,
                Some(acc) => (acc + term)?,
            });
        }
    }
    sum.ok_or_else(|| candle_core::Error::Msg("empty kernel".into()))
}

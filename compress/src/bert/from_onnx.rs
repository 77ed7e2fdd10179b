//! Reading an encoder back from an ONNX graph that [`super::onnx::to_onnx`] wrote: the packaged
//! teacher is the only copy of fine-tuned weights, so every pass starts from its ONNX file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tract_onnx::pb::{ModelProto, TensorProto, tensor_proto::DataType};

use super::BertError;
use super::config::{Activation, BertConfig, Family};
use super::onnx::Pooling;
use super::weights::{Encoder, Layer, Linear, Norm, Param};

/// An encoder with what the graph ends in.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The encoder's weights and sizes.
    pub encoder: Encoder,
    /// Sentence pooling.
    pub pooling: Pooling,
    /// The classification head, when the graph has one.
    pub head: Option<Linear>,
}

/// Rebuilds the encoder from the initializers and a few node attributes of `model`; `path` is
/// only used in messages. Graphs written by other tools are refused with the missing tensor named.
pub fn read(model: &ModelProto, path: &Path) -> Result<Imported, BertError> {
    let graph = model.graph.as_ref().ok_or_else(|| BertError::Weights {
        path: path.to_owned(),
        reason: "holds no graph".into(),
    })?;
    let tensors: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let r = Reader {
        path: path.to_owned(),
        tensors,
    };
    let word = r.param("embeddings.word")?;
    let position = r.param("embeddings.position")?;
    let token_type = r.param("embeddings.token_type")?;
    let embedding_norm = r.norm("embeddings.norm")?;
    let projection = r
        .has("embeddings.projection.weight")
        .then(|| r.linear("embeddings.projection"))
        .transpose()?;
    let mut layers = Vec::new();
    while r.has(&format!("layer{}.query.weight", layers.len())) {
        let name = |part: &str| format!("layer{}.{part}", layers.len());
        layers.push(Layer {
            query: r.linear(&name("query"))?,
            key: r.linear(&name("key"))?,
            value: r.linear(&name("value"))?,
            attention_out: r.linear(&name("attention_out"))?,
            attention_norm: r.norm(&name("attention_norm"))?,
            ffn_in: r.linear(&name("ffn_in"))?,
            ffn_out: r.linear(&name("ffn_out"))?,
            ffn_norm: r.norm(&name("ffn_norm"))?,
        });
    }
    let first = layers
        .first()
        .ok_or_else(|| r.bad("has no `layer0.*` tensors"))?;

    // The order layers run in: each use of a query weight is one layer run.
    let schedule: Vec<usize> = graph
        .node
        .iter()
        .flat_map(|n| &n.input)
        .filter_map(|i| i.strip_prefix("layer")?.strip_suffix(".query.weight"))
        .filter_map(|i| i.parse().ok())
        .collect();
    let heads = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Reshape")
        .filter_map(|n| r.ints(n.input.get(1)?))
        .find(|v| v.len() == 4 && v[0] == 0 && v[1] == 0)
        .ok_or_else(|| r.bad("has no attention-head Reshape"))?;
    let epsilon = graph
        .node
        .iter()
        .find(|n| n.op_type == "LayerNormalization")
        .and_then(|n| n.attribute.iter().find(|a| a.name == "epsilon"))
        .map_or(1e-5, |a| a.f);
    let op = |kind: &str| graph.node.iter().any(|n| n.op_type == kind);
    let activation = if op("Erf") {
        Activation::Gelu
    } else if op("Tanh") {
        Activation::GeluTanh
    } else {
        Activation::Relu
    };
    let position_offset = graph
        .node
        .iter()
        .find(|n| {
            n.op_type == "Slice"
                && n.input.first().map(String::as_str) == Some("embeddings.position")
        })
        .and_then(|n| r.ints(n.input.get(1)?))
        .and_then(|v| v.first().copied())
        .unwrap_or(0) as usize;
    // CLS pooling is the only Gather along the sequence axis.
    let cls = graph
        .node
        .iter()
        .any(|n| n.op_type == "Gather" && n.attribute.iter().any(|a| a.name == "axis" && a.i == 1));
    let pooling = if cls { Pooling::Cls } else { Pooling::Mean };
    let head = r.has("head.weight").then(|| r.linear("head")).transpose()?;

    let hidden_size = first.attention_norm.weight.shape[0];
    let config = BertConfig {
        family: if projection.is_some() {
            Family::Albert
        } else if position_offset > 0 {
            Family::Roberta
        } else {
            Family::Bert
        },
        vocab_size: word.shape[0],
        hidden_size,
        embedding_size: word.shape[1],
        num_layers: schedule.len(),
        num_heads: heads[2] as usize,
        head_size: heads[3] as usize,
        intermediate_size: first.ffn_in.weight.shape[0],
        max_positions: position.shape[0],
        type_vocab_size: token_type.shape[0],
        layer_norm_eps: epsilon,
        activation,
        position_offset,
    };
    Ok(Imported {
        encoder: Encoder {
            config,
            word,
            position,
            token_type,
            embedding_norm,
            projection,
            layers,
            schedule,
        },
        pooling,
        head,
    })
}

struct Reader<'a> {
    path: PathBuf,
    tensors: HashMap<&'a str, &'a TensorProto>,
}

impl Reader<'_> {
    fn bad(&self, reason: &str) -> BertError {
        BertError::Weights {
            path: self.path.clone(),
            reason: format!(
                "{reason}: not an encoder written by edgemass-compress (import bert, train-text)"
            ),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn param(&self, name: &str) -> Result<Param, BertError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| self.bad(&format!("tensor `{name}` is missing")))?;
        if t.data_type != DataType::Float as i32 {
            return Err(self.bad(&format!("tensor `{name}` is not f32")));
        }
        let data: Vec<f32> = if t.raw_data.is_empty() {
            t.float_data.clone()
        } else {
            t.raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        if shape.iter().product::<usize>() != data.len() {
            return Err(self.bad(&format!("tensor `{name}` holds the wrong number of values")));
        }
        Ok(Param { shape, data })
    }

    /// A linear layer stored `[in, out]` in the graph, returned `[out, in]`.
    fn linear(&self, name: &str) -> Result<Linear, BertError> {
        let stored = self.param(&format!("{name}.weight"))?;
        let &[inp, out] = stored.shape.as_slice() else {
            return Err(self.bad(&format!("tensor `{name}.weight` is not 2-D")));
        };
        let mut data = vec![0.0; inp * out];
        for i in 0..inp {
            for o in 0..out {
                data[o * inp + i] = stored.data[i * out + o];
            }
        }
        Ok(Linear {
            weight: Param {
                shape: vec![out, inp],
                data,
            },
            bias: self.param(&format!("{name}.bias"))?,
        })
    }

    fn norm(&self, name: &str) -> Result<Norm, BertError> {
        Ok(Norm {
            weight: self.param(&format!("{name}.weight"))?,
            bias: self.param(&format!("{name}.bias"))?,
        })
    }

    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        let t = self.tensors.get(name)?;
        (t.data_type == DataType::Int64 as i32).then(|| {
            if t.raw_data.is_empty() {
                t.int64_data.clone()
            } else {
                t.raw_data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect()
            }
        })
    }
}

//! Encoder weights read from a safetensors checkpoint, named the same way for every family.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::BertError;
use super::config::{BertConfig, Family};

/// A dense f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// A dense layer `y = x · Wᵀ + b` with `weight` stored `[out, in]` as in PyTorch.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Param,
    /// `[out]`.
    pub bias: Param,
}

impl Linear {
    /// A layer of zeros, `[out, in]`.
    pub fn zeros(out: usize, inp: usize) -> Linear {
        Linear {
            weight: Param {
                shape: vec![out, inp],
                data: vec![0.0; out * inp],
            },
            bias: Param {
                shape: vec![out],
                data: vec![0.0; out],
            },
        }
    }

    /// Weight and bias under `name.weight` and `name.bias`.
    pub fn params_mut(&mut self, name: &str) -> [(String, &mut Param); 2] {
        [
            (format!("{name}.weight"), &mut self.weight),
            (format!("{name}.bias"), &mut self.bias),
        ]
    }
}

/// LayerNorm scale and shift.
#[derive(Debug, Clone, PartialEq)]
pub struct Norm {
    /// `[hidden]` scale.
    pub weight: Param,
    /// `[hidden]` shift.
    pub bias: Param,
}

impl Norm {
    /// Scale and shift under `name.weight` and `name.bias`.
    pub fn params_mut(&mut self, name: &str) -> [(String, &mut Param); 2] {
        [
            (format!("{name}.weight"), &mut self.weight),
            (format!("{name}.bias"), &mut self.bias),
        ]
    }
}

/// One transformer layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Attention output projection.
    pub attention_out: Linear,
    /// LayerNorm after attention.
    pub attention_norm: Norm,
    /// Feed-forward expansion.
    pub ffn_in: Linear,
    /// Feed-forward contraction.
    pub ffn_out: Linear,
    /// LayerNorm after the feed-forward block.
    pub ffn_norm: Norm,
}

/// A whole encoder: embeddings, the distinct layers and the order they run in.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoder {
    /// Sizes and family.
    pub config: BertConfig,
    /// `[vocab, embedding]`.
    pub word: Param,
    /// `[positions, embedding]`.
    pub position: Param,
    /// `[types, embedding]`.
    pub token_type: Param,
    /// LayerNorm over the summed embeddings.
    pub embedding_norm: Norm,
    /// ALBERT's embedding → hidden projection.
    pub projection: Option<Linear>,
    /// Distinct layers (ALBERT has one).
    pub layers: Vec<Layer>,
    /// Index into `layers` for each layer run, in order.
    pub schedule: Vec<usize>,
}

impl Encoder {
    /// Reads the checkpoint's tensors for `config`'s family, checking every shape.
    pub fn from_safetensors(path: &Path, config: BertConfig) -> Result<Encoder, BertError> {
        let bytes = std::fs::read(path).map_err(|source| BertError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| BertError::Weights {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let names: Vec<String> = file.names().into_iter().map(str::to_owned).collect();
        let reader = Reader {
            path,
            file: &file,
            prefix: prefix(&names, config.family),
        };
        Encoder::read(&reader, config)
    }

    /// Every tensor with a stable name (`layer0.query.weight`), for training and write-back.
    pub fn params_mut(&mut self) -> Vec<(String, &mut Param)> {
        let mut out = vec![
            ("embeddings.word".to_owned(), &mut self.word),
            ("embeddings.position".to_owned(), &mut self.position),
            ("embeddings.token_type".to_owned(), &mut self.token_type),
        ];
        out.extend(self.embedding_norm.params_mut("embeddings.norm"));
        if let Some(projection) = &mut self.projection {
            out.extend(projection.params_mut("embeddings.projection"));
        }
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let name = |part: &str| format!("layer{i}.{part}");
            out.extend(layer.query.params_mut(&name("query")));
            out.extend(layer.key.params_mut(&name("key")));
            out.extend(layer.value.params_mut(&name("value")));
            out.extend(layer.attention_out.params_mut(&name("attention_out")));
            out.extend(layer.attention_norm.params_mut(&name("attention_norm")));
            out.extend(layer.ffn_in.params_mut(&name("ffn_in")));
            out.extend(layer.ffn_out.params_mut(&name("ffn_out")));
            out.extend(layer.ffn_norm.params_mut(&name("ffn_norm")));
        }
        out
    }

    fn read(r: &Reader, config: BertConfig) -> Result<Encoder, BertError> {
        let (h, e, f) = (
            config.hidden_size,
            config.embedding_size,
            config.intermediate_size,
        );
        let word = r.param("embeddings.word_embeddings.weight", &[config.vocab_size, e])?;
        let position = r.param(
            "embeddings.position_embeddings.weight",
            &[config.max_positions, e],
        )?;
        let token_type = r.param(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, e],
        )?;
        let embedding_norm = r.norm("embeddings.LayerNorm", e)?;
        let (projection, layers, schedule) = match config.family {
            Family::Albert => {
                let p = "encoder.albert_layer_groups.0.albert_layers.0.";
                let at = |s: &str| format!("{p}{s}");
                let layer = Layer {
                    query: r.linear(&at("attention.query"), h, h)?,
                    key: r.linear(&at("attention.key"), h, h)?,
                    value: r.linear(&at("attention.value"), h, h)?,
                    attention_out: r.linear(&at("attention.dense"), h, h)?,
                    attention_norm: r.norm(&at("attention.LayerNorm"), h)?,
                    ffn_in: r.linear(&at("ffn"), f, h)?,
                    ffn_out: r.linear(&at("ffn_output"), h, f)?,
                    ffn_norm: r.norm(&at("full_layer_layer_norm"), h)?,
                };
                let projection = r.linear("encoder.embedding_hidden_mapping_in", h, e)?;
                (Some(projection), vec![layer], vec![0; config.num_layers])
            }
            Family::Bert | Family::Roberta => {
                let mut layers = Vec::with_capacity(config.num_layers);
                for i in 0..config.num_layers {
                    let at = |s: &str| format!("encoder.layer.{i}.{s}");
                    layers.push(Layer {
                        query: r.linear(&at("attention.self.query"), h, h)?,
                        key: r.linear(&at("attention.self.key"), h, h)?,
                        value: r.linear(&at("attention.self.value"), h, h)?,
                        attention_out: r.linear(&at("attention.output.dense"), h, h)?,
                        attention_norm: r.norm(&at("attention.output.LayerNorm"), h)?,
                        ffn_in: r.linear(&at("intermediate.dense"), f, h)?,
                        ffn_out: r.linear(&at("output.dense"), h, f)?,
                        ffn_norm: r.norm(&at("output.LayerNorm"), h)?,
                    });
                }
                (None, layers, (0..config.num_layers).collect())
            }
        };
        Ok(Encoder {
            config,
            word,
            position,
            token_type,
            embedding_norm,
            projection,
            layers,
            schedule,
        })
    }
}

/// The prefix the checkpoint puts before `embeddings.`: none for sentence-transformers exports,
/// `bert.`/`roberta.`/`albert.` for task models.
fn prefix(names: &[String], family: Family) -> String {
    let candidates = match family {
        Family::Bert => ["", "bert."],
        Family::Roberta => ["", "roberta."],
        Family::Albert => ["", "albert."],
    };
    candidates
        .into_iter()
        .find(|p| {
            names
                .iter()
                .any(|n| *n == format!("{p}embeddings.word_embeddings.weight"))
        })
        .unwrap_or("")
        .to_owned()
}

struct Reader<'a> {
    path: &'a Path,
    file: &'a SafeTensors<'a>,
    prefix: String,
}

impl Reader<'_> {
    fn param(&self, name: &str, shape: &[usize]) -> Result<Param, BertError> {
        let full = format!("{}{name}", self.prefix);
        let bad = |reason: String| BertError::Weights {
            path: self.path.to_owned(),
            reason: format!("tensor `{full}` {reason}"),
        };
        let view = self
            .file
            .tensor(&full)
            .map_err(|_| bad("is missing".into()))?;
        if view.shape() != shape {
            return Err(bad(format!(
                "has shape {:?}, the config implies {shape:?}",
                view.shape()
            )));
        }
        let data = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => view
                .data()
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::BF16 => view
                .data()
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
            other => {
                return Err(bad(format!(
                    "has dtype {other:?}; f32, f16 or bf16 expected"
                )));
            }
        };
        Ok(Param {
            shape: shape.to_vec(),
            data,
        })
    }

    fn linear(&self, name: &str, out: usize, inp: usize) -> Result<Linear, BertError> {
        Ok(Linear {
            weight: self.param(&format!("{name}.weight"), &[out, inp])?,
            bias: self.param(&format!("{name}.bias"), &[out])?,
        })
    }

    fn norm(&self, name: &str, width: usize) -> Result<Norm, BertError> {
        Ok(Norm {
            weight: self.param(&format!("{name}.weight"), &[width])?,
            bias: self.param(&format!("{name}.bias"), &[width])?,
        })
    }
}

fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let value = match exponent {
        0 => (mantissa as f32) * 2f32.powi(-24),
        0x1f if mantissa == 0 => f32::INFINITY,
        0x1f => f32::NAN,
        _ => return f32::from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13)),
    };
    f32::from_bits(sign | value.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_convert() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.33325195);
        assert_eq!(f16_to_f32(0x0001), 5.9604645e-8);
    }
}

//! The encoder and a classification head as a candle network: the computation of the exported
//! ONNX graph, made of differentiable operations so every weight can be trained.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{D, DType, Device, Result, Tensor, Var};

use super::config::{Activation, BertConfig};
use super::onnx::Pooling;
use super::weights::{Encoder, Linear, Param};

/// A tokenized batch on the training device.
pub struct Batch {
    /// Token ids `[batch, sequence]`, u32.
    pub ids: Tensor,
    /// 1 for real tokens, 0 for padding `[batch, sequence]`, f32.
    pub mask: Tensor,
    /// Segment ids `[batch, sequence]`, u32.
    pub types: Tensor,
}

/// Trainable variables by the names of [`Encoder::params_mut`], plus `head.weight`/`head.bias`.
pub struct Net {
    config: BertConfig,
    schedule: Vec<usize>,
    pooling: Pooling,
    has_projection: bool,
    dropout: f32,
    vars: HashMap<String, Var>,
}

/// Dropout probability while training (BERT's default).
pub const DROPOUT: f32 = 0.1;

impl Net {
    /// Copies the weights into candle variables on `device`.
    pub fn new(encoder: &Encoder, head: &Linear, pooling: Pooling, device: &Device) -> Result<Net> {
        let mut encoder = encoder.clone();
        let mut head = head.clone();
        let mut vars = HashMap::new();
        let named = encoder
            .params_mut()
            .into_iter()
            .chain(head.params_mut("head"));
        for (name, param) in named {
            let tensor = Tensor::from_slice(&param.data, param.shape.as_slice(), device)?;
            vars.insert(name, Var::from_tensor(&tensor)?);
        }
        Ok(Net {
            config: encoder.config.clone(),
            schedule: encoder.schedule.clone(),
            pooling,
            has_projection: encoder.projection.is_some(),
            dropout: DROPOUT,
            vars,
        })
    }

    /// Sets the dropout probability used while training (0 makes training deterministic).
    pub fn set_dropout(&mut self, probability: f32) {
        self.dropout = probability;
    }

    /// The variables an optimiser updates: the head only, or everything but the word-embedding
    /// table (its 30 k rows barely move on a small data set and dominate the optimiser's work).
    pub fn trainable(&self, head_only: bool) -> Vec<Var> {
        let mut names: Vec<&String> = self
            .vars
            .keys()
            .filter(|n| {
                if head_only {
                    n.starts_with("head.")
                } else {
                    n.as_str() != "embeddings.word"
                }
            })
            .collect();
        names.sort();
        names.into_iter().map(|n| self.vars[n].clone()).collect()
    }

    /// Copies the trained values back into `encoder` and `head`.
    pub fn write_back(&self, encoder: &mut Encoder, head: &mut Linear) -> Result<()> {
        let named = encoder
            .params_mut()
            .into_iter()
            .chain(head.params_mut("head"));
        for (name, param) in named {
            *param = Param {
                shape: param.shape.clone(),
                data: self.vars[&name]
                    .as_tensor()
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            };
        }
        Ok(())
    }

    /// Saves every variable to a safetensors checkpoint, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
            .collect();
        let dir = path.parent().unwrap_or(Path::new("."));
        let file = tempfile::NamedTempFile::new_in(dir)?;
        candle_core::safetensors::save(&tensors, file.path())?;
        file.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Loads a checkpoint written by [`Net::save`] for a network of the same shapes.
    pub fn load(&self, path: &Path) -> Result<()> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)?;
        for (name, var) in &self.vars {
            let tensor = tensors.get(name).ok_or_else(|| {
                candle_core::Error::Msg(format!("{} lacks `{name}`", path.display()))
            })?;
            var.set(tensor)?;
        }
        Ok(())
    }

    /// The pooled sentence vectors `[batch, hidden]`; `train` turns dropout on.
    pub fn embed(&self, batch: &Batch, train: bool) -> Result<Tensor> {
        let c = &self.config;
        let (b, s) = batch.ids.dims2()?;
        let word = self
            .v("embeddings.word")
            .index_select(&batch.ids.flatten_all()?, 0)?;
        let kind = self
            .v("embeddings.token_type")
            .index_select(&batch.types.flatten_all()?, 0)?;
        let position = self
            .v("embeddings.position")
            .narrow(0, c.position_offset, s)?;
        let summed = (word + kind)?
            .reshape((b, s, c.embedding_size))?
            .broadcast_add(&position)?;
        let mut x = self.dropout(&self.norm("embeddings.norm", &summed)?, train)?;
        if self.has_projection {
            x = self.linear("embeddings.projection", &x)?;
        }
        let bias = ((&batch.mask - 1.0)? * 10_000.0)?.reshape((b, 1, 1, s))?;
        for &i in &self.schedule {
            x = self.layer(&format!("layer{i}"), &x, &bias, train)?;
        }
        match self.pooling {
            Pooling::Cls => x.narrow(1, 0, 1)?.squeeze(1),
            Pooling::Mean => {
                let weights = batch.mask.unsqueeze(2)?;
                let total = x.broadcast_mul(&weights)?.sum(1)?;
                let count = weights.sum(1)?.clamp(1e-9, f64::MAX)?;
                total.broadcast_div(&count)
            }
        }
    }

    /// Class logits `[batch, classes]` of pooled vectors.
    pub fn logits(&self, pooled: &Tensor) -> Result<Tensor> {
        self.linear("head", pooled)
    }

    fn layer(&self, name: &str, x: &Tensor, bias: &Tensor, train: bool) -> Result<Tensor> {
        let c = &self.config;
        let (b, s, _) = x.dims3()?;
        let heads = |part: &str| -> Result<Tensor> {
            self.linear(&format!("{name}.{part}"), x)?
                .reshape((b, s, c.num_heads, c.head_size))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (heads("query")?, heads("key")?, heads("value")?);
        let scale = 1.0 / (c.head_size as f64).sqrt();
        let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(bias)?;
        let probs = self.dropout(&candle_nn::ops::softmax(&scores, D::Minus1)?, train)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((
            b,
            s,
            c.attention_width(),
        ))?;
        let attended = self.dropout(
            &self.linear(&format!("{name}.attention_out"), &context)?,
            train,
        )?;
        let a = self.norm(&format!("{name}.attention_norm"), &(attended + x)?)?;
        let expanded = self.linear(&format!("{name}.ffn_in"), &a)?;
        let activated = match c.activation {
            Activation::Gelu => expanded.gelu_erf()?,
            Activation::GeluTanh => expanded.gelu()?,
            Activation::Relu => expanded.relu()?,
        };
        let contracted =
            self.dropout(&self.linear(&format!("{name}.ffn_out"), &activated)?, train)?;
        self.norm(&format!("{name}.ffn_norm"), &(contracted + a)?)
    }

    fn v(&self, name: &str) -> &Tensor {
        self.vars[name].as_tensor()
    }

    fn linear(&self, name: &str, x: &Tensor) -> Result<Tensor> {
        let w = self.v(&format!("{name}.weight"));
        x.broadcast_matmul(&w.t()?)?
            .broadcast_add(self.v(&format!("{name}.bias")))
    }

    /// LayerNorm from primitive operations (candle's fused kernel has no gradient).
    fn norm(&self, name: &str, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed =
            centred.broadcast_div(&(variance + self.config.layer_norm_eps as f64)?.sqrt()?)?;
        normed
            .broadcast_mul(self.v(&format!("{name}.weight")))?
            .broadcast_add(self.v(&format!("{name}.bias")))
    }

    fn dropout(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train && self.dropout > 0.0 {
            candle_nn::ops::dropout(x, self.dropout)
        } else {
            Ok(x.clone())
        }
    }
}

/// Builds a batch tensor from per-row values padded to the same length.
pub fn batch(
    ids: &[Vec<u32>],
    mask: &[Vec<u32>],
    types: &[Vec<u32>],
    device: &Device,
) -> Result<Batch> {
    let (b, s) = (ids.len(), ids.first().map_or(0, Vec::len));
    let flat = |rows: &[Vec<u32>]| rows.concat();
    Ok(Batch {
        ids: Tensor::from_vec(flat(ids), (b, s), device)?,
        mask: Tensor::from_vec(flat(mask), (b, s), device)?.to_dtype(DType::F32)?,
        types: Tensor::from_vec(flat(types), (b, s), device)?,
    })
}

//! A BERT-family `config.json`: the sizes and the differences between BERT, RoBERTa and ALBERT.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::BertError;

/// Which member of the BERT family a checkpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// BERT and MiniLM: `embeddings.*`, `encoder.layer.N.*`.
    Bert,
    /// RoBERTa: BERT's layout; positions start after the padding index.
    Roberta,
    /// ALBERT: factorised embeddings projected to the hidden size, one layer shared by all.
    Albert,
}

/// Feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x · Φ(x)` with the exact error function.
    Gelu,
    /// The tanh approximation of GELU (`gelu_new`).
    GeluTanh,
    /// `max(x, 0)`.
    Relu,
}

/// The sizes an encoder is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// Family, from `model_type`.
    pub family: Family,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden width.
    pub hidden_size: usize,
    /// Embedding width (ALBERT factorises it; otherwise the hidden width).
    pub embedding_size: usize,
    /// Number of layers run.
    pub num_layers: usize,
    /// Attention heads per layer.
    pub num_heads: usize,
    /// Width of one attention head (`hidden_size / num_heads` until heads are pruned).
    pub head_size: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Rows of the position table.
    pub max_positions: usize,
    /// Rows of the token-type table.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f32,
    /// Feed-forward activation.
    pub activation: Activation,
    /// First position id (RoBERTa: padding index + 1).
    pub position_offset: usize,
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    embedding_size: Option<usize>,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "two")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f32,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default)]
    pad_token_id: usize,
    #[serde(default = "one")]
    num_hidden_groups: usize,
    #[serde(default = "one")]
    inner_group_num: usize,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

fn two() -> usize {
    2
}

fn one() -> usize {
    1
}

fn default_eps() -> f32 {
    1e-12
}

fn default_act() -> String {
    "gelu".into()
}

impl BertConfig {
    /// Reads a Hugging Face `config.json`.
    pub fn from_path(path: &Path) -> Result<BertConfig, BertError> {
        let text = std::fs::read_to_string(path).map_err(|source| BertError::Read {
            path: path.to_owned(),
            source,
        })?;
        BertConfig::parse(&text, path)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<BertConfig, BertError> {
        let invalid = |reason: String| BertError::Config {
            path: PathBuf::from(path),
            reason,
        };
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let family = match raw.model_type.as_str() {
            "bert" => Family::Bert,
            "roberta" | "xlm-roberta" => Family::Roberta,
            "albert" => Family::Albert,
            other => {
                return Err(invalid(format!(
                    "model_type `{other}` is not supported (bert, roberta, xlm-roberta, albert)"
                )));
            }
        };
        let activation = match raw.hidden_act.as_str() {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => return Err(invalid(format!("hidden_act `{other}` is not supported"))),
        };
        if let Some(kind) = raw.position_embedding_type.as_deref()
            && kind != "absolute"
        {
            return Err(invalid(format!(
                "position_embedding_type `{kind}` is not supported (absolute only)"
            )));
        }
        if raw.num_attention_heads == 0 || !raw.hidden_size.is_multiple_of(raw.num_attention_heads)
        {
            return Err(invalid(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                raw.hidden_size, raw.num_attention_heads
            )));
        }
        if family == Family::Albert && (raw.num_hidden_groups != 1 || raw.inner_group_num != 1) {
            return Err(invalid(
                "ALBERT with more than one layer group is not supported".into(),
            ));
        }
        let position_offset = match family {
            Family::Roberta => raw.pad_token_id + 1,
            _ => 0,
        };
        Ok(BertConfig {
            family,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            embedding_size: match family {
                Family::Albert => raw.embedding_size.unwrap_or(128),
                _ => raw.hidden_size,
            },
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            head_size: raw.hidden_size / raw.num_attention_heads,
            intermediate_size: raw.intermediate_size,
            max_positions: raw.max_position_embeddings,
            type_vocab_size: raw.type_vocab_size,
            layer_norm_eps: raw.layer_norm_eps,
            activation,
            position_offset,
        })
    }

    /// Width of all heads together: the attention's inner width.
    pub fn attention_width(&self) -> usize {
        self.num_heads * self.head_size
    }

    /// Longest sequence the position table allows.
    pub fn max_sequence(&self) -> usize {
        self.max_positions - self.position_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roberta_positions_start_after_padding() {
        let text = r#"{"model_type":"roberta","vocab_size":50265,"hidden_size":768,
            "num_hidden_layers":12,"num_attention_heads":12,"intermediate_size":3072,
            "max_position_embeddings":514,"type_vocab_size":1,"pad_token_id":1,
            "layer_norm_eps":1e-5}"#;
        let config = BertConfig::parse(text, Path::new("c.json")).unwrap();
        assert_eq!(config.family, Family::Roberta);
        assert_eq!(config.position_offset, 2);
        assert_eq!(config.max_sequence(), 512);
    }

    #[test]
    fn unknown_model_type_is_named() {
        let text = r#"{"model_type":"gpt2","vocab_size":1,"hidden_size":4,"num_hidden_layers":1,
            "num_attention_heads":1,"intermediate_size":4,"max_position_embeddings":8}"#;
        let e = BertConfig::parse(text, Path::new("c.json")).unwrap_err();
        assert!(e.to_string().contains("model_type `gpt2`"), "{e}");
    }
}

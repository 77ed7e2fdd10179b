//! Turns texts into the `input_ids`, `attention_mask` and `token_type_ids` a BERT-family model
//! takes: `tokenizer.json`, cut at the manifest's `max_length`, padded to the longest text.

use std::borrow::Cow;
use std::path::Path;

use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, PostProcessor, Tokenizer, TruncationParams,
    TruncationStrategy,
};

use super::TextError;

/// A tokenizer set up for one model.
pub struct TextTokenizer {
    inner: Tokenizer,
    max_length: usize,
    pad_id: i64,
}

/// Token ids of a batch of texts, row-major `[batch, len]`, padded to the longest text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Number of texts.
    pub batch: usize,
    /// Tokens per row.
    pub len: usize,
    /// Token ids.
    pub ids: Vec<i64>,
    /// 1 for a real token, 0 for padding.
    pub mask: Vec<i64>,
    /// Segment ids (all 0 for single texts).
    pub types: Vec<i64>,
    /// Per text: its tokens exceeded `max_length` and the rest was cut.
    pub truncated: Vec<bool>,
    /// The id padding tokens take.
    pub pad_id: i64,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, replacing its own truncation and padding with a cut at
    /// `max_length` tokens (special tokens included) and padding to the longest text of a batch.
    pub fn from_file(path: &Path, max_length: usize) -> Result<TextTokenizer, TextError> {
        let load_err = |source| TextError::Tokenizer {
            path: path.to_owned(),
            source,
        };
        let mut inner = Tokenizer::from_file(path).map_err(load_err)?;
        let special = inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        if max_length <= special {
            return Err(load_err(
                format!(
                    "max_length {max_length} leaves no room beside the {special} special tokens"
                )
                .into(),
            ));
        }
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                ..TruncationParams::default()
            }))
            .map_err(load_err)?;
        let padding = match inner.get_padding() {
            Some(own) => PaddingParams {
                strategy: PaddingStrategy::BatchLongest,
                direction: PaddingDirection::Right,
                pad_to_multiple_of: None,
                ..own.clone()
            },
            None => PaddingParams::default(),
        };
        let pad_id = i64::from(padding.pad_id);
        inner.with_padding(Some(padding));
        Ok(TextTokenizer {
            inner,
            max_length,
            pad_id,
        })
    }

    /// The longest token sequence produced, special tokens included.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Tokenizes `texts` as one batch padded to its longest member.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Batch, TextError> {
        let encodings = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|source| TextError::Tokenize { source })?;
        let len = encodings.first().map_or(0, |e| e.len());
        let column = |f: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<i64> {
            encodings
                .iter()
                .flat_map(|e| f(e).iter().map(|&v| i64::from(v)))
                .collect()
        };
        Ok(Batch {
            batch: encodings.len(),
            len,
            ids: column(tokenizers::Encoding::get_ids),
            mask: column(tokenizers::Encoding::get_attention_mask),
            types: column(tokenizers::Encoding::get_type_ids),
            truncated: encodings
                .iter()
                .map(|e| !e.get_overflowing().is_empty())
                .collect(),
            pad_id: self.pad_id,
        })
    }
}

impl Batch {
    /// The batch with every row padded to `len` tokens (masked out), or itself, uncopied, when
    /// its rows are that long already.
    pub fn padded(&self, len: usize) -> Cow<'_, Batch> {
        if len <= self.len {
            return Cow::Borrowed(self);
        }
        let pad = |column: &[i64], value: i64| -> Vec<i64> {
            let mut out = Vec::with_capacity(self.batch * len);
            for row in 0..self.batch {
                out.extend_from_slice(&column[row * self.len..(row + 1) * self.len]);
                out.resize((row + 1) * len, value);
            }
            out
        };
        Cow::Owned(Batch {
            ids: pad(&self.ids, self.pad_id),
            mask: pad(&self.mask, 0),
            types: pad(&self.types, 0),
            len,
            truncated: self.truncated.clone(),
            ..*self
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whitespace word-level tokenizer with BERT's `[CLS] … [SEP]` around each text.
    const TINY: &str = r#"{
        "version": "1.0",
        "truncation": null,
        "padding": {"strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
        "decoder": null,
        "model": {"type": "WordLevel", "unk_token": "[UNK]",
                  "vocab": {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "[UNK]": 3, "a": 4, "b": 5, "c": 6}}
    }"#;

    fn tiny(max_length: usize) -> Result<TextTokenizer, TextError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, TINY).unwrap();
        TextTokenizer::from_file(&path, max_length)
    }

    #[test]
    fn a_batch_is_padded_to_its_longest_text_not_the_files_fixed_size() {
        let batch = tiny(8).unwrap().encode_batch(&["a b c", "b"]).unwrap();
        assert_eq!((batch.batch, batch.len), (2, 5));
        assert_eq!(batch.ids, [1, 4, 5, 6, 2, 1, 5, 2, 0, 0]);
        assert_eq!(batch.mask, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
        assert_eq!(batch.types, [0; 10]);
        assert_eq!(batch.truncated, [false, false]);
    }

    #[test]
    fn padding_a_batch_appends_masked_pad_tokens_to_every_row() {
        let batch = tiny(8).unwrap().encode_batch(&["a b c", "b"]).unwrap();
        let padded = batch.padded(7);
        assert_eq!((padded.batch, padded.len), (2, 7));
        assert_eq!(padded.ids, [1, 4, 5, 6, 2, 0, 0, 1, 5, 2, 0, 0, 0, 0]);
        assert_eq!(padded.mask, [1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0]);
        assert_eq!(padded.types, [0; 14]);
        assert_eq!(padded.truncated, batch.truncated);
        assert!(matches!(batch.padded(3), Cow::Borrowed(b) if *b == batch));
    }

    #[test]
    fn texts_over_max_length_are_cut_and_flagged() {
        let batch = tiny(4)
            .unwrap()
            .encode_batch(&["a b c", "a b", "zz"])
            .unwrap();
        assert_eq!(batch.len, 4);
        assert_eq!(&batch.ids[..4], [1, 4, 5, 2]);
        assert_eq!(&batch.ids[8..], [1, 3, 2, 0]);
        assert_eq!(batch.truncated, [true, false, false]);
    }

    #[test]
    fn max_length_must_leave_room_beside_the_special_tokens() {
        let err = tiny(2).err().unwrap();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            chain.contains("tokenizer.json") && chain.contains("2 special tokens"),
            "{chain}"
        );
        assert!(tiny(3).is_ok());
    }

    #[test]
    fn a_missing_tokenizer_names_its_path() {
        let err = TextTokenizer::from_file(Path::new("/nowhere/tokenizer.json"), 8)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "cannot load tokenizer /nowhere/tokenizer.json"
        );
    }
}

//! A `text-classify` model ready to run: the manifest, its tokenizer and tract's plans (one for
//! batches, one per padded length for single texts: [`Plans`]).

use std::path::Path;

use tract_onnx::pb::{self, tensor_proto::DataType};
use tract_onnx::prelude::*;

use super::TextError;
use super::manifest::TextManifest;
use super::plans::Plans;
use super::tokenize::{Batch, TextTokenizer};
use crate::model::ModelError;

/// Which tokenizer column a model input takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Feed {
    Ids,
    Mask,
    Types,
}

impl Feed {
    /// The column of `batch` this input takes.
    pub(crate) fn column(self, batch: &Batch) -> &[i64] {
        match self {
            Feed::Ids => &batch.ids,
            Feed::Mask => &batch.mask,
            Feed::Types => &batch.types,
        }
    }
}

/// The inputs edgemass feeds a text model, by name.
pub(crate) const FEEDS: [(&str, Feed); 3] = [
    ("input_ids", Feed::Ids),
    ("attention_mask", Feed::Mask),
    ("token_type_ids", Feed::Types),
];

/// How far a row of the output may sum from 1 and still be read as probabilities.
const PROBABILITY_TOLERANCE: f32 = 1e-3;

/// A loaded text classifier.
pub struct TextClassifier {
    manifest: TextManifest,
    tokenizer: TextTokenizer,
    plans: Plans,
    feeds: Vec<Feed>,
}

/// The answer for one text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextResult {
    /// The most probable label.
    pub label: String,
    /// Its probability.
    pub score: f32,
    /// Every label with its probability, in the manifest's label order.
    pub scores: Vec<(String, f32)>,
    /// The text had more than `max_length` tokens and only its start was classified.
    pub truncated: bool,
}

impl TextClassifier {
    /// Reads the manifest at `path` and loads its model.
    pub fn from_manifest_path(path: &Path) -> Result<TextClassifier, TextError> {
        let manifest = TextManifest::from_path(path).map_err(ModelError::from)?;
        TextClassifier::load(manifest)
    }

    /// Loads the tokenizer, checks the ONNX file's hash, inputs and output against the manifest,
    /// builds the plan and runs it once on a blank text to check that the output holds one
    /// probability per label.
    pub fn load(manifest: TextManifest) -> Result<TextClassifier, TextError> {
        let tokenizer = TextTokenizer::from_file(&manifest.tokenizer, manifest.max_length)?;
        let path = manifest.file.clone();
        let proto = crate::model::read_verified(&path, &manifest.sha256)?;
        let feeds = check_signature(crate::model::graph(&proto, &path)?, &manifest.output)
            .map_err(|reason| ModelError::Mismatch {
                path: path.clone(),
                reason,
            })?;
        let tract_err = |stage| ModelError::tract(&path, stage);
        let dir = path.parent().and_then(Path::to_str);
        let model = tract_onnx::onnx()
            .parse(&proto, dir)
            .map_err(tract_err("import"))?
            .model
            .with_outputs_by_name([&manifest.output])
            .map_err(tract_err("select the output of"))?;
        let plans = Plans::new(model, &path, manifest.max_length)?;
        let classifier = TextClassifier {
            manifest,
            tokenizer,
            plans,
            feeds,
        };
        classifier.warm_up()?;
        Ok(classifier)
    }

    /// The manifest this classifier was loaded from.
    pub fn manifest(&self) -> &TextManifest {
        &self.manifest
    }

    /// Classifies `texts` in one run, padded to the longest; fails on an empty or blank text.
    pub fn classify(&self, texts: &[&str]) -> Result<Vec<TextResult>, TextError> {
        if let Some(index) = texts.iter().position(|t| t.trim().is_empty()) {
            return Err(TextError::Empty { index });
        }
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let batch = self.tokenizer.encode_batch(texts)?;
        let rows = self.run(&batch)?;
        Ok(rows
            .into_iter()
            .zip(batch.truncated)
            .map(|(row, truncated)| self.result(&row, truncated))
            .collect())
    }

    fn result(&self, row: &[f32], truncated: bool) -> TextResult {
        let best = row
            .iter()
            .enumerate()
            .fold(0, |best, (i, p)| if *p > row[best] { i } else { best });
        TextResult {
            label: self.manifest.labels[best].clone(),
            score: row[best],
            scores: self
                .manifest
                .labels
                .iter()
                .cloned()
                .zip(row.iter().copied())
                .collect(),
            truncated,
        }
    }

    /// Runs a blank text, so the first short text does not pay for building its plan and tract's
    /// first-run setup, and checks that the output reads as one probability per label.
    fn warm_up(&self) -> Result<(), TextError> {
        let rows = self.run(&self.tokenizer.encode_batch(&[""])?)?;
        let sum: f32 = rows.iter().flatten().sum();
        if (sum - 1.0).abs() > PROBABILITY_TOLERANCE || rows.iter().flatten().any(|p| *p < 0.0) {
            return Err(ModelError::Mismatch {
                path: self.manifest.file.clone(),
                reason: format!(
                    "output `{}` does not hold probabilities (a blank text's row sums to {sum}); \
                     `text.output` must name the softmax output",
                    self.manifest.output
                ),
            }
            .into());
        }
        Ok(())
    }

    /// One plan run, the batch padded to the length its plan asks for; returns one row of
    /// `labels.len()` values per text.
    fn run(&self, batch: &Batch) -> Result<Vec<Vec<f32>>, TextError> {
        let run_err = |e: TractError| ModelError::Run {
            model: self.manifest.name.clone(),
            source: e.into(),
        };
        let (plan, len) = self.plans.get(batch.batch, batch.len)?;
        let batch = &*batch.padded(len);
        let shape = [batch.batch, batch.len];
        let inputs = self
            .feeds
            .iter()
            .map(|feed| Tensor::from_shape(&shape, feed.column(batch)).map(TValue::from))
            .collect::<TractResult<TVec<TValue>>>()
            .map_err(run_err)?;
        let outputs = plan.run(inputs).map_err(run_err)?;
        let labels = self.manifest.labels.len();
        let view = outputs[0].to_plain_array_view::<f32>().map_err(run_err)?;
        if view.shape() != [batch.batch, labels] {
            return Err(ModelError::Mismatch {
                path: self.manifest.file.clone(),
                reason: format!(
                    "output `{}` is {:?} for {} text(s) but the manifest lists {labels} labels",
                    self.manifest.output,
                    view.shape(),
                    batch.batch
                ),
            }
            .into());
        }
        Ok(view
            .outer_iter()
            .map(|row| row.iter().copied().collect())
            .collect())
    }
}

/// Checks that the graph takes exactly the three int64 token inputs and has the manifest's
/// output; returns which column each input takes, in the graph's order.
fn check_signature(graph: &pb::GraphProto, output: &str) -> Result<Vec<Feed>, String> {
    let inputs = crate::model::declared::inputs(graph);
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let expected = FEEDS.map(|(name, _)| name);
    if let Some(missing) = expected.iter().find(|name| !names.contains(name)) {
        return Err(format!(
            "the model has no input `{missing}` (its inputs are {names:?}, edgemass feeds {expected:?})"
        ));
    }
    let mut feeds = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let Some((_, feed)) = FEEDS.iter().find(|(name, _)| *name == input.name) else {
            return Err(format!(
                "the model's input `{}` is not one edgemass feeds ({expected:?})",
                input.name
            ));
        };
        if let Some(elem_type) = crate::model::declared::elem_type(input)
            && elem_type != DataType::Int64 as i32
        {
            return Err(format!(
                "input `{}` has ONNX element type {elem_type}, edgemass feeds int64",
                input.name
            ));
        }
        feeds.push(*feed);
    }
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    if !outputs.contains(&output) {
        return Err(format!(
            "the model has no output `{output}` named by `text.output` (its outputs are {outputs:?})"
        ));
    }
    Ok(feeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &str, elem_type: DataType) -> pb::ValueInfoProto {
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: elem_type as i32,
                    shape: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn graph(inputs: &[(&str, DataType)], outputs: &[&str]) -> pb::GraphProto {
        pb::GraphProto {
            input: inputs.iter().map(|(n, t)| value(n, *t)).collect(),
            output: outputs.iter().map(|n| value(n, DataType::Float)).collect(),
            ..Default::default()
        }
    }

    const BERT: [(&str, DataType); 3] = [
        ("input_ids", DataType::Int64),
        ("attention_mask", DataType::Int64),
        ("token_type_ids", DataType::Int64),
    ];

    #[test]
    fn inputs_are_fed_in_the_graphs_order() {
        let g = graph(&[BERT[2], BERT[0], BERT[1]], &["logits", "scores"]);
        let feeds = check_signature(&g, "scores").unwrap();
        assert!(
            matches!(feeds[..], [Feed::Types, Feed::Ids, Feed::Mask]),
            "{feeds:?}"
        );
    }

    #[test]
    fn a_missing_or_extra_input_is_named() {
        let err = check_signature(&graph(&BERT[..2], &["scores"]), "scores").unwrap_err();
        assert!(err.contains("no input `token_type_ids`"), "{err}");
        let extra = [BERT[0], BERT[1], BERT[2], ("position_ids", DataType::Int64)];
        let err = check_signature(&graph(&extra, &["scores"]), "scores").unwrap_err();
        assert!(err.contains("`position_ids`"), "{err}");
    }

    #[test]
    fn int32_inputs_are_refused() {
        let inputs = [BERT[0], ("attention_mask", DataType::Int32), BERT[2]];
        let err = check_signature(&graph(&inputs, &["scores"]), "scores").unwrap_err();
        assert!(
            err.contains("`attention_mask`") && err.contains("int64"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_output_lists_the_real_ones() {
        let err = check_signature(&graph(&BERT, &["logits"]), "scores").unwrap_err();
        assert!(
            err.contains("`scores`") && err.contains("[\"logits\"]"),
            "{err}"
        );
    }
}

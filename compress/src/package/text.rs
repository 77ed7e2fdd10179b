//! A `text-classify` package opened for tract: manifest, tokenizer and model, run on batches of
//! texts. Evaluation and distillation both score texts this way, so they see what ships.

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use crate::bert::from_onnx::{self, Imported};
use crate::data;
use crate::onnx::graph::Graph;
use crate::package::{PackageError, Provenance, TextClassifier};

/// An opened package.
pub struct TextPackage {
    /// The manifest it was opened from.
    pub manifest: PathBuf,
    /// The ONNX file.
    pub model: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer_path: PathBuf,
    /// Class names by class id.
    pub labels: Vec<String>,
    /// Longest token sequence.
    pub max_length: usize,
    /// sha256 of the ONNX file, hex.
    pub sha256: String,
    /// Origin, passes and metrics recorded in the manifest.
    pub provenance: Provenance,
    tokenizer: Tokenizer,
}

/// A model optimised by tract, returning the named outputs.
pub type Plan = std::sync::Arc<TypedRunnableModel>;

impl TextPackage {
    /// Reads `manifest` (`NAME.model.toml`) and the tokenizer beside it.
    pub fn open(manifest: &Path) -> Result<TextPackage, PackageError> {
        let package = |path: &Path, reason: String| PackageError::Package {
            path: path.to_owned(),
            reason,
        };
        let text =
            std::fs::read_to_string(manifest).map_err(|e| package(manifest, e.to_string()))?;
        let spec: toml::Table =
            toml::from_str(&text).map_err(|e| package(manifest, e.to_string()))?;
        let section = spec.get("text");
        let (Some(file), Some(tokenizer), Some(max_length), Some(labels)) = (
            spec.get("file").and_then(|v| v.as_str()),
            section.and_then(|t| t.get("tokenizer")?.as_str()),
            section.and_then(|t| t.get("max_length")?.as_integer()),
            spec.get("labels").and_then(|v| v.as_array()),
        ) else {
            return Err(package(
                manifest,
                "not a text-classify manifest (needs file, labels, text.tokenizer, \
                 text.max_length)"
                    .into(),
            ));
        };
        let dir = manifest.parent().unwrap_or(Path::new("."));
        let tokenizer_path = dir.join(tokenizer);
        let model = dir.join(file);
        let bytes = std::fs::read(&model).map_err(|e| package(&model, e.to_string()))?;
        let provenance = match spec.get("provenance") {
            Some(p) => p
                .clone()
                .try_into()
                .map_err(|e| package(manifest, format!("[provenance]: {e}")))?,
            None => Provenance::default(),
        };
        Ok(TextPackage {
            provenance,
            manifest: manifest.to_owned(),
            tokenizer: data::corpus::tokenizer(&tokenizer_path, max_length as usize, true)
                .map_err(|reason| package(&tokenizer_path, reason))?,
            tokenizer_path,
            model,
            labels: labels
                .iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect(),
            max_length: max_length as usize,
            sha256: crate::package::sha256_hex(&bytes),
        })
    }

    /// The encoder and head inside the ONNX file, for passes that change weights.
    pub fn encoder(&self) -> Result<Imported, PackageError> {
        let graph = Graph::load(&self.model)?;
        Ok(from_onnx::read(&graph.proto, &self.model)?)
    }

    /// The provenance of a package derived from this one by `pass`: same origin, this package's
    /// hash as the teacher unless it already names one, the pass appended, no metrics (they
    /// belonged to this package).
    pub fn derived_provenance(&self, pass: String) -> Provenance {
        self.provenance.derived(&self.sha256, pass)
    }

    /// Writes `model` as a package named `name` into `out` with this package's labels, tokenizer
    /// and maximum length; returns the new manifest.
    pub fn write_derived(
        &self,
        out: &Path,
        name: &str,
        description: String,
        model: &ModelProto,
        provenance: Provenance,
    ) -> Result<PathBuf, PackageError> {
        Ok(TextClassifier {
            name,
            description,
            model,
            labels: self.labels.clone(),
            tokenizer: &self.tokenizer_path,
            max_length: self.max_length,
            provenance,
        }
        .write(out)?)
    }

    /// Loads the model for `output` (`logits` or `scores`), batch and sequence sizes symbolic.
    pub fn plan(&self, output: &str) -> Result<Plan, PackageError> {
        self.optimized(self.import()?, &[output])
    }

    /// The plan for `output` at one text of `len` tokens, built as the agent builds it for a
    /// single text ([`edgemass::text::plans`]): the fixed shape runs faster in tract than
    /// [`Self::plan`].
    pub fn plan_at(&self, output: &str, len: usize) -> Result<Plan, PackageError> {
        let model = self
            .import()?
            .with_outputs_by_name([output])
            .map_err(self.tract_error())?;
        edgemass::text::plans::fixed(model, &self.model, 1, len).map_err(|e| PackageError::Tract {
            path: self.model.clone(),
            reason: e.to_string(),
        })
    }

    /// Loads `graph`, a graph of this package's encoder, for the named outputs or inner tensors.
    pub fn plan_graph(&self, graph: &ModelProto, outputs: &[&str]) -> Result<Plan, PackageError> {
        let model = tract_onnx::onnx()
            .model_for_proto_model(graph)
            .map_err(self.tract_error())?;
        self.optimized(model, outputs)
    }

    fn import(&self) -> Result<InferenceModel, PackageError> {
        tract_onnx::onnx()
            .model_for_path(&self.model)
            .map_err(self.tract_error())
    }

    fn optimized(&self, model: InferenceModel, outputs: &[&str]) -> Result<Plan, PackageError> {
        let tract = self.tract_error();
        let model = model.with_outputs_by_name(outputs).map_err(&tract)?;
        edgemass::model::short_softmax::into_optimized(model)
            .map_err(&tract)?
            .into_runnable()
            .map_err(&tract)
    }

    /// Token ids of each text without padding, truncated at `max_length`.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, PackageError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| PackageError::Package {
                path: self.tokenizer_path.clone(),
                reason: e.to_string(),
            })?;
        Ok(encodings
            .iter()
            .map(|e| {
                let real = e.get_attention_mask().iter().filter(|&&m| m == 1).count();
                e.get_ids()[..real].to_vec()
            })
            .collect())
    }

    /// One output row per text.
    pub fn run(&self, plan: &Plan, texts: &[&str]) -> Result<Vec<Vec<f32>>, PackageError> {
        self.run_ids(plan, &self.tokenize(texts)?)
    }

    /// One output row per token sequence; the batch is padded to its longest.
    pub fn run_ids(&self, plan: &Plan, rows: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, PackageError> {
        Ok(self.run_ids_all(plan, rows)?.swap_remove(0))
    }

    /// Every output of `plan`, one row per token sequence each.
    pub fn run_ids_all(
        &self,
        plan: &Plan,
        rows: &[Vec<u32>],
    ) -> Result<Vec<Vec<Vec<f32>>>, PackageError> {
        let tract = self.tract_error();
        let (b, s) = (rows.len(), rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut ids = vec![0i64; b * s];
        let mut mask = vec![0i64; b * s];
        for (r, row) in rows.iter().enumerate() {
            for (c, &id) in row.iter().enumerate() {
                ids[r * s + c] = i64::from(id);
                mask[r * s + c] = 1;
            }
        }
        let tensor = |v: &[i64]| -> Result<TValue, PackageError> {
            Ok(Tensor::from_shape(&[b, s], v).map_err(&tract)?.into())
        };
        let inputs = tvec![tensor(&ids)?, tensor(&mask)?, tensor(&vec![0; b * s])?];
        let out = plan.run(inputs).map_err(&tract)?;
        out.iter()
            .map(|output| {
                let view = output.to_plain_array_view::<f32>().map_err(&tract)?;
                Ok(view
                    .outer_iter()
                    .map(|row| row.iter().copied().collect())
                    .collect())
            })
            .collect()
    }

    fn tract_error(&self) -> impl Fn(TractError) -> PackageError + use<> {
        let path = self.model.clone();
        move |e| PackageError::Tract {
            path: path.clone(),
            reason: format!("{e:#}"),
        }
    }
}

//! The `text-classify` package manifest (`NAME.model.toml`): the ONNX file, its tokenizer, the
//! output to read and the labels.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::manifest::{ManifestError, Provenance, Task, resolve_file, toml_message};

/// Longest token sequence a BERT-family position table holds.
const MAX_LENGTH_LIMIT: usize = 512;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTextManifest {
    name: String,
    task: Task,
    file: String,
    sha256: String,
    #[serde(default)]
    description: String,
    labels: Vec<String>,
    text: RawText,
    #[serde(default)]
    provenance: Provenance,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawText {
    tokenizer: String,
    max_length: usize,
    output: String,
}

/// Just the `task` of any manifest, read leniently so a vision manifest is reported by its task
/// rather than by its first key a text manifest lacks.
#[derive(Deserialize)]
struct TaskOnly {
    task: Option<String>,
}

/// A validated `text-classify` manifest with its paths resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct TextManifest {
    /// Model id, used in output and logs.
    pub name: String,
    /// The ONNX file.
    pub file: PathBuf,
    /// Expected sha256 of `file`, lowercase hex.
    pub sha256: String,
    /// One line for humans.
    pub description: String,
    /// Class names, indexed by class id.
    pub labels: Vec<String>,
    /// The `tokenizer.json` file.
    pub tokenizer: PathBuf,
    /// Longest token sequence fed to the model, special tokens included; longer texts are cut.
    pub max_length: usize,
    /// Name of the model output holding per-class probabilities `[batch, labels]`.
    pub output: String,
    /// Origin and metrics.
    pub provenance: Provenance,
}

impl TextManifest {
    /// Reads and validates a manifest file; relative paths are taken from its directory.
    pub fn from_path(path: &Path) -> Result<TextManifest, ManifestError> {
        let (text, dir, cache) = crate::model::manifest::read(path)?;
        TextManifest::parse(&text, path, dir, cache.as_deref())
    }

    /// Parses manifest text. `path` is only used in messages; `dir` resolves relative paths;
    /// `cache` replaces `{cache}` in `file` and `text.tokenizer` (default: `dir/cache`).
    pub fn parse(
        text: &str,
        path: &Path,
        dir: &Path,
        cache: Option<&Path>,
    ) -> Result<TextManifest, ManifestError> {
        let invalid = |field, reason: String| ManifestError::Invalid {
            path: path.to_owned(),
            field,
            reason,
        };
        let wrong_task = |task: &str| {
            invalid(
                "task",
                format!("must be text-classify for a text model, not `{task}`"),
            )
        };
        let raw: RawTextManifest = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                return Err(match toml::from_str::<TaskOnly>(text) {
                    Ok(TaskOnly { task: Some(task) }) if task != "text-classify" => {
                        wrong_task(&task)
                    }
                    _ => ManifestError::Parse {
                        path: path.to_owned(),
                        message: toml_message(&e, text),
                    },
                });
            }
        };
        match raw.task {
            Task::TextClassify => {}
            Task::Detect => return Err(wrong_task("detect")),
            Task::Classify => return Err(wrong_task("classify")),
        }
        if raw.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty".into()));
        }
        if raw.sha256.len() != 64 || !raw.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("sha256", "must be 64 hexadecimal digits".into()));
        }
        if raw.labels.len() < 2 {
            return Err(invalid("labels", "must name at least two classes".into()));
        }
        if raw.labels.iter().any(|l| l.trim().is_empty()) {
            return Err(invalid("labels", "must not contain an empty name".into()));
        }
        if let Some((i, label)) = raw
            .labels
            .iter()
            .enumerate()
            .find(|(i, l)| raw.labels[..*i].contains(l))
        {
            return Err(invalid(
                "labels",
                format!("must be distinct, `{label}` appears again at position {i}"),
            ));
        }
        if !(1..=MAX_LENGTH_LIMIT).contains(&raw.text.max_length) {
            return Err(invalid(
                "text.max_length",
                format!("must be between 1 and {MAX_LENGTH_LIMIT}"),
            ));
        }
        if raw.text.output.trim().is_empty() {
            return Err(invalid("text.output", "must name a model output".into()));
        }
        if raw.text.tokenizer.trim().is_empty() {
            return Err(invalid("text.tokenizer", "must name a file".into()));
        }
        Ok(TextManifest {
            name: raw.name,
            file: resolve_file(&raw.file, dir, cache),
            sha256: raw.sha256.to_ascii_lowercase(),
            description: raw.description,
            labels: raw.labels,
            tokenizer: resolve_file(&raw.text.tokenizer, dir, cache),
            max_length: raw.text.max_length,
            output: raw.text.output,
            provenance: raw.provenance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTIMENT: &str = r#"
        name = "minilm-l6-sentiment"
        task = "text-classify"
        description = "Rotten Tomatoes sentiment"
        file = "model.onnx"
        sha256 = "C15D8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f"
        labels = ["rotten", "fresh"]

        [text]
        tokenizer = "{cache}/minilm-l6/tokenizer.json"
        max_length = 128
        output = "scores"

        [provenance]
        source = "test"
        license = "Apache-2.0"
        passes = ["import", "train-head"]
        [provenance.metrics]
        accuracy = 0.8
    "#;

    fn parse(text: &str) -> Result<TextManifest, ManifestError> {
        TextManifest::parse(text, Path::new("m.toml"), Path::new("/models"), None)
    }

    fn error(text: &str) -> String {
        let err = parse(text).unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        err
    }

    #[test]
    fn paths_resolve_beside_the_manifest_and_in_the_cache() {
        let m = parse(SENTIMENT).unwrap();
        assert_eq!(m.file, Path::new("/models/model.onnx"));
        assert_eq!(
            m.tokenizer,
            Path::new("/models/cache/minilm-l6/tokenizer.json")
        );
        let elsewhere = TextManifest::parse(
            SENTIMENT,
            Path::new("m.toml"),
            Path::new("/models"),
            Some(Path::new("/c")),
        )
        .unwrap();
        assert_eq!(
            elsewhere.tokenizer,
            Path::new("/c/minilm-l6/tokenizer.json")
        );
    }

    #[test]
    fn fields_are_read_and_the_hash_lowercased() {
        let m = parse(SENTIMENT).unwrap();
        assert_eq!(m.name, "minilm-l6-sentiment");
        assert_eq!(m.labels, ["rotten", "fresh"]);
        assert_eq!((m.max_length, m.output.as_str()), (128, "scores"));
        assert!(m.sha256.starts_with("c15d8273"));
        assert_eq!(m.provenance.passes, ["import", "train-head"]);
        assert_eq!(m.provenance.metrics["accuracy"], 0.8);
    }

    #[test]
    fn a_vision_manifest_is_named_by_its_task() {
        let detect = r#"
            name = "yolo"
            task = "detect"
            file = "m.onnx"
            sha256 = "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f"
            labels = ["a"]
            [input]
            name = "images"
            [decoder]
            kind = "yolov8"
            output = "output0"
        "#;
        let err = error(detect);
        assert!(
            err.contains("`task` must be text-classify for a text model, not `detect`"),
            "{err}"
        );
        let err = error(&SENTIMENT.replace("\"text-classify\"", "\"classify\""));
        assert!(err.contains("not `classify`"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let err = error(&SENTIMENT.replace("output = \"scores\"", "output = \"scores\"\npad = 0"));
        assert!(err.contains("pad") && err.contains("line"), "{err}");
    }

    #[test]
    fn a_misnamed_section_or_missing_key_is_named() {
        let text = SENTIMENT.replace("[text]", "[other]");
        let err = error(&text);
        assert!(err.contains("`other`"), "{err}");
        let err = error(&SENTIMENT.replace("output = \"scores\"", ""));
        assert!(err.contains("`output`"), "{err}");
    }

    #[test]
    fn max_length_must_fit_the_encoder() {
        for bad in ["0", "513"] {
            let err = error(&SENTIMENT.replace("max_length = 128", &format!("max_length = {bad}")));
            assert!(err.contains("`text.max_length`"), "{err}");
        }
        let err = error(&SENTIMENT.replace("max_length = 128", "max_length = -1"));
        assert!(err.contains("line 11") && err.contains("-1"), "{err}");
    }

    #[test]
    fn labels_need_two_distinct_names() {
        let err = error(&SENTIMENT.replace(r#"["rotten", "fresh"]"#, r#"["fresh"]"#));
        assert!(err.contains("`labels`") && err.contains("two"), "{err}");
        let err = error(&SENTIMENT.replace(r#"["rotten", "fresh"]"#, r#"["a", "b", "a"]"#));
        assert!(err.contains("`labels` must be distinct"), "{err}");
        let err = error(&SENTIMENT.replace(r#"["rotten", "fresh"]"#, r#"["a", " "]"#));
        assert!(err.contains("`labels`"), "{err}");
    }

    #[test]
    fn bad_hash_and_empty_output_name_their_field() {
        let err = error(&SENTIMENT.replace("C15D8273", "zz"));
        assert!(err.contains("`sha256`"), "{err}");
        let err = error(&SENTIMENT.replace("output = \"scores\"", "output = \"\""));
        assert!(err.contains("`text.output`"), "{err}");
    }
}

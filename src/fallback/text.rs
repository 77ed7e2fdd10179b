//! The text classifier's unsure results to the host. The text goes out tokenized with the host
//! model's own tokenizer; the host's label and score come back as a second `text/out` message
//! with the same `id`, `verified: true`. Requests run on the async runtime, so the classifier
//! never waits for them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::FallbackError;
use super::check::{Dim, Input, Signature};
use super::host::{Host, Target};
use super::protocol::{DataType, InferRequest, InferResponse, Tensor, Values};
use crate::config::{Band, EscalationConfig};
use crate::publish::client::{Handle, Outgoing};
use crate::text::classifier::FEEDS;
use crate::text::{TextManifest, TextTokenizer};

/// The host's text model as the agent sees it: its manifest, labels and tokenizer.
pub struct TextTeacher {
    manifest: TextManifest,
    tokenizer: TextTokenizer,
}

/// What the host said about one text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextVerdict {
    /// The most probable label.
    pub label: String,
    /// Its probability.
    pub score: f32,
    /// Every label with its probability, in the manifest's order.
    pub scores: Vec<(String, f32)>,
}

impl TextTeacher {
    /// Reads the manifest of the host's model and its tokenizer; the ONNX file need not be here.
    pub fn load(config: &EscalationConfig) -> Result<TextTeacher, FallbackError> {
        let manifest = TextManifest::from_path(&config.model)
            .map_err(FallbackError::manifest(&config.model))?;
        let tokenizer = TextTokenizer::from_file(&manifest.tokenizer, manifest.max_length)
            .map_err(FallbackError::manifest(&config.model))?;
        Ok(TextTeacher {
            manifest,
            tokenizer,
        })
    }

    /// The manifest's model name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The three token inputs, one text of any length, and the probabilities output.
    pub fn signature(&self) -> Signature {
        Signature {
            inputs: FEEDS
                .iter()
                .map(|(name, _)| Input {
                    name: (*name).to_owned(),
                    datatype: DataType::Int64,
                    dims: vec![Dim::Fixed(1), Dim::Varies],
                })
                .collect(),
            outputs: vec![self.manifest.output.clone()],
        }
    }

    /// The request for one text.
    pub fn request(&self, text: &str, model: &str) -> Result<InferRequest, FallbackError> {
        let batch = self
            .tokenizer
            .encode_batch(&[text])
            .map_err(|e| FallbackError::Build {
                model: model.to_owned(),
                source: e.into(),
            })?;
        Ok(InferRequest {
            id: None,
            inputs: FEEDS
                .iter()
                .map(|(name, feed)| Tensor {
                    name: (*name).to_owned(),
                    shape: vec![batch.batch, batch.len],
                    values: Values::Int64(feed.column(&batch).to_vec()),
                })
                .collect(),
            outputs: vec![self.manifest.output.clone()],
            binary_outputs: false,
        })
    }

    /// Reads the probabilities output: one row of one value per label.
    pub fn verdict(
        &self,
        response: &InferResponse,
        model: &str,
    ) -> Result<TextVerdict, FallbackError> {
        let labels = &self.manifest.labels;
        let wrong = |reason: String| FallbackError::Answer {
            model: model.to_owned(),
            reason,
        };
        let output = &self.manifest.output;
        let tensor = response
            .outputs
            .iter()
            .find(|t| t.name == *output)
            .ok_or_else(|| wrong(format!("has no output `{output}`")))?;
        if tensor.shape != [1, labels.len()] {
            return Err(wrong(format!(
                "has output `{output}` of shape {:?}, not [1, {}] (one probability per label)",
                tensor.shape,
                labels.len()
            )));
        }
        let row = tensor.values.to_f32();
        let best = (0..row.len())
            .max_by(|a, b| row[*a].total_cmp(&row[*b]))
            .unwrap_or(0);
        Ok(TextVerdict {
            label: labels[best].clone(),
            score: row[best],
            scores: labels.iter().cloned().zip(row.iter().copied()).collect(),
        })
    }
}

/// The text classifier's link to the host.
pub struct TextFallback {
    host: Arc<Host>,
    target: Arc<Target>,
    teacher: Arc<TextTeacher>,
    band: Band,
    publisher: Handle,
    topic: String,
}

impl TextFallback {
    /// Links the classifier to `host`'s model `target`, described by `teacher`; answers go to
    /// `topic` through `publisher`.
    pub fn new(
        host: Arc<Host>,
        target: Arc<Target>,
        teacher: TextTeacher,
        band: Band,
        publisher: Handle,
        topic: String,
    ) -> TextFallback {
        TextFallback {
            host,
            target,
            teacher: Arc::new(teacher),
            band,
            publisher,
            topic,
        }
    }

    /// The host model the classifier asks.
    pub fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// Whether a result of this score goes to the host.
    pub fn wants(&self, score: f32) -> bool {
        self.band.contains(score)
    }

    /// Sends `text` without waiting; once the host answers, `edge` (the message already
    /// published for it) goes out again with the host's verdict. Nothing is sent when too many
    /// requests are out, the breaker is open or the rate budget is spent (the host's counters
    /// say which).
    pub fn try_send(&self, text: String, edge: Value) {
        let Some(admission) = self.host.try_admit() else {
            return;
        };
        let (host, target, teacher) =
            (self.host.clone(), self.target.clone(), self.teacher.clone());
        let (publisher, topic) = (self.publisher.clone(), self.topic.clone());
        self.host.runtime().spawn(async move {
            let started = tokio::time::Instant::now();
            let (read, model) = (teacher.clone(), target.name.clone());
            let build_model = model.clone();
            let verdict = host
                .ask(
                    admission,
                    &target,
                    move || Ok((teacher.request(&text, &build_model)?, ())),
                    move |(), response| read.verdict(&response, &model),
                )
                .await;
            if let Ok(verdict) = verdict {
                let body = verified(edge, &verdict, &target.name, started.elapsed());
                publisher
                    .send(Outgoing::Event {
                        id: uuid::Uuid::now_v7().to_string(),
                        topic,
                        payload: body.to_string().into_bytes(),
                    })
                    .await;
            }
        });
    }
}

/// The edge's `text/out` message with the host's verdict added.
fn verified(mut edge: Value, verdict: &TextVerdict, model: &str, took: Duration) -> Value {
    let round = |v: f32| (f64::from(v) * 1e4).round() / 1e4;
    let scores: serde_json::Map<String, Value> = verdict
        .scores
        .iter()
        .map(|(label, p)| (label.clone(), json!(round(*p))))
        .collect();
    if let Value::Object(fields) = &mut edge {
        for (key, value) in [
            ("verified", json!(true)),
            ("host_label", json!(verdict.label)),
            ("host_score", json!(round(verdict.score))),
            ("host_scores", Value::Object(scores)),
            ("host_model", json!(model)),
            ("host_ms", json!((took.as_secs_f64() * 1e4).round() / 10.0)),
            ("time", json!(crate::source::now())),
        ] {
            fields.insert(key.to_owned(), value);
        }
    }
    edge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_verdict_is_added_and_the_edge_answer_kept() {
        let edge = json!({"id": "t1", "label": "fresh", "score": 0.61, "verified": false, "source": "mqtt"});
        let verdict = TextVerdict {
            label: "rotten".into(),
            score: 0.93,
            scores: vec![("rotten".into(), 0.93), ("fresh".into(), 0.07)],
        };
        let body = verified(edge, &verdict, "teacher", Duration::from_millis(12));
        assert_eq!(body["id"], "t1");
        assert_eq!(
            (body["label"].as_str(), body["score"].as_f64()),
            (Some("fresh"), Some(0.61))
        );
        assert_eq!(body["verified"], true);
        assert_eq!(body["host_label"], "rotten");
        assert_eq!(body["host_score"], 0.93);
        assert_eq!(body["host_scores"]["fresh"], 0.07);
        assert_eq!(body["host_model"], "teacher");
        assert_eq!(body["host_ms"], 12.0);
        assert_eq!(body["source"], "mqtt");
    }
}

//! Measuring a `text-classify` package the way every recipe step is compared: file size,
//! parameters, MACs, tract latency, onnxruntime latency and accuracy (through
//! `scripts/ort_text.py` on the same file and token ids), and held-out accuracy, F1 and agreement
//! with the teacher in tract.

use std::path::Path;
use std::time::Instant;

use serde::Deserialize;

use crate::data;
use crate::eval::cost::{Cost, MeasureError, Measured};
use crate::onnx::graph::Graph;
use crate::package::PackageError;
use crate::package::text::TextPackage;

/// How to measure.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Tokens in the latency input (batch 1).
    pub sequence: usize,
    /// Timed runs; the median is reported.
    pub runs: usize,
    /// onnxruntime's intra-op threads.
    pub ort_threads: usize,
    /// Also run onnxruntime (needs `python3` with `onnxruntime` and `numpy`).
    pub onnxruntime: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            sequence: 64,
            runs: 30,
            ort_threads: 2,
            onnxruntime: true,
        }
    }
}

/// The held-out Rotten Tomatoes texts and labels; each package tokenizes them itself, since
/// vocabulary pruning changes the ids.
pub struct HeldOut {
    texts: Vec<String>,
    labels: Vec<usize>,
}

impl HeldOut {
    /// The first `limit` texts of one of VADER's human-rated sets ([`data::corpus::rated`]), text of
    /// another kind than the reviews a package trains on.
    pub fn rated(data: &Path, limit: Option<usize>) -> Result<HeldOut, MeasureError> {
        let mut texts = data::corpus::rated(data).map_err(PackageError::from)?;
        texts.truncate(limit.unwrap_or(usize::MAX));
        Ok(HeldOut {
            labels: texts.iter().map(|e| e.label).collect(),
            texts: texts.into_iter().map(|e| e.text).collect(),
        })
    }

    /// The held-out split of `data` (80/20 with `seed`), first `limit` texts.
    pub fn new(data: &Path, seed: u64, limit: Option<usize>) -> Result<HeldOut, MeasureError> {
        let limits = data::corpus::Limits {
            test: limit,
            ..Default::default()
        };
        let test = data::corpus::corpus(data, None, seed, limits)
            .map_err(PackageError::from)?
            .test;
        Ok(HeldOut {
            labels: test.iter().map(|e| e.label).collect(),
            texts: test.into_iter().map(|e| e.text).collect(),
        })
    }

    /// Tokenizes with `package` and writes `{"ids", "label"}` JSON lines to `file` for the
    /// onnxruntime script.
    fn rows(&self, package: &TextPackage, file: &Path) -> Result<Vec<Vec<u32>>, MeasureError> {
        let texts: Vec<&str> = self.texts.iter().map(String::as_str).collect();
        let rows = package.tokenize(&texts)?;
        let mut text = Vec::new();
        for (ids, label) in rows.iter().zip(&self.labels) {
            serde_json::to_writer(&mut text, &serde_json::json!({"ids": ids, "label": label}))
                .expect("plain values");
            text.push(b'\n');
        }
        crate::write_atomic(file, &text).map_err(|e| crate::FileError::new(file, e))?;
        Ok(rows)
    }
}

/// What `scripts/ort_text.py` replies.
#[derive(Deserialize)]
struct OrtReply {
    latency_ms: f64,
    accuracy: f64,
}

/// Everything measured on one package.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Size and speed.
    pub cost: Cost,
    /// Held-out accuracy in tract.
    pub accuracy: f64,
    /// Held-out accuracy in onnxruntime, when it ran.
    pub ort_accuracy: Option<f64>,
    /// F1 of the second class in tract.
    pub f1: f64,
    /// Fraction of held-out texts with the teacher's top class (1 for the teacher).
    pub agreement: f64,
    /// Accuracy in tract on the texts of another kind, when the recipe names them.
    pub other_accuracy: Option<f64>,
    /// Held-out texts.
    pub examples: usize,
    /// Predicted class per held-out text.
    pub predictions: Vec<usize>,
}

impl Measured for Measurement {
    fn cost(&self) -> &Cost {
        &self.cost
    }

    fn quality(&self) -> f64 {
        self.accuracy
    }

    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![
            ("accuracy", self.accuracy),
            ("f1", self.f1),
            ("teacher_agreement", self.agreement),
            ("test_examples", self.examples as f64),
        ];
        out.extend(self.cost.metrics());
        out.extend(self.other_accuracy.map(|a| ("other_accuracy", a)));
        out.extend(self.ort_accuracy.map(|a| ("ort_accuracy", a)));
        out
    }
}

/// Measures the package at `manifest`; `other` is text of another kind to score too; `teacher`
/// holds the teacher's predictions; `rows` is where the tokenized held-out texts are written for
/// onnxruntime.
pub fn measure(
    manifest: &Path,
    held_out: &HeldOut,
    other: Option<&HeldOut>,
    settings: &Settings,
    teacher: Option<&[usize]>,
    rows: &Path,
) -> Result<Measurement, MeasureError> {
    let package = TextPackage::open(manifest)?;
    let tokens = held_out.rows(&package, rows)?;
    let graph = Graph::load(&package.model).map_err(PackageError::from)?;
    let plan = package.plan("scores")?;
    let timed = package.plan_at("scores", settings.sequence)?;

    let probe: Vec<u32> = std::iter::once(101)
        .chain((0..settings.sequence.saturating_sub(2)).map(|i| 2000 + i as u32))
        .chain(std::iter::once(102))
        .collect();
    let probe = [probe];
    for _ in 0..3 {
        package.run_ids(&timed, &probe)?;
    }
    let mut times = Vec::with_capacity(settings.runs);
    for _ in 0..settings.runs.max(1) {
        let started = Instant::now();
        package.run_ids(&timed, &probe)?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);

    let predict = |tokens: &[Vec<u32>]| -> Result<Vec<usize>, MeasureError> {
        let mut predictions = Vec::with_capacity(tokens.len());
        for chunk in tokens.chunks(32) {
            for row in package.run_ids(&plan, chunk)? {
                predictions.push(usize::from(row[1] > row[0]));
            }
        }
        Ok(predictions)
    };
    let predictions = predict(&tokens)?;
    let (accuracy, f1) = crate::eval::text::accuracy_f1(&predictions, &held_out.labels);
    let other_accuracy = match other {
        Some(other) => {
            let texts: Vec<&str> = other.texts.iter().map(String::as_str).collect();
            let guessed = predict(&package.tokenize(&texts)?)?;
            Some(crate::eval::text::accuracy_f1(&guessed, &other.labels).0)
        }
        None => None,
    };
    let n = predictions.len().max(1) as f64;
    let agreement = teacher.map_or(1.0, |t| {
        t.iter().zip(&predictions).filter(|(a, b)| a == b).count() as f64 / n
    });
    let macs = crate::onnx::inspect::text_macs(&graph, settings.sequence);
    let mut cost = Cost::of(&graph, macs, times[times.len() / 2]);
    let ort_accuracy = cost.with_ort(settings.onnxruntime, || {
        onnxruntime(&package.model, rows, settings).map(|r| (r.latency_ms, r.accuracy))
    });
    Ok(Measurement {
        cost,
        accuracy,
        ort_accuracy,
        f1,
        agreement,
        other_accuracy,
        examples: predictions.len(),
        predictions,
    })
}

/// Runs `scripts/ort_text.py`; the error says why onnxruntime could not be measured.
fn onnxruntime(model: &Path, rows: &Path, settings: &Settings) -> Result<OrtReply, String> {
    let (sequence, threads, runs) = (
        settings.sequence.to_string(),
        settings.ort_threads.to_string(),
        settings.runs.to_string(),
    );
    crate::eval::ort::run_script(
        "ort_text.py",
        &[
            model.as_os_str(),
            rows.as_os_str(),
            "--sequence".as_ref(),
            sequence.as_ref(),
            "--threads".as_ref(),
            threads.as_ref(),
            "--runs".as_ref(),
            runs.as_ref(),
        ],
    )
}

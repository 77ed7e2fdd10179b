//! `edgemass classify`: texts from the command line or stdin through a text model package.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use edgemass::text::TextClassifier;
use serde_json::json;

use super::round;

/// `edgemass classify`: texts classified by a text model package.
#[derive(clap::Args)]
pub struct Args {
    /// The model manifest (NAME.model.toml).
    #[arg(long, value_name = "MANIFEST")]
    model: PathBuf,
    /// One JSON object per text and line instead of `LABEL SCORE  TEXT`; `latency_ms` is the
    /// time taken by the batch the text was classified in.
    #[arg(long)]
    json: bool,
    /// Texts to classify; `-` alone reads one text per non-empty line of stdin. Put `--`
    /// before texts that start with `-`.
    #[arg(value_name = "TEXT", required = true)]
    texts: Vec<String>,
}

impl Args {
    /// Runs `classify`.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        classify(&self.model, &self.texts, self.json)
    }
}

/// Texts classified per model run.
const TEXT_BATCH: usize = 16;

fn classify(manifest: &Path, texts: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let from_stdin = matches!(texts, [only] if only == "-");
    if !from_stdin {
        if texts.iter().any(|t| t == "-") {
            bail!("`-` (read texts from stdin) must be the only TEXT");
        }
        if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
            bail!("text {} is empty", i + 1);
        }
    }
    let classifier = TextClassifier::from_manifest_path(manifest)?;
    let mut stdout = std::io::stdout().lock();
    if !from_stdin {
        for chunk in texts.chunks(TEXT_BATCH) {
            write_classified(&classifier, chunk, json, &mut stdout)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut batch = Vec::with_capacity(TEXT_BATCH);
    for (i, line) in std::io::stdin().lock().split(b'\n').enumerate() {
        let line = line.context("cannot read stdin")?;
        let Ok(text) = String::from_utf8(line) else {
            write_classified(&classifier, &batch, json, &mut stdout)?;
            bail!("stdin line {} is not valid UTF-8", i + 1);
        };
        let text = text.strip_suffix('\r').unwrap_or(&text);
        if text.trim().is_empty() {
            continue;
        }
        batch.push(text.to_owned());
        if batch.len() == TEXT_BATCH {
            write_classified(&classifier, &batch, json, &mut stdout)?;
            batch.clear();
        }
    }
    write_classified(&classifier, &batch, json, &mut stdout)?;
    Ok(ExitCode::SUCCESS)
}

/// Classifies one batch and writes a line per text.
fn write_classified(
    classifier: &TextClassifier,
    texts: &[String],
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let started = Instant::now();
    let results = classifier.classify(&refs)?;
    let latency_ms = (started.elapsed().as_secs_f64() * 1e5).round() / 100.0;
    let manifest = classifier.manifest();
    let width = manifest.labels.iter().map(|l| l.chars().count()).max();
    for (text, result) in texts.iter().zip(&results) {
        if json {
            let scores: serde_json::Map<String, serde_json::Value> = result
                .scores
                .iter()
                .map(|(label, p)| (label.clone(), json!(round(*p, 4))))
                .collect();
            let line = json!({
                "text": text,
                "label": result.label,
                "score": round(result.score, 4),
                "scores": scores,
                "truncated": result.truncated,
                "model": manifest.name,
                "latency_ms": latency_ms,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{:<w$} {:.3}  {}",
                result.label,
                result.score,
                text.replace(['\n', '\r'], " "),
                w = width.unwrap_or(0)
            )?;
        }
    }
    Ok(())
}

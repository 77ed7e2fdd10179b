//! Scoring a `text-classify` package with tract on text it never saw: the held-out Rotten Tomatoes
//! split, the same split `train-text` used, or every text of one of VADER's human-rated sets
//! (tweets, product-review and editorial snippets). What the shipped file does, not what the
//! trainer believed.

use crate::data;
pub use crate::package::PackageError as EvalError;
use crate::package::text::TextPackage;
use std::path::Path;

/// Held-out accuracy of a package.
#[derive(Debug, Clone, Copy)]
pub struct Evaluation {
    /// Examples scored.
    pub examples: usize,
    /// Fraction labelled right.
    pub accuracy: f64,
    /// F1 of the second class (positive).
    pub f1: f64,
}

/// Runs the package at `manifest` on the first `limit` texts of `data`'s held-out part: the 80/20
/// split with `seed` of `rotten_tomatoes_corpus_full.csv.bz2`, or all of a VADER `.txt` file.
pub fn evaluate(
    manifest: &Path,
    data: &Path,
    seed: u64,
    limit: Option<usize>,
) -> Result<Evaluation, EvalError> {
    let package = TextPackage::open(manifest)?;
    let expected = data::corpus::SENTIMENT_LABELS;
    if package.labels != expected && package.labels != data::corpus::CORPUS_CATEGORIES {
        return Err(EvalError::Package {
            path: manifest.to_owned(),
            reason: format!(
                "labels {:?} are not the sentiment labels {expected:?}",
                package.labels
            ),
        });
    }
    let plan = package.plan("scores")?;
    let mut test = if data.extension().is_some_and(|e| e == "txt") {
        data::corpus::rated(data)?
    } else {
        data::corpus::split(&data::corpus::rotten_tomatoes(data)?, 0.2, seed).1
    };
    test.truncate(limit.unwrap_or(usize::MAX));
    let mut predictions = Vec::with_capacity(test.len());
    for chunk in test.chunks(32) {
        let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
        for row in package.run(&plan, &texts)? {
            predictions.push(usize::from(row[1] > row[0]));
        }
    }
    let labels: Vec<usize> = test.iter().map(|e| e.label).collect();
    let (accuracy, f1) = accuracy_f1(&predictions, &labels);
    Ok(Evaluation {
        examples: test.len(),
        accuracy,
        f1,
    })
}

/// Accuracy and F1 of the second class (positive) of binary predictions against labels.
pub fn accuracy_f1(predictions: &[usize], labels: &[usize]) -> (f64, f64) {
    let mut counts = [[0usize; 2]; 2];
    for (&p, &l) in predictions.iter().zip(labels) {
        counts[l][p] += 1;
    }
    let (tp, fp, fneg) = (counts[1][1], counts[0][1], counts[1][0]);
    (
        (counts[0][0] + tp) as f64 / predictions.len().max(1) as f64,
        2.0 * tp as f64 / (2 * tp + fp + fneg).max(1) as f64,
    )
}

//! Fitting a DBNet student's decoder to its own probability maps: a student (above all one that
//! runs at a lower resolution inside) draws its text regions wider than the teacher's, so the
//! teacher's binarisation threshold and unclip ratio grow its boxes past the text. The pair that
//! gives the best mAP@0.5 on labelled training images is written into the student's manifest.
//! The model runs once per image; every candidate pair only decodes again.

use std::path::{Path, PathBuf};

use edgemass::model::manifest::DecoderSpec;
use edgemass::vision::Detection;
use edgemass::vision::decode::{Context, decode};
use edgemass::vision::preprocess::load_image;

use crate::eval;
use crate::eval::detect::{EvalError, IOU, Truth, mean_average_precision};

/// Binarisation thresholds tried.
pub const THRESHOLDS: [f32; 5] = [0.2, 0.3, 0.4, 0.5, 0.6];

/// Unclip ratios tried.
pub const UNCLIP_RATIOS: [f32; 10] = [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0];

/// Errors while tuning.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// The package could not run.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// The manifest is not a DBNet detector, or could not be rewritten.
    #[error("{path}: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The chosen decoder settings and what they scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuned {
    /// Binarisation threshold.
    pub threshold: f32,
    /// Unclip ratio.
    pub unclip_ratio: f32,
    /// mAP@0.5 on the tuning images with the manifest's settings.
    pub before: f64,
    /// mAP@0.5 with the chosen ones.
    pub after: f64,
}

/// Finds the best threshold and unclip ratio for the package at `manifest` on `images` with
/// their true boxes, and writes them into the manifest's `[decoder]` (the choice is recorded as a
/// pass in its provenance).
pub fn tune(manifest: &Path, images: &[PathBuf], truth: &[Vec<Truth>]) -> Result<Tuned, TuneError> {
    let bad = |reason: String| TuneError::Manifest {
        path: manifest.to_owned(),
        reason,
    };
    let detector = eval::detect::scoring_detector(manifest)?;
    let m = detector.model().manifest().clone();
    let DecoderSpec::Dbnet {
        output,
        threshold,
        unclip_ratio,
        min_size,
    } = &m.decoder
    else {
        return Err(bad("only DBNet decoders are tuned".into()));
    };
    let mut runs = Vec::with_capacity(images.len());
    for path in images {
        let image = load_image(path).map_err(EvalError::from)?;
        let (tensor, transform) = detector.prepare(&image);
        let outputs = detector.model().run(tensor).map_err(EvalError::from)?;
        runs.push((outputs, transform));
    }
    let context = Context {
        labels: m.labels.len(),
        width: m.input.width,
        height: m.input.height,
        thresholds: m.thresholds,
    };
    let score = |threshold: f32, unclip_ratio: f32| -> Result<f64, TuneError> {
        let spec = DecoderSpec::Dbnet {
            output: output.clone(),
            threshold,
            unclip_ratio,
            min_size: *min_size,
        };
        let mut detections: Vec<Vec<Detection>> = Vec::with_capacity(runs.len());
        for (outputs, transform) in &runs {
            let found = decode(&spec, outputs, &context).map_err(|e| bad(e.to_string()))?;
            detections.push(found.into_iter().map(|d| transform.detection(d)).collect());
        }
        Ok(mean_average_precision(&detections, truth, IOU).unwrap_or(0.0))
    };
    let before = score(*threshold, *unclip_ratio)?;
    let mut best = (before, *threshold, *unclip_ratio);
    for t in THRESHOLDS {
        for u in UNCLIP_RATIOS {
            let map = score(t, u)?;
            if map > best.0 {
                best = (map, t, u);
            }
        }
    }
    let (after, threshold, unclip_ratio) = best;
    let text = std::fs::read_to_string(manifest).map_err(|e| bad(e.to_string()))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let decoder = table
        .get_mut("decoder")
        .and_then(|d| d.as_table_mut())
        .ok_or_else(|| bad("no [decoder] table".into()))?;
    let tidy = |v: f32| toml::Value::Float((f64::from(v) * 100.0).round() / 100.0);
    decoder.insert("threshold".into(), tidy(threshold));
    decoder.insert("unclip_ratio".into(), tidy(unclip_ratio));
    let pass = format!(
        "tune-decoder: threshold {threshold:.2}, unclip ratio {unclip_ratio:.2} (mAP@0.5 {before:.4} \
         -> {after:.4} on {} training images)",
        images.len()
    );
    if let Some(passes) = table
        .get_mut("provenance")
        .and_then(|p| p.get_mut("passes"))
        .and_then(|p| p.as_array_mut())
    {
        passes.push(pass.into());
    }
    let text = toml::to_string(&table).map_err(|e| bad(e.to_string()))?;
    crate::write_atomic(manifest, text.as_bytes()).map_err(|e| bad(e.to_string()))?;
    Ok(Tuned {
        threshold,
        unclip_ratio,
        before,
        after,
    })
}

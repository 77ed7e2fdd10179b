//! Detection metrics: average precision at IoU 0.5 (all-point interpolated, as in PASCAL VOC
//! 2010 and later) against known boxes, per class and averaged over the classes that have
//! boxes; and the detections of a package on a set of images, run in tract.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edgemass::model::{Manifest, Model};
use edgemass::vision::Detection;
use edgemass::vision::detector::Detector;
use edgemass::vision::preprocess::load_image;

/// IoU at which a detection matches a true box.
pub const IOU: f32 = 0.5;

/// Score threshold the detectors run at while scoring, so the precision–recall curve is whole.
pub const SCORING_THRESHOLD: f32 = 0.05;

/// A true box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    /// Class id.
    pub class: usize,
    /// `[x1, y1, x2, y2]` in pixels.
    pub bbox: [f32; 4],
}

/// Errors while running a detector over images.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The package could not be loaded.
    #[error(transparent)]
    Model(#[from] edgemass::model::ModelError),
    /// The package's detector could not be set up or run.
    #[error(transparent)]
    Detect(#[from] edgemass::vision::detector::DetectError),
    /// An image could not be read.
    #[error(transparent)]
    Image(#[from] edgemass::vision::preprocess::ImageError),
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Average precision of `class` over all images: detections in order of score are matched to
/// the unmatched true box of that class they overlap most (IoU ≥ `threshold`); a second
/// detection of a box is a false positive. `None` when the class has no true box.
pub fn average_precision(
    detections: &[Vec<Detection>],
    truth: &[Vec<Truth>],
    class: usize,
    threshold: f32,
) -> Option<f64> {
    let positives = truth.iter().flatten().filter(|t| t.class == class).count();
    if positives == 0 {
        return None;
    }
    let mut ranked: Vec<(f32, usize, [f32; 4])> = detections
        .iter()
        .enumerate()
        .flat_map(|(image, ds)| {
            ds.iter()
                .filter(|d| d.class == class)
                .map(move |d| (d.score, image, d.bbox.to_array()))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut matched: Vec<Vec<bool>> = truth.iter().map(|t| vec![false; t.len()]).collect();
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut curve = Vec::with_capacity(ranked.len());
    for (_, image, bbox) in ranked {
        let best = truth
            .get(image)
            .into_iter()
            .flatten()
            .enumerate()
            .filter(|(_, t)| t.class == class)
            .map(|(i, t)| (i, iou(&bbox, &t.bbox)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, overlap)) if overlap >= threshold && !matched[image][i] => {
                matched[image][i] = true;
                tp += 1;
            }
            _ => fp += 1,
        }
        curve.push((tp as f64 / positives as f64, tp as f64 / (tp + fp) as f64));
    }
    Some(interpolated_area(&curve))
}

/// Area under a precision–recall curve given as (recall, precision) in rank order, with
/// precision made monotone from the right.
fn interpolated_area(curve: &[(f64, f64)]) -> f64 {
    let mut precision: Vec<f64> = curve.iter().map(|c| c.1).collect();
    for i in (0..precision.len().saturating_sub(1)).rev() {
        precision[i] = precision[i].max(precision[i + 1]);
    }
    let mut area = 0.0;
    let mut last_recall = 0.0;
    for (i, &(recall, _)) in curve.iter().enumerate() {
        area += (recall - last_recall) * precision[i];
        last_recall = recall;
    }
    area
}

/// Mean of the average precisions of every class that has a true box; `None` when there is
/// none.
pub fn mean_average_precision(
    detections: &[Vec<Detection>],
    truth: &[Vec<Truth>],
    threshold: f32,
) -> Option<f64> {
    let classes: BTreeSet<usize> = truth.iter().flatten().map(|t| t.class).collect();
    let aps: Vec<f64> = classes
        .iter()
        .filter_map(|&c| average_precision(detections, truth, c, threshold))
        .collect();
    (!aps.is_empty()).then(|| aps.iter().sum::<f64>() / aps.len() as f64)
}

/// Precision and recall of the detections scoring at least `score` (greedy matching as in
/// [`average_precision`], all classes).
pub fn precision_recall(
    detections: &[Vec<Detection>],
    truth: &[Vec<Truth>],
    score: f32,
    threshold: f32,
) -> (f64, f64) {
    let (mut tp, mut found) = (0usize, 0usize);
    for (ds, ts) in detections.iter().zip(truth) {
        let mut kept: Vec<&Detection> = ds.iter().filter(|d| d.score >= score).collect();
        kept.sort_by(|a, b| b.score.total_cmp(&a.score));
        found += kept.len();
        let mut matched = vec![false; ts.len()];
        for d in kept {
            let best = ts
                .iter()
                .enumerate()
                .filter(|(i, t)| t.class == d.class && !matched[*i])
                .map(|(i, t)| (i, iou(&d.bbox.to_array(), &t.bbox)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((i, _)) = best.filter(|b| b.1 >= threshold) {
                matched[i] = true;
                tp += 1;
            }
        }
    }
    let positives: usize = truth.iter().map(Vec::len).sum();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    (ratio(tp, found), ratio(tp, positives))
}

/// The true boxes of a rendered-text set (class 0, `text`).
pub fn truth_of(set: &[crate::data::render_text::Labelled]) -> Vec<Vec<Truth>> {
    set.iter()
        .map(|l| {
            l.boxes
                .iter()
                .map(|&bbox| Truth { class: 0, bbox })
                .collect()
        })
        .collect()
}

/// The detections as true boxes, keeping those scoring at least `score` (a teacher's answers as
/// the reference for agreement).
pub fn as_truth(detections: &[Vec<Detection>], score: f32) -> Vec<Vec<Truth>> {
    detections
        .iter()
        .map(|ds| {
            ds.iter()
                .filter(|d| d.score >= score)
                .map(|d| Truth {
                    class: d.class,
                    bbox: d.bbox.to_array(),
                })
                .collect()
        })
        .collect()
}

/// A package's detections on images, and its mean inference time.
#[derive(Debug, Clone)]
pub struct Run {
    /// Detections per image (scores down to [`SCORING_THRESHOLD`]), in original pixels.
    pub detections: Vec<Vec<Detection>>,
    /// Mean tract inference time per image.
    pub inference: Duration,
    /// The manifest's own score threshold.
    pub score_threshold: f32,
}

/// Runs the package at `manifest` on `images` in tract, keeping detections down to
/// [`SCORING_THRESHOLD`].
pub fn detect_all(manifest: &Path, images: &[PathBuf], progress: bool) -> Result<Run, EvalError> {
    let detector = scoring_detector(manifest)?;
    let score_threshold = Manifest::from_path(manifest)
        .map_err(edgemass::model::ModelError::from)?
        .thresholds
        .score;
    let bar = crate::progress_bar(progress, images.len() as u64, "detect");
    let mut detections = Vec::with_capacity(images.len());
    let mut inference = Duration::ZERO;
    for path in images {
        let image = load_image(path)?;
        let found = detector.detect(&image)?;
        inference += found.inference;
        detections.push(found.detections);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Run {
        detections,
        inference: inference / images.len().max(1) as u32,
        score_threshold,
    })
}

/// The package's detector with its score threshold lowered to [`SCORING_THRESHOLD`].
pub fn scoring_detector(manifest: &Path) -> Result<Detector, EvalError> {
    let mut m = Manifest::from_path(manifest).map_err(edgemass::model::ModelError::from)?;
    m.thresholds.score = m.thresholds.score.min(SCORING_THRESHOLD);
    Ok(Detector::new(Model::load(m)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgemass::vision::BBox;

    fn det(score: f32, b: [f32; 4]) -> Detection {
        Detection {
            class: 0,
            score,
            bbox: BBox {
                x1: b[0],
                y1: b[1],
                x2: b[2],
                y2: b[3],
            },
            keypoints: vec![],
        }
    }

    fn truth(b: [f32; 4]) -> Truth {
        Truth { class: 0, bbox: b }
    }

    #[test]
    fn perfect_detections_score_one() {
        let t = vec![vec![truth([0., 0., 10., 10.]), truth([20., 20., 30., 30.])]];
        let d = vec![vec![
            det(0.9, [0., 0., 10., 10.]),
            det(0.8, [21., 20., 30., 31.]),
        ]];
        assert_eq!(mean_average_precision(&d, &t, IOU), Some(1.0));
        assert_eq!(precision_recall(&d, &t, 0.5, IOU), (1.0, 1.0));
    }

    #[test]
    fn misses_and_duplicates_lower_the_precision_curve() {
        let t = vec![
            vec![truth([0., 0., 10., 10.])],
            vec![truth([0., 0., 10., 10.]), truth([50., 50., 60., 60.])],
        ];
        // Ranked: hit (image 0), duplicate of the same box (false), hit (image 1), false.
        let d = vec![
            vec![det(0.9, [0., 0., 10., 10.]), det(0.8, [1., 1., 10., 10.])],
            vec![
                det(0.7, [0., 0., 10., 10.]),
                det(0.6, [100., 100., 110., 110.]),
            ],
        ];
        // Recall steps 1/3 at precision 1, then 2/3 at precision 2/3; the third box is missed.
        let ap = average_precision(&d, &t, 0, IOU).unwrap();
        assert!(
            (ap - (1.0 / 3.0 + (1.0 / 3.0) * (2.0 / 3.0))).abs() < 1e-9,
            "{ap}"
        );
        let (p, r) = precision_recall(&d, &t, 0.65, IOU);
        assert!(
            (p - 2.0 / 3.0).abs() < 1e-9 && (r - 2.0 / 3.0).abs() < 1e-9,
            "{p} {r}"
        );
    }

    #[test]
    fn classes_without_boxes_are_left_out_and_none_means_none() {
        assert_eq!(mean_average_precision(&[vec![]], &[vec![]], IOU), None);
        let t = vec![vec![truth([0., 0., 10., 10.])]];
        let mut other = det(0.9, [0., 0., 10., 10.]);
        other.class = 1;
        assert_eq!(mean_average_precision(&[vec![other]], &t, IOU), Some(0.0));
    }

    #[test]
    fn iou_of_half_overlapping_boxes() {
        assert!((iou(&[0., 0., 10., 10.], &[5., 0., 15., 10.]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&[0., 0., 1., 1.], &[2., 2., 3., 3.]), 0.0);
    }
}

//! SSD heads of TensorFlow's Object Detection API (SSD MobileNet and its kin): box encodings
//! relative to a fixed grid of anchors and one logit per class with the background first. What
//! the graph's own post-processor does, done here: anchors of `ssd_anchor_generator`, the
//! Faster R-CNN box coder, sigmoid scores, boxes clipped to the image, per-class NMS and at most
//! 100 boxes.

use tract_onnx::prelude::tract_ndarray::ArrayD;

use super::{Context, DecodeError, shape_error};
use crate::vision::nms::nms;
use crate::vision::{BBox, Detection};

/// Most boxes reported, as the OD API's post-processor keeps.
const MAX_DETECTIONS: usize = 100;

/// The anchor generator and box coder of one SSD.
#[derive(Debug, Clone, PartialEq)]
pub struct Params<'a> {
    /// The logit column of each label.
    pub columns: &'a [usize],
    /// Cells per side of each feature map's grid.
    pub grids: &'a [u32],
    /// Scale of the first and of the last feature map.
    pub scales: [f32; 2],
    /// Aspect ratios of every feature map but the first.
    pub aspect_ratios: &'a [f32],
    /// Divisors of the encoded y, x, height and width.
    pub box_scales: [f32; 4],
}

/// An anchor: centre and size as fractions of the image, `[cy, cx, h, w]`.
type Anchor = [f32; 4];

/// The anchors in the order of the model's outputs: feature map, then row, column and box.
/// Feature map `i` has scale `s_i`, evenly spaced from the first scale to the last, and boxes
/// `(s_i, a)` for each aspect ratio `a` plus `(√(s_i·s_{i+1}), 1)` (`s_n` = 1); the first map has
/// only `(0.1, 1)`, `(s_0, 2)` and `(s_0, 0.5)`. A box `(s, a)` is `s/√a` high and `s·√a` wide.
pub fn anchors(params: &Params) -> Vec<Anchor> {
    let layers = params.grids.len();
    let [low, high] = params.scales;
    let scale = |i: usize| match i {
        i if i >= layers => 1.0,
        _ if layers == 1 => low,
        i => low + (high - low) * i as f32 / (layers - 1) as f32,
    };
    let mut anchors = Vec::new();
    for (i, &grid) in params.grids.iter().enumerate() {
        let boxes: Vec<(f32, f32)> = if i == 0 {
            vec![(0.1, 1.0), (scale(0), 2.0), (scale(0), 0.5)]
        } else {
            let s = scale(i);
            params
                .aspect_ratios
                .iter()
                .map(|&a| (s, a))
                .chain([((s * scale(i + 1)).sqrt(), 1.0)])
                .collect()
        };
        let cell = 1.0 / grid as f32;
        for row in 0..grid {
            for column in 0..grid {
                let (cy, cx) = ((row as f32 + 0.5) * cell, (column as f32 + 0.5) * cell);
                for &(s, a) in &boxes {
                    let root = a.sqrt();
                    anchors.push([cy, cx, s / root, s * root]);
                }
            }
        }
    }
    anchors
}

/// Decodes box encodings `[1, N, 1, 4]` or `[1, N, 4]` and logits `[1, N, C]`.
pub fn decode(
    (boxes, box_name): (&ArrayD<f32>, &str),
    (logits, logit_name): (&ArrayD<f32>, &str),
    params: &Params,
    ctx: &Context,
) -> Result<Vec<Detection>, DecodeError> {
    let anchors = anchors(params);
    let n = anchors.len();
    let codes = boxes.view().into_shape_with_order((n, 4)).map_err(|_| {
        shape_error(
            box_name,
            boxes,
            "ssd",
            format!("[1, {n}, 1, 4] (one per anchor)"),
        )
    })?;
    let columns = logits.shape().get(2).copied().unwrap_or(0);
    let needed = params.columns.iter().max().map_or(1, |c| c + 1);
    if logits.ndim() != 3 || logits.shape()[..2] != [1, n] || columns < needed {
        return Err(shape_error(
            logit_name,
            logits,
            "ssd",
            format!(
                "[1, {n}, C] with C > {} (the labels' last column)",
                needed - 1
            ),
        ));
    }
    let threshold = ctx.thresholds.score;
    let [sy, sx, sh, sw] = params.box_scales;
    let (width, height) = (ctx.width as f32, ctx.height as f32);
    let mut found = Vec::new();
    for (a, anchor) in anchors.iter().enumerate() {
        let mut bbox = None;
        for (class, &column) in params.columns.iter().enumerate() {
            let score = sigmoid(logits[[0, a, column]]);
            if score < threshold {
                continue;
            }
            let bbox = *bbox.get_or_insert_with(|| {
                let [cy, cx, h, w] = *anchor;
                let code = |k: usize| codes[[a, k]];
                let (y, x) = (code(0) / sy * h + cy, code(1) / sx * w + cx);
                let (h, w) = ((code(2) / sh).exp() * h, (code(3) / sw).exp() * w);
                let clip = |v: f32| v.clamp(0.0, 1.0);
                BBox {
                    x1: clip(x - w / 2.0) * width,
                    y1: clip(y - h / 2.0) * height,
                    x2: clip(x + w / 2.0) * width,
                    y2: clip(y + h / 2.0) * height,
                }
            });
            found.push(Detection {
                class,
                score,
                bbox,
                keypoints: vec![],
            });
        }
    }
    let mut kept = nms(found, ctx.thresholds.iou);
    kept.truncate(MAX_DETECTIONS);
    Ok(kept)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::Thresholds;

    fn params(columns: &[usize]) -> Params<'_> {
        Params {
            columns,
            grids: &[19, 10, 5, 3, 2, 1],
            scales: [0.2, 0.95],
            aspect_ratios: &[1.0, 2.0, 0.5, 3.0, 0.3333],
            box_scales: [10.0, 10.0, 5.0, 5.0],
        }
    }

    #[test]
    fn the_coco_ssd_has_1917_anchors_in_the_od_api_order() {
        let anchors = anchors(&params(&[1]));
        assert_eq!(anchors.len(), 1917);
        let near = |a: Anchor, b: Anchor| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        // First cell of the 19×19 map: (0.1, 1), (0.2, 2), (0.2, 0.5).
        let c = 0.5 / 19.0;
        assert!(near(anchors[0], [c, c, 0.1, 0.1]));
        assert!(near(
            anchors[1],
            [c, c, 0.2 / 2f32.sqrt(), 0.2 * 2f32.sqrt()]
        ));
        // Second cell of the row moves along x.
        assert!(near(anchors[3], [c, 1.5 / 19.0, 0.1, 0.1]));
        // The last map is one cell at the centre, scale 0.95, interpolated with 1.0 last.
        let last = anchors[1916];
        assert!(near(last, [0.5, 0.5, (0.95f32).sqrt(), (0.95f32).sqrt()]));
        assert!(near(anchors[1911], [0.5, 0.5, 0.95, 0.95]));
        // The 10×10 map starts after 19·19·3 anchors, at scale 0.35.
        assert!(near(anchors[1083], [0.05, 0.05, 0.35, 0.35]));
    }

    #[test]
    fn a_zero_code_is_its_anchor_and_scores_are_sigmoids_per_label() {
        let p = params(&[3, 1]);
        let n = 1917;
        let boxes = ArrayD::zeros(vec![1, n, 1, 4]);
        let mut logits = ArrayD::from_elem(vec![1, n, 4], -10.0f32);
        logits[[0, 1911, 1]] = 2.0;
        logits[[0, 1911, 3]] = 0.0;
        let ctx = Context {
            labels: 2,
            width: 300,
            height: 300,
            thresholds: Thresholds {
                score: 0.3,
                iou: 0.6,
            },
        };
        let found = decode((&boxes, "b"), (&logits, "s"), &p, &ctx).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].class, 1);
        assert!((found[0].score - sigmoid(2.0)).abs() < 1e-6);
        assert_eq!((found[1].class, found[1].score), (0, 0.5));
        let b = found[0].bbox;
        let half = 0.95 * 150.0;
        assert!((b.x1 - (150.0 - half)).abs() < 1e-3 && (b.y2 - (150.0 + half)).abs() < 1e-3);
        let short = ArrayD::zeros(vec![1, n, 3]);
        let err = decode((&boxes, "b"), (&short, "s"), &p, &ctx).unwrap_err();
        assert!(err.to_string().contains("C > 3"), "{err}");
    }
}

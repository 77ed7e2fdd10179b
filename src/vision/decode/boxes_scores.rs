//! SSD / DETR style heads: a box per query and a score per class, already de-duplicated by the
//! model, so no NMS follows.

use tract_onnx::prelude::tract_ndarray::ArrayD;

use super::{Context, DecodeError, argmax, shape_error};
use crate::model::manifest::BoxFormat;
use crate::vision::{BBox, Detection};

/// Decodes boxes `[1, N, 4]` and scores `[1, N, C]`.
pub fn decode(
    (boxes, box_name): (&ArrayD<f32>, &str),
    (scores, score_name): (&ArrayD<f32>, &str),
    format: BoxFormat,
    normalized: bool,
    ctx: &Context,
) -> Result<Vec<Detection>, DecodeError> {
    let n = boxes.shape().get(1).copied().unwrap_or(0);
    if boxes.ndim() != 3 || boxes.shape()[0] != 1 || boxes.shape()[2] != 4 {
        return Err(shape_error(
            box_name,
            boxes,
            "boxes-scores",
            "[1, N, 4]".into(),
        ));
    }
    if scores.shape() != [1, n, ctx.labels] {
        return Err(shape_error(
            score_name,
            scores,
            "boxes-scores",
            format!("[1, {n}, {}] (one score per label)", ctx.labels),
        ));
    }
    let (sx, sy) = if normalized {
        (ctx.width as f32, ctx.height as f32)
    } else {
        (1.0, 1.0)
    };
    let mut found = Vec::new();
    for q in 0..n {
        let Some((class, score)) = argmax((0..ctx.labels).map(|c| scores[[0, q, c]])) else {
            continue;
        };
        if score < ctx.thresholds.score {
            continue;
        }
        let v = |k: usize| boxes[[0, q, k]];
        let bbox = match format {
            BoxFormat::Xyxy => BBox {
                x1: v(0) * sx,
                y1: v(1) * sy,
                x2: v(2) * sx,
                y2: v(3) * sy,
            },
            BoxFormat::Cxcywh => BBox::from_center(v(0) * sx, v(1) * sy, v(2) * sx, v(3) * sy),
        };
        found.push(Detection {
            class,
            score,
            bbox,
            keypoints: vec![],
        });
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::Thresholds;
    use tract_onnx::prelude::tract_ndarray::arr3;

    fn ctx() -> Context {
        Context {
            labels: 2,
            width: 100,
            height: 50,
            thresholds: Thresholds {
                score: 0.5,
                iou: 0.5,
            },
        }
    }

    #[test]
    fn normalized_centre_boxes_are_scaled_to_input_pixels() {
        let boxes = arr3(&[[[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1]]]).into_dyn();
        let scores = arr3(&[[[0.1, 0.7], [0.3, 0.2]]]).into_dyn();
        let found = decode(
            (&boxes, "b"),
            (&scores, "s"),
            BoxFormat::Cxcywh,
            true,
            &ctx(),
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].class, 1);
        assert_eq!(
            found[0].bbox,
            BBox {
                x1: 40.0,
                y1: 15.0,
                x2: 60.0,
                y2: 35.0
            }
        );
    }

    #[test]
    fn overlapping_corner_boxes_are_all_kept() {
        let boxes = arr3(&[[[10.0, 10.0, 20.0, 20.0], [11.0, 10.0, 21.0, 20.0]]]).into_dyn();
        let scores = arr3(&[[[0.9, 0.0], [0.8, 0.0]]]).into_dyn();
        let found = decode(
            (&boxes, "b"),
            (&scores, "s"),
            BoxFormat::Xyxy,
            false,
            &ctx(),
        )
        .unwrap();
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn score_width_must_match_the_labels() {
        let boxes = arr3(&[[[0.0, 0.0, 1.0, 1.0]]]).into_dyn();
        let scores = arr3(&[[[0.9, 0.0, 0.1]]]).into_dyn();
        let err = decode(
            (&boxes, "b"),
            (&scores, "s"),
            BoxFormat::Xyxy,
            false,
            &ctx(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("one score per label"), "{err}");
    }
}

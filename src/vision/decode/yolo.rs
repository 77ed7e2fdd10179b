//! YOLO heads: v8 (`[1, 4 + C, N]`, no objectness) and v5 (`[1, N, 5 + C]`, with objectness).

use tract_onnx::prelude::tract_ndarray::ArrayD;

use super::{Context, DecodeError, argmax, shape_error};
use crate::vision::{BBox, Detection};

/// Decodes a YOLOv8 output; boxes are centre/size in input pixels.
pub fn decode_v8(
    out: &ArrayD<f32>,
    name: &str,
    ctx: &Context,
) -> Result<Vec<Detection>, DecodeError> {
    let shape = out.shape();
    if shape.len() != 3 || shape[0] != 1 || shape[1] != 4 + ctx.labels {
        return Err(shape_error(
            name,
            out,
            "yolov8",
            format!("[1, {}, N] (4 + {} labels)", 4 + ctx.labels, ctx.labels),
        ));
    }
    let mut found = Vec::new();
    for n in 0..shape[2] {
        let Some((class, score)) = argmax((0..ctx.labels).map(|c| out[[0, 4 + c, n]])) else {
            continue;
        };
        if score >= ctx.thresholds.score {
            let bbox = BBox::from_center(
                out[[0, 0, n]],
                out[[0, 1, n]],
                out[[0, 2, n]],
                out[[0, 3, n]],
            );
            found.push(Detection {
                class,
                score,
                bbox,
                keypoints: vec![],
            });
        }
    }
    Ok(found)
}

/// Decodes a YOLOv5 output; score = objectness × class probability.
pub fn decode_v5(
    out: &ArrayD<f32>,
    name: &str,
    ctx: &Context,
) -> Result<Vec<Detection>, DecodeError> {
    let shape = out.shape();
    if shape.len() != 3 || shape[0] != 1 || shape[2] != 5 + ctx.labels {
        return Err(shape_error(
            name,
            out,
            "yolov5",
            format!("[1, N, {}] (5 + {} labels)", 5 + ctx.labels, ctx.labels),
        ));
    }
    let mut found = Vec::new();
    for n in 0..shape[1] {
        let objectness = out[[0, n, 4]];
        if objectness < ctx.thresholds.score {
            continue;
        }
        let Some((class, p)) = argmax((0..ctx.labels).map(|c| out[[0, n, 5 + c]])) else {
            continue;
        };
        let score = objectness * p;
        if score >= ctx.thresholds.score {
            let bbox = BBox::from_center(
                out[[0, n, 0]],
                out[[0, n, 1]],
                out[[0, n, 2]],
                out[[0, n, 3]],
            );
            found.push(Detection {
                class,
                score,
                bbox,
                keypoints: vec![],
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::Thresholds;
    use tract_onnx::prelude::tract_ndarray::{Array3, IxDyn};

    fn ctx(labels: usize) -> Context {
        Context {
            labels,
            width: 320,
            height: 320,
            thresholds: Thresholds {
                score: 0.25,
                iou: 0.45,
            },
        }
    }

    #[test]
    fn v8_picks_the_best_class_of_each_anchor_above_threshold() {
        let mut out = Array3::<f32>::zeros((1, 6, 3));
        for (n, row) in [
            [100.0, 50.0, 20.0, 10.0, 0.1, 0.8],
            [10.0, 10.0, 4.0, 4.0, 0.2, 0.1],
            [30.0, 30.0, 10.0, 10.0, 0.6, 0.5],
        ]
        .iter()
        .enumerate()
        {
            for (k, v) in row.iter().enumerate() {
                out[[0, k, n]] = *v;
            }
        }
        let found = decode_v8(&out.into_dyn(), "o", &ctx(2)).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].class, found[0].score), (1, 0.8));
        assert_eq!(
            found[0].bbox,
            BBox {
                x1: 90.0,
                y1: 45.0,
                x2: 110.0,
                y2: 55.0
            }
        );
        assert_eq!((found[1].class, found[1].score), (0, 0.6));
    }

    #[test]
    fn v8_rejects_a_label_count_that_does_not_fit() {
        let out = ArrayD::<f32>::zeros(IxDyn(&[1, 22, 2100]));
        let err = decode_v8(&out, "output0", &ctx(3)).unwrap_err().to_string();
        assert!(
            err.contains("output0") && err.contains("[1, 22, 2100]"),
            "{err}"
        );
    }

    #[test]
    fn v5_multiplies_objectness_and_class_probability() {
        let mut out = Array3::<f32>::zeros((1, 2, 7));
        for (k, v) in [50.0, 50.0, 10.0, 10.0, 0.9, 0.1, 0.5].iter().enumerate() {
            out[[0, 0, k]] = *v;
        }
        for (k, v) in [50.0, 50.0, 10.0, 10.0, 0.2, 0.9, 0.9].iter().enumerate() {
            out[[0, 1, k]] = *v;
        }
        let found = decode_v5(&out.into_dyn(), "o", &ctx(2)).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].class, 1);
        assert!((found[0].score - 0.45).abs() < 1e-6);
    }
}

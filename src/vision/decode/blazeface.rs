//! MediaPipe BlazeFace: per-anchor score logits and box/keypoint offsets over square anchor grids.

use tract_onnx::prelude::tract_ndarray::ArrayD;

use super::{Context, DecodeError, shape_error};
use crate::vision::{BBox, Detection};

/// One anchor grid: `cells × cells` positions with `anchors` anchors each.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    /// Cells per row.
    pub cells: usize,
    /// Anchors per cell.
    pub anchors: usize,
}

/// Decodes one grid. Anchor centres are at `(i + 0.5) / cells` of the input; offsets, sizes and
/// keypoints are in input pixels relative to the anchor centre.
pub fn decode(
    scores: &ArrayD<f32>,
    boxes: &ArrayD<f32>,
    (score_name, box_name): (&str, &str),
    grid: Grid,
    ctx: &Context,
) -> Result<Vec<Detection>, DecodeError> {
    let rows = grid.cells * grid.cells * grid.anchors;
    if scores.shape() != [1, rows, 1] {
        return Err(shape_error(
            score_name,
            scores,
            "blazeface",
            format!("[1, {rows}, 1] for this grid"),
        ));
    }
    let width = boxes.shape().get(2).copied().unwrap_or(0);
    if boxes.ndim() != 3 || boxes.shape()[..2] != [1, rows] || width < 4 || width % 2 != 0 {
        return Err(shape_error(
            box_name,
            boxes,
            "blazeface",
            format!("[1, {rows}, 4 + 2·keypoints]"),
        ));
    }
    let (w, h) = (ctx.width as f32, ctx.height as f32);
    let mut found = Vec::new();
    for row in 0..rows {
        let score = 1.0 / (1.0 + (-scores[[0, row, 0]]).exp());
        if score < ctx.thresholds.score {
            continue;
        }
        let cell = row / grid.anchors;
        let ax = ((cell % grid.cells) as f32 + 0.5) / grid.cells as f32 * w;
        let ay = ((cell / grid.cells) as f32 + 0.5) / grid.cells as f32 * h;
        let v = |k: usize| boxes[[0, row, k]];
        let bbox = BBox::from_center(ax + v(0), ay + v(1), v(2), v(3));
        let keypoints = (4..width)
            .step_by(2)
            .map(|k| [ax + v(k), ay + v(k + 1)])
            .collect();
        found.push(Detection {
            class: 0,
            score,
            bbox,
            keypoints,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::Thresholds;
    use tract_onnx::prelude::tract_ndarray::{Array3, IxDyn};

    #[test]
    fn offsets_are_relative_to_the_anchor_centre() {
        let grid = Grid {
            cells: 2,
            anchors: 2,
        };
        let mut scores = Array3::<f32>::from_elem((1, 8, 1), -10.0);
        let mut boxes = Array3::<f32>::zeros((1, 8, 6));
        // Row 7: cell 3 (x 1, y 1), second anchor.
        scores[[0, 7, 0]] = 2.0;
        for (k, v) in [4.0, -4.0, 20.0, 10.0, 1.0, 2.0].iter().enumerate() {
            boxes[[0, 7, k]] = *v;
        }
        let ctx = Context {
            labels: 1,
            width: 64,
            height: 64,
            thresholds: Thresholds {
                score: 0.5,
                iou: 0.3,
            },
        };
        let found = decode(
            &scores.into_dyn(),
            &boxes.into_dyn(),
            ("s", "b"),
            grid,
            &ctx,
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert!((found[0].score - 0.880797).abs() < 1e-5);
        assert_eq!(found[0].bbox, BBox::from_center(52.0, 44.0, 20.0, 10.0));
        assert_eq!(found[0].keypoints, [[49.0, 50.0]]);
    }

    #[test]
    fn a_grid_that_does_not_fit_the_output_is_an_error() {
        let scores = ArrayD::<f32>::zeros(IxDyn(&[1, 512, 1]));
        let boxes = ArrayD::<f32>::zeros(IxDyn(&[1, 512, 16]));
        let ctx = Context {
            labels: 1,
            width: 256,
            height: 256,
            thresholds: Thresholds::default(),
        };
        let err = decode(
            &scores,
            &boxes,
            ("s", "b"),
            Grid {
                cells: 8,
                anchors: 6,
            },
            &ctx,
        )
        .unwrap_err();
        assert!(err.to_string().contains("[1, 384, 1]"), "{err}");
    }
}

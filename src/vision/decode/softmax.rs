//! Image classification: logits through softmax, the best `top_k` labels for the whole image.

use tract_onnx::prelude::tract_ndarray::ArrayD;

use super::{Context, DecodeError, shape_error};
use crate::vision::{BBox, Detection};

/// Decodes logits `[1, C]`; each result's box is the whole input.
pub fn decode(
    logits: &ArrayD<f32>,
    name: &str,
    top_k: usize,
    ctx: &Context,
) -> Result<Vec<Detection>, DecodeError> {
    if logits.shape() != [1, ctx.labels] {
        return Err(shape_error(
            name,
            logits,
            "softmax",
            format!("[1, {}] (one logit per label)", ctx.labels),
        ));
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let total: f32 = exp.iter().sum();
    let mut ranked: Vec<(usize, f32)> = exp.iter().map(|e| e / total).enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let whole = BBox {
        x1: 0.0,
        y1: 0.0,
        x2: ctx.width as f32,
        y2: ctx.height as f32,
    };
    Ok(ranked
        .into_iter()
        .take(top_k)
        .map(|(class, score)| Detection {
            class,
            score,
            bbox: whole,
            keypoints: vec![],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::Thresholds;
    use tract_onnx::prelude::tract_ndarray::arr2;

    #[test]
    fn probabilities_sum_to_one_and_are_ranked() {
        let ctx = Context {
            labels: 3,
            width: 10,
            height: 10,
            thresholds: Thresholds::default(),
        };
        let found = decode(&arr2(&[[1.0, 3.0, 2.0]]).into_dyn(), "o", 3, &ctx).unwrap();
        let classes: Vec<usize> = found.iter().map(|d| d.class).collect();
        assert_eq!(classes, [1, 2, 0]);
        let total: f32 = found.iter().map(|d| d.score).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!((found[0].score - 0.665241).abs() < 1e-5);
    }
}

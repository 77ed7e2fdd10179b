//! Class-aware non-maximum suppression.

use super::Detection;

/// Keeps the best-scoring detection of each overlapping group of the same class: a detection is
/// dropped when its IoU with a better one of its class exceeds `iou`. Output is sorted by score.
pub fn nms(mut detections: Vec<Detection>, iou: f32) -> Vec<Detection> {
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(detections.len());
    for d in detections {
        if kept
            .iter()
            .all(|k| k.class != d.class || k.bbox.iou(&d.bbox) <= iou)
        {
            kept.push(d);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::BBox;

    fn det(class: usize, score: f32, x1: f32) -> Detection {
        Detection {
            class,
            score,
            bbox: BBox {
                x1,
                y1: 0.0,
                x2: x1 + 10.0,
                y2: 10.0,
            },
            keypoints: vec![],
        }
    }

    #[test]
    fn overlapping_boxes_of_one_class_keep_the_best() {
        let kept = nms(
            vec![det(0, 0.5, 1.0), det(0, 0.9, 0.0), det(0, 0.7, 50.0)],
            0.45,
        );
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, [0.9, 0.7]);
    }

    #[test]
    fn other_classes_are_not_suppressed() {
        let kept = nms(vec![det(0, 0.9, 0.0), det(1, 0.8, 0.0)], 0.45);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn iou_at_the_threshold_is_kept() {
        let a = det(0, 0.9, 0.0);
        let b = det(0, 0.8, 5.0);
        let iou = a.bbox.iou(&b.bbox);
        assert!((iou - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(nms(vec![a.clone(), b.clone()], iou).len(), 2);
        assert_eq!(nms(vec![a, b], iou - 0.01).len(), 1);
    }
}

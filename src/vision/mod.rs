//! Images in, detections out: preprocessing per manifest, output decoders, NMS, and drawing.

pub mod annotate;
pub mod decode;
pub mod detector;
pub mod jpeg;
pub mod nms;
pub mod preprocess;
pub mod scene;

use serde::Serialize;

/// An axis-aligned box in pixels, corners `(x1, y1)` top-left and `(x2, y2)` bottom-right.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BBox {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

impl BBox {
    /// A box from its centre and size.
    pub fn from_center(cx: f32, cy: f32, w: f32, h: f32) -> BBox {
        BBox {
            x1: cx - w / 2.0,
            y1: cy - h / 2.0,
            x2: cx + w / 2.0,
            y2: cy + h / 2.0,
        }
    }

    /// Width times height; zero for an empty box.
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }

    /// Intersection over union with `other`.
    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = BBox {
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
            x2: self.x2.min(other.x2),
            y2: self.y2.min(other.y2),
        }
        .area();
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// The corners as `[x1, y1, x2, y2]`.
    pub fn to_array(&self) -> [f32; 4] {
        [self.x1, self.y1, self.x2, self.y2]
    }
}

/// One thing a model found.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Class id, an index into the manifest's labels.
    pub class: usize,
    /// Confidence in 0..1.
    pub score: f32,
    /// Where it is.
    pub bbox: BBox,
    /// Landmarks (BlazeFace eyes, nose, mouth, ears), same coordinates as `bbox`.
    pub keypoints: Vec<[f32; 2]>,
}

/// Maps model-input pixels back to original-image pixels: `orig = (input - pad) / scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    /// Horizontal scale from original to input.
    pub scale_x: f32,
    /// Vertical scale from original to input.
    pub scale_y: f32,
    /// Left padding in input pixels.
    pub pad_x: f32,
    /// Top padding in input pixels.
    pub pad_y: f32,
    /// Original width, for clamping.
    pub width: u32,
    /// Original height, for clamping.
    pub height: u32,
}

impl Transform {
    /// Maps a point from input to original pixels, clamped to the image.
    pub fn point(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        [
            ((x - self.pad_x) / self.scale_x).clamp(0.0, self.width as f32),
            ((y - self.pad_y) / self.scale_y).clamp(0.0, self.height as f32),
        ]
    }

    /// Maps a detection from input to original pixels.
    pub fn detection(&self, d: Detection) -> Detection {
        let [x1, y1] = self.point([d.bbox.x1, d.bbox.y1]);
        let [x2, y2] = self.point([d.bbox.x2, d.bbox.y2]);
        Detection {
            bbox: BBox { x1, y1, x2, y2 },
            keypoints: d.keypoints.into_iter().map(|p| self.point(p)).collect(),
            ..d
        }
    }
}

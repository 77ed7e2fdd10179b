//! DBNet text detection: the probability map is binarised, split into connected regions, scored
//! by their mean probability and grown ("unclipped") by `area · ratio / perimeter`.

use image::{GrayImage, Luma};
use imageproc::region_labelling::{Connectivity, connected_components};
use tract_onnx::prelude::tract_ndarray::ArrayD;

use super::{Context, DecodeError, shape_error};
use crate::vision::{BBox, Detection};

/// Decoder settings from the manifest.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Pixel probability above which a pixel is text.
    pub threshold: f32,
    /// Growth ratio of the unclip step.
    pub unclip_ratio: f32,
    /// Minimum shorter side, in input pixels, of a kept region.
    pub min_size: f32,
}

#[derive(Clone, Copy)]
struct Region {
    x1: u32,
    y1: u32,
    x2: u32,
    y2: u32,
    sum: f32,
    pixels: u32,
}

/// Decodes a `[1, 1, H, W]` probability map; the region score must reach the score threshold.
pub fn decode(
    map: &ArrayD<f32>,
    name: &str,
    params: &Params,
    ctx: &Context,
) -> Result<Vec<Detection>, DecodeError> {
    let shape = map.shape();
    if shape.len() != 4 || shape[0] != 1 || shape[1] != 1 {
        return Err(shape_error(name, map, "dbnet", "[1, 1, H, W]".into()));
    }
    let (h, w) = (shape[2], shape[3]);
    let mask = GrayImage::from_fn(w as u32, h as u32, |x, y| {
        Luma([u8::from(
            map[[0, 0, y as usize, x as usize]] > params.threshold,
        )])
    });
    let labels = connected_components(&mask, Connectivity::Eight, Luma([0u8]));
    let mut regions: Vec<Option<Region>> = Vec::new();
    for (x, y, label) in labels.enumerate_pixels() {
        let label = label[0] as usize;
        if label == 0 {
            continue;
        }
        if regions.len() < label {
            regions.resize(label, None);
        }
        let p = map[[0, 0, y as usize, x as usize]];
        let r = regions[label - 1].get_or_insert(Region {
            x1: x,
            y1: y,
            x2: x,
            y2: y,
            sum: 0.0,
            pixels: 0,
        });
        r.x1 = r.x1.min(x);
        r.y1 = r.y1.min(y);
        r.x2 = r.x2.max(x);
        r.y2 = r.y2.max(y);
        r.sum += p;
        r.pixels += 1;
    }
    let (sx, sy) = (ctx.width as f32 / w as f32, ctx.height as f32 / h as f32);
    let mut found = Vec::new();
    for r in regions.into_iter().flatten() {
        let (bw, bh) = ((r.x2 - r.x1 + 1) as f32, (r.y2 - r.y1 + 1) as f32);
        let score = r.sum / r.pixels as f32;
        if bw.min(bh) < params.min_size || score < ctx.thresholds.score {
            continue;
        }
        let grow = bw * bh * params.unclip_ratio / (2.0 * (bw + bh));
        if bw.min(bh) + 2.0 * grow < params.min_size + 2.0 {
            continue;
        }
        let bbox = BBox {
            x1: (r.x1 as f32 - grow).max(0.0) * sx,
            y1: (r.y1 as f32 - grow).max(0.0) * sy,
            x2: (r.x2 as f32 + 1.0 + grow).min(w as f32) * sx,
            y2: (r.y2 as f32 + 1.0 + grow).min(h as f32) * sy,
        };
        found.push(Detection {
            class: 0,
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
    use tract_onnx::prelude::tract_ndarray::{Array4, IxDyn};

    const PARAMS: Params = Params {
        threshold: 0.3,
        unclip_ratio: 1.6,
        min_size: 3.0,
    };

    fn ctx() -> Context {
        Context {
            labels: 1,
            width: 64,
            height: 32,
            thresholds: Thresholds {
                score: 0.5,
                iou: 0.5,
            },
        }
    }

    #[test]
    fn two_separate_regions_become_two_unclipped_boxes() {
        let mut map = Array4::<f32>::zeros((1, 1, 32, 64));
        for y in 10..20 {
            for x in 10..30 {
                map[[0, 0, y, x]] = 0.9;
            }
            for x in 40..58 {
                map[[0, 0, y, x]] = 0.6;
            }
        }
        let found = decode(&map.into_dyn(), "m", &PARAMS, &ctx()).unwrap();
        assert_eq!(found.len(), 2);
        assert!((found[0].score - 0.9).abs() < 1e-6);
        // 20 × 10 region: grow = 200 · 1.6 / 60.
        let grow = 200.0 * 1.6 / 60.0;
        assert_eq!(
            found[0].bbox,
            BBox {
                x1: 10.0 - grow,
                y1: 10.0 - grow,
                x2: 30.0 + grow,
                y2: 20.0 + grow
            }
        );
    }

    #[test]
    fn faint_and_tiny_regions_are_dropped() {
        let mut map = Array4::<f32>::zeros((1, 1, 32, 64));
        for y in 10..20 {
            for x in 4..24 {
                map[[0, 0, y, x]] = 0.4;
            }
        }
        map[[0, 0, 2, 50]] = 0.99;
        assert!(
            decode(&map.into_dyn(), "m", &PARAMS, &ctx())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn map_resolution_is_scaled_to_the_input() {
        let mut map = Array4::<f32>::zeros((1, 1, 16, 32));
        for y in 4..12 {
            for x in 4..12 {
                map[[0, 0, y, x]] = 1.0;
            }
        }
        let params = Params {
            unclip_ratio: 0.0,
            ..PARAMS
        };
        let found = decode(&map.into_dyn(), "m", &params, &ctx()).unwrap();
        assert_eq!(
            found[0].bbox,
            BBox {
                x1: 8.0,
                y1: 8.0,
                x2: 24.0,
                y2: 24.0
            }
        );
    }

    #[test]
    fn a_map_with_channels_is_rejected() {
        let map = ArrayD::<f32>::zeros(IxDyn(&[1, 2, 8, 8]));
        assert!(decode(&map, "m", &PARAMS, &ctx()).is_err());
    }
}
